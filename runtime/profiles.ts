/**
 * Deployment profiles: `--profile jetson` (NVIDIA Jetson, linux-arm64) and `--profile nvidia`
 * (a discrete NVIDIA GPU on x86) for `edgekd video`, `edgekd detect` and `edgekd bench`. A
 * profile is a set of defaults, not a mode: a flag given explicitly (`--ep`, `--threads`) wins.
 * It chooses
 * - the execution providers, TensorRT first, then CUDA, then CPU; each one skipped is logged with
 *   its reason by the detector, so a Jetson without a GPU build of onnxruntime says why it runs
 *   on the CPU;
 * - session hints: intra-op threads that leave cores to ffmpeg and the main thread, spinning off;
 * - hardware decoding in ffmpeg: on Jetson the V4L2 decoders of JetPack's ffmpeg
 *   (`-c:v h264_nvv4l2dec`, also the community `h264_nvmpi` builds), on x86 NVDEC through
 *   `-hwaccel cuda`. What ffmpeg has is read from `ffmpeg -decoders` / `-hwaccels`; when the
 *   decoder is missing, the codec has none, or a one-frame trial fails, decoding stays in
 *   software and the reason is reported.
 *
 * TensorRT precision and engine cache: onnxruntime-node 1.30 copies only `deviceId` into the
 * TensorRT provider options (js/node/src/session_options_helper.cc), so `trt_fp16_enable`,
 * `trt_int8_enable` and `trt_engine_cache_enable` cannot be set from here. Precision travels in
 * the model instead (`edgekd export --precision fp16`, or `--precision int8 --int8-activations
 * int8` for QDQ INT8), and the TensorRT engine is rebuilt at every start; caching it needs an
 * onnxruntime-node built with those options wired in, or Triton (docs/deploy.md). See
 * docs/jetson.md.
 *
 * Everything here is a pure function of its arguments except {@link resolveDecodePlan}, which
 * asks ffmpeg (through video/ffmpeg.ts) what it has and tries one frame.
 */
import { ConfigError } from '../models/core/errors.js';
import { didYouMean } from '../models/core/config.js';
import type { ProviderName } from './types.js';
import {
  findFfmpeg,
  hwaccels,
  probeSource,
  trialDecode,
  videoDecoders,
  type FfmpegBinaries,
} from './video/ffmpeg.js';
import { parseSource, type SourceKind, type SourceSpec } from './video/source.js';

/** The profile names `--profile` accepts. */
export type ProfileName = 'jetson' | 'nvidia';

/** A deployment profile (see the module comment). */
export interface RuntimeProfile {
  readonly name: ProfileName;
  /** One line for `--help` and logs. */
  readonly summary: string;
  /** Execution providers in preference order (used when `--ep` is not given). */
  readonly providers: readonly ProviderName[];
  /** Cores kept free of ORT intra-op threads: ffmpeg's decoder + scaler, and the main thread. */
  readonly reservedCores: number;
  /** How ffmpeg is asked to decode on the GPU / video engine. */
  readonly decode: 'nvv4l2' | 'cuda';
  /** What the profile cannot set through onnxruntime-node, and what to do instead. */
  readonly notes: readonly string[];
}

const TRT_NOTE =
  'onnxruntime-node 1.30 passes only deviceId to TensorRT: FP16 / INT8 builder flags and the engine cache cannot be set from JS. ' +
  'Export the precision into the model (edgekd export --precision fp16, or --precision int8 --int8-activations int8 for QDQ INT8); ' +
  'the engine is rebuilt at each start (engine caching needs a custom onnxruntime-node build or Triton, see docs/jetson.md)';

/** The profile catalog. */
export const PROFILES: Readonly<Record<ProfileName, RuntimeProfile>> = Object.freeze({
  jetson: Object.freeze({
    name: 'jetson',
    summary:
      'NVIDIA Jetson: TensorRT, then CUDA, then CPU; hardware decode with JetPack ffmpeg (<codec>_nvv4l2dec)',
    providers: Object.freeze(['tensorrt', 'cuda', 'cpu'] as ProviderName[]),
    reservedCores: 2,
    decode: 'nvv4l2',
    notes: Object.freeze([
      TRT_NOTE,
      'the onnxruntime-node npm package is CPU-only on linux-arm64: TensorRT / CUDA need an onnxruntime build of your own (docs/jetson.md)',
    ]),
  }),
  nvidia: Object.freeze({
    name: 'nvidia',
    summary: 'x86 + NVIDIA GPU: TensorRT, then CUDA, then CPU; NVDEC decode with -hwaccel cuda',
    providers: Object.freeze(['tensorrt', 'cuda', 'cpu'] as ProviderName[]),
    reservedCores: 2,
    decode: 'cuda',
    notes: Object.freeze([TRT_NOTE]),
  }),
});

/** Profile names, for messages and `--help`. */
export const PROFILE_NAMES: readonly ProfileName[] = Object.freeze(Object.keys(PROFILES) as ProfileName[]);

/**
 * Looks a profile up by name (case-insensitive).
 * @throws {ConfigError} `ERR_CONFIG_INVALID` for an unknown name, with a did-you-mean hint and
 *   the valid names
 */
export function parseProfile(name: string): RuntimeProfile {
  const key = String(name).trim().toLowerCase();
  if ((PROFILE_NAMES as readonly string[]).includes(key)) return PROFILES[key as ProfileName];
  const hint = didYouMean(key, [...PROFILE_NAMES]);
  throw new ConfigError(
    'ERR_CONFIG_INVALID',
    `unknown profile '${name}'${hint ? ` (did you mean '${hint}'?)` : ''}; valid profiles: ${PROFILE_NAMES.join(', ')}`,
  );
}

/** Session settings a profile suggests; the CLI uses them where no flag was given. */
export interface SessionHints {
  /** ORT intra-op threads per session. */
  intraOpThreads: number;
  /**
   * Idle intra-op threads spinning after a run: off, since ffmpeg's decoder and scaler run on
   * the same cores (on a Jetson, all of them share 6-12 ARM cores with the GPU's host work).
   */
  allowSpinning: boolean;
}

/**
 * Session hints for a machine with `cores` logical cores and `workers` session workers: every
 * core but `profile.reservedCores` split among the workers (at least 1 thread each), spinning
 * off. With TensorRT or CUDA active these threads only run the nodes the GPU providers leave to
 * the CPU; on a CPU fallback they are the whole compute.
 */
export function sessionHints(profile: RuntimeProfile, cores: number, workers = 1): SessionHints {
  if (!(Number.isInteger(cores) && cores >= 1))
    throw new RangeError(`'cores' must be an integer >= 1, got ${cores}`);
  if (!(Number.isInteger(workers) && workers >= 1))
    throw new RangeError(`'workers' must be an integer >= 1, got ${workers}`);
  return {
    intraOpThreads: Math.max(1, Math.floor((cores - profile.reservedCores) / workers)),
    allowSpinning: false,
  };
}

/**
 * A one-line hint when a model's precision leaves TensorRT speed on the table: an fp32 model on
 * TensorRT runs FP32 kernels, since onnxruntime-node cannot turn on TensorRT's FP16 / INT8
 * modes; undefined when there is nothing to say.
 * @param provider - the provider the detector runs on
 * @param precision - the model's precision as its metadata states it ('fp32', 'fp16', 'int8', ...)
 */
export function precisionAdvice(provider: ProviderName, precision: string): string | undefined {
  if (provider !== 'tensorrt' || precision !== 'fp32') return undefined;
  return 'TensorRT runs this fp32 model in FP32 (onnxruntime-node cannot enable TensorRT FP16 / INT8): export with --precision fp16, or --precision int8 --int8-activations int8, for the reduced-precision kernels';
}

// #region decode plan

/** What ffmpeg is given to decode a source, and why. */
export interface DecodePlan {
  /** true: hardware decoding flags in `args`. */
  hardware: boolean;
  /** The decoder chosen, e.g. 'h264_nvv4l2dec', 'cuda (-hwaccel)', or 'software'. */
  decoder: string;
  /** ffmpeg input options placed before `-i` (empty for software decoding). */
  args: string[];
  /** Why decoding stays in software (set when `hardware` is false). */
  reason?: string;
}

/** What the pure planner needs to know about ffmpeg and the source. */
export interface DecodeCapabilities {
  /** Video decoder names from `ffmpeg -decoders`. */
  decoders: Iterable<string>;
  /** Methods from `ffmpeg -hwaccels`. */
  hwaccels?: Iterable<string>;
  /** The source's codec as ffprobe names it ('h264', 'hevc', 'mpeg2video', ...); unknown: undefined. */
  codec?: string;
  /** The kind of source (hardware decoding applies to files and network streams). */
  source: SourceKind;
  /** CUDA device for `-hwaccel_device` (nvidia profile). */
  deviceId?: number;
}

/** ffprobe codec name -> the prefix of the Jetson decoders' names (`mpeg2video` -> `mpeg2_nvv4l2dec`). */
const JETSON_CODECS: Readonly<Record<string, string>> = Object.freeze({
  h264: 'h264',
  hevc: 'hevc',
  mpeg2video: 'mpeg2',
  mpeg4: 'mpeg4',
  vp8: 'vp8',
  vp9: 'vp9',
  av1: 'av1',
});

/** Suffixes of the Jetson hardware decoders, preferred first: JetPack's ffmpeg, then jetson-ffmpeg. */
const JETSON_SUFFIXES = ['_nvv4l2dec', '_nvmpi'] as const;

const software = (reason: string): DecodePlan => ({ hardware: false, decoder: 'software', args: [], reason });

/**
 * Chooses ffmpeg's input options for a profile from what this ffmpeg has (pure; see
 * {@link resolveDecodePlan} for the version that asks ffmpeg and tries a frame).
 *
 * - jetson: `-c:v <base>_nvv4l2dec` when `ffmpeg -decoders` lists it for the source's codec,
 *   else `-c:v <base>_nvmpi`; otherwise software with the reason.
 * - nvidia: `-hwaccel cuda` (and `-hwaccel_device N`) when `ffmpeg -hwaccels` lists cuda. The
 *   decoded frames come back to system memory (no `-hwaccel_output_format`), where the letterbox
 *   filter graph expects them; a codec NVDEC does not handle is decoded in software by ffmpeg.
 *
 * Cameras (V4L2), image folders and stdin always decode in software: a camera sends raw or
 * MJPEG frames, and folders / stdin are not probed for a codec.
 *
 * @example
 * ```ts
 * decodeArgsFor(PROFILES.jetson, { decoders: ['h264', 'h264_nvv4l2dec'], codec: 'h264', source: 'file' });
 * // -> { hardware: true, decoder: 'h264_nvv4l2dec', args: ['-c:v', 'h264_nvv4l2dec'] }
 * decodeArgsFor(PROFILES.jetson, { decoders: ['h264'], codec: 'h264', source: 'file' });
 * // -> { hardware: false, decoder: 'software', args: [], reason: 'this ffmpeg has no Jetson hardware decoders ...' }
 * ```
 */
export function decodeArgsFor(profile: RuntimeProfile, caps: DecodeCapabilities): DecodePlan {
  if (caps.source !== 'file' && caps.source !== 'url')
    return software(
      `hardware decoding is used for video files and network streams; a ${caps.source === 'device' ? 'V4L2 camera (raw or MJPEG frames)' : caps.source === 'folder' ? 'image folder' : 'stdin source (not probed)'} is decoded in software`,
    );
  const decoders = new Set(caps.decoders);
  if (profile.decode === 'cuda') {
    const accels = new Set(caps.hwaccels ?? []);
    if (!accels.has('cuda'))
      return software(
        `this ffmpeg has no cuda hwaccel (ffmpeg -hwaccels lists: ${[...accels].join(', ') || 'none'}); use an ffmpeg built with --enable-cuda / nvdec`,
      );
    const device = caps.deviceId !== undefined ? ['-hwaccel_device', String(caps.deviceId)] : [];
    return { hardware: true, decoder: 'cuda (-hwaccel)', args: ['-hwaccel', 'cuda', ...device] };
  }
  const jetson = [...decoders].filter((d) => JETSON_SUFFIXES.some((s) => d.endsWith(s))).sort();
  if (jetson.length === 0)
    return software(
      'this ffmpeg has no Jetson hardware decoders (no *_nvv4l2dec or *_nvmpi in ffmpeg -decoders): use the ffmpeg that JetPack provides (docs/jetson.md)',
    );
  if (caps.codec === undefined)
    return software('the source codec is unknown (no ffprobe, or the probe failed)');
  const base = JETSON_CODECS[caps.codec];
  for (const suffix of JETSON_SUFFIXES) {
    const name = base !== undefined ? `${base}${suffix}` : undefined;
    if (name !== undefined && decoders.has(name))
      return { hardware: true, decoder: name, args: ['-c:v', name] };
  }
  return software(
    `this ffmpeg has no Jetson hardware decoder for '${caps.codec}' (it has: ${jetson.join(', ')})`,
  );
}

/** Demuxer options for probing / trying a source, as VideoSource opens it (RTSP over TCP, I/O timeouts). */
function demuxOptions(spec: SourceSpec, bin: FfmpegBinaries, timeoutMs: number): string[] {
  if (spec.kind !== 'url') return [];
  const us = String(Math.round(timeoutMs * 1000));
  return spec.protocol?.startsWith('rtsp')
    ? ['-rtsp_transport', 'tcp', bin.rtspTimeoutOption, us]
    : ['-rw_timeout', us];
}

/** Options of {@link resolveDecodePlan}. */
export interface ResolveDecodeOptions {
  ffmpegPath?: string;
  /** CUDA device for `-hwaccel_device` (nvidia profile). */
  deviceId?: number;
  /** Probe and trial timeout, ms (default 10000). */
  openTimeoutMs?: number;
}

/**
 * {@link decodeArgsFor} on this machine: reads `ffmpeg -decoders` / `-hwaccels`, probes the
 * source's codec (jetson), and when hardware decoding is planned, decodes one frame with those
 * flags ({@link trialDecode}); a failure turns the plan into software decoding with ffmpeg's
 * error as the reason. Costs one extra open of the source (a network stream is connected twice).
 * @param source - what `edgekd video` was given (path, URL, device, folder, '-')
 * @throws {ConfigError} for a missing path or an unsupported URL scheme (as the pipeline would)
 * @throws {PipelineError} when no ffmpeg is installed
 */
export async function resolveDecodePlan(
  profile: RuntimeProfile,
  source: string,
  o: ResolveDecodeOptions = {},
): Promise<DecodePlan> {
  const spec = parseSource(source);
  if (spec.kind !== 'file' && spec.kind !== 'url')
    return decodeArgsFor(profile, { decoders: [], source: spec.kind });
  const timeoutMs = o.openTimeoutMs ?? 10_000;
  const bin = await findFfmpeg(o.ffmpegPath);
  const [decoders, accels] = await Promise.all([videoDecoders(bin), hwaccels(bin)]);
  const demux = demuxOptions(spec, bin, timeoutMs);
  let codec: string | undefined;
  if (profile.decode === 'nvv4l2')
    codec = await probeSource(bin, spec.location, demux, timeoutMs).then(
      (p) => p.codec,
      () => undefined, // the pipeline's own open reports a source that cannot be opened
    );
  const plan = decodeArgsFor(profile, {
    decoders,
    hwaccels: accels,
    codec,
    source: spec.kind,
    deviceId: o.deviceId,
  });
  if (!plan.hardware) return plan;
  const failure = await trialDecode(
    bin,
    { input: spec.location, inputOptions: [...demux, ...plan.args] },
    timeoutMs,
  );
  return failure ? software(`${plan.decoder} failed on the first frame: ${failure}`) : plan;
}

// #endregion
