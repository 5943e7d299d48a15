/**
 * Parity of an exported model with the tfjs student: both run on the same preprocessed inputs
 * (random noise and a procedural pedestrian-like scene, normalised per the spec), the exported
 * model by onnxruntime-node's CPU provider, the student in inference mode by the current tfjs
 * backend. Reports the max abs difference per head and, for the `boxes` form, whether the
 * in-graph decode returns the same detections as `decodeCenterNet` on the tfjs heads.
 *
 * export/ imports onnxruntime-node only here and in calibration.ts (to run the FP32 graph).
 */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { nhwcToNchw } from '../models/core/layout.js';
import seedrandom from 'seedrandom';
import { onnx, type OnnxTypes } from './onnx-proto.js';
import { Student, type WeightMap } from '../models/arch/student.js';
import { decodeCenterNet } from '../models/core/decode.js';
import type { Detection } from '../models/core/detection.js';
import { headStride, type ModelSpec } from '../models/core/spec.js';
import type { NamedTensor } from '../models/core/safetensors.js';
import { INPUT_NAME } from './onnx-graph.js';

/** Max abs difference per head (heatmap as probabilities). */
export interface HeadDiffs {
  heatmap: number;
  size: number;
  offset: number;
}

/** Agreement of the in-graph decode with the TS decode of the tfjs heads, above the score threshold. */
export interface BoxParity {
  /** Detections from `decodeCenterNet` on the tfjs heads (score >= threshold). */
  reference: number;
  /** Rows of `detections` with score >= threshold. */
  exported: number;
  /** Pairs with the same class, score within the heads bound and coords within the box bound. */
  matched: number;
  /** Unmatched detections whose score lies within the heads bound of the threshold or of the K-th score (not counted as failures). */
  borderline: number;
  /**
   * Max coordinate difference over matched pairs, input pixels, divided by max(1, box side /
   * input size) (so boxes larger than the input, which only untrained weights produce, are held
   * to a relative bound).
   */
  maxCoordDiff: number;
  maxScoreDiff: number;
  /** Unmatched detections that are not borderline: each one fails parity. */
  unexplained: number;
  /** The first few unexplained differences, human-readable. */
  mismatches: string[];
}

export interface ParityInputReport {
  kind: 'random' | 'synthetic';
  batch: number;
  heads: HeadDiffs;
  /** Max |value| of each tfjs head, the scale the differences are relative to. */
  scale: HeadDiffs;
  boxes?: BoxParity;
}

export interface ParityReport {
  ok: boolean;
  /** Bounds applied: heads max abs diff (times max(1, scale)), box coordinates (input pixels). */
  tolerance: { heads: number; boxes: number };
  /** Max over all inputs. */
  maxAbsDiff: HeadDiffs;
  /** Max |value| of each tfjs head over all inputs. */
  scale: HeadDiffs;
  boxes?: BoxParity;
  inputs: ParityInputReport[];
  provider: 'cpu';
  tfjsBackend: string;
  seconds: number;
}

export interface ParityOptions {
  /** Images per input kind (random, synthetic); > 1 also exercises the dynamic batch axis. */
  batch: number;
  seed: number;
  /**
   * Max abs diff allowed on each head (1e-4 for FP32), scaled by max(1, max |value|) of that
   * head: absolute for the heatmap probabilities, relative for size/offset values beyond +-1.
   */
  headTolerance: number;
  /** Max abs diff allowed on box coordinates in input pixels (1e-3 for FP32), for boxes up to the input size. */
  boxTolerance: number;
}

const DEFAULTS: ParityOptions = { batch: 2, seed: 0, headTolerance: 1e-4, boxTolerance: 1e-3 };

/**
 * A procedural test scene in 0..255 RGB, HWC: a vertical gradient background and a few
 * people-like shapes (ellipse body + round head) of random colours and sizes, so features and
 * heatmap peaks look like the model's real inputs rather than noise.
 */
export function syntheticScene(height: number, width: number, rng: () => number): Float32Array {
  const img = new Float32Array(height * width * 3);
  const bg = [60 + 120 * rng(), 60 + 120 * rng(), 60 + 120 * rng()];
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) img[(y * width + x) * 3 + c] = bg[c] * (0.6 + (0.4 * y) / height);
  const people = 3 + Math.floor(rng() * 6);
  for (let p = 0; p < people; p++) {
    const ph = (0.1 + 0.4 * rng()) * height;
    const pw = ph * (0.3 + 0.15 * rng());
    const cx = rng() * width;
    const top = rng() * (height - ph * 0.5);
    const col = [255 * rng(), 255 * rng(), 255 * rng()];
    const skin = [200 + 40 * rng(), 150 + 40 * rng(), 120 + 40 * rng()];
    const headR = pw * 0.35;
    const bodyCy = top + 2 * headR + (ph - 2 * headR) / 2;
    for (let y = Math.max(0, Math.floor(top)); y < Math.min(height, Math.ceil(top + ph)); y++)
      for (let x = Math.max(0, Math.floor(cx - pw)); x < Math.min(width, Math.ceil(cx + pw)); x++) {
        const dxH = x - cx;
        const dyH = y - (top + headR);
        const inHead = dxH * dxH + dyH * dyH <= headR * headR;
        const ex = (x - cx) / (pw / 2);
        const ey = (y - bodyCy) / ((ph - 2 * headR) / 2);
        const inBody = ex * ex + ey * ey <= 1;
        const fill = inHead ? skin : inBody ? col : undefined;
        if (fill) for (let c = 0; c < 3; c++) img[(y * width + x) * 3 + c] = fill[c];
      }
  }
  return img;
}

/**
 * Applies the spec's channel order and normalisation to 0..255 RGB HWC pixels (in place) —
 * what the runtime's pre-processing does before feeding `images`.
 */
export function normalizePixels(spec: ModelSpec, rgbHwc: Float32Array): Float32Array {
  const n = spec.input.normalization;
  const bgr = spec.input.channelOrder === 'bgr';
  for (let i = 0; i < rgbHwc.length; i += 3) {
    if (bgr) {
      const r = rgbHwc[i];
      rgbHwc[i] = rgbHwc[i + 2];
      rgbHwc[i + 2] = r;
    }
    for (let c = 0; c < 3; c++) {
      const v = rgbHwc[i + c];
      rgbHwc[i + c] = n.kind === 'unit' ? v / 255 : n.kind === 'raw' ? v : (v - n.mean[c]) / n.std[c];
    }
  }
  return rgbHwc;
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/**
 * A copy of the model whose graph also outputs the NHWC head tensors (`heatmap`, `size`,
 * `offset`), so the heads of a `boxes` model are compared too. Their types come from the
 * graph's value_info.
 */
function withHeadOutputs(model: OnnxTypes.IModelProto): Uint8Array {
  const m = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = m.graph!;
  const outputs = (g.output ??= []);
  const infos = (g.valueInfo ??= []);
  const have = new Set(outputs.map((o) => o.name));
  for (const name of ['heatmap', 'size', 'offset']) {
    if (have.has(name)) continue;
    const i = infos.findIndex((v) => v.name === name);
    if (i < 0) continue;
    outputs.push(infos[i]);
    infos.splice(i, 1);
  }
  return onnx.ModelProto.encode(m).finish();
}

function toWeightMap(weights: Map<string, NamedTensor>): WeightMap {
  const out: WeightMap = {};
  for (const [k, v] of weights) out[k] = { shape: v.shape, data: v.data };
  return out;
}

function compareBoxes(
  ref: Detection[],
  rows: Float32Array,
  K: number,
  threshold: number,
  tol: { heads: number; boxes: number },
  inputSize: number,
): BoxParity {
  const exported: Detection[] = [];
  for (let k = 0; k < K; k++) {
    const r = rows.subarray(k * 6, k * 6 + 6);
    if (r[4] >= threshold) exported.push({ box: [r[0], r[1], r[2], r[3]], score: r[4], classId: r[5] });
  }
  const reference = ref.filter((d) => d.score >= threshold);
  // Scores near the threshold or the K-th score may fall either side; they are not failures.
  const kth = reference.length >= K ? reference[K - 1].score : -Infinity;
  const near = (s: number) => Math.abs(s - threshold) <= tol.heads || Math.abs(s - kth) <= tol.heads;
  const used = new Set<number>();
  let matched = 0;
  let borderline = 0;
  let maxCoordDiff = 0;
  let maxScoreDiff = 0;
  const mismatches: string[] = [];
  for (const d of reference) {
    let best = -1;
    let bestDiff = Infinity;
    exported.forEach((e, i) => {
      if (used.has(i) || e.classId !== d.classId || Math.abs(e.score - d.score) > tol.heads) return;
      // Relative to the box side beyond the input size: exp() of the size head turns the same
      // float32 rounding into a larger absolute error on the huge boxes of untrained weights.
      const side = Math.max(d.box[2] - d.box[0], d.box[3] - d.box[1]);
      const diff = Math.max(...e.box.map((v, j) => Math.abs(v - d.box[j]))) / Math.max(1, side / inputSize);
      if (diff < bestDiff) {
        bestDiff = diff;
        best = i;
      }
    });
    if (best >= 0 && bestDiff <= tol.boxes) {
      used.add(best);
      matched++;
      maxCoordDiff = Math.max(maxCoordDiff, bestDiff);
      maxScoreDiff = Math.max(maxScoreDiff, Math.abs(exported[best].score - d.score));
    } else if (near(d.score)) borderline++;
    else
      mismatches.push(
        `reference class ${d.classId} score ${d.score.toFixed(5)} box [${d.box.map((v) => v.toFixed(2)).join(', ')}] has no exported match${best >= 0 ? ` (closest coords differ by ${bestDiff.toExponential(2)})` : ''}`,
      );
  }
  exported.forEach((e, i) => {
    if (used.has(i)) return;
    if (near(e.score)) borderline++;
    else
      mismatches.push(
        `exported class ${e.classId} score ${e.score.toFixed(5)} box [${e.box.map((v) => v.toFixed(2)).join(', ')}] is not in the reference`,
      );
  });
  return {
    reference: reference.length,
    exported: exported.length,
    matched,
    borderline,
    maxCoordDiff,
    maxScoreDiff,
    unexplained: mismatches.length,
    mismatches: mismatches.slice(0, 5),
  };
}

function mergeBoxes(a: BoxParity | undefined, b: BoxParity): BoxParity {
  if (!a) return { ...b, mismatches: [...b.mismatches] };
  return {
    reference: a.reference + b.reference,
    exported: a.exported + b.exported,
    matched: a.matched + b.matched,
    borderline: a.borderline + b.borderline,
    maxCoordDiff: Math.max(a.maxCoordDiff, b.maxCoordDiff),
    maxScoreDiff: Math.max(a.maxScoreDiff, b.maxScoreDiff),
    unexplained: a.unexplained + b.unexplained,
    mismatches: [...a.mismatches, ...b.mismatches].slice(0, 5),
  };
}

/**
 * Runs the exported model and the tfjs student on the same inputs and compares them.
 * @param model - the exported model (`heads` or `boxes` form, float32 I/O)
 * @param spec - the spec it was exported from
 * @param weights - the same deploy weights (tfjs layouts, BN unfolded)
 * @returns the report; `ok` is false when a bound is exceeded (the caller decides to throw)
 */
export async function verifyParity(
  model: OnnxTypes.IModelProto,
  spec: ModelSpec,
  weights: Map<string, NamedTensor>,
  options: Partial<ParityOptions> = {},
): Promise<ParityReport> {
  const opts = { ...DEFAULTS, ...options };
  const t0 = performance.now();
  const { height: H, width: W } = spec.input;
  const stride = headStride(spec);
  const h = H / stride;
  const w = W / stride;
  const C = spec.classes.length;
  const isBoxes = (model.graph?.output ?? []).some((o) => o.name === 'detections');
  const tol = { heads: opts.headTolerance, boxes: opts.boxTolerance };

  const student = new Student(spec, 0);
  const session = await ort.InferenceSession.create(withHeadOutputs(model), {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  });
  const inputs: ParityInputReport[] = [];
  let boxesTotal: BoxParity | undefined;
  try {
    student.setWeights(toWeightMap(weights), 'export weights');
    const rng = seedrandom(`edgekd-parity-${opts.seed}`);
    for (const kind of ['random', 'synthetic'] as const) {
      const n = opts.batch;
      const nhwc = new Float32Array(n * H * W * 3);
      for (let b = 0; b < n; b++) {
        let px: Float32Array;
        if (kind === 'random') {
          px = new Float32Array(H * W * 3);
          for (let i = 0; i < px.length; i++) px[i] = 255 * rng();
        } else px = syntheticScene(H, W, rng);
        nhwc.set(normalizePixels(spec, px), b * H * W * 3);
      }
      const ref = tf.tidy(() => {
        const o = student.apply(tf.tensor4d(nhwc, [n, H, W, 3]), { training: false });
        return [tf.sigmoid(o.heatmap), o.size, o.offset].map((x) => x.dataSync() as Float32Array);
      });
      const [refHeat, refSize, refOff] = ref;
      const feeds = { [INPUT_NAME]: new ort.Tensor('float32', nhwcToNchw(nhwc, n, H, W, 3), [n, 3, H, W]) };
      const res = await session.run(feeds);
      const got = (name: string) => res[name].data as Float32Array;
      const heads: HeadDiffs = {
        heatmap: maxAbs(got('heatmap'), refHeat),
        size: maxAbs(got('size'), refSize),
        offset: maxAbs(got('offset'), refOff),
      };
      const peak = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const scale: HeadDiffs = { heatmap: peak(refHeat), size: peak(refSize), offset: peak(refOff) };
      const entry: ParityInputReport = { kind, batch: n, heads, scale };
      if (isBoxes) {
        const det = res.detections;
        const K = det.dims[1];
        for (let b = 0; b < n; b++) {
          const cellsB = h * w;
          const refDets = decodeCenterNet(
            {
              heatmap: refHeat.subarray(b * cellsB * C, (b + 1) * cellsB * C),
              size: refSize.subarray(b * cellsB * 2, (b + 1) * cellsB * 2),
              offset: refOff.subarray(b * cellsB * 2, (b + 1) * cellsB * 2),
              h,
              w,
              numClasses: C,
            },
            {
              stride,
              topK: spec.decode.topK,
              scoreThreshold: spec.decode.scoreThreshold,
              poolSize: spec.decode.poolSize,
            },
          );
          const rows = (det.data as Float32Array).subarray(b * K * 6, (b + 1) * K * 6);
          // Box coordinates inherit the heads' scale-relative bound (see `headsOk` below).
          const boxTol = { ...tol, boxes: tol.boxes * Math.max(1, scale.size, scale.offset) };
          const bp = compareBoxes(refDets, rows, K, spec.decode.scoreThreshold, boxTol, Math.min(H, W));
          entry.boxes = mergeBoxes(entry.boxes, bp);
        }
        boxesTotal = mergeBoxes(boxesTotal, entry.boxes!);
      }
      inputs.push(entry);
    }
  } finally {
    student.dispose();
    await session.release();
  }
  const maxAbsDiff: HeadDiffs = {
    heatmap: Math.max(...inputs.map((i) => i.heads.heatmap)),
    size: Math.max(...inputs.map((i) => i.heads.size)),
    offset: Math.max(...inputs.map((i) => i.heads.offset)),
  };
  const scale: HeadDiffs = {
    heatmap: Math.max(...inputs.map((i) => i.scale.heatmap)),
    size: Math.max(...inputs.map((i) => i.scale.size)),
    offset: Math.max(...inputs.map((i) => i.scale.offset)),
  };
  // 1e-4 absolute for values within [-1, 1] (the heatmap is a probability), relative beyond:
  // float32 rounding grows with the magnitude of the log-size / offset values.
  const headsOk = (Object.keys(maxAbsDiff) as Array<keyof HeadDiffs>).every(
    (k) => maxAbsDiff[k] <= tol.heads * Math.max(1, scale[k]),
  );
  const boxesOk = !boxesTotal || boxesTotal.unexplained === 0;
  return {
    ok: headsOk && boxesOk,
    tolerance: tol,
    maxAbsDiff,
    scale,
    boxes: boxesTotal,
    inputs,
    provider: 'cpu',
    tfjsBackend: tf.getBackend(),
    seconds: (performance.now() - t0) / 1000,
  };
}
