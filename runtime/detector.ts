/**
 * `createDetector`: the runtime's entry point. Reads the model's spec (metadata or sidecar),
 * starts a pool of session workers on the best provider that works, and turns images or prepared
 * frames into detections in source pixels with per-stage timings.
 *
 * Per call: pre-processing (sharp decode + letterbox for encoded images; normalisation and layout
 * into a reused batch tensor) on the main thread, `session.run` in a worker, post-processing
 * (decode / filters / mapping back) on the main thread. One call = one `session.run`, whatever
 * the number of images.
 */
import { availableParallelism } from 'node:os';
import { headStride, type ModelSpec } from '../models/core/spec.js';
import type { Detection } from '../models/core/detection.js';
import { ModelFormatError } from '../models/core/errors.js';
import { log } from '../models/core/log.js';
import { readModelInfo, type ModelInfo } from './model-info.js';
import { detectionsFromHeads, detectionsFromRows, mapToSource, type DetectionFilter } from './postprocess.js';
import { InputBufferPool, InputPacker, letterboxImage } from './preprocess.js';
import { parseProviders, type ProviderFallback } from './providers.js';
import { SessionPool, type OutputInfo, type RunResult } from './session-pool.js';
import type {
  DetectResult,
  Detector,
  DetectorOptions,
  PreparedFrame,
  ProviderName,
  StageTimings,
} from './types.js';

function checkInt(name: string, v: number | undefined, min: number): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= min))
    throw new RangeError(`'${name}' must be an integer >= ${min}, got ${v}`);
}

function checkUnit(name: string, v: number | undefined): void {
  if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 1))
    throw new RangeError(`'${name}' must be a number in [0, 1], got ${v}`);
}

/** Checks the session's outputs against the spec and returns the output form. */
function outputForm(info: ModelInfo, outs: OutputInfo[]): 'boxes' | 'heads' {
  const spec = info.spec;
  const byName = new Map(outs.map((o) => [o.name, o]));
  const names = outs.map((o) => o.name).join(', ');
  const form =
    info.outputs ??
    (byName.has('detections')
      ? 'boxes'
      : ['heatmap', 'size', 'offset'].every((n) => byName.has(n))
        ? 'heads'
        : undefined);
  if (!form)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `'${info.path}' has outputs ${names}: expected 'detections' [batch, K, 6] (boxes) or 'heatmap', 'size', 'offset' (heads)`,
    );
  const expectDims = (name: string, dims: (number | undefined)[]) => {
    const o = byName.get(name);
    if (!o)
      throw new ModelFormatError(
        'ERR_MODEL_FORMAT',
        `'${info.path}' is a ${form} model but has no '${name}' output (outputs: ${names})`,
      );
    const ok =
      o.shape.length === dims.length &&
      dims.every((d, i) => d === undefined || typeof o.shape[i] !== 'number' || o.shape[i] === d);
    if (!ok)
      throw new ModelFormatError(
        'ERR_MODEL_FORMAT',
        `output '${name}' of '${info.path}' has shape [${o.shape.join(', ')}], expected [${dims.map((d) => d ?? '?').join(', ')}] for spec '${spec.name}'`,
      );
  };
  if (form === 'boxes') expectDims('detections', [undefined, undefined, 6]);
  else {
    const s = headStride(spec);
    const h = spec.input.height / s;
    const w = spec.input.width / s;
    expectDims('heatmap', [undefined, h, w, spec.classes.length]);
    expectDims('size', [undefined, h, w, 2]);
    expectDims('offset', [undefined, h, w, 2]);
  }
  return form;
}

/** The {@link Detector} behind {@link createDetector}. */
class OnnxDetector implements Detector {
  private readonly packer: InputPacker;
  private readonly buffers: InputBufferPool;

  constructor(
    readonly spec: ModelSpec,
    readonly info: ModelInfo,
    private readonly pool: SessionPool,
    readonly outputs: 'boxes' | 'heads',
    private readonly filter: DetectionFilter,
    /** Sessions' intra-op threads. */
    readonly intraOpThreads: number,
  ) {
    this.packer = new InputPacker(spec.input);
    this.buffers = new InputBufferPool(this.packer.imageSize);
  }

  get provider(): ProviderName {
    return this.pool.provider;
  }
  get fallbacks(): ProviderFallback[] {
    return this.pool.fallbacks;
  }
  get precision(): string {
    return this.info.precision;
  }
  /** Session workers. */
  get workers(): number {
    return this.pool.size;
  }
  /** Input tensors allocated so far (steady state: one per batch size and concurrent call). */
  get inputAllocations(): number {
    return this.buffers.allocations;
  }

  async detectImage(image: Buffer | string): Promise<DetectResult> {
    return (await this.detectImages([image]))[0];
  }

  async detectImages(images: (Buffer | string)[]): Promise<DetectResult[]> {
    if (!Array.isArray(images)) throw new TypeError(`'images' must be an array, got ${typeof images}`);
    if (images.length === 0) return [];
    const t0 = performance.now();
    const frames = await Promise.all(images.map((im) => letterboxImage(im, this.spec.input)));
    return this.run(frames, t0);
  }

  async detectPrepared(frames: PreparedFrame[]): Promise<DetectResult[]> {
    if (!Array.isArray(frames)) throw new TypeError(`'frames' must be an array, got ${typeof frames}`);
    if (frames.length === 0) return [];
    const { width: W, height: H } = this.spec.input;
    for (const [i, f] of frames.entries()) {
      if (f.transform.width !== W || f.transform.height !== H)
        throw new RangeError(
          `'frames[${i}].transform' is for a ${f.transform.width}x${f.transform.height} input, the model takes ${W}x${H}`,
        );
    }
    return this.run(frames, performance.now());
  }

  private async run(frames: PreparedFrame[], t0: number): Promise<DetectResult[]> {
    const n = frames.length;
    const input = this.buffers.acquire(n);
    for (let i = 0; i < n; i++) this.packer.pack(frames[i].rgb, input, i);
    const tSend = performance.now();
    const r = await this.pool.run(input, n);
    const tPost = performance.now();
    this.buffers.release(r.input);
    const dets = this.decode(r, frames);
    const tEnd = performance.now();
    const timings: StageTimings = {
      preMs: tSend - t0,
      inferMs: r.inferMs,
      postMs: tEnd - tPost,
      totalMs: tEnd - t0,
      hopMs: Math.max(0, r.roundTripMs - r.inferMs),
    };
    return frames.map((f, i) => ({
      detections: dets[i],
      width: f.transform.srcWidth,
      height: f.transform.srcHeight,
      timings: { ...timings },
    }));
  }

  private decode(r: RunResult, frames: PreparedFrame[]): Detection[][] {
    const out: Detection[][] = [];
    if (this.outputs === 'boxes') {
      const det = r.outputs.get('detections')!;
      const per = det.data.length / frames.length;
      for (let i = 0; i < frames.length; i++)
        out.push(
          mapToSource(
            detectionsFromRows(det.data.subarray(i * per, (i + 1) * per), this.filter),
            frames[i].transform,
          ),
        );
      return out;
    }
    const heat = r.outputs.get('heatmap')!;
    const size = r.outputs.get('size')!;
    const off = r.outputs.get('offset')!;
    const [, h, w, C] = heat.dims;
    const cells = h * w;
    const decode = { stride: headStride(this.spec), poolSize: this.spec.decode.poolSize };
    for (let i = 0; i < frames.length; i++) {
      const maps = {
        heatmap: heat.data.subarray(i * cells * C, (i + 1) * cells * C),
        size: size.data.subarray(i * cells * 2, (i + 1) * cells * 2),
        offset: off.data.subarray(i * cells * 2, (i + 1) * cells * 2),
        h,
        w,
        numClasses: C,
      };
      out.push(mapToSource(detectionsFromHeads(maps, this.filter, decode), frames[i].transform));
    }
    return out;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * Loads an edgekd ONNX model (or a plain ONNX detector with a sidecar spec) and starts its
 * session workers on the first execution provider of the preference list that works; each
 * provider skipped is logged (warn) with its reason and listed in `fallbacks`.
 * @param modelPath - the `.onnx` file
 * @throws {ConfigError} `ERR_FILE_NOT_FOUND` for a missing model / sidecar, `ERR_CONFIG_INVALID`
 *   for an unknown provider name (the message lists the valid ones)
 * @throws {ModelFormatError} for a corrupt file, a plain ONNX model without `specPath`, an invalid
 *   spec, or outputs that do not match the spec
 * @throws {ProviderUnavailableError} when no listed provider works (cpu not listed)
 * @throws {RangeError} for an option out of range (the message names it)
 *
 * @example
 * ```ts
 * const det = await createDetector('ped-nano.onnx', { providers: ['cuda', 'cpu'] });
 * det.provider; // 'cpu' on a machine without CUDA
 * det.fallbacks; // [{ provider: 'cuda', reason: 'libonnxruntime_providers_shared.so and ... not found in ...' }]
 * const r = await det.detectImage('street.jpg');
 * r.detections; // [{ box: [412.3, 188.0, 441.9, 262.5], score: 0.83, classId: 0 }, ...] (source pixels)
 * r.timings; // { preMs: 4.1, inferMs: 9.8, postMs: 0.2, totalMs: 14.6, hopMs: 0.3 }
 * await det.close();
 * ```
 */
export async function createDetector(modelPath: string, opts: DetectorOptions = {}): Promise<Detector> {
  if (typeof modelPath !== 'string' || modelPath === '')
    throw new TypeError(`'modelPath' must be a non-empty string, got ${JSON.stringify(modelPath)}`);
  if (typeof opts !== 'object' || opts === null) throw new TypeError("'opts' must be an object");
  const providers = opts.providers === undefined ? undefined : parseProviders(opts.providers);
  checkInt('deviceId', opts.deviceId, 0);
  checkInt('intraOpThreads', opts.intraOpThreads, 1);
  checkInt('workers', opts.workers, 1);
  checkInt('maxDetections', opts.maxDetections, 1);
  checkUnit('scoreThreshold', opts.scoreThreshold);
  checkUnit('nmsIouThreshold', opts.nmsIouThreshold);

  const info = await readModelInfo(modelPath, opts.specPath);
  const spec = info.spec;
  if (opts.classes !== undefined) {
    if (!Array.isArray(opts.classes)) throw new TypeError(`'classes' must be an array of class ids`);
    for (const c of opts.classes)
      if (!(Number.isInteger(c) && c >= 0 && c < spec.classes.length))
        throw new RangeError(
          `'classes' must hold class ids in [0, ${spec.classes.length}) (${spec.classes.join(', ')}), got ${c}`,
        );
  }
  const workers = opts.workers ?? 1;
  const cores = availableParallelism();
  const intraOpThreads = opts.intraOpThreads ?? Math.max(1, Math.floor(cores / workers));
  // Spinning only pays when the sessions' threads leave the main thread a core of its own.
  const allowSpinning = opts.allowSpinning ?? workers * intraOpThreads < cores;
  const pool = await SessionPool.create({
    modelPath,
    providers,
    settings: { deviceId: opts.deviceId ?? 0, intraOpThreads, allowSpinning },
    workers,
    inputDims: [3, spec.input.height, spec.input.width],
  });
  try {
    for (const f of pool.fallbacks) log.warn(`execution provider '${f.provider}' skipped: ${f.reason}`);
    const outputs = outputForm(info, pool.outputs);
    log.debug(
      `detector '${spec.name}' (${outputs}, ${info.precision}) on ${pool.provider}: ${workers} worker(s) x ${intraOpThreads} intra-op thread(s), spinning ${allowSpinning ? 'on' : 'off'}`,
    );
    return new OnnxDetector(
      spec,
      info,
      pool,
      outputs,
      {
        scoreThreshold: opts.scoreThreshold ?? spec.decode.scoreThreshold,
        maxDetections: opts.maxDetections ?? spec.decode.topK,
        classes: opts.classes ? new Set(opts.classes) : undefined,
        nmsIouThreshold: opts.nmsIouThreshold,
      },
      intraOpThreads,
    );
  } catch (e) {
    await pool.close();
    throw e;
  }
}
