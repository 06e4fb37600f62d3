// Files the page needs, served from fixed folders: its bundle, onnxruntime-web's scripts
// and wasm, the model's public files. A URL path names a file only through plain segments
// (no `.`, `..`, slashes or NULs once decoded), so no request reaches outside its folder.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.safetensors': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
};

export function contentType(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * The decoded segments of a URL path, or undefined when one could escape a folder or is
 * malformed: `.`/`..` (raw or percent-encoded), an encoded slash or backslash, a NUL.
 */
export function pathSegments(urlPath: string): string[] | undefined {
  const segments: string[] = [];
  for (const raw of urlPath.split('/').slice(1)) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (segment === '.' || segment === '..' || /[/\\\0]/.test(segment)) return undefined;
    segments.push(segment);
  }
  return segments;
}

/**
 * Sends `root/<segments>` if it is a file (GET or HEAD), with its content type and
 * Cross-Origin-Resource-Policy (the page is cross-origin isolated); false if there is none.
 */
export async function sendFile(req: IncomingMessage, res: ServerResponse, root: string, segments: string[]): Promise<boolean> {
  if (segments.length === 0 || segments.some((s) => s === '')) return false;
  const file = path.join(root, ...segments);
  if (path.relative(root, file).startsWith('..')) return false; // cannot happen with checked segments; kept as the last word
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) return false;
  res.writeHead(200, {
    'content-type': contentType(file),
    'content-length': info.size,
    'cross-origin-resource-policy': 'same-origin',
    'cache-control': 'no-cache',
    'last-modified': info.mtime.toUTCString(),
  });
  if (req.method === 'HEAD') {
    res.end();
    return true;
  }
  await new Promise<void>((resolve, reject) => {
    const stream = createReadStream(file);
    stream.on('error', (err) => {
      res.destroy(err);
      reject(err);
    });
    stream.on('end', resolve);
    stream.pipe(res);
  });
  return true;
}
