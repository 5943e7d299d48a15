/**
 * The video pipeline: decode -> inference -> tracker -> sinks, each stage running concurrently
 * and handing frames on through a bounded queue.
 *
 * ```
 * ffmpeg child --(fd 1, fd 3, stderr)--> VideoSource --decodeQ--> inference (batches of <= N)
 *   --> ByteTracker + LineCounter --resultQ--> sinks (JSONL, annotated video, MJPEG/SSE, stats)
 * ```
 *
 * - File mode (default for files, folders, stdin, HTTP files): every frame is processed. When
 *   decodeQ is full the source is paused (ffmpeg blocks on its stdout pipe) and resumed once the
 *   queue is down to half; when the sinks are slow, inference waits on resultQ.
 * - Live mode (default for RTSP/RTMP/UDP/SRT and cameras; `live: true` for anything): decodeQ
 *   holds one batch; a new frame evicts the stalest one (counted in `dropped`), so a frame waits
 *   at most about one inference call and latency stays bounded whatever the model's speed.
 * - Inference takes whatever the queue holds, up to `batch` frames, as one `detectPrepared` call
 *   (one session.run): batches fill up only when inference is the bottleneck.
 * - Shutdown: on the end of the source, an error in any stage, or `signal` abort, the decoder is
 *   stopped (SIGTERM, SIGKILL after a grace period, awaited until its exit) and every sink is
 *   closed (the annotated video's encoder is finalised and awaited); nothing is left running.
 */
import type { Readable } from 'node:stream';
import { ConfigError, EdgekdError, PipelineError } from '../../models/core/errors.js';
import { iou, type BoxXyxy, type Detection } from '../../models/core/detection.js';
import type { ModelSpec } from '../../models/core/spec.js';
import { ByteTracker, LineCounter, type LineCount, type Track, type TrackerOptions } from '../tracker.js';
import type { Detector, StageTimings } from '../types.js';
import type { RgbFrame } from './draw.js';
import { BoundedQueue } from './queue.js';
import {
  isLiveSource,
  parseSource,
  VideoSource,
  type DecodedFrame,
  type ReconnectOptions,
  type SourceEvent,
  type SourceSpec,
  type StreamInfo,
} from './source.js';

// #region types

/** One detection of a frame, in source pixels, with its track id (null: not tracked). */
export interface FrameObject {
  box: BoxXyxy;
  score: number;
  classId: number;
  trackId: number | null;
}

/** What the sinks receive for each processed frame, in frame order. */
export interface FrameResult {
  index: number;
  /** Seconds; null when the stream has no timestamps. */
  pts: number | null;
  /** Source frame size. */
  width: number;
  height: number;
  objects: FrameObject[];
  /** The tracker's confirmed tracks for this frame (null when tracking is off). */
  tracks: Track[] | null;
  /** Cumulative line-crossing counts (null without a count line). */
  counts: LineCount | null;
  /** The inference call's timings (shared by the frames of a batch). */
  timings: StageTimings;
  /** Frames in the inference call that handled this one. */
  batchSize: number;
  /** The frame at source resolution (present when a sink needs it). */
  source?: RgbFrame;
  /** performance.now() when the frame was decoded. */
  receivedAt: number;
}

/** Running counters and recent per-stage times (milliseconds, exponential moving averages). */
export interface PipelineStats {
  elapsedSec: number;
  decoded: number;
  processed: number;
  dropped: number;
  reconnects: number;
  /** Processed / decoded frames per second over the last ~2 s. */
  fps: number;
  decodeFps: number;
  queues: { decode: number; decodePeak: number; results: number; resultsPeak: number };
  /** Recent per-frame times, ms: queue wait, pre / infer / post (per call), tracker, sinks, decode-to-sink latency. */
  ms: {
    wait: number;
    pre: number;
    infer: number;
    post: number;
    track: number;
    sink: number;
    latency: number;
  };
  /** Mean frames per inference call. */
  meanBatch: number;
}

/** What sinks get when the pipeline starts. */
export interface SinkContext {
  info: StreamInfo;
  spec: ModelSpec;
  countLine: [number, number, number, number] | null;
  tracking: boolean;
  /** Current stats (cheap; call as often as needed). */
  stats(): PipelineStats;
  /** Reports an event through the pipeline's `onEvent`. */
  emit(e: VideoEvent): void;
}

/**
 * A consumer of processed frames. `write` is awaited frame by frame (a slow sink slows the
 * pipeline down in file mode and causes drops upstream in live mode); `close` is always called,
 * with the pipeline's error if there was one.
 */
export interface VideoSink {
  readonly name: string;
  /** The sink draws on source-resolution frames: the decoder then also outputs them. */
  readonly needsSourceFrames?: boolean;
  open?(ctx: SinkContext): void | Promise<void>;
  write(r: FrameResult): void | Promise<void>;
  close(error?: unknown): Promise<void>;
}

/** Events besides frames: the source's, encoder children, periodic stats and the end. */
export type VideoEvent =
  | SourceEvent
  | { kind: 'ffmpeg-start'; role: 'encoder'; pid: number; args: string[] }
  | { kind: 'ffmpeg-exit'; role: 'encoder'; pid: number; code: number | null; signal: string | null }
  | { kind: 'stats'; stats: PipelineStats }
  | { kind: 'video-done'; summary: VideoSummary };

export interface VideoPipelineOptions {
  /** File, URL, /dev/videoN, image folder or '-' (stdin). */
  source: string | SourceSpec;
  detector: Detector;
  sinks?: VideoSink[];
  /** Drop stale frames to bound latency (default: on for stream URLs and cameras). */
  live?: boolean;
  /** Read a file at its native frame rate (default: when live). */
  realtime?: boolean;
  /** Most frames per inference call (default 1). */
  batch?: number;
  /** Decoded frames waiting for inference (default: `batch` in live mode, max(4, 2 x batch) in file mode). */
  queueSize?: number;
  /** Processed frames waiting for the sinks (default 8). */
  resultQueueSize?: number;
  /** Inference calls in flight (default 1; match the detector's worker count). */
  inflight?: number;
  /** ByteTrack ids on the detections (default true). */
  track?: boolean;
  trackerOptions?: TrackerOptions;
  /** Count tracks crossing this line (x1, y1, x2, y2 in source pixels); needs tracking. */
  countLine?: [number, number, number, number];
  /** Stop after this many decoded frames. */
  maxFrames?: number;
  reconnect?: Partial<ReconnectOptions>;
  /** Probe / network timeout, ms (default 10000). */
  openTimeoutMs?: number;
  /** Also decode at source resolution (default: when a sink needs it). */
  sourceFrames?: boolean;
  /** Stream for a '-' source (default process.stdin). */
  stdin?: Readable;
  /** Extra ffmpeg input options, e.g. hardware decoding flags. */
  inputArgs?: string[];
  ffmpegPath?: string;
  /** Aborting stops the pipeline; the promise then rejects with `ERR_INTERRUPTED`. */
  signal?: AbortSignal;
  onEvent?: (e: VideoEvent) => void;
  /** Period of 'stats' events, ms (default 1000; 0 turns them off). */
  statsIntervalMs?: number;
}

/** The result of a run. */
export interface VideoSummary {
  source: { kind: string; location: string; width?: number; height?: number; fps: number; frames?: number };
  live: boolean;
  ended: 'eof' | 'max-frames' | 'stopped';
  /** Frames decoded / processed / dropped (live mode). */
  frames: number;
  processed: number;
  dropped: number;
  reconnects: number;
  seconds: number;
  /** Processed frames per second over the run. */
  fps: number;
  /** Distinct track ids reported. */
  tracks: number;
  counts: { in: number; out: number } | null;
  provider: string;
  /** Mean per-frame times over the run, ms. */
  meanMs: {
    wait: number;
    pre: number;
    infer: number;
    post: number;
    track: number;
    sink: number;
    latency: number;
  };
  meanBatch: number;
}

// #endregion

// #region helpers

/**
 * Attaches track ids to detections: each track takes the detection of its class it overlaps
 * most (IoU >= 0.3), greedily by IoU. Tracks report Kalman-filtered boxes, not the detection's.
 */
export function assignTrackIds(dets: readonly Detection[], tracks: readonly Track[] | null): FrameObject[] {
  const out: FrameObject[] = dets.map((d) => ({
    box: d.box,
    score: d.score,
    classId: d.classId,
    trackId: null,
  }));
  if (!tracks?.length || !dets.length) return out;
  const pairs: [number, number, number][] = [];
  for (let t = 0; t < tracks.length; t++)
    for (let d = 0; d < dets.length; d++) {
      if (tracks[t].classId !== dets[d].classId) continue;
      const v = iou(tracks[t].box, dets[d].box);
      if (v >= 0.3) pairs.push([v, t, d]);
    }
  pairs.sort((a, b) => b[0] - a[0]);
  const usedT = new Set<number>();
  for (const [, t, d] of pairs) {
    if (usedT.has(t) || out[d].trackId !== null) continue;
    usedT.add(t);
    out[d].trackId = tracks[t].id;
  }
  return out;
}

/** Frame rate over the recent completion times (a ring of timestamps, ms). */
class RateMeter {
  private readonly times: number[] = [];
  mark(t: number): void {
    this.times.push(t);
    if (this.times.length > 256) this.times.shift();
  }
  rate(now: number, windowMs = 2000): number {
    const recent = this.times.filter((t) => now - t <= windowMs);
    if (recent.length < 2) return 0;
    const span = (now - recent[0]) / 1000;
    return span > 0 ? (recent.length - 1) / span : 0;
  }
}

type MsKey = keyof PipelineStats['ms'];
const MS_KEYS: MsKey[] = ['wait', 'pre', 'infer', 'post', 'track', 'sink', 'latency'];

class StageTimes {
  readonly ema = Object.fromEntries(MS_KEYS.map((k) => [k, 0])) as Record<MsKey, number>;
  private readonly sum = Object.fromEntries(MS_KEYS.map((k) => [k, 0])) as Record<MsKey, number>;
  private readonly n = Object.fromEntries(MS_KEYS.map((k) => [k, 0])) as Record<MsKey, number>;
  add(k: MsKey, v: number): void {
    this.ema[k] = this.n[k] === 0 ? v : this.ema[k] + 0.1 * (v - this.ema[k]);
    this.sum[k] += v;
    this.n[k]++;
  }
  means(): Record<MsKey, number> {
    return Object.fromEntries(MS_KEYS.map((k) => [k, this.n[k] ? this.sum[k] / this.n[k] : 0])) as Record<
      MsKey,
      number
    >;
  }
}

const round = (v: number, d = 2): number => Number(v.toFixed(d));

function checkInt(name: string, v: number | undefined, min: number): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= min))
    throw new RangeError(`'${name}' must be an integer >= ${min}, got ${v}`);
}

// #endregion

/**
 * Runs a detector over a video source until the source ends, `maxFrames`, an error or abort.
 *
 * @returns counts, rates and mean stage times of the run
 * @throws {ConfigError} for a missing source path or a bad option combination
 * @throws {PipelineError} when ffmpeg fails, the file is truncated, a stream is lost for good or
 *   a sink fails (always after every child process has exited)
 * @throws {EdgekdError} `ERR_INTERRUPTED` when `signal` aborts
 * @throws {RangeError} for an option out of range (the message names it)
 *
 * @example
 * ```ts
 * const detector = await createDetector('ped-nano.onnx');
 * const summary = await runVideoPipeline({
 *   source: 'vtest.avi',
 *   detector,
 *   sinks: [new JsonlSink('dets.jsonl'), new AnnotatedVideoSink('out.mp4')],
 * });
 * // summary -> { frames: 795, processed: 795, dropped: 0, fps: 61.2, tracks: 41, ... }
 * ```
 */
export async function runVideoPipeline(o: VideoPipelineOptions): Promise<VideoSummary> {
  checkInt('batch', o.batch, 1);
  checkInt('queueSize', o.queueSize, 1);
  checkInt('resultQueueSize', o.resultQueueSize, 1);
  checkInt('inflight', o.inflight, 1);
  checkInt('maxFrames', o.maxFrames, 1);
  const interrupted = () =>
    new EdgekdError('ERR_INTERRUPTED', 'video pipeline aborted', { cause: o.signal?.reason });
  if (o.signal?.aborted) throw interrupted();
  const tracking = o.track ?? true;
  if (o.countLine && !tracking)
    throw new ConfigError('ERR_CONFIG_INVALID', "'countLine' counts tracks: it needs tracking (track: true)");
  const detector = o.detector;
  const spec = detector.spec;
  const sinks = o.sinks ?? [];
  const sourceSpec = typeof o.source === 'string' ? parseSource(o.source) : o.source;
  const live = o.live ?? isLiveSource(sourceSpec);
  const batch = o.batch ?? 1;
  const inflightMax = o.inflight ?? 1;
  const emit = o.onEvent ?? (() => {});
  const tracker = tracking ? new ByteTracker(o.trackerOptions) : null;
  const counter = o.countLine ? new LineCounter(o.countLine) : null;

  const t0 = performance.now();
  const source = await VideoSource.open(sourceSpec, {
    input: { width: spec.input.width, height: spec.input.height, resize: spec.input.resize },
    sourceFrames: o.sourceFrames ?? sinks.some((s) => s.needsSourceFrames),
    live,
    realtime: o.realtime,
    maxFrames: o.maxFrames,
    reconnect: o.reconnect,
    openTimeoutMs: o.openTimeoutMs,
    stdin: o.stdin,
    inputArgs: o.inputArgs,
    ffmpegPath: o.ffmpegPath,
    onEvent: (e) => {
      if (e.kind === 'reconnect') reconnects++;
      emit(e);
    },
  });

  const decodeQ = new BoundedQueue<DecodedFrame>(o.queueSize ?? (live ? batch : Math.max(4, 2 * batch)));
  const resultQ = new BoundedQueue<FrameResult>(o.resultQueueSize ?? 8);
  const times = new StageTimes();
  const decodeRate = new RateMeter();
  const doneRate = new RateMeter();
  const trackIds = new Set<number>();
  let decoded = 0;
  let processed = 0;
  let dropped = 0;
  let reconnects = 0;
  let calls = 0;
  let batchedFrames = 0;
  let lastCounts: LineCount | null = null;

  const stats = (): PipelineStats => {
    const now = performance.now();
    return {
      elapsedSec: round((now - t0) / 1000),
      decoded,
      processed,
      dropped,
      reconnects,
      fps: round(doneRate.rate(now), 1),
      decodeFps: round(decodeRate.rate(now), 1),
      queues: {
        decode: decodeQ.size,
        decodePeak: decodeQ.peak,
        results: resultQ.size,
        resultsPeak: resultQ.peak,
      },
      ms: Object.fromEntries(MS_KEYS.map((k) => [k, round(times.ema[k])])) as PipelineStats['ms'],
      meanBatch: calls ? round(batchedFrames / calls) : 0,
    };
  };

  // Inference calls running, and the launcher waiting for one to finish.
  let active = 0;
  let slotFreed: (() => void) | null = null;
  const freeSlot = (): void => {
    const f = slotFreed;
    slotFreed = null;
    f?.();
  };

  // Failure handling: the first error wins; it stops the source and unblocks every stage.
  let failure: unknown = null;
  const fail = (e: unknown): void => {
    if (failure) return;
    failure = e;
    decodeQ.close();
    resultQ.close();
    freeSlot();
    void source.stop();
  };
  const onAbort = (): void => fail(interrupted());
  o.signal?.addEventListener('abort', onAbort, { once: true });

  const ctx: SinkContext = {
    info: source.info,
    spec,
    countLine: o.countLine ?? null,
    tracking,
    stats,
    emit,
  };
  const opened: VideoSink[] = [];
  try {
    for (const s of sinks) {
      await s.open?.(ctx);
      opened.push(s);
    }
  } catch (e) {
    fail(e);
  }

  const statsTimer =
    (o.statsIntervalMs ?? 1000) > 0
      ? setInterval(() => emit({ kind: 'stats', stats: stats() }), o.statsIntervalMs ?? 1000)
      : null;
  statsTimer?.unref();

  if (!live) decodeQ.onLowWater(() => source.resume());

  const decode = failure
    ? Promise.resolve(null)
    : source
        .run((f) => {
          decoded++;
          decodeRate.mark(f.receivedAt);
          if (live) {
            if (decodeQ.offerDropOldest(f)) dropped++;
          } else if (!decodeQ.offer(f)) source.pause();
        })
        .then(
          (r) => {
            decodeQ.close();
            return r;
          },
          (e: unknown) => {
            fail(e);
            return null;
          },
        );

  // Inference: at most `inflight` calls at once, collected in order so the tracker sees frames
  // in order. Frames are taken from decodeQ only when a call can start, so in live mode they wait
  // there, where fresher frames replace them.
  const inferred = new BoundedQueue<{
    frames: DecodedFrame[];
    result: ReturnType<Detector['detectPrepared']>;
    startedAt: number;
  }>(inflightMax);
  const launch = (async () => {
    for (;;) {
      while (active >= inflightMax && !failure) await new Promise<void>((r) => (slotFreed = r));
      if (failure) break;
      const frames = await decodeQ.take(batch);
      if (!frames.length || failure) break;
      active++;
      const startedAt = performance.now();
      const result = detector
        .detectPrepared(frames.map((f) => ({ rgb: f.rgb, transform: f.transform })))
        .finally(() => {
          active--;
          freeSlot();
        });
      result.catch(() => undefined); // observed by the collector below
      inferred.offer({ frames, result, startedAt });
    }
  })()
    .catch(fail)
    .finally(() => inferred.close());

  const collect = (async () => {
    for (;;) {
      const [item] = await inferred.take(1);
      if (!item || failure) break;
      const results = await item.result;
      if (failure) break;
      calls++;
      batchedFrames += item.frames.length;
      for (let i = 0; i < item.frames.length; i++) {
        const f = item.frames[i];
        const r = results[i];
        times.add('wait', Math.max(0, item.startedAt - f.receivedAt));
        if (i === 0) {
          times.add('pre', r.timings.preMs);
          times.add('infer', r.timings.inferMs);
          times.add('post', r.timings.postMs);
        }
        const tt = performance.now();
        const tracks = tracker ? tracker.update(r.detections, f.index) : null;
        if (tracks) for (const t of tracks) trackIds.add(t.id);
        const counts = counter && tracks ? counter.update(tracks) : null;
        if (counts) lastCounts = counts;
        times.add('track', performance.now() - tt);
        const out: FrameResult = {
          index: f.index,
          pts: f.pts,
          width: f.transform.srcWidth,
          height: f.transform.srcHeight,
          objects: assignTrackIds(r.detections, tracks),
          tracks,
          counts,
          timings: r.timings,
          batchSize: item.frames.length,
          source: f.source
            ? { data: f.source.rgb, width: f.source.width, height: f.source.height }
            : undefined,
          receivedAt: f.receivedAt,
        };
        if (!(await resultQ.put(out))) return;
      }
    }
  })()
    .catch(fail)
    .finally(() => {
      resultQ.close();
      inferred.close();
    });

  const deliver = (async () => {
    for (;;) {
      const [r] = await resultQ.take(1);
      if (!r || failure) break;
      const ts = performance.now();
      for (const s of opened) await s.write(r);
      const now = performance.now();
      times.add('sink', now - ts);
      times.add('latency', now - r.receivedAt);
      processed++;
      doneRate.mark(now);
    }
  })().catch(fail);

  const end = await decode;
  await Promise.all([launch, collect, deliver]);
  // The source is stopped on failure; make sure its child is gone before the sinks finalise.
  await source.stop();
  if (statsTimer) clearInterval(statsTimer);
  o.signal?.removeEventListener('abort', onAbort);
  for (const s of opened) {
    try {
      await s.close(failure ?? undefined);
    } catch (e) {
      failure ??= e;
    }
  }
  if (failure)
    throw failure instanceof Error ? failure : new PipelineError(`video pipeline failed: ${String(failure)}`);

  const seconds = (performance.now() - t0) / 1000;
  const probe = source.info.probe;
  const mean = times.means();
  // Assigned in the collector closure (TypeScript's flow analysis cannot see that).
  const counts = lastCounts as LineCount | null;
  const summary: VideoSummary = {
    source: {
      kind: sourceSpec.kind,
      location: sourceSpec.location,
      width: probe.width,
      height: probe.height,
      fps: source.info.fps,
      frames: probe.frames,
    },
    live,
    ended: end?.ended ?? 'stopped',
    frames: decoded,
    processed,
    dropped,
    reconnects,
    seconds: round(seconds, 3),
    fps: round(seconds > 0 ? processed / seconds : 0, 1),
    tracks: trackIds.size,
    counts: counts ? { in: counts.in, out: counts.out } : counter ? { in: 0, out: 0 } : null,
    provider: detector.provider,
    meanMs: Object.fromEntries(MS_KEYS.map((k) => [k, round(mean[k])])) as VideoSummary['meanMs'],
    meanBatch: calls ? round(batchedFrames / calls) : 0,
  };
  emit({ kind: 'video-done', summary });
  return summary;
}
