/**
 * The HTTP inference server: an express 5 app around one {@link Detector}, with its lifecycle.
 *
 * Request path of `POST /v1/detect`: body parser (raw image or multipart, size cap) -> parameter
 * validation -> header checks (magic bytes, pixel cap) -> admission into the micro-batcher
 * (bounded queue) -> decode + letterbox (sharp, off the main thread) -> batch of up to `maxBatch`
 * frames -> one `session.run` in the runtime's worker pool -> per-request filters (threshold,
 * classes, maxDetections) on the batch's shared low-threshold output -> JSON or annotated JPEG.
 *
 * The event loop only parses, packs tensors and writes responses: `/healthz` and `/metrics`
 * answer while models run. Every error leaves as `{"error":{"code","message"}}` through the one
 * error handler at the end of the chain; express's default handler (HTML, stack traces) is never
 * reached.
 */
import { packageVersion } from '../models/core/version.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, {
  type Express,
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import sharp from 'sharp';
import { letterboxTransform } from '../models/core/letterbox.js';
import { log } from '../models/core/log.js';
import type { Detection } from '../models/core/detection.js';
import type { ModelSpec } from '../models/core/spec.js';
import { createDetector } from '../runtime/detector.js';
import { readModelInfo } from '../runtime/model-info.js';
import { letterboxImage } from '../runtime/preprocess.js';
import type { DetectResult, Detector, PreparedFrame, ProviderName } from '../runtime/types.js';
import { colorFor, drawAnnotations } from '../runtime/video/draw.js';
import { MicroBatcher } from './batcher.js';
import { HttpError, errorBody, toHttpError } from './http-error.js';
import {
  detectBodyParser,
  firstLine,
  parseDetectParams,
  requestImages,
  type CheckedImage,
  type DetectParams,
  type InputLimits,
} from './image-input.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { API_ROUTES, STREAM_ROUTES, WEB_ROUTES, openApiDocument, type RouteDoc } from './openapi.js';
import { StreamManager, streamsRouter } from './streams.js';
import { webDemoRouter } from './web-demo.js';

export interface ServerOptions {
  /** The `.onnx` model (edgekd export, or a plain ONNX detector with `specPath`). */
  modelPath: string;
  /** Execution providers in preference order (default: the runtime's default list). */
  providers?: ProviderName[];
  /** Session workers (default 1); also the number of batches run at once. */
  workers?: number;
  /** Bearer token required on every route but /healthz and the web page (default: none). */
  token?: string;
  /** Value of Access-Control-Allow-Origin, e.g. `https://example.org` or `*` (default: CORS off). */
  cors?: string;
  /** Micro-batching of concurrent detect requests (default true). */
  batching?: boolean;
  /** Images per model run at most (default 8). */
  maxBatch?: number;
  /** How long a partial batch waits for more requests, ms (default 5). */
  maxWaitMs?: number;
  /** Detect requests admitted and waiting at most; more get 503 `overloaded` (default 64). */
  queueSize?: number;
  /** Per-request processing timeout (queue + decode + inference), ms; 504 `timeout` (default 10000). */
  timeoutMs?: number;
  /** Request body cap, bytes (default 20 MiB). */
  maxBodyBytes?: number;
  /** Image width * height cap, read from the header before decoding (default 40 000 000). */
  maxPixels?: number;
  /** Video streams running at once at most (default 4). */
  maxStreams?: number;
  /** Sidecar spec JSON for a plain ONNX model. */
  specPath?: string;
  /** ffmpeg binary for streams (default: the one on PATH). */
  ffmpegPath?: string;
}

export interface EdgekdServer {
  readonly app: Express;
  /** Binds an HTTP server (default port 0 = any free port, host 127.0.0.1). */
  listen(port?: number, host?: string): Promise<{ port: number; url: string }>;
  /**
   * Graceful shutdown: stops accepting connections, /readyz answers 503, lets in-flight requests
   * finish, stops every stream (and its ffmpeg), then closes the detector. Safe to call twice.
   */
  close(): Promise<void>;
  readonly detector: Detector;
  readonly streams: StreamManager;
  /** Resolves once the model has been warmed up (/readyz then answers 200). */
  readonly ready: Promise<void>;
}

/** Images per multipart request at most. */
const MAX_IMAGES = 16;
/** Score floor of the shared detector; requests filter above it. */
const SCORE_FLOOR = 0.05;
/** How long shutdown waits for in-flight requests beyond the per-request timeout, ms. */
const DRAIN_GRACE_MS = 5000;
/** How long shutdown waits for lingering connections after the work is done, ms. */
const CLOSE_GRACE_MS = 2000;

function checkOpt(name: string, v: number | undefined, min: number, int = true): void {
  if (v !== undefined && !((int ? Number.isInteger(v) : Number.isFinite(v)) && v >= min))
    throw new RangeError(`'${name}' must be ${int ? 'an integer' : 'a number'} >= ${min}, got ${v}`);
}

/** Matches a concrete path against an express pattern with `:param` segments. */
function matchesPattern(pattern: string, path: string): boolean {
  const a = pattern.split('/');
  const b = path.split('/');
  return a.length === b.length && a.every((seg, i) => (seg.startsWith(':') ? b[i] !== '' : seg === b[i]));
}

const round = (v: number, d: number) => Number(v.toFixed(d));

/** Timing-safe token comparison (hashing first makes the lengths equal). */
function tokenMatches(given: string, expected: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(given), h(expected));
}

/** Rejects with the signal's reason as soon as it aborts; the original promise is left to settle. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  p.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Errors of express, the router and body-parser carry a 4xx `status` (a malformed %-escape in
 * the path is a URIError with status 400): they are the client's fault and say so.
 */
function fromFrameworkError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { status?: unknown; message?: unknown } | null;
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500)
    return e.status === 404
      ? new HttpError(404, 'not_found', String(e.message))
      : new HttpError(400, 'bad_request', String(e.message));
  return toHttpError(err);
}

/**
 * Loads the model, starts its session workers and builds the app (not yet listening). The model
 * is warmed up in the background; `ready` resolves when /readyz turns 200.
 * @throws {ConfigError} / {ModelFormatError} / {ProviderUnavailableError} from the runtime for a
 *   missing or bad model or no usable provider
 * @throws {RangeError} for an option out of range (the message names it)
 *
 * @example
 * ```ts
 * const server = await createServer({ modelPath: 'ped-nano.onnx', token: 's3cret' });
 * const { url } = await server.listen(8080);
 * // POST an image: curl -H 'Authorization: Bearer s3cret' -H 'Content-Type: image/jpeg' \
 * //   --data-binary @street.jpg ${url}/v1/detect
 * // -> {"model":"ped-nano","provider":"cpu","width":1280,"height":720,"detections":[...],"timings":{...}}
 * await server.close();
 * ```
 */
export async function createServer(opts: ServerOptions): Promise<EdgekdServer> {
  if (typeof opts !== 'object' || opts === null) throw new TypeError("'opts' must be an object");
  checkOpt('workers', opts.workers, 1);
  checkOpt('maxBatch', opts.maxBatch, 1);
  checkOpt('maxWaitMs', opts.maxWaitMs, 0, false);
  checkOpt('queueSize', opts.queueSize, 1);
  checkOpt('timeoutMs', opts.timeoutMs, 1, false);
  checkOpt('maxBodyBytes', opts.maxBodyBytes, 1);
  checkOpt('maxPixels', opts.maxPixels, 1);
  checkOpt('maxStreams', opts.maxStreams, 1);
  if (opts.token !== undefined && (typeof opts.token !== 'string' || opts.token === ''))
    throw new TypeError("'token' must be a non-empty string");
  const workers = opts.workers ?? 1;
  const batching = opts.batching ?? true;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const limits: InputLimits = {
    maxBodyBytes: opts.maxBodyBytes ?? 20 * 1024 * 1024,
    maxPixels: opts.maxPixels ?? 40_000_000,
    maxImages: MAX_IMAGES,
  };

  const info = await readModelInfo(opts.modelPath, opts.specPath);
  const modelBytes = await readFile(opts.modelPath);
  // One detector serves every request: it reports everything above a low floor and each request
  // filters with its own threshold, so requests with different thresholds can share a batch.
  const detector = await createDetector(opts.modelPath, {
    providers: opts.providers,
    workers,
    specPath: opts.specPath,
    scoreThreshold: Math.min(SCORE_FLOOR, info.spec.decode.scoreThreshold),
    maxDetections: 1000,
  });
  const spec: ModelSpec = detector.spec;

  // Requests in progress (shutdown waits for them), except the long-lived stream responses,
  // which shutdown ends itself.
  let inFlight = 0;
  let drainWaiters: (() => void)[] = [];
  const batcher = new MicroBatcher<PreparedFrame, DetectResult>({
    run: (frames) => detector.detectPrepared(frames),
    maxBatch: batching ? (opts.maxBatch ?? 8) : 1,
    maxWaitMs: batching ? (opts.maxWaitMs ?? 5) : 0,
    queueSize: opts.queueSize ?? 64,
    // One batch more than there are sessions: the next batch is packed and queued in the pool
    // while the current one runs, so a session never idles through packing and decoding.
    concurrency: workers + 1,
    onBatch: (n) => m.observeBatch(n),
  });
  const streams = new StreamManager({
    detector,
    maxStreams: opts.maxStreams ?? 4,
    ffmpegPath: opts.ffmpegPath,
  });
  const m: ServerMetrics = createMetrics({
    queueDepth: () => batcher.depth,
    inFlight: () => inFlight,
    streams: () => streams.stats(),
  });

  let warmed = false;
  let closing = false;
  const ready = (async () => {
    const { width: W, height: H, resize } = spec.input;
    const frame: PreparedFrame = {
      rgb: new Uint8Array(W * H * 3).fill(114),
      transform: letterboxTransform(W, H, H, W, resize),
    };
    await detector.detectPrepared([frame]);
    warmed = true;
  })();
  ready.catch((e: unknown) => log.error(`model warm-up failed: ${(e as Error).message}`));

  const isStreamBody = (path: string) => /^\/v1\/streams\/[^/]+\/(events|mjpeg)$/.test(path);

  const allRoutes: readonly RouteDoc[] = [...API_ROUTES, ...STREAM_ROUTES, ...WEB_ROUTES];
  const routeOf = (path: string) => allRoutes.filter((r) => matchesPattern(r.path, path));
  const doc = openApiDocument({
    version: packageVersion(),
    auth: opts.token !== undefined,
    routes: allRoutes,
  });

  const modelJson = {
    name: spec.name,
    provider: detector.provider,
    fallbacks: detector.fallbacks,
    precision: detector.precision,
    outputs: detector.outputs,
    input: {
      width: spec.input.width,
      height: spec.input.height,
      channelOrder: spec.input.channelOrder,
      normalization: spec.input.normalization,
      resize: spec.input.resize,
    },
    classes: spec.classes,
    spec,
    url: `/v1/models/${encodeURIComponent(spec.name)}/model.onnx`,
  };

  const detectionJson = (d: Detection) => ({
    box: d.box.map((v) => round(v, 2)),
    score: round(d.score, 4),
    class: d.classId,
    label: spec.classes[d.classId] ?? String(d.classId),
  });

  const filterDetections = (dets: Detection[], p: DetectParams) =>
    dets
      .filter((d) => d.score >= p.threshold && (!p.classes || p.classes.has(d.classId)))
      .sort((a, b) => b.score - a.score)
      .slice(0, p.maxDetections);

  async function annotate(image: CheckedImage, dets: Detection[]): Promise<Buffer> {
    const { data, info: px } = await sharp(image.bytes)
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (px.channels !== 3) throw new Error(`decoded to ${px.channels} channels, expected 3`);
    const frame = {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: px.width,
      height: px.height,
    };
    drawAnnotations(
      frame,
      dets.map((d) => ({
        box: d.box,
        label: `${spec.classes[d.classId] ?? d.classId} ${d.score.toFixed(2)}`,
        color: colorFor(d.classId),
      })),
    );
    return sharp(data, { raw: { width: px.width, height: px.height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toBuffer();
  }

  const detect: RequestHandler = async (req: Request, res: Response) => {
    const t0 = performance.now();
    const params = parseDetectParams(
      [
        req.query as Record<string, unknown>,
        Buffer.isBuffer(req.body) ? {} : (req.body as Record<string, unknown>),
      ],
      spec,
    );
    const images = await requestImages(req, limits);
    if (params.annotate && images.length > 1)
      throw new HttpError(400, 'invalid_parameter', `'annotate' needs a single image, got ${images.length}`);

    const ac = new AbortController();
    const onClose = () => {
      // The client is gone: whatever has not started running is dropped from the queue.
      if (!res.writableFinished) ac.abort(new HttpError(400, 'bad_request', 'client closed the connection'));
    };
    res.on('close', onClose);
    // The socket may have closed while the body was read, before the listener existed.
    if (res.destroyed || req.socket.destroyed) onClose();
    const timer = setTimeout(
      () => ac.abort(new HttpError(504, 'timeout', `the request was not done within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const decodeMs = images.map(() => 0);
      const outcomes = await abortable(
        Promise.all(
          images.map((im, i) =>
            batcher.submit(async () => {
              const t = performance.now();
              try {
                return await letterboxImage(im.bytes, spec.input);
              } catch (e) {
                const name = images.length === 1 ? 'image' : `image ${i + 1}`;
                throw new HttpError(400, 'invalid_image', `${name} cannot be decoded: ${firstLine(e)}`, {
                  cause: e,
                });
              } finally {
                decodeMs[i] = performance.now() - t;
              }
            }, ac.signal),
          ),
        ).catch((e: unknown) => {
          // One image failed: the request's other images need not run.
          ac.abort(e);
          throw e;
        }),
        ac.signal,
      );
      const kept = outcomes.map((o) => filterDetections(o.value.detections, params));
      if (params.annotate) {
        const jpeg = await annotate(images[0], kept[0]);
        res.set('X-Detections', String(kept[0].length)).type('image/jpeg').send(jpeg);
        return;
      }
      const totalMs = performance.now() - t0;
      const out = outcomes.map((o, i) => ({
        width: o.value.width,
        height: o.value.height,
        detections: kept[i].map(detectionJson),
        timings: {
          queueMs: round(o.queueMs, 2),
          preMs: round(decodeMs[i] + o.value.timings.preMs, 2),
          inferMs: round(o.value.timings.inferMs, 2),
          postMs: round(o.value.timings.postMs, 2),
          totalMs: round(totalMs, 2),
          batchSize: o.batchSize,
        },
      }));
      const head = { model: spec.name, provider: detector.provider };
      res.json(out.length === 1 ? { ...head, ...out[0] } : { ...head, results: out });
    } finally {
      clearTimeout(timer);
      res.off('close', onClose);
    }
  };

  const handlers: Record<string, RequestHandler[]> = {
    'get /healthz': [(_req, res) => void res.json({ status: 'ok' })],
    'get /readyz': [
      (_req, res) => {
        if (closing) throw new HttpError(503, 'not_ready', 'the server is shutting down');
        if (!warmed)
          throw new HttpError(503, 'not_ready', 'the model is loading / warming up', {
            headers: { 'Retry-After': '1' },
          });
        res.json({ status: 'ready' });
      },
    ],
    'get /metrics': [
      async (_req, res) => {
        res.type(m.contentType).send(await m.text());
      },
    ],
    'get /openapi.json': [(_req, res) => void res.json(doc)],
    'get /v1/models': [(_req, res) => void res.json({ models: [modelJson] })],
    'get /v1/models/:name/model.onnx': [
      (req, res) => {
        if (req.params.name !== spec.name)
          throw new HttpError(
            404,
            'not_found',
            `no model named '${req.params.name}' (this server serves '${spec.name}')`,
          );
        res.type('application/octet-stream').send(modelBytes);
      },
    ],
    'post /v1/detect': [detectBodyParser(limits), detect],
  };

  const app = express();
  app.disable('x-powered-by');

  app.use((req, res, next) => {
    const start = performance.now();
    const tracked = !isStreamBody(req.path);
    if (tracked) inFlight++;
    let done = false;
    res.on('close', () => {
      if (done) return;
      done = true;
      if (tracked && --inFlight === 0) for (const f of drainWaiters.splice(0)) f();
      const known = routeOf(req.path);
      const route =
        (known.find((r) => r.method === req.method.toLowerCase()) ?? known[0])?.path ??
        (res.statusCode < 400 ? 'static' : 'unmatched');
      // 499 (nginx's "client closed request"): the client left before the answer was sent.
      const status = res.writableFinished ? res.statusCode : 499;
      m.observeRequest(route, req.method, status, (performance.now() - start) / 1000);
    });
    next();
  });

  if (opts.cors !== undefined) {
    const origin = opts.cors;
    app.use((req, res, next) => {
      res.set('Access-Control-Allow-Origin', origin);
      if (origin !== '*') res.vary('Origin');
      res.set('Access-Control-Expose-Headers', 'Retry-After, WWW-Authenticate, X-Detections');
      if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
        // Preflights carry no credentials, so they are answered before the auth check.
        res
          .set('Access-Control-Allow-Methods', 'GET, POST, DELETE, OPTIONS')
          .set('Access-Control-Allow-Headers', 'Authorization, Content-Type')
          .set('Access-Control-Max-Age', '600')
          .status(204)
          .end();
        return;
      }
      next();
    });
  }

  app.use((req, res, next) => {
    if (closing && !['/healthz', '/readyz', '/metrics'].includes(req.path)) {
      res.set('Connection', 'close');
      throw new HttpError(503, 'shutting_down', 'the server is shutting down', {
        headers: { 'Retry-After': '1' },
      });
    }
    next();
  });

  if (opts.token !== undefined) {
    const token = opts.token;
    app.use((req, _res, next) => {
      const route = routeOf(req.path)[0];
      const isApi = route ? !route.public : req.path.startsWith('/v1/');
      if (!isApi) return next();
      const m1 = /^Bearer[ \t]+(.+)$/i.exec(req.headers.authorization ?? '');
      if (!m1 || !tokenMatches(m1[1].trim(), token))
        throw new HttpError(
          401,
          'unauthorized',
          m1 ? 'the bearer token is wrong' : 'this route needs an Authorization: Bearer <token> header',
          { headers: { 'WWW-Authenticate': 'Bearer' } },
        );
      next();
    });
  }

  const registered = new Set<string>();
  for (const r of API_ROUTES) {
    const key = `${r.method} ${r.path}`;
    const hs = handlers[key];
    if (!hs) throw new Error(`route ${key} has no handler`);
    app[r.method](r.path, ...hs);
    registered.add(key);
  }
  for (const key of Object.keys(handlers))
    if (!registered.has(key)) throw new Error(`handler ${key} is not in the route table`);
  app.use(streamsRouter(streams));
  app.use(webDemoRouter());

  app.use((req) => {
    const methods = [...new Set(routeOf(req.path).map((r) => r.method.toUpperCase()))];
    if (methods.length) {
      if (methods.includes('GET')) methods.push('HEAD');
      throw new HttpError(
        405,
        'method_not_allowed',
        `${req.method} is not allowed on ${req.path}; use ${methods.join(', ')}`,
        {
          headers: { Allow: methods.join(', ') },
        },
      );
    }
    throw new HttpError(404, 'not_found', `no route ${req.method} ${req.path}`);
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const h = fromFrameworkError(err);
    if (h.status >= 500 && h.code === 'internal')
      log.error(
        `${req.method} ${req.path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
    // Read off the rest of an unread body so that the client, still sending, gets the answer.
    if (!req.complete && !req.destroyed) req.resume();
    if (res.headersSent) {
      // A streaming answer was under way; all that can be said now is to cut it.
      res.destroy();
      return;
    }
    if (res.destroyed || res.writableEnded) return;
    try {
      res.status(h.status).set(h.headers).json(errorBody(h));
    } catch (e) {
      // Never fall through to express's default handler (HTML with a stack trace).
      log.error(`${req.method} ${req.path}: cannot send the error answer: ${(e as Error).message}`);
      res.destroy();
    }
  });

  let server: Server | undefined;
  let closePromise: Promise<void> | undefined;

  const waitDrained = () =>
    inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => drainWaiters.push(resolve));

  async function shutdown(): Promise<void> {
    closing = true;
    const closed = server
      ? new Promise<void>((resolve) => server!.close(() => resolve()))
      : Promise.resolve();
    server?.closeIdleConnections();
    // A request is bounded by timeoutMs once its body is read, a body upload is not: past this
    // deadline the remaining connections are cut.
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      waitDrained(),
      new Promise<void>((resolve) => {
        drainTimer = setTimeout(() => {
          log.warn('shutdown: requests still in flight after the drain deadline; closing their connections');
          server?.closeAllConnections();
          resolve();
        }, timeoutMs + DRAIN_GRACE_MS);
      }),
    ]);
    clearTimeout(drainTimer);
    await batcher.close();
    await streams.stopAll();
    server?.closeIdleConnections();
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      closed,
      new Promise<void>((resolve) => {
        grace = setTimeout(() => {
          server?.closeAllConnections();
          resolve();
        }, CLOSE_GRACE_MS);
      }),
    ]);
    clearTimeout(grace);
    await ready.catch(() => undefined);
    await detector.close();
    drainWaiters = [];
  }

  return {
    app,
    detector,
    streams,
    ready,
    listen(port = 0, host = '127.0.0.1') {
      if (server) return Promise.reject(new Error('the server is already listening'));
      if (closing) return Promise.reject(new Error('the server is closed'));
      const s = createHttpServer(app);
      server = s;
      return new Promise((resolve, reject) => {
        const fail = (e: Error) => {
          server = undefined;
          reject(e);
        };
        s.once('error', fail);
        s.listen(port, host, () => {
          s.off('error', fail);
          const a = s.address() as AddressInfo;
          const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
          resolve({ port: a.port, url: `http://${h}:${a.port}` });
        });
      });
    },
    close() {
      closePromise ??= shutdown();
      return closePromise;
    },
  };
}
