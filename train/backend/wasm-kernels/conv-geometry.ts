/**
 * NHWC convolution geometry shared by edgekd's gradient kernels: output size and the padding
 * actually applied on each side, validated once with messages that name the kernel.
 */
import * as tf from '@tensorflow/tfjs';

/** Sizes of one 2-D convolution, in pixels / channels. `pad*` are the zero rows/columns added. */
export interface ConvGeometry {
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  /** Output channels (`inChannels * channelMultiplier` for depthwise). */
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
}

/** The forward-conv attributes the gradient kernels receive. */
export interface ConvAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dilations?: number | [number, number];
  dataFormat?: string;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function pair(v: number | [number, number] | undefined): [number, number] {
  if (v === undefined) return [1, 1];
  return typeof v === 'number' ? [v, v] : v;
}

/**
 * Geometry of the forward convolution whose gradient a kernel computes.
 *
 * @param kernelName - for error messages.
 * @param xShape - forward input `[batch, inHeight, inWidth, inChannels]`.
 * @param filterShape - `[fh, fw, inChannels, outChannels]` (conv) or `[fh, fw, inChannels, multiplier]` (depthwise).
 * @param attrs - strides, pad, dilations, dataFormat, dimRoundingMode of the forward op.
 * @param depthwise - whether the forward op is a depthwise convolution.
 * @throws {RangeError} for NCHW data, dilation other than 1, or non-positive strides.
 */
export function convGeometry(
  kernelName: string,
  xShape: number[],
  filterShape: number[],
  attrs: ConvAttrs,
  depthwise: boolean,
): ConvGeometry {
  const { dataFormat } = attrs;
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new RangeError(`${kernelName} on wasm: 'dataFormat' must be NHWC, got ${dataFormat}`);
  }
  const dilations = pair(attrs.dilations);
  if (dilations[0] !== 1 || dilations[1] !== 1) {
    throw new RangeError(`${kernelName} on wasm: 'dilations' must be 1, got [${dilations.join(', ')}]`);
  }
  const strides = pair(attrs.strides);
  if (!strides.every((s) => Number.isInteger(s) && s >= 1)) {
    throw new RangeError(
      `${kernelName} on wasm: 'strides' must be positive integers, got [${strides.join(', ')}]`,
    );
  }
  if (xShape.length !== 4 || filterShape.length !== 4) {
    throw new RangeError(
      `${kernelName} on wasm: input and filter must be rank 4, got [${xShape}] and [${filterShape}]`,
    );
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    depthwise,
    'channelsLast',
  );
  return {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    outChannels: info.outChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/**
 * Depthwise filters `[fh, fw, channels, 1]` that pick one filter tap each: a stride-s depthwise
 * conv with the forward's padding then yields the tap's shifted, strided input view
 * `x[b, oh*s + kh - padTop, ow*s + kw - padLeft, c]` (zero outside). XNNPACK runs this ~60x faster
 * than wasm's StridedSlice and handles the padding for free.
 *
 * @returns one `Float32Array` per tap, in `kh`-major order.
 */
export function oneHotTapFilters(
  filterHeight: number,
  filterWidth: number,
  channels: number,
): Float32Array[] {
  const taps = filterHeight * filterWidth;
  const out: Float32Array[] = [];
  for (let t = 0; t < taps; t++) {
    const f = new Float32Array(taps * channels);
    f.fill(1, t * channels, (t + 1) * channels);
    out.push(f);
  }
  return out;
}
