// `pfedprompt serve`: the web server a browser node joins through. It serves the page,
// onnxruntime-web and the model's public files, tells the page the time, and forwards the
// page's Fleet calls unchanged to a SuperLink's gRPC Fleet API (src/serve/).

import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { WORLD_MODEL_DIR } from '../experiment/world-experiment.js';
import { GrpcFleetTransport } from '../flower/grpc-transport.js';
import { GatewayServer, WEB_BUNDLE_DIR } from '../serve/server.js';

interface ServeCliOptions {
  superlink: string;
  port: number;
  host: string;
  insecure?: boolean;
  rootCertificates?: string;
  model: string;
  web: string;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a port 0–65535 (0: any free port), got "${value}"`);
  return n;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description("serve the browser client: the page, onnxruntime-web, the model's public files, and a gateway that forwards the page's Fleet calls unchanged to a SuperLink")
    .requiredOption('--superlink <host:port>', "the SuperLink's gRPC Fleet API (its --fleet-api-address, 9092 by default; flwr 1.42 serves it with FLWR_INTERNAL_GRPC_FLEET_API=1)")
    .option('--port <n>', 'port to listen on (0: any free port)', port, 8080)
    .option('--host <address>', 'address to listen on (browsers allow the threads onnxruntime-web needs on https or http://127.0.0.1 / localhost only)', '127.0.0.1')
    .option('--insecure', 'plaintext gRPC to the SuperLink (one started with --insecure); default is TLS')
    .option('--root-certificates <pem>', "CA certificate that signed the SuperLink's certificate (TLS)")
    .option('--model <path>', 'the model whose public files (config, weights, tokenizer) the page loads', WORLD_MODEL_DIR)
    .option('--web <dir>', 'the page bundle (built by `npm run build`)', WEB_BUNDLE_DIR)
    .action(async (opts: ServeCliOptions) => {
      if (opts.insecure && opts.rootCertificates) throw new Error('--insecure and --root-certificates exclude each other');
      const fleet = new GrpcFleetTransport({ address: opts.superlink, insecure: opts.insecure, rootCertificatesPath: opts.rootCertificates });
      const server = await GatewayServer.start({
        fleet, model: path.resolve(opts.model), webDir: path.resolve(opts.web), host: opts.host, port: opts.port,
        log: (m) => console.error(`${new Date().toISOString()} ERROR ${m}`),
      });
      if (!existsSync(path.join(opts.web, 'index.html'))) console.error(`warning: no page in ${path.resolve(opts.web)} (run \`npm run build\`); the gateway, /clock and /model/ work`);
      console.log(`pfedprompt serve: open ${server.url} (Fleet calls go to ${opts.superlink} over gRPC${opts.insecure ? ', plaintext' : ', TLS'})`);
      await new Promise<void>((resolve) => {
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
      });
      await server.close();
    });
}
