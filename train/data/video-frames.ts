/**
 * Video frames for training data, decoded by a system ffmpeg child process that writes raw
 * RGB24 frames to a pipe (`ffmpeg -i file -f rawvideo -pix_fmt rgb24 pipe:1`); frames are
 * reassembled from the byte stream by their size. The child is killed when the consumer stops
 * early, and a failing or absent ffmpeg becomes a {@link PipelineError} carrying the tail of
 * ffmpeg's stderr.
 *
 * Training reads frames in shuffled order, which a forward-only decoder cannot serve, so
 * {@link VideoFrameCache} decodes the wanted frames once (one sequential pass, started by the
 * first request) and keeps them JPEG-compressed (or raw) in memory.
 */
import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import sharp from 'sharp';
import { DataFormatError, PipelineError } from '../../models/core/errors.js';
import { decodeImage } from './image.js';
import type { Dataset, RgbImage, Sample } from './types.js';

/** Where to find ffmpeg: `'ffmpeg'` looks it up on PATH. */
export const DEFAULT_FFMPEG = 'ffmpeg';

/** What {@link probeVideo} learns from the container header. */
export interface VideoInfo {
  /** Size of the decoded frames in pixels (after ffmpeg's automatic rotation). */
  width: number;
  height: number;
  /** Frames per second, when the header states it. */
  fps?: number;
  /** Duration in seconds, when the header states it. */
  durationSec?: number;
  /** `round(durationSec * fps)`: an estimate, exact for constant-rate files. */
  frameCountEstimate?: number;
}

/** Keeps the last `max` lines written to a stream. */
class LineTail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max = 40) {}
  push(chunk: Buffer | string): void {
    const parts = (this.partial + chunk.toString()).split(/\r?\n|\r/);
    this.partial = parts.pop() ?? '';
    for (const p of parts) if (p.trim()) this.lines.push(p);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  get(): string[] {
    return this.partial.trim() ? [...this.lines, this.partial] : [...this.lines];
  }
  text(): string {
    return this.get().join('\n');
  }
}

function notFoundError(ffmpegPath: string, cause: unknown): PipelineError {
  return new PipelineError(
    `ffmpeg not found ('${ffmpegPath}'): install it (apt-get install ffmpeg) or pass 'ffmpegPath'`,
    [],
    { cause },
  );
}

/**
 * Reads size, frame rate and duration of a video by parsing `ffmpeg -i` output (no ffprobe
 * needed).
 * @throws {PipelineError} when ffmpeg is absent or the file has no video stream it can read.
 */
export async function probeVideo(path: string, opts: { ffmpegPath?: string } = {}): Promise<VideoInfo> {
  const ffmpegPath = opts.ffmpegPath ?? DEFAULT_FFMPEG;
  const tail = new LineTail(200);
  const result = await new Promise<{ error?: unknown }>((resolve) => {
    const child = spawn(ffmpegPath, ['-hide_banner', '-nostdin', '-i', path], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.on('data', (c: Buffer) => tail.push(c));
    child.once('error', (error) => resolve({ error }));
    child.once('close', () => resolve({}));
  });
  if (result.error) throw notFoundError(ffmpegPath, result.error);
  const text = tail.text();
  const stream = text.split('\n').find((l) => /Stream #\d+:\d+.*: Video:/.test(l));
  const size = stream ? /[\s,](\d{1,5})x(\d{1,5})[\s,[]/.exec(stream + ' ') : null;
  if (!stream || !size) throw new PipelineError(`cannot read a video stream from '${path}'`, tail.get());
  let width = Number(size[1]);
  let height = Number(size[2]);
  const rot = /rotation of (-?\d+(?:\.\d+)?) degrees/.exec(text);
  if (rot && Math.abs(Math.round(Number(rot[1]) / 90)) % 2 === 1) [width, height] = [height, width];
  const fpsM = /,\s*(\d+(?:\.\d+)?)\s*fps/.exec(stream) ?? /,\s*(\d+(?:\.\d+)?)\s*tbr/.exec(stream);
  const durM = /Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)/.exec(text);
  const info: VideoInfo = { width, height };
  if (fpsM) info.fps = Number(fpsM[1]);
  if (durM) info.durationSec = Number(durM[1]) * 3600 + Number(durM[2]) * 60 + Number(durM[3]);
  if (info.fps && info.durationSec) info.frameCountEstimate = Math.round(info.fps * info.durationSec);
  return info;
}

/** Options of {@link readVideoFrames}. */
export interface VideoFrameOptions {
  /** ffmpeg binary (default `'ffmpeg'` on PATH). */
  ffmpegPath?: string;
  /** First frame to deliver, 0-based decode order (default 0). */
  start?: number;
  /** Deliver at most this many frames (default: to the end). */
  count?: number;
  /** Deliver every `step`-th frame from `start` (default 1). */
  step?: number;
  /** Frame size if already known; otherwise {@link probeVideo} is run first. */
  size?: { width: number; height: number };
}

/** One decoded frame; `index` is its 0-based position in the video's decode order. */
export interface VideoFrame {
  index: number;
  image: RgbImage;
}

/**
 * Decodes frames of a video, in order, as RGB images. The frame range is applied inside ffmpeg
 * (`select` filter + `-frames:v`), so skipped frames are decoded but never piped, and ffmpeg
 * stops once `count` frames are out. Breaking out of the loop kills the child.
 * @throws {PipelineError} with ffmpeg's stderr tail when ffmpeg is absent, fails, or ends
 *   inside a frame.
 *
 * @example
 * ```ts
 * for await (const { index, image } of readVideoFrames('vtest.avi', { start: 500, count: 2 }))
 *   console.log(index, image.width, image.height); // 500 768 576, then 501 768 576
 * ```
 */
export async function* readVideoFrames(
  path: string,
  opts: VideoFrameOptions = {},
): AsyncGenerator<VideoFrame> {
  const ffmpegPath = opts.ffmpegPath ?? DEFAULT_FFMPEG;
  const start = opts.start ?? 0;
  const step = opts.step ?? 1;
  if (!(Number.isInteger(start) && start >= 0))
    throw new RangeError(`'start' must be an integer >= 0, got ${start}`);
  if (!(Number.isInteger(step) && step >= 1))
    throw new RangeError(`'step' must be an integer >= 1, got ${step}`);
  if (opts.count !== undefined && !(Number.isInteger(opts.count) && opts.count >= 0))
    throw new RangeError(`'count' must be an integer >= 0, got ${opts.count}`);
  if (opts.count === 0) return;
  const { width, height } = opts.size ?? (await probeVideo(path, { ffmpegPath }));
  const frameBytes = width * height * 3;

  const args = ['-hide_banner', '-nostdin', '-v', 'error', '-i', path];
  if (start > 0 || step > 1) {
    const sel = step > 1 ? `gte(n\\,${start})*not(mod(n-${start}\\,${step}))` : `gte(n\\,${start})`;
    args.push('-vf', `select=${sel}`);
  }
  if (opts.count !== undefined) args.push('-frames:v', String(opts.count));
  args.push('-vsync', 'passthrough', '-an', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1');

  const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = new LineTail();
  child.stderr.on('data', (c: Buffer) => tail.push(c));
  let spawnError: unknown;
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (e) => {
      spawnError = e;
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });

  let done = false;
  try {
    let frame = new Uint8Array(frameBytes);
    let filled = 0;
    let k = 0;
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(frameBytes - filled, chunk.length - off);
        frame.set(chunk.subarray(off, off + n), filled);
        filled += n;
        off += n;
        if (filled === frameBytes) {
          const out = frame;
          frame = new Uint8Array(frameBytes);
          filled = 0;
          yield { index: start + k * step, image: { data: out, width, height } };
          k++;
        }
      }
    }
    const { code, signal } = await closed;
    if (spawnError) throw notFoundError(ffmpegPath, spawnError);
    if (code !== 0)
      throw new PipelineError(
        `ffmpeg failed on '${path}' (${signal ? `signal ${signal}` : `exit ${code}`})`,
        tail.get(),
      );
    if (filled !== 0)
      throw new PipelineError(
        `ffmpeg output of '${path}' ended inside a frame (${filled} of ${frameBytes} bytes)`,
        tail.get(),
      );
    done = true;
  } finally {
    if (!done && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** Options of {@link VideoFrameCache}. */
export interface VideoFrameCacheOptions {
  /** 0-based frame indices that will be requested. */
  frames: number[];
  ffmpegPath?: string;
  /** Frame size if known (skips the probe). */
  size?: { width: number; height: number };
  /**
   * How frames are kept: `'jpeg'` (default; quality 95, ~50 KB for 768x576, so a 10k-frame
   * sequence fits in memory) or `'raw'` (exact pixels, width*height*3 bytes each; the returned
   * images share the cached buffer, so treat them as read-only).
   */
  encoding?: 'jpeg' | 'raw';
  /** JPEG quality 1..100 (default 95). */
  quality?: number;
}

interface CacheEntry {
  data?: Uint8Array | Buffer;
  error?: Error;
  waiters: { resolve: (v: RgbImage) => void; reject: (e: unknown) => void }[];
}

/**
 * Random access to chosen frames of a video. The first {@link VideoFrameCache.get} starts one
 * decoding pass over the range of wanted frames; each frame is stored as it goes by, so early
 * frames are served before the pass ends. If the pass fails, pending and later requests are
 * rejected with its error until a new request starts a fresh pass.
 */
export class VideoFrameCache {
  private readonly entries = new Map<number, CacheEntry>();
  private pass: Promise<void> | undefined;
  private size: { width: number; height: number } | undefined;
  private readonly first: number;
  private readonly last: number;

  constructor(
    readonly path: string,
    private readonly opts: VideoFrameCacheOptions,
  ) {
    if (opts.frames.length === 0) throw new RangeError(`'frames' must list at least one frame index`);
    for (const f of opts.frames) {
      if (!(Number.isInteger(f) && f >= 0))
        throw new RangeError(`'frames' must hold integers >= 0, got ${f}`);
      this.entries.set(f, { waiters: [] });
    }
    this.first = opts.frames.reduce((a, b) => Math.min(a, b));
    this.last = opts.frames.reduce((a, b) => Math.max(a, b));
    this.size = opts.size;
  }

  /**
   * The frame at 0-based `index` (one of `frames`).
   * @throws {RangeError} for a frame not in `frames`; {@link PipelineError} when decoding fails;
   *   {@link DataFormatError} when the video ends before that frame.
   */
  async get(index: number): Promise<RgbImage> {
    const e = this.entries.get(index);
    if (!e) throw new RangeError(`'index' must be one of the cached frames, got ${index}`);
    if (e.data) return this.unpack(e.data, index);
    if (e.error && !(e.error instanceof PipelineError)) throw e.error;
    const p = new Promise<RgbImage>((resolve, reject) => e.waiters.push({ resolve, reject }));
    if (!this.pass) {
      this.pass = this.run().finally(() => {
        this.pass = undefined;
      });
    }
    return p;
  }

  private async unpack(data: Uint8Array | Buffer, index: number): Promise<RgbImage> {
    const size = this.size!;
    if (this.opts.encoding === 'raw')
      return { data: data as Uint8Array, width: size.width, height: size.height };
    return decodeImage(data as Buffer, `${this.path}#${index}`);
  }

  private async store(index: number, image: RgbImage): Promise<void> {
    const e = this.entries.get(index);
    if (!e || e.data) return;
    e.data =
      this.opts.encoding === 'raw'
        ? image.data
        : await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
            .jpeg({ quality: this.opts.quality ?? 95 })
            .toBuffer();
    e.error = undefined;
    const waiters = e.waiters.splice(0);
    if (waiters.length === 0) return;
    // Waiters get the stored (possibly JPEG-round-tripped) pixels too, so a frame reads the same
    // whether it was requested before or after the pass went by.
    const data = e.data;
    for (const w of waiters) this.unpack(data, index).then(w.resolve, w.reject);
  }

  private async run(): Promise<void> {
    try {
      this.size ??= await probeVideo(this.path, { ffmpegPath: this.opts.ffmpegPath });
      const pending = new Set<Promise<void>>();
      let seen = -1;
      for await (const { index, image } of readVideoFrames(this.path, {
        ffmpegPath: this.opts.ffmpegPath,
        size: this.size,
        start: this.first,
        count: this.last - this.first + 1,
      })) {
        seen = index;
        if (!this.entries.has(index)) continue;
        const p = this.store(index, image).finally(() => pending.delete(p));
        pending.add(p);
        if (pending.size >= 4) await Promise.race(pending);
      }
      await Promise.all(pending);
      for (const [index, e] of this.entries) {
        if (e.data) continue;
        e.error = new DataFormatError(
          'ERR_DATA_FORMAT',
          `frame ${index} is past the end of '${this.path}' (last decoded frame ${seen})`,
        );
        for (const w of e.waiters.splice(0)) w.reject(e.error);
      }
    } catch (err) {
      for (const e of this.entries.values()) {
        if (e.data) continue;
        e.error = err instanceof Error ? err : new PipelineError(String(err));
        for (const w of e.waiters.splice(0)) w.reject(err);
      }
    }
  }
}

/** Options of {@link videoFrameDataset}. */
export interface VideoFrameDatasetOptions {
  /** First frame, 0-based (default 0). */
  start?: number;
  /** Number of frames (default: to the end, from the header's frame-count estimate). */
  count?: number;
  /** Take every `step`-th frame (default 1). */
  step?: number;
  ffmpegPath?: string;
  /** Target classes the dataset declares (default `[]`; samples carry no annotations). */
  classes?: string[];
  /** Frame storage of the cache (see {@link VideoFrameCacheOptions.encoding}). */
  encoding?: 'jpeg' | 'raw';
}

/**
 * A frame range of a video as an unlabelled {@link Dataset}, e.g. for teacher pseudo-labelling
 * (`vtest.avi` frames 0-499). Sample ids are `<file>#<frame>` with 0-based frame numbers; pixels
 * come from a shared {@link VideoFrameCache}, so the video is decoded once.
 * @throws {PipelineError} when ffmpeg is absent or cannot read the file (from the probe).
 */
export async function videoFrameDataset(path: string, opts: VideoFrameDatasetOptions = {}): Promise<Dataset> {
  const info = await probeVideo(path, { ffmpegPath: opts.ffmpegPath });
  const start = opts.start ?? 0;
  const step = opts.step ?? 1;
  if (!(Number.isInteger(step) && step >= 1))
    throw new RangeError(`'step' must be an integer >= 1, got ${step}`);
  let count = opts.count;
  if (count === undefined) {
    if (info.frameCountEstimate === undefined)
      throw new RangeError(`'count' is required: '${path}' states no duration/frame rate`);
    count = Math.max(0, Math.ceil((info.frameCountEstimate - start) / step));
  }
  const frames = Array.from({ length: count }, (_, i) => start + i * step);
  const name = basename(path);
  const samples: Sample[] = [];
  if (frames.length > 0) {
    const cache = new VideoFrameCache(path, {
      frames,
      ffmpegPath: opts.ffmpegPath,
      size: info,
      encoding: opts.encoding,
    });
    for (const f of frames)
      samples.push({
        id: `${name}#${f}`,
        width: info.width,
        height: info.height,
        annotations: [],
        load: () => cache.get(f),
      });
  }
  return {
    name: `${name}[${start}:${start + count * step}:${step}]`,
    classes: [...(opts.classes ?? [])],
    samples,
    skipped: [],
  };
}
