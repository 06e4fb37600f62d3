// The node logs through whatever the host application gives it (pfedprompt's CLI, a test
// collecting lines, a browser console), never straight to the console.
export interface FlowerLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const silentLogger: FlowerLogger = { debug() {}, info() {}, warn() {}, error() {} };
