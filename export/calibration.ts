/**
 * Calibration for static INT8 quantisation: turning calibration images into network-ready
 * NCHW batches, and measuring per-tensor activation ranges by running the FP32 model with
 * onnxruntime-node (CPU) with the tensors of interest exposed as extra graph outputs.
 *
 * Ranges are per tensor (one scale per activation tensor, as QLinearConv / TensorRT expect):
 * - `minmax`: the smallest and largest value seen over the whole calibration set;
 * - `percentile`: a 2048-bin histogram per tensor over the min-max range (second pass); the range
 *   is cut at the given percentile on each side (asymmetric) or of |x| (symmetric), which ignores
 *   rare outliers and spends the 8 bits on where the values are.
 * Every range is widened to include 0 so that 0 (ReLU floor, padding) is exact.
 */
import { onnx, type OnnxTypes } from './onnx-proto.js';
import * as ort from 'onnxruntime-node';
import { ConfigError, ModelFormatError } from '../models/core/errors.js';
import type { ModelSpec } from '../models/core/spec.js';
import type { DecodedGraph } from './fp16.js';

type ModelProto = OnnxTypes.ModelProto;

/** An RGB image: `data` is HWC uint8, `width * height * 3` bytes. */
export interface RgbBuffer {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Range of one activation tensor, in its own (float) units. */
export interface TensorRange {
  min: number;
  max: number;
}

/** How activation ranges are measured. */
export interface CalibrationOptions {
  method: 'minmax' | 'percentile';
  /** Share of values kept by `percentile`, in percent (99.99 cuts 0.005% off each tail); default 99.99. */
  percentile?: number;
  /** Symmetric ranges (`[-a, a]`, for int8 symmetric activations): the percentile is of |x|. */
  symmetric?: boolean;
  /** Histogram bins of `percentile` (default 2048). */
  bins?: number;
}

const PAD_VALUE = 114;

/**
 * Turns RGB images into network-ready NCHW float batches as the model spec says: each image is
 * letterboxed (or stretched, per `spec.input.resize`) to the input size with nearest-neighbour
 * sampling (calibration only needs the value distribution; pad value 114 as at runtime), put in
 * the spec's channel order and normalised.
 *
 * @param images - calibration images (any size).
 * @param input - `spec.input` of the model being quantised.
 * @param batchSize - images per batch (the last batch may be smaller).
 * @returns batches of `[n, 3, height, width]` float32 values.
 * @throws {ConfigError} `ERR_CONFIG_INVALID` when `images` is empty.
 */
export function imagesToBatches(
  images: readonly RgbBuffer[],
  input: ModelSpec['input'],
  batchSize = 8,
): Float32Array[] {
  if (images.length === 0)
    throw new ConfigError('ERR_CONFIG_INVALID', 'the calibration set is empty: give at least one image');
  if (!(Number.isInteger(batchSize) && batchSize >= 1))
    throw new RangeError(`'batchSize' must be an integer >= 1, got ${batchSize}`);
  const { height: H, width: W } = input;
  const plane = H * W;
  const src: [number, number, number] = input.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  const n = input.normalization;
  const scale =
    n.kind === 'unit' ? [1 / 255, 1 / 255, 1 / 255] : n.kind === 'raw' ? [1, 1, 1] : n.std.map((s) => 1 / s);
  const shift = n.kind === 'meanstd' ? n.mean.map((m, c) => -m / n.std[c]) : [0, 0, 0];
  const batches: Float32Array[] = [];
  for (let b0 = 0; b0 < images.length; b0 += batchSize) {
    const group = images.slice(b0, b0 + batchSize);
    const out = new Float32Array(group.length * 3 * plane);
    group.forEach((img, k) => {
      if (img.data.length !== img.width * img.height * 3)
        throw new RangeError(
          `'images[${b0 + k}].data' must hold width*height*3 = ${img.width * img.height * 3} bytes, got ${img.data.length}`,
        );
      let sx = W / img.width;
      let sy = H / img.height;
      if (input.resize === 'letterbox') sx = sy = Math.min(sx, sy);
      const nw = Math.round(img.width * sx);
      const nh = Math.round(img.height * sy);
      const ox = Math.floor((W - nw) / 2);
      const oy = Math.floor((H - nh) / 2);
      for (let y = 0; y < H; y++) {
        const iy = Math.floor((y - oy + 0.5) / sy);
        for (let x = 0; x < W; x++) {
          const ix = Math.floor((x - ox + 0.5) / sx);
          const inside = y >= oy && y < oy + nh && x >= ox && x < ox + nw;
          const p =
            (Math.min(img.height - 1, Math.max(0, iy)) * img.width +
              Math.min(img.width - 1, Math.max(0, ix))) *
            3;
          for (let c = 0; c < 3; c++) {
            const v = inside ? img.data[p + src[c]] : PAD_VALUE;
            out[(k * 3 + c) * plane + y * W + x] = v * scale[c] + shift[c];
          }
        }
      }
    });
    batches.push(out);
  }
  return batches;
}

/** Name, static `[3, H, W]` and element count per image of the model's single image input. */
export function imageInputOf(model: ModelProto): { name: string; chw: [number, number, number] } {
  const g = model.graph as unknown as DecodedGraph | null;
  const inp = g?.input.filter((i) => !g.initializer.some((t) => t.name === i.name));
  if (!inp || inp.length !== 1)
    throw new ModelFormatError('ERR_MODEL_FORMAT', `expected one graph input, got ${inp?.length ?? 0}`);
  const dims = inp[0].type?.tensorType?.shape?.dim ?? [];
  const vals = dims.map((d) => (d.dimValue === undefined || d.dimValue === null ? 0 : Number(d.dimValue)));
  if (vals.length !== 4 || vals.slice(1).some((v) => !(v > 0)))
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `input '${inp[0].name}' must be NCHW with static C, H, W, got [${vals.join(', ')}]`,
    );
  return { name: inp[0].name, chw: [vals[1], vals[2], vals[3]] };
}

/**
 * Checks calibration batches against the model input.
 * @throws {ConfigError} `ERR_CONFIG_INVALID` when there is no batch or no image.
 * @throws {RangeError} when a batch is not a whole number of `[3, H, W]` images.
 */
export function checkBatches(batches: readonly Float32Array[], chw: readonly number[]): number {
  const per = chw[0] * chw[1] * chw[2];
  let images = 0;
  batches.forEach((b, i) => {
    if (b.length % per !== 0)
      throw new RangeError(
        `'batches[${i}]' must hold a whole number of [${chw.join(', ')}] images (${per} values each), got ${b.length} values`,
      );
    images += b.length / per;
  });
  if (images === 0)
    throw new ConfigError('ERR_CONFIG_INVALID', 'the calibration set is empty: give at least one image');
  return images;
}

/** The model with `names` added as graph outputs (float, shape left to the runtime). */
function exposeTensors(model: ModelProto, names: readonly string[]): Uint8Array {
  const m = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = m.graph as unknown as DecodedGraph;
  const have = new Set(g.output.map((o) => o.name));
  for (const name of names)
    if (!have.has(name))
      g.output.push(
        onnx.ValueInfoProto.create({
          name,
          type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } },
        }),
      );
  return onnx.ModelProto.encode(m).finish();
}

function quantileOf(hist: Float64Array, lo: number, width: number, total: number, q: number): number {
  const target = q * total;
  let acc = 0;
  for (let i = 0; i < hist.length; i++) {
    acc += hist[i];
    if (acc >= target) return lo + (i + 1) * width;
  }
  return lo + hist.length * width;
}

/**
 * Measures the range of each tensor in `names` over the calibration batches by running the FP32
 * model on onnxruntime-node's CPU provider.
 *
 * @param model - FP32 model whose image input is `[N, 3, H, W]` with a dynamic or matching N.
 * @param names - float tensors to measure (node outputs or the graph input).
 * @param batches - network-ready NCHW float32 batches (see {@link imagesToBatches}).
 * @returns per tensor its range, widened to include 0.
 * @throws {ConfigError} `ERR_CONFIG_INVALID` when the calibration set is empty.
 */
export async function collectRanges(
  model: ModelProto,
  names: readonly string[],
  batches: readonly Float32Array[],
  opts: CalibrationOptions,
): Promise<Map<string, TensorRange>> {
  const { name: inputName, chw } = imageInputOf(model);
  checkBatches(batches, chw);
  const pct = opts.percentile ?? 99.99;
  if (opts.method === 'percentile' && !(pct > 50 && pct <= 100))
    throw new RangeError(`'percentile' must be in (50, 100], got ${pct}`);
  const bins = opts.bins ?? 2048;
  const per = chw[0] * chw[1] * chw[2];
  const inputSet = new Set([inputName]);
  const outNames = names.filter((n) => !inputSet.has(n));
  const session = await ort.InferenceSession.create(exposeTensors(model, outNames), {
    graphOptimizationLevel: 'basic',
  });
  const mm = new Map<string, TensorRange>(names.map((n) => [n, { min: Infinity, max: -Infinity }]));
  const hists = new Map<string, { lo: number; width: number; h: Float64Array; total: number }>();
  const pass = async (visit: (name: string, data: Float32Array) => void): Promise<void> => {
    for (const b of batches) {
      const feeds = { [inputName]: new ort.Tensor('float32', b, [b.length / per, ...chw]) };
      const res = await session.run(feeds, outNames);
      if (inputSet.size && names.includes(inputName)) visit(inputName, b);
      for (const n of outNames) {
        const t = res[n];
        if (t.type !== 'float32')
          throw new ModelFormatError(
            'ERR_MODEL_FORMAT',
            `calibration tensor '${n}' is ${t.type}, expected float32`,
          );
        visit(n, t.data as Float32Array);
        t.dispose();
      }
    }
  };
  try {
    await pass((name, d) => {
      const r = mm.get(name)!;
      let lo = r.min;
      let hi = r.max;
      for (let i = 0; i < d.length; i++) {
        const v = d[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      r.min = lo;
      r.max = hi;
    });
    if (opts.method === 'percentile') {
      for (const [name, r] of mm) {
        const lo = opts.symmetric ? 0 : r.min;
        const hi = opts.symmetric ? Math.max(Math.abs(r.min), Math.abs(r.max)) : r.max;
        hists.set(name, { lo, width: Math.max(hi - lo, 1e-12) / bins, h: new Float64Array(bins), total: 0 });
      }
      await pass((name, d) => {
        const hs = hists.get(name)!;
        const { lo, width, h } = hs;
        const last = bins - 1;
        for (let i = 0; i < d.length; i++) {
          const v = opts.symmetric ? Math.abs(d[i]) : d[i];
          let k = Math.floor((v - lo) / width);
          if (k > last) k = last;
          else if (k < 0) k = 0;
          h[k]++;
        }
        hs.total += d.length;
      });
    }
  } finally {
    await session.release();
  }
  const out = new Map<string, TensorRange>();
  for (const [name, r] of mm) {
    let { min, max } = r;
    if (!Number.isFinite(min) || !Number.isFinite(max))
      throw new ModelFormatError('ERR_MODEL_FORMAT', `calibration tensor '${name}' has no finite values`);
    const hs = hists.get(name);
    if (hs) {
      const q = pct / 100;
      if (opts.symmetric) {
        const a = quantileOf(hs.h, hs.lo, hs.width, hs.total, q);
        min = Math.max(min, -a);
        max = Math.min(max, a);
      } else {
        const cut = (1 - q) / 2;
        // lower edge of the bin holding the `cut` quantile, upper edge of the `1 - cut` one
        const loQ = quantileOf(hs.h, hs.lo, hs.width, hs.total, cut) - hs.width;
        const hiQ = quantileOf(hs.h, hs.lo, hs.width, hs.total, 1 - cut);
        min = Math.max(min, loQ);
        max = Math.min(max, hiQ);
      }
    }
    out.set(name, { min: Math.min(min, 0), max: Math.max(max, 0) });
  }
  return out;
}
