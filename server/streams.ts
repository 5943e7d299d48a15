/**
 * Video streams over HTTP: `POST /v1/streams` starts a runtime video pipeline on a file, folder,
 * device or stream URL; its detections come out as server-sent events and its annotated frames
 * as MJPEG; `DELETE` stops it. {@link StreamManager} owns the pipelines (a cap on concurrent
 * ones, their state, the counters `/metrics` reads, stopping them all on shutdown);
 * {@link streamsRouter} is the HTTP face.
 *
 * Failing fast: a local source (file, folder, device) is opened and probed before `POST`
 * answers, so a missing or unreadable file is a 422 `stream_source` carrying ffmpeg's reason. A
 * URL is not waited for (a network source may take the whole open timeout to fail): the stream
 * is answered 201 in state 'starting' and a failure shows up as state 'failed' with the error,
 * and as an SSE `error` event.
 *
 * Slow clients never slow a stream or grow memory: SSE writes wait for the socket to drain while
 * the hub keeps at most a bounded backlog of detection events (the oldest are dropped), and MJPEG
 * always sends the latest frame, skipping those that arrive while a write is pending.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { didYouMean } from '../models/core/config.js';
import { EdgekdError } from '../models/core/errors.js';
import { log } from '../models/core/log.js';
import type { Detector } from '../runtime/types.js';
import { findFfmpeg } from '../runtime/video/ffmpeg.js';
import {
  runVideoPipeline,
  type FrameResult,
  type PipelineStats,
  type SinkContext,
  type VideoSink,
} from '../runtime/video/pipeline.js';
import { StreamHub } from '../runtime/video/sinks.js';
import { isLiveSource, parseSource, type SourceSpec } from '../runtime/video/source.js';
import { HttpError } from './http-error.js';

// #region types

export interface StreamManagerOptions {
  detector: Detector;
  /** Most streams running at once; a start beyond it is refused with 429 `too_many_streams`. */
  maxStreams: number;
  /** ffmpeg binary to use instead of the one on PATH. */
  ffmpegPath?: string;
  /** Finished streams (ended, failed, stopped) kept listable, newest first out last (default 32). */
  keepFinished?: number;
  /** MJPEG frames wider than this are downscaled, px (default 1280). */
  maxWidth?: number;
  /** MJPEG JPEG quality 1-100 (default 80). */
  jpegQuality?: number;
  /** Probe / network timeout when opening a source, ms (default 10000). */
  openTimeoutMs?: number;
  /** Period of SSE `stats` events, ms (default 1000). */
  statsIntervalMs?: number;
  /** Period of SSE heartbeat comments, ms (default 15000): proxies close idle connections. */
  heartbeatMs?: number;
}

/** What a client gets to know about a stream. */
export interface StreamInfo {
  id: string;
  /** The source as given, with any URL password masked. */
  source: string;
  live: boolean;
  state: 'starting' | 'running' | 'ended' | 'failed' | 'stopped';
  /** ISO 8601. */
  startedAt: string;
  /** Frames processed so far. */
  frames: number;
  /** Frames dropped to keep latency bounded (live mode only). */
  droppedFrames: number;
  /** Processed frames per second: recent while running, the run's mean once finished. */
  fps: number;
  /** Why the stream failed (state 'failed'). */
  error?: { code: string; message: string };
}

/** The request to start a stream (the JSON body of `POST /v1/streams`). */
export interface StartStreamRequest {
  /** File path, image folder, /dev/videoN, or an rtsp/rtmp/http(s)/udp/tcp/srt/rtp URL. */
  source: string;
  /** Drop stale frames to bound latency; also reads files at their native rate (default: on for stream URLs and cameras). */
  live?: boolean;
  /** ByteTrack ids on the detections (default true). */
  track?: boolean;
  /** Count tracks crossing this line: [x1, y1, x2, y2] in source pixels (needs tracking). */
  countLine?: [number, number, number, number];
  /** Stop after this many frames. */
  maxFrames?: number;
}

/** Counters `/metrics` reads at scrape time. */
export interface StreamStats {
  /** Streams whose pipeline is running (starting, running, or being stopped). */
  active: number;
  /** Frames dropped by every stream since the manager was created (monotonic). */
  droppedFrames: number;
  /** Pipelines started since the manager was created (monotonic). */
  started: number;
  /** SSE and MJPEG connections open now. */
  clients: number;
}

// #endregion

// #region request validation

const finite = z.number().refine(Number.isFinite, 'must be a finite number');

/** The body of `POST /v1/streams`. */
export const StartStreamSchema = z.strictObject({
  source: z
    .string()
    .trim()
    .min(1, 'must be a non-empty path or URL')
    .max(4096, 'must be at most 4096 characters')
    .describe('(string) file path, image folder, /dev/videoN, or stream URL'),
  live: z.boolean().optional().describe('(boolean) drop stale frames to bound latency'),
  track: z.boolean().optional().describe('(boolean) ByteTrack ids on the detections (default true)'),
  countLine: z
    .tuple([finite, finite, finite, finite], { error: 'must be [x1, y1, x2, y2] (4 numbers)' })
    .optional()
    .describe('([x1, y1, x2, y2]) count tracks crossing this line, source pixels'),
  maxFrames: z
    .number()
    .int('must be an integer')
    .min(1, 'must be >= 1')
    .optional()
    .describe('(integer) stop after this many frames'),
});

const FIELDS = Object.keys(StartStreamSchema.shape);

function invalid(message: string): HttpError {
  return new HttpError(400, 'invalid_parameter', message);
}

/**
 * Validates a start request (the parsed JSON body).
 * @throws {HttpError} 400 `invalid_parameter` naming the field
 */
export function parseStartRequest(body: unknown): StartStreamRequest {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body))
    throw invalid(
      `body must be a JSON object with a 'source' field, got ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}`,
    );
  const r = StartStreamSchema.safeParse(body);
  if (r.success) {
    if (r.data.countLine && r.data.track === false)
      throw invalid("'countLine' counts tracks: it needs 'track' on (omit it or set it to true)");
    return r.data;
  }
  // A misspelt field also shows up as a missing one: the spelling is the useful hint.
  const issue = r.error.issues.find((i) => i.code === 'unrecognized_keys') ?? r.error.issues[0];
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    const hint = didYouMean(key, FIELDS);
    throw invalid(
      `unknown field '${key}'${hint ? `; did you mean '${hint}'?` : ''} (fields: ${FIELDS.join(', ')})`,
    );
  }
  const field = issue.path.length ? issue.path.map(String).join('.') : 'body';
  const given = issue.path.reduce<unknown>(
    (o, k) => (o && typeof o === 'object' ? (o as Record<PropertyKey, unknown>)[k] : undefined),
    body,
  );
  const message =
    given === undefined && issue.path.length === 1
      ? 'is required'
      : issue.message.replace(/^Invalid input: /, '');
  throw invalid(`'${field}' ${message}`);
}

/** Masks the password of a URL source (rtsp://user:secret@cam/...), which listings would leak. */
function redact(source: string): string {
  return source.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^/@:\s']*):[^/@\s']*@/gi, '$1:***@');
}

// #endregion

// #region manager

interface Entry {
  id: string;
  source: string;
  spec: SourceSpec;
  live: boolean;
  startedAtMs: number;
  startedAt: string;
  state: StreamInfo['state'];
  error?: StreamInfo['error'];
  hub: StreamHub;
  abort: AbortController;
  ctx: SinkContext | null;
  /** Final counters, set when the pipeline settles. */
  final: { frames: number; dropped: number; fps: number } | null;
  stopRequested: boolean;
  /** Resolves once the source is open (state leaves 'starting'). */
  opened: Promise<void>;
  /** Resolves once the pipeline has settled, its children are gone and the hub has ended; never rejects. */
  done: Promise<void>;
  clients: number;
}

const round1 = (v: number): number => Math.round(v * 10) / 10;

function errorOf(e: unknown, duringOpen: boolean): { code: string; message: string } {
  if (e instanceof EdgekdError)
    return { code: duringOpen ? 'stream_source' : 'stream_failed', message: redact(e.message) };
  // Anything else is a bug: its detail stays in the server log.
  return { code: 'internal', message: 'internal error' };
}

/**
 * Owns the running video pipelines of the server.
 *
 * @example
 * ```ts
 * const manager = new StreamManager({ detector, maxStreams: 4 });
 * const info = manager.start({ source: 'rtsp://cam/1' });
 * // info -> { id: '6f1c…', source: 'rtsp://cam/1', live: true, state: 'starting', frames: 0, ... }
 * app.use(streamsRouter(manager));
 * process.once('SIGTERM', () => void manager.stopAll());
 * ```
 */
export class StreamManager {
  private readonly streams = new Map<string, Entry>();
  private readonly opts: StreamManagerOptions;
  private startedCount = 0;
  /** Drops of streams that have finished (running ones are added at read time). */
  private droppedFinished = 0;
  private closing = false;

  /**
   * @throws {RangeError} when `maxStreams` is not an integer >= 1
   */
  constructor(opts: StreamManagerOptions) {
    if (!(Number.isInteger(opts.maxStreams) && opts.maxStreams >= 1))
      throw new RangeError(`'maxStreams' must be an integer >= 1, got ${opts.maxStreams}`);
    if (opts.keepFinished !== undefined && !(Number.isInteger(opts.keepFinished) && opts.keepFinished >= 0))
      throw new RangeError(`'keepFinished' must be an integer >= 0, got ${opts.keepFinished}`);
    this.opts = opts;
  }

  /** Options the router reads (SSE periods). */
  get options(): Readonly<StreamManagerOptions> {
    return this.opts;
  }

  /**
   * Starts a pipeline and returns at once (state 'starting'); the source is opened in the
   * background and a failure to open it shows as state 'failed'.
   * @throws {HttpError} 400 `invalid_parameter` for a bad request, 422 `stream_source` for a local
   *   path that does not exist, 429 `too_many_streams` at the cap, 503 `shutting_down` after
   *   {@link stopAll}
   */
  start(req: StartStreamRequest): StreamInfo {
    return this.info(this.launch(req));
  }

  /**
   * Starts a pipeline as {@link start} does; for a local source (file, folder, device) it also
   * waits until the source is open, so that a file that is not a video fails here.
   * @throws {HttpError} as {@link start}; 422 `stream_source` with ffmpeg's reason when a local
   *   source cannot be opened; 503 `stream_source` when ffmpeg is not installed
   */
  async create(req: StartStreamRequest): Promise<StreamInfo> {
    const parsed = parseStartRequest(req);
    try {
      await findFfmpeg(this.opts.ffmpegPath);
    } catch (e) {
      throw new HttpError(503, 'stream_source', e instanceof Error ? e.message : String(e), { cause: e });
    }
    const entry = this.launch(parsed);
    if (entry.spec.kind !== 'url') {
      await entry.opened;
      if (entry.state === 'failed') {
        // The client gets no id for it, so it is not listed either.
        await entry.done;
        this.streams.delete(entry.id);
        throw new HttpError(422, 'stream_source', entry.error?.message ?? 'cannot open the video source');
      }
    }
    return this.info(entry);
  }

  private launch(raw: StartStreamRequest): Entry {
    if (this.closing)
      throw new HttpError(503, 'shutting_down', 'the server is shutting down: no new streams');
    const req = parseStartRequest(raw);
    let spec: SourceSpec;
    try {
      spec = parseSource(req.source);
    } catch (e) {
      if (e instanceof EdgekdError && e.code === 'ERR_FILE_NOT_FOUND')
        throw new HttpError(422, 'stream_source', e.message, { cause: e });
      throw invalid(e instanceof Error ? e.message : String(e));
    }
    if (spec.kind === 'stdin') throw invalid("'source' '-' (the server's stdin) cannot be used over HTTP");
    const active = this.activeCount();
    if (active >= this.opts.maxStreams)
      throw new HttpError(
        429,
        'too_many_streams',
        `at most ${this.opts.maxStreams} stream(s) can run at once and ${active} are running: stop one (DELETE /v1/streams/{id}) or wait for one to end`,
      );

    const id = randomUUID();
    const live = req.live ?? isLiveSource(spec);
    const hub = new StreamHub({ maxWidth: this.opts.maxWidth ?? 1280, quality: this.opts.jpegQuality });
    const abort = new AbortController();
    let markOpened!: () => void;
    const now = Date.now();
    const entry: Entry = {
      id,
      source: redact(req.source),
      spec,
      live,
      startedAtMs: now,
      startedAt: new Date(now).toISOString(),
      state: 'starting',
      hub,
      abort,
      ctx: null,
      final: null,
      stopRequested: false,
      opened: new Promise<void>((r) => (markOpened = r)),
      done: Promise.resolve(),
      clients: 0,
    };
    let hubClosed = false;
    // Wraps the hub so the manager sees the source open (the pipeline opens sinks right after
    // probing) and knows whether the hub was closed by the pipeline.
    const sink: VideoSink = {
      name: 'stream-manager',
      needsSourceFrames: hub.needsSourceFrames,
      open(ctx: SinkContext) {
        entry.ctx = ctx;
        entry.state = 'running';
        markOpened();
        hub.open(ctx);
      },
      write(r: FrameResult) {
        hub.write(r);
      },
      close(error?: unknown) {
        hubClosed = true;
        return hub.close(error);
      },
    };
    this.startedCount++;
    this.streams.set(id, entry);
    log.debug(`stream ${id}: starting on ${entry.source}${live ? ' (live)' : ''}`);

    entry.done = runVideoPipeline({
      source: spec,
      detector: this.opts.detector,
      sinks: [sink],
      live,
      track: req.track,
      countLine: req.countLine,
      maxFrames: req.maxFrames,
      openTimeoutMs: this.opts.openTimeoutMs,
      ffmpegPath: this.opts.ffmpegPath,
      signal: abort.signal,
      statsIntervalMs: 0,
    })
      .then(
        (summary) => {
          entry.final = { frames: summary.processed, dropped: summary.dropped, fps: summary.fps };
          entry.state = 'ended';
          return undefined;
        },
        (e: unknown) => {
          const s = entry.ctx?.stats();
          const seconds = (Date.now() - entry.startedAtMs) / 1000;
          entry.final = {
            frames: s?.processed ?? 0,
            dropped: s?.dropped ?? 0,
            fps: s && seconds > 0 ? round1(s.processed / seconds) : 0,
          };
          const interrupted = e instanceof EdgekdError && e.code === 'ERR_INTERRUPTED';
          if (interrupted && entry.stopRequested) entry.state = 'stopped';
          else {
            const duringOpen = entry.state === 'starting';
            entry.error = errorOf(e, duringOpen);
            entry.state = 'failed';
            // A source that cannot be opened is the client's business (it gets the reason);
            // a stream lost mid-way is the operator's.
            const line = `stream ${id} failed: ${redact(e instanceof Error ? e.message : String(e))}`;
            if (!(e instanceof EdgekdError)) log.error(e instanceof Error ? (e.stack ?? line) : line);
            else if (duringOpen) log.debug(line);
            else log.warn(line);
          }
          return e;
        },
      )
      .then(async (e) => {
        markOpened();
        // A source that never opened never opened the sinks either: end the hub here so that
        // its subscribers finish.
        if (!hubClosed) await hub.close(e).catch(() => undefined);
        this.droppedFinished += entry.final?.dropped ?? 0;
        log.debug(`stream ${id}: ${entry.state} after ${entry.final?.frames ?? 0} frames`);
        this.evict();
      });
    return entry;
  }

  private activeCount(): number {
    let n = 0;
    for (const e of this.streams.values()) if (!e.final) n++;
    return n;
  }

  /** Forgets the oldest finished streams beyond `keepFinished`. */
  private evict(): void {
    const keep = this.opts.keepFinished ?? 32;
    const finished = [...this.streams.values()].filter((e) => e.final);
    for (const e of finished.slice(0, Math.max(0, finished.length - keep))) this.streams.delete(e.id);
  }

  private info(e: Entry): StreamInfo {
    const s = e.final ? null : e.ctx?.stats();
    const out: StreamInfo = {
      id: e.id,
      source: e.source,
      live: e.live,
      state: e.state,
      startedAt: e.startedAt,
      frames: e.final?.frames ?? s?.processed ?? 0,
      droppedFrames: e.final?.dropped ?? s?.dropped ?? 0,
      fps: e.final?.fps ?? s?.fps ?? 0,
    };
    if (e.error) out.error = { ...e.error };
    return out;
  }

  /** A stream by id (running or recently finished). */
  get(id: string): StreamInfo | undefined {
    const e = this.streams.get(id);
    return e && this.info(e);
  }

  /** Running and recently finished streams, oldest first. */
  list(): StreamInfo[] {
    return [...this.streams.values()].map((e) => this.info(e));
  }

  /**
   * Stops a stream and waits until its pipeline and ffmpeg child are gone. A finished stream
   * is left as it is.
   * @returns false when no stream has this id
   */
  async stop(id: string): Promise<boolean> {
    const e = this.streams.get(id);
    if (!e) return false;
    if (!e.final) {
      e.stopRequested = true;
      e.abort.abort();
    }
    await e.done;
    return true;
  }

  /**
   * Stops every stream and waits until every pipeline and ffmpeg child is gone; new starts are
   * refused from then on (503 `shutting_down`). For graceful shutdown.
   */
  async stopAll(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.streams.keys()].map((id) => this.stop(id)));
  }

  /** Counters for `/metrics`. */
  stats(): StreamStats {
    let active = 0;
    let droppedRunning = 0;
    let clients = 0;
    for (const e of this.streams.values()) {
      clients += e.clients;
      if (e.final) continue;
      active++;
      droppedRunning += e.ctx?.stats().dropped ?? 0;
    }
    return {
      active,
      droppedFrames: this.droppedFinished + droppedRunning,
      started: this.startedCount,
      clients,
    };
  }

  /** @internal The router's hold on a stream: its hub, its end, and a client count for stats. */
  handle(id: string): StreamHandle | undefined {
    const e = this.streams.get(id);
    if (!e) return undefined;
    return {
      hub: e.hub,
      done: e.done,
      info: () => this.info(e),
      finished: () => e.final !== null,
      pipelineStats: () => (e.final ? null : (e.ctx?.stats() ?? null)),
      attach() {
        e.clients++;
        let attached = true;
        return () => {
          if (attached) e.clients--;
          attached = false;
        };
      },
    };
  }
}

/** @internal What the routes need of a stream. */
export interface StreamHandle {
  hub: StreamHub;
  /** Resolves once the pipeline has settled (never rejects). */
  done: Promise<void>;
  /** The stream's current info (also once it is no longer listed). */
  info(): StreamInfo;
  finished(): boolean;
  /** Live pipeline stats (null once finished or before the source is open). */
  pipelineStats(): PipelineStats | null;
  /** Counts a connected client; call the returned function when it leaves. */
  attach(): () => void;
}

// #endregion

// #region router

/** Resolves when `res` can take more data or has closed. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Writes to a response, waiting for the socket to drain when its buffer is full. */
async function send(res: ServerResponse, chunk: string | Buffer): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return false;
  if (!res.write(chunk)) await drained(res);
  return !res.destroyed;
}

const sseEvent = (event: string, data: unknown): string =>
  `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

const MJPEG_BOUNDARY = 'edgekd-mjpeg-frame';

/** Turns the JSON body parser's failures into the API's error shape. */
function jsonBody(limit: string) {
  const parse = express.json({ limit, strict: true });
  return (req: Request, res: Response, next: NextFunction): void => {
    const type = req.headers['content-type'];
    const length = Number(req.headers['content-length'] ?? 0);
    if (
      type !== undefined &&
      !req.is('application/json') &&
      (length > 0 || req.headers['transfer-encoding'])
    ) {
      next(new HttpError(415, 'unsupported_media_type', `body must be application/json, got '${type}'`));
      return;
    }
    parse(req, res, (err?: unknown) => {
      if (!err) return next();
      const e = err as { type?: string; message?: string };
      if (e.type === 'entity.too.large')
        return next(new HttpError(413, 'payload_too_large', `body must be at most ${limit}`, { cause: err }));
      if (e.type === 'entity.parse.failed')
        return next(
          new HttpError(400, 'bad_request', `body is not valid JSON: ${e.message ?? ''}`.trim(), {
            cause: err,
          }),
        );
      next(new HttpError(400, 'bad_request', e.message ?? 'unreadable body', { cause: err }));
    });
  };
}

/**
 * The stream routes: `POST /v1/streams`, `GET /v1/streams`, `GET /v1/streams/:id`,
 * `GET /v1/streams/:id/events` (SSE), `GET /v1/streams/:id/mjpeg`, `DELETE /v1/streams/:id`.
 * Errors are passed on as {@link HttpError} for the app's error handler.
 */
export function streamsRouter(manager: StreamManager): Router {
  const router = express.Router();
  const notFound = (id: string) => new HttpError(404, 'not_found', `no stream with id '${id}'`);

  router.post('/v1/streams', jsonBody('16kb'), async (req: Request, res: Response) => {
    const info = await manager.create(req.body as StartStreamRequest);
    res.status(201).location(`${req.baseUrl}/v1/streams/${info.id}`).json(info);
  });

  router.get('/v1/streams', (_req: Request, res: Response) => {
    res.json({ streams: manager.list() });
  });

  router.get('/v1/streams/:id', (req: Request<{ id: string }>, res: Response) => {
    const info = manager.get(req.params.id);
    if (!info) throw notFound(req.params.id);
    res.json(info);
  });

  router.delete('/v1/streams/:id', async (req: Request<{ id: string }>, res: Response) => {
    // The handle outlives the stream's place in the list (it may be evicted once finished).
    const h = manager.handle(req.params.id);
    if (!h) throw notFound(req.params.id);
    await manager.stop(req.params.id);
    res.json(h.info());
  });

  router.get('/v1/streams/:id/events', async (req: Request<{ id: string }>, res: Response) => {
    const id = req.params.id;
    const e = manager.handle(id);
    if (!e) throw notFound(id);
    const { statsIntervalMs = 1000, heartbeatMs = 15_000 } = manager.options;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // nginx buffers responses unless told otherwise.
      'X-Accel-Buffering': 'no',
    });
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    const detach = e.attach();
    const timers: NodeJS.Timeout[] = [];
    try {
      const stats = () => ({ ...manager.get(id), pipeline: e.pipelineStats() });
      if (!(await send(res, `retry: 5000\n${sseEvent('stats', stats())}`))) return;
      // Timed writes skip a beat while the socket is full rather than queue up.
      const timed = (ms: number, text: () => string) => {
        if (ms > 0)
          timers.push(
            setInterval(() => {
              if (!res.destroyed && !res.writableNeedDrain) res.write(text());
            }, ms),
          );
      };
      timed(statsIntervalMs, () => sseEvent('stats', stats()));
      timed(heartbeatMs, () => ': heartbeat\n\n');
      for await (const rec of e.hub.detectionEvents(gone.signal))
        if (!(await send(res, sseEvent('detections', rec)))) return;
      if (gone.signal.aborted) return;
      await e.done;
      const info = manager.get(id);
      await send(res, sseEvent(info?.state === 'failed' ? 'error' : 'end', info ?? { id }));
      res.end();
    } finally {
      for (const t of timers) clearInterval(t);
      detach();
    }
  });

  router.get('/v1/streams/:id/mjpeg', async (req: Request<{ id: string }>, res: Response) => {
    const id = req.params.id;
    const e = manager.handle(id);
    if (!e) throw notFound(id);
    if (e.finished())
      throw new HttpError(
        409,
        'conflict',
        `stream '${id}' is ${manager.get(id)?.state ?? 'finished'}: no frames to show`,
      );
    res.writeHead(200, {
      'Content-Type': `multipart/x-mixed-replace; boundary=${MJPEG_BOUNDARY}`,
      'Cache-Control': 'no-cache, no-store',
      Pragma: 'no-cache',
      Connection: 'close',
    });
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    const detach = e.attach();
    try {
      // While a write waits for the socket to drain, the hub keeps only the newest frame.
      for await (const f of e.hub.jpegFrames(gone.signal)) {
        const head = `--${MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${f.jpeg.length}\r\n\r\n`;
        if (!(await send(res, Buffer.concat([Buffer.from(head), f.jpeg, Buffer.from('\r\n')])))) return;
      }
      if (!res.destroyed) res.end(`--${MJPEG_BOUNDARY}--\r\n`);
    } finally {
      detach();
    }
  });

  return router;
}

// #endregion
