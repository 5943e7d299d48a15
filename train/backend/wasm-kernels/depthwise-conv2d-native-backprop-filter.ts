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
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { HeapScratch, ptrOf, simdLoops } from '../wasm-simd/simd-module.js';
import type { ConvGeometry } from './conv-geometry.js';

/**
 * SIMD path (channel multiplier 1, C % 4 == 0): for each output row and filter tap, one call of
 * the `dw_row` loop accumulates `x[tap view] * dy` over the row's valid pixels, 4 channels per
 * instruction; one pass over `dy` per tap and no intermediate maps (the one-hot-view path below
 * writes and reads three full maps per tap). Per-row float32 partial sums are added in float64.
 */
function dwFilterSimd(
  backend: BackendWasm,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  g: ConvGeometry,
  fh: number,
  fw: number,
  c: number,
): tf.TensorInfo {
  const loops = simdLoops(backend);
  const out = backend.makeOutput([fh, fw, c, 1], 'float32');
  const scratch = new HeapScratch(backend);
  try {
    const taps = fh * fw;
    const acc = scratch.alloc(taps * c);
    const total = new Float64Array(taps * c);
    const xp = ptrOf(backend, x);
    const dyp = ptrOf(backend, dy);
    const cb = c * 4;
    const {
      inHeight: h,
      inWidth: w,
      outHeight: oh,
      outWidth: ow,
      strideHeight: sh,
      strideWidth: sw,
      padTop,
      padLeft,
    } = g;
    // Valid output columns per kw: iw = o * sw + kw - padLeft in [0, w).
    const cols = Array.from({ length: fw }, (_, kw) => {
      const lo = Math.max(0, Math.ceil((padLeft - kw) / sw));
      const hi = Math.min(ow, Math.floor((w - 1 + padLeft - kw) / sw) + 1);
      return { lo, n: Math.max(0, hi - lo) };
    });
    for (let b = 0; b < g.batch; b++) {
      for (let o = 0; o < oh; o++) {
        scratch.view(acc, taps * c).fill(0);
        const dyRow = dyp + (b * oh + o) * ow * cb;
        for (let kh = 0; kh < fh; kh++) {
          const ih = o * sh + kh - padTop;
          if (ih < 0 || ih >= h) continue;
          for (let kw = 0; kw < fw; kw++) {
            const { lo, n } = cols[kw];
            if (n === 0) continue;
            const iw = lo * sw + kw - padLeft;
            loops.dwRow(
              xp + ((b * h + ih) * w + iw) * cb,
              dyRow + lo * cb,
              acc + (kh * fw + kw) * cb,
              n,
              sw * cb,
              cb,
            );
          }
        }
        const v = scratch.view(acc, taps * c);
        for (let i = 0; i < v.length; i++) total[i] += v[i];
      }
    }
    scratch.view(ptrOf(backend, out), taps * c).set(total);
  } finally {
    scratch.dispose();
  }
  return out;
}

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
  if (m === 1 && c % 4 === 0 && x.dtype === 'float32' && dy.dtype === 'float32') {
    return dwFilterSimd(args.backend as BackendWasm, x, dy, g, fh, fw, c);
  }
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
        {
          strides: [g.strideHeight, g.strideWidth],
          pad: attrs.pad,
          dilations: [1, 1],
          dimRoundingMode: attrs.dimRoundingMode,
        },
      );
      const prod = scope.run('Multiply', {
        a: scope.reshape(view, m === 1 ? [rows, c] : [rows, c, 1]),
        b: dy2d,
      });
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
