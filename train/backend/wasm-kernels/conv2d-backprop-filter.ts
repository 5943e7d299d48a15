/**
 * `Conv2DBackpropFilter` for the wasm backend (tfjs-backend-wasm 4.22 has none).
 *
 * `dW[kh, kw, ci, co] = sum_{b, oh, ow} x[b, oh*s + kh - pt, ow*s + kw - pl, ci] * dy[b, oh, ow, co]`,
 * computed as im2col + GEMM: each filter tap's shifted, strided view of `x` (a one-hot depthwise
 * conv, see {@link oneHotTapFilters}) is multiplied with `dy` by XNNPACK's matrix product. wasm's
 * BatchMatMul is only fast without transpose flags, so the operand with fewer values is transposed
 * explicitly (measured cheaper than XNNPACK's packing of the right operand, which wasm caches per
 * tensor: `dy` is packed once for all taps).
 */
import * as tf from '@tensorflow/tfjs';
import { convGeometry, oneHotTapFilters, type ConvAttrs } from './conv-geometry.js';
import { withScope } from './kernel-scope.js';

interface Attrs extends ConvAttrs {
  filterShape: [number, number, number, number];
}

/** Kernel function: inputs `x` `[b, h, w, ci]`, `dy` `[b, oh, ow, co]`; returns `[fh, fw, ci, co]`. */
export function conv2DBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as Attrs;
  const g = convGeometry('Conv2DBackpropFilter', x.shape, attrs.filterShape, attrs, false);
  const { filterHeight: fh, filterWidth: fw, inChannels: ci, outChannels: co } = g;
  const taps = fh * fw;
  const rows = g.batch * g.outHeight * g.outWidth;
  const identityTap =
    taps === 1 && g.strideHeight === 1 && g.strideWidth === 1 && g.padTop === 0 && g.padLeft === 0;
  return withScope(args.backend, (scope) => {
    const filters = identityTap ? [] : oneHotTapFilters(fh, fw, ci);
    const tapView = (t: number): tf.TensorInfo => {
      if (identityTap) return scope.reshape(x, [rows, ci]);
      const f = scope.constant([fh, fw, ci, 1], filters[t]);
      const v = scope.run(
        'DepthwiseConv2dNative',
        { x, filter: f },
        { strides: [g.strideHeight, g.strideWidth], pad: attrs.pad, dilations: [1, 1], dimRoundingMode: attrs.dimRoundingMode },
      );
      return scope.reshape(v, [rows, ci]);
    };
    const dy2d = scope.reshape(dy, [rows, co]);
    const parts: tf.TensorInfo[] = [];
    if (taps === 1 && co >= ci) {
      // dW^T = dy^T @ x: XNNPACK packs its right operand with a transposing copy that costs more
      // per value than wasm's Transpose, so the larger operand is transposed, the smaller packed.
      const dyT = scope.transpose2d(dy2d);
      for (let t = 0; t < taps; t++) parts.push(scope.matMul(dyT, tapView(t)));
      const stacked = scope.concat(parts, 0);
      const tcc = scope.reshape(stacked, [taps, co, ci]);
      const out = scope.run('Transpose', { x: tcc }, { perm: [0, 2, 1] });
      return scope.reshape(out, [fh, fw, ci, co]);
    }
    // dW[tap] = xTap^T @ dy: dy is the right operand of every tap's product, and wasm caches
    // XNNPACK's packed copy per tensor, so it is packed once; each tap view is transposed.
    for (let t = 0; t < taps; t++) parts.push(scope.matMul(scope.transpose2d(tapView(t)), dy2d));
    const stacked = scope.concat(parts, 0);
    return scope.reshape(stacked, [fh, fw, ci, co]);
  });
}

/** Registered by {@link registerWasmGradKernels}. */
export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc,
};
