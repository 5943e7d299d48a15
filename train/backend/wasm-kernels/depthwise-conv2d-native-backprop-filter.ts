/**
 * `DepthwiseConv2dNativeBackpropFilter` for the wasm backend (tfjs-backend-wasm 4.22 has none).
 *
 * `dW[kh, kw, c, q] = sum_{b, oh, ow} x[b, oh*s + kh - pt, ow*s + kw - pl, c] * dy[b, oh, ow, c*m + q]`:
 * per filter tap, the shifted strided view of `x` (a one-hot depthwise conv on XNNPACK, see
 * {@link oneHotTapFilters}), an elementwise product with `dy`, and a reduction over all pixels
 * done as `prod[P, c*m]^T @ ones[P, 1]` (see leading-axes-reduce.ts for why not XNNPACK).
 */
import * as tf from '@tensorflow/tfjs';
import { convGeometry, oneHotTapFilters, type ConvAttrs } from './conv-geometry.js';
import { withScope } from './kernel-scope.js';

interface Attrs extends ConvAttrs {
  filterShape: [number, number, number, number];
}

/** Kernel function: inputs `x` `[b, h, w, c]`, `dy` `[b, oh, ow, c*m]`; returns `[fh, fw, c, m]`. */
export function depthwiseConv2dNativeBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as Attrs;
  const g = convGeometry('DepthwiseConv2dNativeBackpropFilter', x.shape, attrs.filterShape, attrs, true);
  const [fh, fw, c, m] = attrs.filterShape;
  const rows = g.batch * g.outHeight * g.outWidth;
  return withScope(args.backend, (scope) => {
    const filters = oneHotTapFilters(fh, fw, c);
    const ones = scope.run('Fill', {}, { shape: [rows, 1], value: 1, dtype: 'float32' });
    const dy2d = scope.reshape(dy, m === 1 ? [rows, c] : [rows, c, m]);
    const parts: tf.TensorInfo[] = [];
    for (let t = 0; t < filters.length; t++) {
      const f = scope.constant([fh, fw, c, 1], filters[t]);
      const view = scope.run(
        'DepthwiseConv2dNative',
        { x, filter: f },
        { strides: [g.strideHeight, g.strideWidth], pad: attrs.pad, dilations: [1, 1], dimRoundingMode: attrs.dimRoundingMode },
      );
      const prod = scope.run('Multiply', { a: scope.reshape(view, m === 1 ? [rows, c] : [rows, c, 1]), b: dy2d });
      const a = scope.reshape(prod, [rows, c * m]);
      parts.push(scope.run('BatchMatMul', { a, b: ones }, { transposeA: true, transposeB: false }));
    }
    // parts: [c*m, 1] each -> [c*m, taps] -> [taps, c*m]
    const cols = scope.run('Transpose', { x: scope.concat(parts, 1) }, { perm: [1, 0] });
    return scope.reshape(cols, [fh, fw, c, m]);
  });
}

/** Registered by {@link registerWasmGradKernels}. */
export const depthwiseConv2dNativeBackpropFilterConfig: tf.KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropFilter as unknown as tf.KernelFunc,
};
