/**
 * Serves the browser demo built by scripts/build-web.mjs (dist/web) at `/`.
 *
 * - Content types are set here rather than left to the mime table: browsers refuse a module
 *   script or a streaming-compiled .wasm served with a wrong type.
 * - Cross-origin isolation (COOP same-origin + COEP require-corp) on every demo file, pthread
 *   workers included: onnxruntime-web needs SharedArrayBuffer to run WebAssembly on several
 *   threads. Same-origin API calls from the page are unaffected.
 * - Caching: the onnxruntime-web runtime (under `ort/<version>/`) and the content-hashed
 *   `chunks/` are immutable; the page, main.js and the stylesheet are revalidated (ETag) on
 *   every load, so a rebuild shows at once.
 * - A missing build answers 503 `not_ready` at `/` instead of a bare 404.
 */
import { existsSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router, type Response } from 'express';
import { HttpError } from './http-error.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
};

function setDemoHeaders(res: Response, path: string): void {
  const type = CONTENT_TYPES[extname(path).toLowerCase()];
  if (type) res.setHeader('Content-Type', type);
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader(
    'Cache-Control',
    /[\\/](ort[\\/][^\\/]+|chunks)[\\/]/.test(path) ? 'public, max-age=31536000, immutable' : 'no-cache',
  );
}

/**
 * The demo's routes: `GET /` (index.html) and the built files under it.
 * @param opts.dir - the built demo (default: dist/web next to this module's compiled folder)
 * @returns a router to mount at `/` before the 404 handler
 * @example
 * ```ts
 * app.use(webDemoRouter());
 * // GET /            -> 200 text/html (or 503 {"error":{"code":"not_ready",...}} when not built)
 * // GET /main.js     -> 200 text/javascript
 * ```
 */
export function webDemoRouter(opts: { dir?: string } = {}): Router {
  const dir = opts.dir ?? fileURLToPath(new URL('../web/', import.meta.url));
  const index = join(dir, 'index.html');
  const router = Router();
  router.get(['/', '/index.html'], (_req, res, next) => {
    // Checked per request so that building while the server runs is enough.
    if (!existsSync(index)) {
      next(new HttpError(503, 'not_ready', 'web demo not built: run npm run build'));
      return;
    }
    setDemoHeaders(res, index);
    // `root` keeps send's dotfile rule to the file name: the build may sit under a dot folder.
    res.sendFile('index.html', { root: dir }, (err) => {
      if (err && !res.headersSent) next(err);
    });
  });
  router.use(
    express.static(dir, {
      index: false,
      redirect: false,
      fallthrough: true,
      setHeaders: setDemoHeaders,
    }),
  );
  return router;
}
