/**
 * The model in the browser: an onnxruntime-web session on WebGPU (where the browser has an
 * adapter) or WebAssembly, fed by the canvas letterbox and decoded with the same pure code as
 * the server (runtime/postprocess.ts), so a frame gives the server's boxes in source pixels.
 */
import type * as Ort from 'onnxruntime-web';
import type { Detection } from '../../models/core/detection.js';
import { detectionsFromHeads, detectionsFromRows, mapToSource } from '../../runtime/postprocess.js';
import type { LetterboxTransform } from '../../models/core/letterbox.js';
import type { ModelEntry } from './api.js';
import { outputsDisagree, type OutputData } from './backend-check.js';
import { letterboxInto, TensorPacker, type Context2D } from './input-tensor.js';

/** Where scripts/build-web.mjs puts the ORT runtime (.mjs + .wasm), relative to main.js. */
declare const __ORT_WASM_DIR__: string;

export type Backend = 'webgpu' | 'wasm';
export const BACKENDS: readonly Backend[] = ['webgpu', 'wasm'];

/** Milliseconds of one browser detection. */
export interface BrowserTimings {
  /** Letterbox draw + pixel read-back + packing. */
  preMs: number;
  /** `session.run`. */
  inferMs: number;
  /** Decode + mapping back to source pixels. */
  postMs: number;
}

export interface BrowserResult {
  /** Boxes in source pixels, best first. */
  detections: Detection[];
  transform: LetterboxTransform;
  timings: BrowserTimings;
}

/** Per-frame filters (as the server's `threshold` / `maxDetections`). */
export interface FrameFilter {
  scoreThreshold: number;
  maxDetections: number;
}

type OrtModule = typeof Ort;

/**
 * Loads onnxruntime-web. The WebGPU-capable build (JSEP) runs wasm too but its runtime is twice
 * the size of the wasm-only one (28 MB against 14 MB of WebAssembly to fetch and compile), so
 * it is loaded only when WebGPU is actually going to be tried.
 */
async function loadOrt(webgpu: boolean): Promise<OrtModule> {
  const ort = webgpu ? await import('onnxruntime-web') : await import('onnxruntime-web/wasm');
  // Served by the demo itself: the machine (and many edge deployments) has no CDN access.
  ort.env.wasm.wasmPaths = new URL(__ORT_WASM_DIR__, import.meta.url).href;
  // Threads need SharedArrayBuffer, i.e. a cross-origin isolated page (the demo router sends
  // COOP/COEP); without it ORT would warn and run one thread anyway.
  const cores = navigator.hardwareConcurrency || 1;
  ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.max(1, Math.min(4, cores)) : 1;
  ort.env.logLevel = 'error';
  return ort;
}

/** Why WebGPU cannot run here, or undefined when an adapter is available. */
async function webgpuUnavailable(): Promise<string | undefined> {
  if (!('gpu' in navigator) || !navigator.gpu) return 'this browser has no navigator.gpu';
  try {
    const adapter = await navigator.gpu.requestAdapter();
    return adapter ? undefined : 'navigator.gpu.requestAdapter() found no adapter';
  } catch (e) {
    return `requestAdapter failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}

function createSession(ort: OrtModule, bytes: Uint8Array, backend: Backend): Promise<Ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    executionProviders: [backend],
    graphOptimizationLevel: 'all',
    // ORT's native warnings (e.g. shape ops placed on the CPU next to WebGPU) reach the
    // console as errors; they are informative only.
    logSeverityLevel: 3,
  });
}

/** A deterministic textured frame, packed like a real one (every pixel value occurs). */
function probeInput(model: ModelEntry): Float32Array {
  const { width: W, height: H } = model.input;
  const rgba = new Uint8ClampedArray(W * H * 4);
  for (let i = 0; i < rgba.length; i++) rgba[i] = (i * 37 + ((i / 4 / W) | 0) * 11) % 256;
  const x = new Float32Array(3 * W * H);
  new TensorPacker(model.input).pack(rgba, x);
  return x;
}

/** One run; every output copied out as floats. */
async function runRaw(
  ort: OrtModule,
  session: Ort.InferenceSession,
  input: Float32Array,
  model: ModelEntry,
): Promise<OutputData> {
  const { width: W, height: H } = model.input;
  const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 3, H, W]) });
  const data: OutputData = {};
  for (const [name, t] of Object.entries(out)) {
    data[name] = Float32Array.from(t.data as Float32Array);
    t.dispose();
  }
  return data;
}

/**
 * The backends to try, best first: the one asked for (then wasm, which always works), or
 * webgpu then wasm when the browser exposes WebGPU.
 */
export function backendCandidates(requested: Backend | undefined): Backend[] {
  if (requested === 'wasm') return ['wasm'];
  if (requested === 'webgpu') return ['webgpu', 'wasm'];
  return 'gpu' in navigator ? ['webgpu', 'wasm'] : ['wasm'];
}

export class BrowserDetector {
  private readonly packer: TensorPacker;
  private readonly inputCtx: Context2D;
  private readonly inputNchw: Float32Array;
  private readonly inputName: string;
  readonly form: 'boxes' | 'heads';
  private busy = false;
  /** Duration of the first (warm-up) run, ms. */
  warmupMs = 0;

  private constructor(
    private readonly ort: OrtModule,
    readonly model: ModelEntry,
    private readonly session: Ort.InferenceSession,
    /** The backend the session runs on. */
    readonly backend: Backend,
    /** Backends tried before it, with the reason each was dropped. */
    readonly fallbacks: { backend: Backend; reason: string }[],
  ) {
    const { width: W, height: H } = model.input;
    this.packer = new TensorPacker(model.input);
    const canvas = new OffscreenCanvas(W, H);
    const ctx = canvas.getContext('2d', { willReadFrequently: true, alpha: false });
    if (!ctx) throw new TypeError('cannot create a 2D context for the model input');
    this.inputCtx = ctx;
    this.inputNchw = new Float32Array(3 * W * H);
    this.inputName = session.inputNames[0];
    const outs = session.outputNames;
    this.form = outs.includes('detections')
      ? 'boxes'
      : ['heatmap', 'size', 'offset'].every((n) => outs.includes(n))
        ? 'heads'
        : model.outputs;
  }

  /**
   * Creates the session on the first backend that works. The first run (on a probe frame)
   * pays for kernel preparation and thread start-up, so it happens here rather than on the
   * first real frame; a WebGPU session's probe outputs must also match a wasm session's.
   * @param requested - a backend the user asked for (`?backend=`); dropped with a reason when
   *   it cannot run, in favour of wasm
   * @throws {Error} listing each backend's failure when none works
   */
  static async create(model: ModelEntry, bytes: Uint8Array, requested?: Backend): Promise<BrowserDetector> {
    const fallbacks: { backend: Backend; reason: string }[] = [];
    const candidates = backendCandidates(requested);
    if (candidates[0] === 'webgpu') {
      const why = await webgpuUnavailable();
      if (why) fallbacks.push({ backend: candidates.shift()!, reason: why });
    }
    const ort = await loadOrt(candidates.includes('webgpu'));
    const probe = probeInput(model);
    /** The wasm session made to check WebGPU, reused if WebGPU is dropped. */
    let reference: { session: Ort.InferenceSession; out: OutputData; ms: number } | undefined;
    for (const backend of candidates) {
      let session: Ort.InferenceSession | undefined;
      try {
        let d: BrowserDetector;
        if (backend === 'wasm' && reference) {
          d = new BrowserDetector(ort, model, reference.session, 'wasm', fallbacks);
          d.warmupMs = reference.ms;
          return d;
        }
        session = await createSession(ort, bytes, backend);
        const t0 = performance.now();
        const out = await runRaw(ort, session, probe, model);
        d = new BrowserDetector(ort, model, session, backend, fallbacks);
        d.warmupMs = performance.now() - t0;
        if (backend !== 'webgpu') return d;
        const refSession = await createSession(ort, bytes, 'wasm');
        const t1 = performance.now();
        reference = { session: refSession, out: await runRaw(ort, refSession, probe, model), ms: 0 };
        reference.ms = performance.now() - t1;
        const why = outputsDisagree(d.form, reference.out, out);
        if (!why) {
          await refSession.release();
          return d;
        }
        throw new Error(why);
      } catch (e) {
        await session?.release();
        fallbacks.push({ backend, reason: e instanceof Error ? e.message : String(e) });
      }
    }
    throw new Error(
      `no backend could run '${model.name}': ${fallbacks.map((f) => `[${f.backend}] ${f.reason}`).join(', ')}`,
    );
  }

  /** Threads the WebAssembly backend runs on (1 unless the page is cross-origin isolated). */
  get threads(): number {
    return this.backend === 'wasm' ? (this.ort.env.wasm.numThreads ?? 1) : 1;
  }

  /**
   * Detects on one frame.
   * @param src - the frame (image bitmap, video, canvas), `srcWidth` x `srcHeight` pixels
   * @throws {Error} when called while a previous frame is still running (ORT sessions run one
   *   call at a time)
   */
  async detect(
    src: CanvasImageSource,
    srcWidth: number,
    srcHeight: number,
    f: FrameFilter,
  ): Promise<BrowserResult> {
    if (this.busy) throw new Error('the browser detector is still busy with the previous frame');
    this.busy = true;
    try {
      const t0 = performance.now();
      const { width: W, height: H } = this.model.input;
      const transform = letterboxInto(this.inputCtx, src, srcWidth, srcHeight, this.model.input);
      this.packer.pack(this.inputCtx.getImageData(0, 0, W, H).data, this.inputNchw);
      const feeds = { [this.inputName]: new this.ort.Tensor('float32', this.inputNchw, [1, 3, H, W]) };
      const t1 = performance.now();
      const out = await this.session.run(feeds);
      const t2 = performance.now();
      const filter = { scoreThreshold: f.scoreThreshold, maxDetections: f.maxDetections };
      let dets: Detection[];
      if (this.form === 'boxes') {
        dets = detectionsFromRows(out.detections.data as Float32Array, filter);
      } else {
        const heat = out.heatmap;
        const [, h, w, numClasses] = heat.dims;
        dets = detectionsFromHeads(
          {
            heatmap: heat.data as Float32Array,
            size: out.size.data as Float32Array,
            offset: out.offset.data as Float32Array,
            h,
            w,
            numClasses,
          },
          filter,
          // The head's cell size follows from the map size; the pool window is the spec's
          // (3 unless the server says otherwise).
          { stride: W / w, poolSize: this.model.spec?.decode?.poolSize ?? 3 },
        );
      }
      for (const t of Object.values(out)) t.dispose();
      const detections = mapToSource(dets, transform);
      const t3 = performance.now();
      return { detections, transform, timings: { preMs: t1 - t0, inferMs: t2 - t1, postMs: t3 - t2 } };
    } finally {
      this.busy = false;
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
