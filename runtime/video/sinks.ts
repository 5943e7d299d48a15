/**
 * Sinks of the video pipeline:
 * - {@link JsonlSink}: one JSON line per processed frame (index, pts, boxes, scores, classes,
 *   track ids, counts).
 * - {@link AnnotatedVideoSink}: boxes and track ids drawn on the source-resolution frame and
 *   encoded by an ffmpeg encoder child (libx264, else mpeg4).
 * - {@link StreamHub}: the hooks the server uses for MJPEG and server-sent events: an event
 *   emitter and async iterators of annotated JPEG frames and of detection events.
 * - {@link StatsSink}: fps, per-stage ms, queue depths and drops, handed to a callback as a
 *   progress line at most once per interval.
 *
 * Source-resolution annotation: the decoder itself writes a second output, the frame at source
 * resolution (a `split` in the same ffmpeg filter graph, RGB24 on fd 3, frame-aligned with the
 * model-size output). Boxes are drawn on it here in JS (outlines and small labels only) and the
 * frame is piped to the encoder child. This decodes the source once, needs no timing sidecar or
 * second pass, works for live streams, and the boxes land exactly where the detections are
 * (both come from the same decoded frame).
 */
import { EventEmitter, once } from 'node:events';
import { createWriteStream, existsSync, statSync, type WriteStream } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import sharp from 'sharp';
import { ConfigError, PipelineError } from '../../models/core/errors.js';
import { colorFor, drawAnnotations, type Annotation } from './draw.js';
import { describeExit, encoderArgs, spawnFfmpeg, type EncoderSpec, type FfmpegChild } from './ffmpeg.js';
import type { FrameResult, PipelineStats, SinkContext, VideoSink } from './pipeline.js';

const r2 = (v: number): number => Math.round(v * 100) / 100;
const r4 = (v: number): number => Math.round(v * 10000) / 10000;

/** The JSON form of a processed frame (JSONL lines and SSE events). */
export interface FrameRecord {
  frame: number;
  /** Seconds; null when the stream has no timestamps. */
  pts: number | null;
  width: number;
  height: number;
  /** [x1, y1, x2, y2] in source pixels, 0.01 px. */
  boxes: [number, number, number, number][];
  scores: number[];
  classes: number[];
  /** Per box: its track id, or null. */
  trackIds: (number | null)[];
  /** Cumulative line-crossing counts, when a count line is set. */
  counts?: { in: number; out: number };
}

/** Builds the {@link FrameRecord} of a result. */
export function frameRecord(r: FrameResult): FrameRecord {
  const rec: FrameRecord = {
    frame: r.index,
    pts: r.pts === null ? null : Math.round(r.pts * 1e6) / 1e6,
    width: r.width,
    height: r.height,
    boxes: r.objects.map((o) => [r2(o.box[0]), r2(o.box[1]), r2(o.box[2]), r2(o.box[3])]),
    scores: r.objects.map((o) => r4(o.score)),
    classes: r.objects.map((o) => o.classId),
    trackIds: r.objects.map((o) => o.trackId),
  };
  if (r.counts) rec.counts = { in: r.counts.in, out: r.counts.out };
  return rec;
}

/** Checks that a file can be created at `path` (its folder exists and is a folder). */
function checkOutputPath(path: string, what: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new ConfigError('ERR_FILE_WRITE', `cannot write ${what} '${path}': folder '${dir}' does not exist`);
  if (existsSync(path) && statSync(path).isDirectory())
    throw new ConfigError('ERR_FILE_WRITE', `cannot write ${what} '${path}': it is a folder`);
}

async function writeWithBackpressure(stream: Writable, data: Uint8Array | string, died?: Promise<unknown>) {
  if (stream.write(data)) return;
  await (died ? Promise.race([once(stream, 'drain'), died]) : once(stream, 'drain'));
}

// #region JSONL

/**
 * Writes one JSON line per processed frame ({@link FrameRecord}).
 * @example
 * ```ts
 * new JsonlSink('dets.jsonl');
 * // {"frame":0,"pts":0,"width":768,"height":576,"boxes":[[412.3,188,441.9,262.5]],"scores":[0.83],"classes":[0],"trackIds":[1]}
 * ```
 */
export class JsonlSink implements VideoSink {
  readonly name = 'jsonl';
  private stream: Writable | null = null;
  private ownStream = false;
  lines = 0;

  /** @param target - a file path, or a writable stream (e.g. process.stdout; left open at the end) */
  constructor(private readonly target: string | Writable) {}

  open(): void {
    if (typeof this.target === 'string') {
      checkOutputPath(this.target, 'JSONL file');
      const ws: WriteStream = createWriteStream(this.target);
      ws.on('error', () => {}); // surfaced by the next write / close
      this.stream = ws;
      this.ownStream = true;
    } else this.stream = this.target;
  }

  async write(r: FrameResult): Promise<void> {
    if (!this.stream) this.open();
    const s = this.stream!;
    if (s.errored)
      throw new PipelineError(`cannot write JSONL: ${s.errored.message}`, [], { cause: s.errored });
    await writeWithBackpressure(s, JSON.stringify(frameRecord(r)) + '\n');
    this.lines++;
  }

  async close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    if (!s || !this.ownStream) return;
    await new Promise<void>((res, rej) =>
      s.end((err?: Error | null) =>
        err ? rej(new PipelineError(`cannot write JSONL: ${err.message}`, [], { cause: err })) : res(),
      ),
    );
  }
}

// #endregion

// #region annotation

const annotated = new WeakSet<Uint8Array>();

/** Drawing options shared by the sinks that show frames. */
export interface AnnotateOptions {
  classes: readonly string[];
  countLine?: [number, number, number, number] | null;
}

/**
 * Draws a result's boxes, track ids (or scores when untracked), the count line and the counts
 * onto its source-resolution frame, in place, once (later calls are no-ops).
 * @returns the annotated frame, or undefined when the result carries no source frame
 */
export function annotateFrame(r: FrameResult, opts: AnnotateOptions): FrameResult['source'] {
  const img = r.source;
  if (!img || annotated.has(img.data)) return img;
  const multiClass = opts.classes.length > 1;
  const items: Annotation[] = r.objects.map((o) => {
    const parts: string[] = [];
    if (o.trackId !== null) parts.push(`#${o.trackId}`);
    if (multiClass) parts.push(opts.classes[o.classId] ?? String(o.classId));
    if (o.trackId === null) parts.push(o.score.toFixed(2));
    return { box: o.box, label: parts.join(' '), color: colorFor(o.trackId ?? o.classId * 7) };
  });
  drawAnnotations(img, items, {
    line: opts.countLine ?? undefined,
    status: r.counts ? `IN ${r.counts.in} OUT ${r.counts.out}` : undefined,
  });
  annotated.add(img.data);
  return img;
}

// #endregion

// #region annotated video

export interface AnnotatedVideoOptions {
  /** 'auto' (default): libx264 when available, else mpeg4. */
  codec?: EncoderSpec['codec'];
  /** libx264 CRF (default 23). */
  crf?: number;
  /** Output frame rate (default: the source's). */
  fps?: string;
  /** Seconds to wait for the encoder to finish the file (default 60). */
  finishTimeoutMs?: number;
}

/**
 * Encodes annotated source-resolution frames to a video file with an ffmpeg encoder child
 * (started on the first frame, when the size is known). One frame out per processed frame at the
 * source's frame rate: in live mode dropped frames are missing, so the file plays faster.
 * @throws {PipelineError} from `write` when the source changes size mid-stream (a video file has
 *   one size) or the encoder dies; from `close` when the encoder fails to finish the file
 */
export class AnnotatedVideoSink implements VideoSink {
  readonly name = 'annotated-video';
  readonly needsSourceFrames = true;
  private ctx: SinkContext | null = null;
  private encoder: FfmpegChild | null = null;
  private size: [number, number] | null = null;
  private starting: Promise<FfmpegChild> | null = null;
  frames = 0;

  constructor(
    readonly out: string,
    private readonly opts: AnnotatedVideoOptions = {},
  ) {}

  open(ctx: SinkContext): void {
    checkOutputPath(this.out, 'annotated video');
    this.ctx = ctx;
  }

  /** The encoder's pid (undefined before the first frame). */
  get pid(): number | undefined {
    return this.encoder?.pid;
  }

  private async start(width: number, height: number): Promise<FfmpegChild> {
    const ctx = this.ctx!;
    const args = await encoderArgs(ctx.info.ffmpeg, {
      out: this.out,
      width,
      height,
      fps: this.opts.fps ?? ctx.info.fpsText,
      codec: this.opts.codec ?? 'auto',
      crf: this.opts.crf ?? 23,
    });
    const enc = spawnFfmpeg(ctx.info.ffmpeg, args, { role: 'encoder', stdin: true, fd3: false });
    ctx.emit({ kind: 'ffmpeg-start', role: 'encoder', pid: enc.pid, args });
    void enc.exited.then((e) =>
      ctx.emit({ kind: 'ffmpeg-exit', role: 'encoder', pid: enc.pid, code: e.code, signal: e.signal }),
    );
    this.encoder = enc;
    return enc;
  }

  async write(r: FrameResult): Promise<void> {
    if (!this.ctx) throw new Error('AnnotatedVideoSink.write() before open()');
    const img = r.source;
    if (!img)
      throw new PipelineError('the annotated video needs source-resolution frames (sourceFrames: true)');
    if (!this.size) {
      this.size = [img.width, img.height];
      this.starting = this.start(img.width, img.height);
    } else if (this.size[0] !== img.width || this.size[1] !== img.height)
      throw new PipelineError(
        `frame size changed mid-stream from ${this.size[0]}x${this.size[1]} to ${img.width}x${img.height} at frame ${r.index}: the annotated video '${this.out}' has one size (detections and JSONL follow the change; restart with a new --out for the new size)`,
      );
    const enc = await this.starting!;
    annotateFrame(r, { classes: this.ctx.spec.classes, countLine: this.ctx.countLine });
    if (enc.process.exitCode !== null || !enc.stdin || enc.stdin.destroyed)
      throw describeExit(`encoding '${this.out}' failed`, await enc.exited, enc);
    const died = enc.exited.then(async (e) => {
      throw describeExit(`encoding '${this.out}' failed`, e, enc);
    });
    died.catch(() => undefined);
    await writeWithBackpressure(enc.stdin, img.data, died);
    this.frames++;
  }

  /** Finishes the file: closes the encoder's input and waits for it to exit. */
  async close(error?: unknown): Promise<void> {
    const enc = this.starting ? await this.starting.catch(() => null) : null;
    this.starting = null;
    if (!enc) return;
    enc.stdin?.end();
    const timeout = this.opts.finishTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      enc.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeout))),
    ]);
    clearTimeout(timer);
    const info = timedOut ? await enc.stop() : await enc.exited;
    if (error) return;
    if (timedOut)
      throw new PipelineError(`encoding '${this.out}' did not finish within ${timeout} ms`, enc.stderrTail());
    if (info.code !== 0) throw describeExit(`encoding '${this.out}' failed`, info, enc);
  }
}

// #endregion

// #region MJPEG / SSE hooks

/** An annotated frame as JPEG. */
export interface JpegFrame {
  frame: number;
  pts: number | null;
  width: number;
  height: number;
  jpeg: Buffer;
}

export interface StreamHubOptions {
  /** Produce JPEG frames (default true; false: detection events only, no source frames decoded). */
  jpeg?: boolean;
  /** JPEG quality 1-100 (default 80). */
  quality?: number;
  /** Downscale JPEG frames wider than this (default: source size). */
  maxWidth?: number;
  /** Detection events an iterator buffers before dropping the oldest (default 64). */
  eventBuffer?: number;
}

interface HubEvents {
  detections: [FrameRecord];
  jpeg: [JpegFrame];
  end: [unknown];
}

/**
 * The server's hooks into a running pipeline. Events: `'detections'` ({@link FrameRecord} per
 * processed frame, for SSE), `'jpeg'` ({@link JpegFrame}, annotated at source resolution, for
 * MJPEG), `'end'` (the error, if any). JPEG encoding (sharp, off the main thread) only runs while
 * someone listens, one frame at a time: frames that arrive while one is encoding are skipped, so
 * a slow client never slows the pipeline.
 *
 * @example
 * ```ts
 * const hub = new StreamHub({ maxWidth: 960 });
 * void runVideoPipeline({ source: 'rtsp://cam/1', detector, sinks: [hub] });
 * for await (const f of hub.jpegFrames(req.signal)) res.write(mjpegPart(f.jpeg));
 * for await (const e of hub.detectionEvents(req.signal)) res.write(`data: ${JSON.stringify(e)}\n\n`);
 * ```
 */
export class StreamHub extends EventEmitter<HubEvents> implements VideoSink {
  readonly name = 'stream-hub';
  readonly needsSourceFrames: boolean;
  private ctx: SinkContext | null = null;
  private encoding: Promise<void> | null = null;
  private ended = false;
  private jpegWaiters = 0;

  constructor(private readonly opts: StreamHubOptions = {}) {
    super();
    this.needsSourceFrames = opts.jpeg ?? true;
  }

  open(ctx: SinkContext): void {
    this.ctx = ctx;
  }

  write(r: FrameResult): void {
    this.emit('detections', frameRecord(r));
    const img = r.source;
    if (!img || this.encoding || (this.listenerCount('jpeg') === 0 && this.jpegWaiters === 0)) return;
    annotateFrame(r, { classes: this.ctx?.spec.classes ?? [], countLine: this.ctx?.countLine });
    let p = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
    let width = img.width;
    let height = img.height;
    if (this.opts.maxWidth && img.width > this.opts.maxWidth) {
      width = this.opts.maxWidth;
      height = Math.max(1, Math.round((img.height * width) / img.width));
      p = p.resize(width, height, { kernel: 'linear' });
    }
    this.encoding = p
      .jpeg({ quality: this.opts.quality ?? 80 })
      .toBuffer()
      .then((jpeg) => {
        if (!this.ended) this.emit('jpeg', { frame: r.index, pts: r.pts, width, height, jpeg });
      })
      .catch(() => undefined)
      .finally(() => (this.encoding = null));
  }

  async close(error?: unknown): Promise<void> {
    await this.encoding;
    this.ended = true;
    this.emit('end', error);
  }

  /**
   * Annotated JPEG frames as they come; a slow consumer gets the latest frame, not a backlog.
   * Ends when the pipeline ends or `signal` aborts.
   */
  async *jpegFrames(signal?: AbortSignal): AsyncGenerator<JpegFrame> {
    let latest: JpegFrame | null = null;
    let wake: (() => void) | null = null;
    const onJpeg = (f: JpegFrame) => {
      latest = f;
      wake?.();
    };
    const onStop = () => wake?.();
    this.on('jpeg', onJpeg);
    this.on('end', onStop);
    signal?.addEventListener('abort', onStop);
    this.jpegWaiters++;
    try {
      while (!this.ended && !signal?.aborted) {
        if (!latest) await new Promise<void>((r) => (wake = r));
        wake = null;
        const f: JpegFrame | null = latest;
        latest = null;
        if (f) yield f;
      }
    } finally {
      this.jpegWaiters--;
      this.off('jpeg', onJpeg);
      this.off('end', onStop);
      signal?.removeEventListener('abort', onStop);
    }
  }

  /**
   * Detection events ({@link FrameRecord}) in order; a consumer more than `eventBuffer` events
   * behind loses the oldest. Ends when the pipeline ends or `signal` aborts.
   */
  async *detectionEvents(signal?: AbortSignal): AsyncGenerator<FrameRecord> {
    const buf: FrameRecord[] = [];
    const cap = this.opts.eventBuffer ?? 64;
    let wake: (() => void) | null = null;
    const onEvent = (e: FrameRecord) => {
      buf.push(e);
      if (buf.length > cap) buf.shift();
      wake?.();
    };
    const onStop = () => wake?.();
    this.on('detections', onEvent);
    this.on('end', onStop);
    signal?.addEventListener('abort', onStop);
    try {
      for (;;) {
        if (signal?.aborted) return;
        const e = buf.shift();
        if (e) {
          yield e;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      this.off('detections', onEvent);
      this.off('end', onStop);
      signal?.removeEventListener('abort', onStop);
    }
  }
}

// #endregion

// #region stats

/**
 * One progress line: `frame 240 | 24.6 fps (decode 25.0) | drop 3 | wait 2.1 pre 0.4 infer 35.0
 * post 0.2 track 0.1 sink 1.9 ms | latency 41 ms | queue 1/0 | batch 1.0`.
 */
export function formatStatsLine(s: PipelineStats): string {
  const m = s.ms;
  const f = (v: number) => v.toFixed(1);
  return (
    `frame ${s.processed}` +
    ` | ${f(s.fps)} fps (decode ${f(s.decodeFps)})` +
    ` | drop ${s.dropped}` +
    (s.reconnects ? ` | reconnects ${s.reconnects}` : '') +
    ` | wait ${f(m.wait)} pre ${f(m.pre)} infer ${f(m.infer)} post ${f(m.post)} track ${f(m.track)} sink ${f(m.sink)} ms` +
    ` | latency ${Math.round(m.latency)} ms` +
    ` | queue ${s.queues.decode}/${s.queues.results}` +
    ` | batch ${s.meanBatch.toFixed(1)}`
  );
}

/**
 * Hands the pipeline's stats and a formatted line to `onStats` at most once per `intervalMs`
 * (checked as frames are processed), and once more at the end.
 */
export class StatsSink implements VideoSink {
  readonly name = 'stats';
  private ctx: SinkContext | null = null;
  private last = 0;

  constructor(
    private readonly onStats: (stats: PipelineStats, line: string) => void,
    private readonly intervalMs = 1000,
  ) {}

  open(ctx: SinkContext): void {
    this.ctx = ctx;
    this.last = performance.now();
  }

  write(): void {
    const now = performance.now();
    if (!this.ctx || now - this.last < this.intervalMs) return;
    this.last = now;
    const s = this.ctx.stats();
    this.onStats(s, formatStatsLine(s));
  }

  async close(): Promise<void> {
    if (!this.ctx) return;
    const s = this.ctx.stats();
    this.onStats(s, formatStatsLine(s));
  }
}

// #endregion
