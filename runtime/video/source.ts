/**
 * Video sources: a file, an RTSP / RTMP / HTTP(S) / UDP / SRT URL, a V4L2 device (/dev/videoN),
 * a folder of images, or stdin ('-'). One ffmpeg child per decode session decodes the source and
 * fits each frame into the model input (see ffmpeg.ts for the filter graph); this module turns
 * its pipes back into frames:
 *
 * - fd 1: model-size RGB24 frames, fixed size, reassembled by {@link FrameAssembler};
 * - fd 3 (optional): source-resolution RGB24 frames, whose size comes from the showinfo line of
 *   the same frame (so a size change mid-stream keeps them aligned);
 * - stderr: one showinfo line per frame (pts and source size), in frame order.
 * The n-th frame of each pipe and the n-th showinfo line are one frame; a frame is handed on
 * once all its parts have arrived. Its {@link LetterboxTransform} is computed from the size on
 * its own showinfo line with models/core letterboxTransform, the definition training uses, so a
 * resolution change mid-stream is followed frame by frame.
 *
 * Backpressure: `pause()` stops reading fd 1, the pipe fills and ffmpeg blocks. fd 3 is never
 * paused: ffmpeg writes each frame to both outputs, so once fd 1 is blocked fd 3 stops too and
 * what is buffered here stays bounded by ffmpeg's own small queues (pausing both could
 * deadlock when ffmpeg is blocked writing the one that is not being read).
 *
 * Stream loss (URL and device sources): the session's ffmpeg exits; a new one is started after
 * an exponential back-off (base x 2^(attempt-1), capped), up to `attempts` times in a row;
 * a session that delivered frames resets the count. Frame indices continue and pts are kept
 * increasing across sessions.
 */
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfigError, PipelineError } from '../../models/core/errors.js';
import { letterboxTransform } from '../../models/core/letterbox.js';
import type { LetterboxTransform } from '../types.js';
import {
  cleanLine,
  decoderArgs,
  describeExit,
  findFfmpeg,
  parseShowinfo,
  probeSource,
  spawnFfmpeg,
  TRUNCATION_RE,
  type DecoderInput,
  type ExitInfo,
  type FfmpegBinaries,
  type FfmpegChild,
  type ProbeInfo,
  type ShowinfoFrame,
} from './ffmpeg.js';
import { FrameAssembler } from './frame-assembler.js';

// #region source kinds

export type SourceKind = 'file' | 'url' | 'device' | 'folder' | 'stdin';

/** A parsed source argument. */
export interface SourceSpec {
  kind: SourceKind;
  /** Absolute path, URL, device path, folder, or '-' for stdin. */
  location: string;
  /** URL scheme in lower case (url sources only). */
  protocol?: string;
}

/** URL schemes ffmpeg is asked to open. */
export const URL_PROTOCOLS = ['rtsp', 'rtsps', 'rtmp', 'rtmps', 'http', 'https', 'udp', 'tcp', 'srt', 'rtp'];
/** Protocols that carry live streams: their end is always a loss. */
const STREAM_PROTOCOLS = new Set(['rtsp', 'rtsps', 'rtmp', 'rtmps', 'udp', 'tcp', 'srt', 'rtp']);
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.ppm', '.pgm']);

/**
 * Classifies a source argument. Local paths are checked here, so a missing file fails at once.
 * @param source - file path, URL, /dev/videoN, image folder, or '-' (stdin)
 * @throws {ConfigError} `ERR_FILE_NOT_FOUND` for a missing file, folder or device;
 *   `ERR_CONFIG_INVALID` for an unsupported URL scheme or an empty string
 */
export function parseSource(source: string): SourceSpec {
  if (typeof source !== 'string' || source.trim() === '')
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `'source' must be a path, URL, device or '-', got '${source}'`,
    );
  if (source === '-') return { kind: 'stdin', location: '-' };
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(source)?.[1]?.toLowerCase();
  if (scheme === 'file') return parseSource(decodeURIComponent(source.slice('file://'.length)));
  if (scheme) {
    if (!URL_PROTOCOLS.includes(scheme))
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `unsupported source URL scheme '${scheme}': expected one of ${URL_PROTOCOLS.join(', ')}`,
      );
    return { kind: 'url', location: source, protocol: scheme };
  }
  const path = resolve(source);
  if (/^\/dev\/video\d+$/.test(source)) {
    if (!existsSync(source))
      throw new ConfigError('ERR_FILE_NOT_FOUND', `video device not found: '${source}'`);
    return { kind: 'device', location: source };
  }
  if (!existsSync(path)) throw new ConfigError('ERR_FILE_NOT_FOUND', `video source not found: '${source}'`);
  return { kind: statSync(path).isDirectory() ? 'folder' : 'file', location: path };
}

/** Whether the source is a camera or a network stream that should run in live mode by default. */
export function isLiveSource(spec: SourceSpec): boolean {
  return spec.kind === 'device' || (spec.kind === 'url' && STREAM_PROTOCOLS.has(spec.protocol ?? ''));
}

/** Image files of a folder in natural order (frame_2 before frame_10). */
export function folderImages(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase()))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .map((n) => join(dir, n));
}

// #endregion

// #region frames and options

/** One decoded frame, ready for inference. */
export interface DecodedFrame {
  /** 0-based, continuous across reconnects. */
  index: number;
  /** Presentation time in seconds (kept increasing across reconnects); null when unknown. */
  pts: number | null;
  /** RGB24 at the model input size, letterboxed (or stretched) as `transform` says. */
  rgb: Uint8Array;
  transform: LetterboxTransform;
  /** The frame at source resolution, RGB24 (when source frames were requested). */
  source?: { rgb: Uint8Array; width: number; height: number };
  /** performance.now() when the frame was complete. */
  receivedAt: number;
}

/** What a source reports besides frames. */
export type SourceEvent =
  | { kind: 'ffmpeg-start'; role: 'decoder'; pid: number; args: string[] }
  | { kind: 'ffmpeg-exit'; role: 'decoder'; pid: number; code: number | null; signal: string | null }
  | { kind: 'reconnect'; attempt: number; attempts: number; delayMs: number; reason: string }
  | { kind: 'size-change'; frame: number; from: [number, number]; to: [number, number] }
  | { kind: 'warning'; message: string };

/** Reconnect policy for URL and device sources. */
export interface ReconnectOptions {
  /** Consecutive attempts before giving up (0: fail on the first loss). */
  attempts: number;
  /** Delay before the first attempt, ms; doubles each attempt. */
  baseDelayMs: number;
  /** Cap of the delay, ms. */
  maxDelayMs: number;
}

export interface SourceOptions {
  /** Model input: frames are fitted to this size. */
  input: { width: number; height: number; resize: 'letterbox' | 'stretch' };
  /** Also decode frames at source resolution (annotated video, MJPEG). */
  sourceFrames?: boolean;
  /** Live: stream protocols and cameras get `-fflags nobuffer`, files are read at their native rate (`-re`). */
  live?: boolean;
  /** Read a file source at its native frame rate even when not live. */
  realtime?: boolean;
  /** Stop after this many frames. */
  maxFrames?: number;
  reconnect?: Partial<ReconnectOptions>;
  /** Probe / network I/O timeout, ms (default 10000). */
  openTimeoutMs?: number;
  /** The byte stream of a '-' source (default process.stdin). */
  stdin?: Readable;
  /** Extra ffmpeg input options placed before `-i` (e.g. hardware decoding: `-hwaccel cuda`). */
  inputArgs?: string[];
  /** ffmpeg binary to use instead of the one on PATH. */
  ffmpegPath?: string;
  onEvent?: (e: SourceEvent) => void;
}

/** What the stream looked like when opened (probe results; sizes may change later). */
export interface StreamInfo {
  spec: SourceSpec;
  probe: ProbeInfo;
  /** Frame rate for outputs: the probed rate, else 25. */
  fps: number;
  fpsText: string;
  ffmpeg: FfmpegBinaries;
}

/** How a run of the source ended. */
export interface SourceResult {
  /** Frames delivered. */
  frames: number;
  /** Decoder sessions started (1 + reconnects). */
  sessions: number;
  reconnects: number;
  ended: 'eof' | 'max-frames' | 'stopped';
}

const DEFAULT_RECONNECT: ReconnectOptions = { attempts: 5, baseDelayMs: 500, maxDelayMs: 10_000 };

// #endregion

// #region one decoder session

interface RawFrame {
  info: ShowinfoFrame;
  rgb: Uint8Array;
  source?: { rgb: Uint8Array; width: number; height: number };
}

interface SessionEnd {
  exit: ExitInfo;
  frames: number;
  /** Bytes left over that did not make a whole frame. */
  partialBytes: number;
  child: FfmpegChild;
}

/** One ffmpeg decoder child and the reassembly of its three pipes. */
class DecodeSession {
  readonly child: FfmpegChild;
  readonly done: Promise<SessionEnd>;
  private readonly model = new FrameAssembler();
  private readonly src = new FrameAssembler();
  private readonly infos: ShowinfoFrame[] = [];
  private readonly srcSizes: ShowinfoFrame[] = [];
  private readonly modelFrames: Uint8Array[] = [];
  private readonly srcFrames: { rgb: Uint8Array; width: number; height: number }[] = [];
  private frames = 0;
  private stopped = false;
  private lastInfo: ShowinfoFrame | null = null;

  constructor(
    bin: FfmpegBinaries,
    args: string[],
    private readonly frameBytes: number,
    private readonly withSource: boolean,
    stdin: Readable | undefined,
    private readonly onFrame: (f: RawFrame) => void,
    paused: boolean,
  ) {
    this.child = spawnFfmpeg(bin, args, {
      role: 'decoder',
      stdin: stdin !== undefined,
      fd3: withSource,
      onStderrLine: (line) => {
        const info = parseShowinfo(line);
        if (!info) return;
        this.infos.push(info);
        if (this.withSource) {
          this.srcSizes.push(info);
          this.drainSource();
        }
        this.pump();
      },
    });
    const c = this.child;
    if (stdin && c.stdin) {
      stdin.pipe(c.stdin);
      void c.exited.then(() => stdin.unpipe(c.stdin!));
    }
    c.stdout.on('data', (chunk: Buffer) => {
      if (this.stopped) return;
      this.model.push(chunk);
      for (let f = this.model.take(frameBytes); f; f = this.model.take(frameBytes)) this.modelFrames.push(f);
      this.pump();
    });
    c.fd3?.on('data', (chunk: Buffer) => {
      if (this.stopped) return;
      this.src.push(chunk);
      this.drainSource();
      this.pump();
    });
    if (paused) c.stdout.pause();
    // Listen for 'close' now: a pipe may close before the exit event arrives.
    const closed = (s: Readable | null) =>
      s && !s.destroyed
        ? once(s, 'close').then(
            () => undefined,
            () => undefined,
          )
        : Promise.resolve();
    const allClosed = Promise.all([closed(c.stdout), closed(c.fd3), closed(c.process.stderr)]);
    this.done = (async () => {
      const exit = await c.exited;
      await allClosed;
      if (!this.stopped) {
        // Lines that arrived after the last bytes pair the remaining frames now; a frame whose
        // showinfo line never came (should not happen) takes the previous frame's size.
        this.pump();
        while (!this.withSource && this.modelFrames.length && this.lastInfo) {
          this.infos.push({ ...this.lastInfo, ptsTime: null });
          this.pump();
        }
      }
      const partialBytes = this.model.buffered + this.modelFrames.length * frameBytes;
      return { exit, frames: this.frames, partialBytes, child: c };
    })();
  }

  private drainSource(): void {
    while (this.srcSizes.length) {
      const s = this.srcSizes[0];
      const f = this.src.take(s.width * s.height * 3);
      if (!f) return;
      this.srcSizes.shift();
      this.srcFrames.push({ rgb: f, width: s.width, height: s.height });
    }
  }

  private pump(): void {
    while (
      !this.stopped &&
      this.modelFrames.length &&
      this.infos.length &&
      (!this.withSource || this.srcFrames.length)
    ) {
      const info = this.infos.shift()!;
      this.lastInfo = info;
      const rgb = this.modelFrames.shift()!;
      const source = this.withSource ? this.srcFrames.shift() : undefined;
      this.frames++;
      this.onFrame({ info, rgb, source });
    }
  }

  pause(): void {
    this.child.stdout.pause();
  }

  resume(): void {
    this.child.stdout.resume();
  }

  /** Stops delivering frames, kills ffmpeg and waits for its exit. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.child.stdout.destroy();
    this.child.fd3?.destroy();
    await this.child.stop();
    await this.done;
  }
}

// #endregion

// #region the source

function sleep(ms: number, cancel: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([new Promise<void>((r) => (timer = setTimeout(r, ms))), cancel]).finally(() =>
    clearTimeout(timer),
  );
}

/**
 * An opened video source. `open()` checks the source and probes it; `run()` decodes it,
 * reconnecting stream sources, until the end, `maxFrames`, `stop()` or an error.
 *
 * @example
 * ```ts
 * const src = await VideoSource.open('clip.mp4', { input: { width: 320, height: 320, resize: 'letterbox' } });
 * const r = await src.run((f) => console.log(f.index, f.pts, f.transform.padY));
 * // 0 0 40, 1 0.04 40, ... ; r -> { frames: 50, sessions: 1, reconnects: 0, ended: 'eof' }
 * ```
 */
export class VideoSource {
  private session: DecodeSession | null = null;
  private paused = false;
  private stopped = false;
  private stopSignal!: () => void;
  private readonly stopPromise = new Promise<void>((r) => (this.stopSignal = r));
  private running: Promise<SourceResult> | null = null;
  private readonly transforms = new Map<string, LetterboxTransform>();

  private constructor(
    readonly info: StreamInfo,
    private readonly input: DecoderInput,
    private readonly opts: SourceOptions,
    private readonly cleanup: () => void,
  ) {}

  /**
   * Checks and probes a source.
   * @param source - path, URL, device, folder or '-', or a parsed {@link SourceSpec}
   * @throws {ConfigError} for a missing path or an unsupported URL scheme (see {@link parseSource})
   * @throws {PipelineError} when ffmpeg is missing, or the source cannot be opened or has no video
   */
  static async open(source: string | SourceSpec, opts: SourceOptions): Promise<VideoSource> {
    const spec = typeof source === 'string' ? parseSource(source) : source;
    const { width, height } = opts.input;
    if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0))
      throw new RangeError(`'input' must have positive integer width and height, got ${width}x${height}`);
    if (opts.maxFrames !== undefined && !(Number.isInteger(opts.maxFrames) && opts.maxFrames >= 1))
      throw new RangeError(`'maxFrames' must be an integer >= 1, got ${opts.maxFrames}`);
    const bin = await findFfmpeg(opts.ffmpegPath);
    const timeoutMs = opts.openTimeoutMs ?? 10_000;
    const us = String(Math.round(timeoutMs * 1000));
    let demux: string[] = [];
    let input = spec.location;
    let cleanup = () => {};
    switch (spec.kind) {
      case 'url':
        demux = spec.protocol?.startsWith('rtsp')
          ? ['-rtsp_transport', 'tcp', bin.rtspTimeoutOption, us]
          : ['-rw_timeout', us];
        break;
      case 'device':
        demux = ['-f', 'v4l2'];
        break;
      case 'folder': {
        const images = folderImages(spec.location);
        if (!images.length)
          throw new ConfigError(
            'ERR_FILE_NOT_FOUND',
            `image folder '${spec.location}' holds no images (${[...IMAGE_EXTENSIONS].join(', ')})`,
          );
        const dir = mkdtempSync(join(tmpdir(), 'edgekd-frames-'));
        input = join(dir, 'list.txt');
        writeFileSync(input, images.map((p) => `file '${p.replace(/'/g, "'\\''")}'\n`).join(''));
        cleanup = () => rmSync(dir, { recursive: true, force: true });
        demux = ['-f', 'concat', '-safe', '0'];
        break;
      }
      case 'stdin':
        input = 'pipe:0';
        break;
      case 'file':
        break;
    }
    let probe: ProbeInfo = {};
    try {
      if (spec.kind !== 'stdin') probe = await probeSource(bin, input, demux, timeoutMs);
    } catch (e) {
      cleanup();
      throw e;
    }
    const live = opts.live ?? false;
    const extra: string[] = [];
    if ((spec.kind === 'file' || spec.kind === 'folder') && (opts.realtime ?? live)) extra.push('-re');
    // Skip the demuxer's probe buffer on camera-like streams. Not on HTTP: there it drops the
    // frames read during stream analysis (all of them for a short clip).
    if (isLiveSource(spec) && live) extra.push('-fflags', 'nobuffer');
    const fps = probe.fps ?? 25;
    const info: StreamInfo = {
      spec,
      probe,
      fps,
      fpsText: probe.fpsText ?? String(fps),
      ffmpeg: bin,
    };
    return new VideoSource(
      info,
      { input, inputOptions: [...demux, ...extra, ...(opts.inputArgs ?? [])] },
      opts,
      cleanup,
    );
  }

  /** Stops reading decoded frames (ffmpeg blocks once the pipe is full). */
  pause(): void {
    this.paused = true;
    this.session?.pause();
  }

  resume(): void {
    this.paused = false;
    this.session?.resume();
  }

  /** Stops decoding: kills the current ffmpeg and waits for it; `run()` then resolves 'stopped'. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopSignal();
    if (!this.running) this.cleanup(); // never ran: only the folder list file to remove
    await this.session?.stop();
    await this.running?.catch(() => undefined);
  }

  private transformFor(w: number, h: number): LetterboxTransform {
    const key = `${w}x${h}`;
    let t = this.transforms.get(key);
    if (!t) {
      const { width, height, resize } = this.opts.input;
      t = letterboxTransform(w, h, height, width, resize);
      this.transforms.set(key, t);
    }
    return t;
  }

  /**
   * Decodes until the end of the source, `maxFrames`, `stop()` or an error, calling `onFrame` for
   * each frame in order. Call once.
   * @throws {PipelineError} when ffmpeg fails on a file, folder or stdin source, when such a
   *   source ends truncated, or when a stream source is lost more than `reconnect.attempts`
   *   times in a row (each with the last lines of ffmpeg's stderr)
   */
  run(onFrame: (f: DecodedFrame) => void): Promise<SourceResult> {
    if (this.running) throw new Error('VideoSource.run() was already called');
    this.running = this.loop(onFrame).finally(() => this.cleanup());
    return this.running;
  }

  private async loop(onFrame: (f: DecodedFrame) => void): Promise<SourceResult> {
    const { spec, probe, ffmpeg: bin } = this.info;
    const rc: ReconnectOptions = { ...DEFAULT_RECONNECT, ...this.opts.reconnect };
    const reconnectable = spec.kind === 'url' || spec.kind === 'device';
    const eofIsLoss =
      spec.kind === 'device' ||
      (spec.kind === 'url' && (isLiveSource(spec) || !!this.opts.live || probe.duration === undefined));
    const { width, height } = this.opts.input;
    const frameBytes = width * height * 3;
    const max = this.opts.maxFrames;
    const emit = this.opts.onEvent ?? (() => {});
    let index = 0;
    let sessions = 0;
    let reconnects = 0;
    let attempt = 0;
    let lastPts = -Infinity;
    let lastSize: [number, number] | null = null;
    const frameDur = 1 / this.info.fps;

    for (;;) {
      if (this.stopped) return { frames: index, sessions, reconnects, ended: 'stopped' };
      const remaining = max !== undefined ? max - index : undefined;
      const args = decoderArgs(
        bin,
        this.input,
        { ...this.opts.input, sourceOutput: !!this.opts.sourceFrames },
        remaining,
      );
      let ptsOffset = 0;
      let firstOfSession = true;
      let sizeError: PipelineError | null = null;
      const session = new DecodeSession(
        bin,
        args,
        frameBytes,
        !!this.opts.sourceFrames,
        spec.kind === 'stdin' ? (this.opts.stdin ?? process.stdin) : undefined,
        (raw) => {
          if (max !== undefined && index >= max) return;
          let pts = raw.info.ptsTime;
          if (pts !== null) {
            // A new session (reconnect) restarts its clock: shift it past the last pts.
            if (firstOfSession && pts + ptsOffset <= lastPts) ptsOffset = lastPts + frameDur - pts;
            pts += ptsOffset;
            lastPts = pts;
          }
          firstOfSession = false;
          const size: [number, number] = [raw.info.width, raw.info.height];
          if (lastSize && (lastSize[0] !== size[0] || lastSize[1] !== size[1])) {
            emit({ kind: 'size-change', frame: index, from: lastSize, to: size });
            if (this.opts.sourceFrames && !bin.hasAutoscale) {
              sizeError = new PipelineError(
                `frame size changed mid-stream from ${lastSize.join('x')} to ${size.join('x')} at frame ${index}, and this ffmpeg (${bin.versionLine}) cannot keep source-resolution frames at their own size (needs ffmpeg >= 4.4)`,
              );
              void session.stop();
              return;
            }
          }
          lastSize = size;
          onFrame({
            index: index++,
            pts,
            rgb: raw.rgb,
            transform: this.transformFor(size[0], size[1]),
            source: raw.source,
            receivedAt: performance.now(),
          });
          if (max !== undefined && index >= max) void session.stop();
        },
        this.paused,
      );
      this.session = session;
      sessions++;
      emit({ kind: 'ffmpeg-start', role: 'decoder', pid: session.child.pid, args });
      const end = await session.done;
      this.session = null;
      emit({
        kind: 'ffmpeg-exit',
        role: 'decoder',
        pid: end.child.pid,
        code: end.exit.code,
        signal: end.exit.signal,
      });
      // Assigned in the frame callback (TypeScript's flow analysis cannot see that).
      const sizeFailure = sizeError as PipelineError | null;
      if (sizeFailure) throw sizeFailure;
      if (max !== undefined && index >= max)
        return { frames: index, sessions, reconnects, ended: 'max-frames' };
      if (this.stopped) return { frames: index, sessions, reconnects, ended: 'stopped' };

      const errors = end.child.errorLines();
      const failed = end.exit.code !== 0 || end.exit.error !== undefined;
      const expected = probe.frames;
      const truncated =
        !failed &&
        (errors.some((l) => TRUNCATION_RE.test(l)) ||
          end.partialBytes > 0 ||
          (expected !== undefined && end.frames < expected - 1 && errors.length > 0));
      if (!reconnectable) {
        if (failed) throw describeExit(`decoding '${spec.location}' failed`, end.exit, end.child);
        if (truncated) {
          const of = expected !== undefined ? ` of ${expected}` : '';
          const why = errors.find((l) => TRUNCATION_RE.test(l)) ?? errors.at(-1) ?? 'incomplete last frame';
          throw new PipelineError(
            `'${spec.location}' is truncated or corrupt: decoding stopped after ${end.frames}${of} frames (${cleanLine(why)})`,
            end.child.stderrTail(),
          );
        }
        if (end.frames === 0 && index === 0)
          throw new PipelineError(`'${spec.location}' produced no video frames`, end.child.stderrTail());
        return { frames: index, sessions, reconnects, ended: 'eof' };
      }
      if (!failed && !truncated && !eofIsLoss) return { frames: index, sessions, reconnects, ended: 'eof' };

      // Stream lost: back off and reconnect.
      if (end.frames > 0) attempt = 0;
      attempt++;
      const reason = failed
        ? describeExit('stream lost', end.exit, end.child).message
        : `stream ended after ${end.frames} frames`;
      if (attempt > rc.attempts)
        throw new PipelineError(
          `${reason}; gave up after ${rc.attempts} reconnect attempt${rc.attempts === 1 ? '' : 's'}`,
          end.child.stderrTail(),
        );
      const delayMs = Math.min(rc.maxDelayMs, rc.baseDelayMs * 2 ** (attempt - 1));
      emit({ kind: 'reconnect', attempt, attempts: rc.attempts, delayMs, reason });
      await sleep(delayMs, this.stopPromise);
      reconnects++;
    }
  }
}

// #endregion
