/**
 * The one module that knows ffmpeg: it finds the binaries and lists their decoders, encoders and
 * hwaccels, probes sources (fluent-ffmpeg's ffprobe), builds the decoder, encoder and trial-decode
 * command lines (fluent-ffmpeg), spawns and reaps the children, and parses what they print on
 * stderr. Everything else in runtime/video talks to ffmpeg through these functions, so the tool
 * (or fluent-ffmpeg, which is unmaintained) can be replaced here alone.
 *
 * Binary: `ffmpeg` / `ffprobe` on PATH, else the optional package `@ffmpeg-installer/ffmpeg`
 * (ffmpeg only: without ffprobe the probe is skipped and sizes come from the decoder itself).
 *
 * Children are spawned in their own process group (`detached`), so a terminal Ctrl-C reaches
 * node only and the pipeline stops them in order (decoder first, encoder finalised last). Every
 * child is registered until its 'exit' event (node reaps it there: no zombies); an `exit` hook
 * SIGKILLs whatever is still registered if the process ends without a clean shutdown.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import { PipelineError } from '../../models/core/errors.js';

// #region binaries and capabilities

/** A resolved ffmpeg installation and what its version supports. */
export interface FfmpegBinaries {
  ffmpeg: string;
  /** null when no ffprobe is available (the probe step is then skipped). */
  ffprobe: string | null;
  /** Where ffmpeg came from. */
  origin: 'path' | 'option' | '@ffmpeg-installer/ffmpeg';
  /** First line of `ffmpeg -version`. */
  versionLine: string;
  /** libavutil major.minor, the reliable version signal (git builds print no release number). */
  avutil: [number, number];
  /** `-fps_mode` exists (ffmpeg >= 5.1); older builds take `-vsync`. */
  hasFpsMode: boolean;
  /** showinfo takes `checksum=0` (ffmpeg >= 5.0). */
  showinfoChecksumOption: boolean;
  /** `-loglevel level+...` prefixes each line with its level (ffmpeg >= 4.4). */
  hasLevelPrefix: boolean;
  /**
   * `-autoscale 0` exists (ffmpeg >= 4.4): without it ffmpeg rescales every frame of an output to
   * the output's first size, so a source-resolution output cannot follow a size change.
   */
  hasAutoscale: boolean;
  /** The RTSP socket timeout option: `-timeout` since ffmpeg 5, `-stimeout` before. */
  rtspTimeoutOption: '-timeout' | '-stimeout';
}

const cache = new Map<string, Promise<FfmpegBinaries>>();

function run(bin: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout);
    });
  });
}

function versionOf(text: string): [number, number] {
  const m = /libavutil\s+(\d+)\.\s*(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

const atLeast = (v: [number, number], major: number, minor: number): boolean =>
  v[0] > major || (v[0] === major && v[1] >= minor);

async function describe(
  bin: string,
  probe: string | null,
  origin: FfmpegBinaries['origin'],
): Promise<FfmpegBinaries> {
  const text = await run(bin, ['-hide_banner', '-version']).catch(() => run(bin, ['-version']));
  const avutil = versionOf(text);
  return {
    ffmpeg: bin,
    ffprobe: probe,
    origin,
    versionLine: text.split('\n')[0] ?? '',
    avutil,
    hasFpsMode: atLeast(avutil, 57, 28),
    showinfoChecksumOption: atLeast(avutil, 57, 17),
    hasLevelPrefix: atLeast(avutil, 56, 70),
    hasAutoscale: atLeast(avutil, 56, 70),
    rtspTimeoutOption: atLeast(avutil, 57, 0) ? '-timeout' : '-stimeout',
  };
}

async function works(bin: string): Promise<boolean> {
  try {
    await run(bin, ['-version'], 5000);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds ffmpeg: `ffmpegPath` when given, else `ffmpeg` on PATH, else the optional package
 * `@ffmpeg-installer/ffmpeg`. Cached per `ffmpegPath`.
 * @param ffmpegPath - explicit ffmpeg binary (its sibling `ffprobe` is used when present)
 * @throws {PipelineError} when no usable ffmpeg is found, saying how to install one
 */
export function findFfmpeg(ffmpegPath?: string): Promise<FfmpegBinaries> {
  const key = ffmpegPath ?? '';
  let p = cache.get(key);
  if (!p) {
    p = locate(ffmpegPath);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function locate(ffmpegPath?: string): Promise<FfmpegBinaries> {
  if (ffmpegPath) {
    if (!(await works(ffmpegPath))) throw new PipelineError(`'ffmpegPath' does not run: '${ffmpegPath}'`);
    const sibling = ffmpegPath.replace(/ffmpeg(\.exe)?$/, 'ffprobe$1');
    const probe = sibling !== ffmpegPath && existsSync(sibling) && (await works(sibling)) ? sibling : null;
    return describe(ffmpegPath, probe, 'option');
  }
  if (await works('ffmpeg')) return describe('ffmpeg', (await works('ffprobe')) ? 'ffprobe' : null, 'path');
  try {
    const mod = (await import('@ffmpeg-installer/ffmpeg' as string)) as {
      default?: { path?: string };
      path?: string;
    };
    const path = mod.default?.path ?? mod.path;
    if (path && (await works(path))) return describe(path, null, '@ffmpeg-installer/ffmpeg');
  } catch {
    // Not installed (it is an optional dependency): fall through to the error below.
  }
  throw new PipelineError(
    'ffmpeg not found: install it (Debian/Ubuntu: apt-get install ffmpeg) or the optional npm package @ffmpeg-installer/ffmpeg',
  );
}

/** Names of the video encoders this ffmpeg has (`ffmpeg -encoders`), cached per binary. */
const encoderCache = new Map<string, Promise<Set<string>>>();
export function videoEncoders(bin: FfmpegBinaries): Promise<Set<string>> {
  let p = encoderCache.get(bin.ffmpeg);
  if (!p) {
    p = run(bin.ffmpeg, ['-hide_banner', '-encoders']).then((text) => {
      const out = new Set<string>();
      for (const m of text.matchAll(/^\s*V\S*\s+(\S+)/gm)) out.add(m[1]);
      return out;
    });
    encoderCache.set(bin.ffmpeg, p);
  }
  return p;
}

/**
 * Video codec names of an `ffmpeg -decoders` / `-encoders` listing (the rows after the `------`
 * rule whose capability field starts with `V`), e.g. `h264`, `h264_cuvid`, `h264_nvv4l2dec`.
 */
export function parseVideoCodecList(text: string): Set<string> {
  const out = new Set<string>();
  const rule = text.search(/^\s*-{6}\s*$/m);
  const body = rule >= 0 ? text.slice(rule) : text;
  for (const m of body.matchAll(/^\s*V[A-Z.]{5}\s+(\S+)/gm)) out.add(m[1]);
  return out;
}

/** Hardware acceleration methods of an `ffmpeg -hwaccels` listing, e.g. `cuda`, `vaapi`. */
export function parseHwaccelList(text: string): Set<string> {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  const start = lines.findIndex((l) => /^Hardware acceleration methods:?$/i.test(l));
  return new Set(lines.slice(start + 1).filter((l) => /^[a-z0-9_]+$/.test(l)));
}

/** Names of the video decoders this ffmpeg has (`ffmpeg -decoders`), cached per binary. */
const decoderCache = new Map<string, Promise<Set<string>>>();
export function videoDecoders(bin: FfmpegBinaries): Promise<Set<string>> {
  let p = decoderCache.get(bin.ffmpeg);
  if (!p) {
    p = run(bin.ffmpeg, ['-hide_banner', '-decoders']).then(parseVideoCodecList);
    decoderCache.set(bin.ffmpeg, p);
  }
  return p;
}

/** The hardware acceleration methods this ffmpeg was built with (`ffmpeg -hwaccels`), cached per binary. */
const hwaccelCache = new Map<string, Promise<Set<string>>>();
export function hwaccels(bin: FfmpegBinaries): Promise<Set<string>> {
  let p = hwaccelCache.get(bin.ffmpeg);
  if (!p) {
    p = run(bin.ffmpeg, ['-hide_banner', '-hwaccels']).then(parseHwaccelList);
    hwaccelCache.set(bin.ffmpeg, p);
  }
  return p;
}

// #endregion

// #region probe

/** What the probe learned about a source (any field may be missing). */
export interface ProbeInfo {
  width?: number;
  height?: number;
  /** Frames per second (average rate, else the base rate). */
  fps?: number;
  /** Exact rate as ffmpeg prints it, e.g. '30000/1001'. */
  fpsText?: string;
  /** Frame count when the container states it. */
  frames?: number;
  /** Seconds, when finite. */
  duration?: number;
  codec?: string;
  formatName?: string;
}

function rate(text: unknown): number | undefined {
  if (typeof text !== 'string') return typeof text === 'number' && text > 0 ? text : undefined;
  const [n, d] = text.split('/').map(Number);
  const v = d ? n / d : n;
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

function positive(v: unknown): number | undefined {
  const n = typeof v === 'string' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

/**
 * Probes a source with ffprobe (through fluent-ffmpeg).
 * @param input - what ffmpeg's `-i` takes
 * @param inputOptions - demuxer options placed before the input (e.g. `-f v4l2`, timeouts)
 * @param timeoutMs - the promise rejects after this long (network sources also carry an I/O
 *   timeout in `inputOptions`, so the ffprobe child ends on its own)
 * @returns the first video stream's geometry and rate
 * @throws {PipelineError} when the source cannot be opened or has no video stream
 */
export function probeSource(
  bin: FfmpegBinaries,
  input: string,
  inputOptions: string[],
  timeoutMs: number,
): Promise<ProbeInfo> {
  const probePath = bin.ffprobe;
  if (!probePath) return Promise.resolve({});
  return new Promise<ProbeInfo>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new PipelineError(`probing '${input}' timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    ffmpeg(input)
      .setFfprobePath(probePath)
      .ffprobe(['-v', 'error', ...inputOptions], (err: unknown, data) => {
        clearTimeout(timer);
        if (err) {
          const lines = String((err as Error).message ?? err)
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean);
          const reason = lines.slice(1).join('; ') || lines[0] || 'unknown error';
          reject(new PipelineError(`cannot open video source '${input}': ${reason}`, lines, { cause: err }));
          return;
        }
        const v = data.streams.find((s) => s.codec_type === 'video');
        if (!v) {
          reject(new PipelineError(`video source '${input}' has no video stream`));
          return;
        }
        const avg = rate(v.avg_frame_rate);
        const base = rate(v.r_frame_rate);
        const fps = avg ?? base;
        resolve({
          width: positive(v.width),
          height: positive(v.height),
          fps,
          fpsText:
            avg !== undefined
              ? String(v.avg_frame_rate)
              : base !== undefined
                ? String(v.r_frame_rate)
                : undefined,
          frames: positive(v.nb_frames),
          duration: positive(v.duration) ?? positive(data.format.duration),
          codec: v.codec_name,
          formatName: data.format.format_name,
        });
      });
  });
}

// #endregion

// #region command lines

/** The decoder's filter geometry: the model input and how a frame is fitted into it. */
export interface DecoderGeometry {
  /** Network input size. */
  width: number;
  height: number;
  resize: 'letterbox' | 'stretch';
  /** Also write source-resolution RGB24 frames to fd 3 (annotated output, MJPEG). */
  sourceOutput: boolean;
}

/** Pad grey as ffmpeg colour: 114 on every channel, as training pads. */
const PAD_COLOR = '0x727272';

/**
 * The decoder's filter graph. `showinfo` comes first, on the decoded frame: it prints each
 * frame's pts and size, which is how pts reach the pipeline and how a size change mid-stream is
 * seen (the graph is rebuilt by ffmpeg on a size change and the letterbox re-fitted; the
 * pipeline recomputes the transform from the printed size). The model branch scales with
 * `force_original_aspect_ratio=decrease` (ffmpeg rounds the fitted size to the nearest pixel,
 * which equals models/core letterboxTransform's `round(src * s)` for every size that does not
 * round to 0), converts to rgb24 and then pads in RGB, so the pad is exactly 114 and the padding
 * is `floor((W - w) / 2)` left / top, the extra pixel right / bottom, as in training.
 * `bilinear` in swscale widens its triangle filter when shrinking (antialiased), as training's
 * resampler and sharp's `linear` kernel do.
 */
export function decoderFilterGraph(g: DecoderGeometry, bin: FfmpegBinaries): string {
  const { width: W, height: H } = g;
  const info = bin.showinfoChecksumOption ? 'showinfo=checksum=0' : 'showinfo';
  const flags = 'flags=bilinear+accurate_rnd+full_chroma_int';
  const fit =
    g.resize === 'stretch'
      ? `scale=${W}:${H}:${flags},format=rgb24`
      : `scale=${W}:${H}:force_original_aspect_ratio=decrease:${flags},format=rgb24,` +
        `pad=${W}:${H}:floor((ow-iw)/2):floor((oh-ih)/2):color=${PAD_COLOR}`;
  return g.sourceOutput
    ? `[0:v:0]${info},split=2[m0][s0];[m0]${fit}[m];[s0]format=rgb24[s]`
    : `[0:v:0]${info},${fit}[m]`;
}

/** How ffmpeg opens the source: `-i` value plus the options that go before it. */
export interface DecoderInput {
  input: string;
  inputOptions: string[];
}

/**
 * Decoder command line: the source, decoded and fitted to the model input by ffmpeg, as raw
 * RGB24 frames on stdout (fd 1), optionally source-resolution RGB24 frames on fd 3; per-frame
 * `showinfo` lines and errors on stderr. Every decoded frame leaves on every output
 * (`passthrough`: no frame is duplicated or dropped to force a rate), so the n-th frame of each
 * output and the n-th showinfo line belong together.
 * @param maxFrames - stop after this many frames (`-frames:v`), when given
 */
export function decoderArgs(
  bin: FfmpegBinaries,
  src: DecoderInput,
  g: DecoderGeometry,
  maxFrames?: number,
): string[] {
  const level = bin.hasLevelPrefix ? 'level+info' : 'info';
  const globalOpts = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', level];
  const rateOpts = bin.hasFpsMode ? ['-fps_mode', 'passthrough'] : ['-vsync', 'passthrough'];
  const limit = maxFrames !== undefined ? ['-frames:v', String(maxFrames)] : [];
  const cmd = ffmpeg()
    .input(src.input)
    .inputOptions([...globalOpts, ...src.inputOptions])
    .complexFilter(decoderFilterGraph(g, bin))
    .output('pipe:1')
    .outputOptions(['-map', '[m]', ...rateOpts, ...limit, '-f', 'rawvideo']);
  if (g.sourceOutput) {
    // Source frames keep their own size when the stream changes resolution (showinfo tells it).
    const autoscale = bin.hasAutoscale ? ['-autoscale', '0'] : [];
    cmd
      .output('pipe:3')
      .outputOptions(['-map', '[s]', ...autoscale, ...rateOpts, ...limit, '-f', 'rawvideo']);
  }
  return cmd._getArguments();
}

/** Encoder settings for the annotated video. */
export interface EncoderSpec {
  out: string;
  width: number;
  height: number;
  /** Frame rate as ffmpeg takes it ('25', '30000/1001'). */
  fps: string;
  /** 'auto': libx264 when this ffmpeg has it, else mpeg4. */
  codec: 'auto' | 'libx264' | 'mpeg4';
  /** libx264 constant rate factor (lower = better). */
  crf: number;
}

/**
 * Encoder command line: raw RGB24 frames on stdin, encoded to `out` (container from the file
 * extension). libx264 needs even sizes for 4:2:0, so an odd-sized source is encoded 4:4:4
 * instead (its size is kept exactly, as the annotated video must match the source).
 */
export async function encoderArgs(bin: FfmpegBinaries, e: EncoderSpec): Promise<string[]> {
  const encoders = await videoEncoders(bin);
  const codec = e.codec === 'auto' ? (encoders.has('libx264') ? 'libx264' : 'mpeg4') : e.codec;
  if (!encoders.has(codec))
    throw new PipelineError(
      `this ffmpeg has no '${codec}' encoder (${bin.versionLine}); available: libx264, mpeg4 or 'auto'`,
    );
  const even = e.width % 2 === 0 && e.height % 2 === 0;
  const codecOpts =
    codec === 'libx264'
      ? [
          '-c:v',
          'libx264',
          '-preset',
          'veryfast',
          '-crf',
          String(e.crf),
          '-pix_fmt',
          even ? 'yuv420p' : 'yuv444p',
        ]
      : ['-c:v', 'mpeg4', '-q:v', '3', '-pix_fmt', 'yuv420p'];
  const mp4 = /\.(mp4|m4v|mov)$/i.test(e.out) ? ['-movflags', '+faststart'] : [];
  const level = bin.hasLevelPrefix ? 'level+warning' : 'warning';
  return ffmpeg()
    .input('pipe:0')
    .inputOptions([
      '-hide_banner',
      '-nostats',
      '-loglevel',
      level,
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      '-video_size',
      `${e.width}x${e.height}`,
      '-framerate',
      e.fps,
    ])
    .output(e.out)
    .outputOptions(['-map', '0:v:0', ...codecOpts, ...mp4, '-an', '-y'])
    ._getArguments();
}

// #endregion

// #region stderr parsing

/** One `showinfo` line: the decoded frame's pts and size. */
export interface ShowinfoFrame {
  /** Presentation time in seconds; null when the frame has none. */
  ptsTime: number | null;
  width: number;
  height: number;
}

const SHOWINFO_RE =
  /Parsed_showinfo_\d+ @ [^\]]*\]\s+(?:\[info\]\s+)?n:\s*\d+\s+pts:\s*(\S+)\s+pts_time:\s*(\S+).*?\bs:(\d+)x(\d+)/;

/** Parses a showinfo frame line; null for any other line (including showinfo's config lines). */
export function parseShowinfo(line: string): ShowinfoFrame | null {
  const m = SHOWINFO_RE.exec(line);
  if (!m) return null;
  const t = Number(m[2]);
  return { ptsTime: Number.isFinite(t) ? t : null, width: Number(m[3]), height: Number(m[4]) };
}

/** Whether a stderr line is an error (by its `[error]`/`[fatal]` prefix, or by wording on old builds). */
export function isErrorLine(line: string): boolean {
  if (/\[(error|fatal|panic)\]/.test(line)) return true;
  if (/\[(info|warning|verbose|debug)\]/.test(line)) return false;
  return /error|invalid data|partial file|corrupt|no such file|not found|refused|failed/i.test(line);
}

/**
 * Error wording that means the input ended before it should have: a truncated or cut file, or a
 * connection that dropped mid-stream.
 */
export const TRUNCATION_RE =
  /partial file|moov atom not found|Invalid data found when processing input|Stream ends prematurely|truncat|End of file|Connection reset|Broken pipe|I\/O error/i;

// #endregion

// #region child processes

/** How a child ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** A spawn error (e.g. ENOENT), when the child never ran. */
  error?: Error;
}

/** A running ffmpeg child: its pipes, its exit, and a stop that waits for the exit. */
export interface FfmpegChild {
  readonly pid: number;
  readonly role: 'decoder' | 'encoder';
  readonly process: ChildProcess;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  /** fd 3 (source-resolution frames), when requested. */
  readonly fd3: Readable | null;
  /** Resolves once the child has exited and been reaped (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Last stderr lines that are not per-frame showinfo lines (at most 40). */
  stderrTail(): string[];
  /** Error lines seen so far (at most 40). */
  errorLines(): string[];
  /**
   * Stops the child: SIGTERM, then SIGKILL after `graceMs`; resolves after the exit.
   * Safe to call more than once or after the child has exited.
   */
  stop(graceMs?: number): Promise<ExitInfo>;
}

const LIVE = new Map<number, FfmpegChild>();
let exitHookInstalled = false;

/** Pids of the ffmpeg children that have not exited yet (tests check it is empty after a run). */
export function liveFfmpegPids(): number[] {
  return [...LIVE.keys()];
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when the process ends without a clean shutdown (an uncaught error, process.exit):
  // 'exit' handlers run synchronously, so kill is all that can be done; the kernel reaps the
  // children once node is gone.
  process.on('exit', () => {
    for (const pid of LIVE.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

/** Options of {@link spawnFfmpeg}. */
export interface SpawnOptions {
  role: 'decoder' | 'encoder';
  /** Give the child a stdin pipe (stdin source, encoder input). */
  stdin: boolean;
  /** Open fd 3 as a second output pipe. */
  fd3: boolean;
  /** Called for each stderr line (showinfo parsing happens in the caller). */
  onStderrLine?: (line: string) => void;
}

/**
 * Spawns ffmpeg with the given arguments.
 * @returns the child handle; spawn failures surface through `exited` (`error` set)
 */
export function spawnFfmpeg(bin: FfmpegBinaries, args: string[], opts: SpawnOptions): FfmpegChild {
  installExitHook();
  const child = spawn(bin.ffmpeg, args, {
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', ...(opts.fd3 ? (['pipe'] as const) : [])],
    detached: true,
    windowsHide: true,
  });
  const tail: string[] = [];
  const errors: string[] = [];
  let partial = '';
  const onLine = (line: string): void => {
    if (!line) return;
    opts.onStderrLine?.(line);
    if (line.includes('Parsed_showinfo_')) return;
    tail.push(line);
    if (tail.length > 40) tail.shift();
    if (isErrorLine(line)) {
      errors.push(line);
      if (errors.length > 40) errors.shift();
    }
  };
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    const parts = (partial + s).split(/\r?\n|\r/);
    partial = parts.pop() ?? '';
    for (const l of parts) onLine(l);
  });
  child.stderr!.on('end', () => {
    if (partial) onLine(partial);
    partial = '';
  });
  // A child whose reader went away reports EPIPE on its stdin; the exit code tells the story.
  child.stdin?.on('error', () => {});
  const exited = new Promise<ExitInfo>((resolve) => {
    let settled = false;
    child.once('error', (error) => {
      // 'error' without 'exit' means the spawn itself failed.
      if (child.pid === undefined && !settled) {
        settled = true;
        resolve({ code: null, signal: null, error });
      }
    });
    child.once('exit', (code, signal) => {
      if (child.pid !== undefined) LIVE.delete(child.pid);
      if (!settled) {
        settled = true;
        resolve({ code, signal });
      }
    });
  });
  let stopping: Promise<ExitInfo> | null = null;
  const handle: FfmpegChild = {
    pid: child.pid ?? -1,
    role: opts.role,
    process: child,
    stdin: child.stdin,
    stdout: child.stdout!,
    fd3: opts.fd3 ? (child.stdio[3] as Readable) : null,
    exited,
    stderrTail: () => tail.slice(),
    errorLines: () => errors.slice(),
    stop(graceMs = 1500) {
      if (stopping) return stopping;
      stopping = (async () => {
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return exited;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const info = await exited;
        clearTimeout(timer);
        return info;
      })();
      return stopping;
    },
  };
  if (child.pid !== undefined) LIVE.set(child.pid, handle);
  return handle;
}

/**
 * Decodes the first frame of a source with the given input options and discards it: a check that
 * hardware decoding flags (`-c:v h264_nvv4l2dec`, `-hwaccel cuda`) work on this machine and this
 * stream before a pipeline relies on them. A listed decoder can still fail at run time (no
 * device node in a container, no libcuda, a profile the hardware does not decode).
 * @param timeoutMs - the child is stopped after this long (a stream that sends nothing)
 * @returns undefined when a frame was decoded, else why not (ffmpeg's first and last error lines)
 */
export async function trialDecode(
  bin: FfmpegBinaries,
  src: DecoderInput,
  timeoutMs: number,
): Promise<string | undefined> {
  const level = bin.hasLevelPrefix ? 'level+error' : 'error';
  const args = ffmpeg()
    .input(src.input)
    .inputOptions(['-hide_banner', '-nostdin', '-nostats', '-loglevel', level, ...src.inputOptions])
    .output('-')
    .outputOptions(['-map', '0:v:0', '-frames:v', '1', '-f', 'null'])
    ._getArguments();
  const child = spawnFfmpeg(bin, args, { role: 'decoder', stdin: false, fd3: false });
  child.stdout.resume();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void child.stop();
  }, timeoutMs);
  const info = await child.exited;
  clearTimeout(timer);
  if (info.code === 0 && !timedOut) return undefined;
  if (timedOut) return `no frame decoded within ${timeoutMs} ms`;
  // The first error line usually names the cause (`Cannot load libcuda.so.1`), the last the effect.
  const errs = child.errorLines().map(cleanLine);
  if (errs.length === 0)
    return describeExit('trial decode', info, child).message.replace(/^trial decode: /, '');
  return errs.length === 1 ? errs[0] : `${errs[0]} ... ${errs.at(-1)}`;
}

/** A stderr line without its `[demuxer @ 0x...]` context and `[level]` prefixes. */
export function cleanLine(line: string): string {
  return line.replace(/^(\[[^\]]* @ 0x[0-9a-f]+\] )?(\[[a-z]+\] )?/, '');
}

/** The last stderr lines of a child, for a {@link PipelineError}. */
export function describeExit(what: string, info: ExitInfo, child: FfmpegChild): PipelineError {
  const tail = child.stderrTail().map(cleanLine);
  const errs = child.errorLines().map(cleanLine);
  const how = info.error
    ? `could not start ffmpeg: ${info.error.message}`
    : info.signal
      ? `ffmpeg was killed by ${info.signal}`
      : `ffmpeg exited with code ${info.code}`;
  const last = errs.at(-1) ?? tail.at(-1);
  return new PipelineError(`${what}: ${how}${last ? `: ${last}` : ''}`, tail, { cause: info.error });
}

// #endregion
