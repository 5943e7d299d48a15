/**
 * Weight-layout conversion and BatchNorm folding for the ONNX writer.
 *
 * tfjs stores conv kernels HWIO `[k, k, in, out]` (depthwise `[k, k, C, 1]`); ONNX Conv wants
 * OIHW `[out, in / group, k, k]` (depthwise: `[C, 1, k, k]` with `group = C`). An inference-mode
 * BN after a conv is an affine map per output channel, so it is folded into that conv:
 *   s = gamma / sqrt(var + eps)
 *   w' = w * s            (per output channel)
 *   b' = beta + (b - mean) * s
 * which removes every BatchNormalization node from the exported graph (one fewer memory pass
 * per layer and the form TensorRT and the INT8 quantiser expect).
 */
import type { NamedTensor } from '../models/core/safetensors.js';

/** A conv's weights in ONNX layout. */
export interface OnnxConvWeights {
  /** OIHW `[out, in / group, k, k]`. */
  weight: Float32Array;
  dims: [number, number, number, number];
  /** `[out]`; zeros when the conv had no bias and no BN was folded in. */
  bias: Float32Array;
}

/** BN parameters and moving statistics of one node, each `[C]`. */
export interface BnParams {
  gamma: Float32Array;
  beta: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
  epsilon: number;
}

/**
 * Converts a tfjs kernel to ONNX OIHW.
 * @param kernel - HWIO `[k, k, in, out]`, or `[k, k, C, 1]` when `depthwise`
 * @returns OIHW data and dims (`[out, in, k, k]`, or `[C, 1, k, k]` for depthwise)
 */
export function kernelToOihw(
  kernel: NamedTensor,
  depthwise: boolean,
): { data: Float32Array; dims: [number, number, number, number] } {
  const [kh, kw, cin, m] = kernel.shape;
  const cout = depthwise ? cin : m;
  const perOut = depthwise ? 1 : cin;
  const out = new Float32Array(cout * perOut * kh * kw);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < perOut; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) {
          // HWIO index; a depthwise kernel keeps channel c at I = c, M = 0.
          const src = depthwise ? ((y * kw + x) * cin + o) * m : ((y * kw + x) * cin + i) * m + o;
          out[((o * perOut + i) * kh + y) * kw + x] = kernel.data[src];
        }
  return { data: out, dims: [cout, perOut, kh, kw] };
}

/**
 * Folds an inference-mode BN into the preceding conv (see the file comment for the formula).
 * Computed in float64 and rounded once, so the folded weights are as close to the unfolded
 * float32 pipeline as float32 allows.
 * @param weight - OIHW kernel data, `[out, ...]` contiguous per output channel
 * @param bias - `[out]` conv bias, or undefined for none
 * @param bn - the BN that consumes the conv's output
 * @returns new arrays (inputs are not modified)
 */
export function foldBatchNorm(
  weight: Float32Array,
  bias: Float32Array | undefined,
  bn: BnParams,
): { weight: Float32Array; bias: Float32Array } {
  const c = bn.gamma.length;
  if (weight.length % c !== 0)
    throw new RangeError(`'weight' length ${weight.length} is not a multiple of the BN channels ${c}`);
  const per = weight.length / c;
  const w = new Float32Array(weight.length);
  const b = new Float32Array(c);
  for (let o = 0; o < c; o++) {
    const s = bn.gamma[o] / Math.sqrt(bn.movingVariance[o] + bn.epsilon);
    for (let j = 0; j < per; j++) w[o * per + j] = weight[o * per + j] * s;
    b[o] = bn.beta[o] + ((bias ? bias[o] : 0) - bn.movingMean[o]) * s;
  }
  return { weight: w, bias: b };
}
