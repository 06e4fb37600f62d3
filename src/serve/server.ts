// `pfedprompt serve`'s HTTP server (node:http): the one origin a browser node talks to.
//
//   GET  /                 the page (dist/web/index.html) and its bundle, /<file>
//   GET  /ort/<file>       onnxruntime-web's scripts and wasm, self-hosted
//   GET  /model/           {"files": [...]}: the model's public files
//   GET  /model/<file>     one of them (an allow-list: model-files.ts)
//   GET  /clock            {"serverTimeMs"}: the clock to sign with (clock.ts)
//   POST /fleet/<Method>   a Fleet call, forwarded unchanged to the SuperLink (fleet-forwarding.ts)
//
// Every response is cross-origin isolated (COOP same-origin, COEP require-corp), which
// onnxruntime-web needs for threads (SharedArrayBuffer). Browsers grant isolation on
// https or on http://localhost / 127.0.0.1 only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetTransport } from '../flower/transport.js';
import { sendClock } from './clock.js';
import { FleetForwarder, sendError } from './fleet-forwarding.js';
import { ModelFiles } from './model-files.js';
import { pathSegments, sendFile } from './static-files.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..'); // from dist/src/serve
/** Where `npm run build` puts the page bundle. */
export const WEB_BUNDLE_DIR = path.join(PACKAGE_ROOT, 'dist', 'web');

/** onnxruntime-web's dist/ folder (its scripts and .wasm files), wherever npm put the package. */
export function onnxruntimeWebDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
}

export interface GatewayOptions {
  /** The SuperLink's gRPC Fleet API (GrpcFleetTransport); closed with the server. */
  fleet: FleetTransport;
  /** A model folder (or .safetensors file) whose public files are served; none if undefined. */
  model?: string;
  webDir?: string;
  ortDir?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  maxRequestBytes?: number;
  /** Told of requests that failed inside the server. */
  log?: (message: string) => void;
}

const ISOLATION_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

export class GatewayServer {
  private constructor(
    private readonly server: Server,
    private readonly fleet: FleetTransport,
    /** `http://host:port/`. */
    readonly url: string,
  ) {}

  static async start(options: GatewayOptions): Promise<GatewayServer> {
    const model = options.model === undefined ? undefined : await ModelFiles.open(options.model);
    const routes = new Routes(options, model);
    const server = createServer((req, res) => {
      routes.handle(req, res).catch((err: Error) => {
        options.log?.(`${req.method} ${req.url}: ${err.message}`);
        if (!res.headersSent) sendError(res, 500, err.message);
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
    });
    const { address, port } = server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    return new GatewayServer(server, options.fleet, `http://${host}:${port}/`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.fleet.close();
  }
}

class Routes {
  private readonly forwarder: FleetForwarder;
  private readonly webDir: string;
  private readonly ortDir: string;

  constructor(options: GatewayOptions, private readonly model: ModelFiles | undefined) {
    this.forwarder = new FleetForwarder({ transport: options.fleet, maxRequestBytes: options.maxRequestBytes });
    this.webDir = options.webDir ?? WEB_BUNDLE_DIR;
    this.ortDir = options.ortDir ?? onnxruntimeWebDir();
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for (const [name, value] of Object.entries(ISOLATION_HEADERS)) res.setHeader(name, value);
    const rawPath = (req.url ?? '/').split('?')[0];
    const segments = pathSegments(rawPath);
    if (segments === undefined || !rawPath.startsWith('/')) return sendError(res, 400, `bad path ${JSON.stringify(rawPath)}: no ".", ".." or encoded slashes`);
    const [first, ...rest] = segments;

    if (first === 'fleet' && rest.length === 1) return this.forwarder.forward(req, res, rest[0]);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendError(res, 405, `${req.method} ${rawPath}: only Fleet calls (POST /fleet/<Method>) take a body`);
    }
    if (first === 'clock' && rest.length === 0) return sendClock(res);
    if (first === 'ort') return this.file(req, res, this.ortDir, rest, rawPath);
    if (first === 'model') return this.modelFile(req, res, rest, rawPath);
    return this.file(req, res, this.webDir, first === '' && rest.length === 0 ? ['index.html'] : segments, rawPath);
  }

  private async modelFile(req: IncomingMessage, res: ServerResponse, rest: string[], rawPath: string): Promise<void> {
    if (this.model === undefined) return sendError(res, 404, 'this server was started without a model');
    if (rest.length === 1 && rest[0] === '') {
      const body = JSON.stringify({ files: this.model.files });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache', 'content-length': Buffer.byteLength(body) });
      return void res.end(req.method === 'HEAD' ? undefined : body);
    }
    if (rest.length !== 1 || !this.model.has(rest[0])) return sendError(res, 404, `${rawPath}: not one of the model's public files (${this.model.files.join(', ')})`);
    return this.file(req, res, this.model.dir, rest, rawPath);
  }

  private async file(req: IncomingMessage, res: ServerResponse, root: string, segments: string[], rawPath: string): Promise<void> {
    if (await sendFile(req, res, root, segments)) return;
    const hint = root === this.webDir && segments[0] === 'index.html' ? ` (no page bundle in ${this.webDir}: \`npm run build\` makes it)` : '';
    sendError(res, 404, `${rawPath}: not found${hint}`);
  }
}
