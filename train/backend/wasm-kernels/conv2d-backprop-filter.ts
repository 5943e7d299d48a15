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
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { ConvGeometry } from './conv-geometry.js';
import { HeapScratch, gemmTN, ptrOf, simdLoops } from '../wasm-simd/simd-module.js';

/** Pixels per register-tile pass (measured best of 32..all) on the contiguous (1x1, stride 1) path: keeps x and dy rows in cache. */
const CHUNK = 256;

/**
 * SIMD path (needs co % 4 == 0 or ci % 4 == 0): `dW[tap] += xTap^T @ dy` with register-tiled
 * loops (see `gemmTN`) straight on the wasm heap, row by row of the output for strided or padded
 * taps, in chunks of 256 pixels for 1x1 stride-1 convolutions. No tap views, transposes or
 * XNNPACK packing copies. When co % 4 != 0 (1- or 2-channel heads) it computes `dW^T` and
 * transposes the small result.
 */
function convFilterSimd(
  backend: BackendWasm,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  g: ConvGeometry,
): tf.TensorInfo {
  const { filterHeight: fh, filterWidth: fw, inChannels: ci, outChannels: co } = g;
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
  const loops = simdLoops(backend);
  const swap = co % 4 !== 0;
  const taps = fh * fw;
  const out = backend.makeOutput([fh, fw, ci, co], 'float32');
  const scratch = new HeapScratch(backend);
  try {
    const acc = scratch.alloc(taps * ci * co);
    const xp = ptrOf(backend, x);
    const dyp = ptrOf(backend, dy);
    const xb = ci * 4;
    const db = co * 4;
    const run = (xa: number, da: number, n: number, xstep: number, accT: number): void => {
      if (swap) gemmTN(loops, da, xa, accT, n, db, xstep, co, ci);
      else gemmTN(loops, xa, da, accT, n, xstep, db, ci, co);
    };
    if (taps === 1 && sh === 1 && sw === 1 && padTop === 0 && padLeft === 0 && oh === h && ow === w) {
      const rows = g.batch * oh * ow;
      for (let r0 = 0; r0 < rows; r0 += CHUNK)
        run(xp + r0 * xb, dyp + r0 * db, Math.min(CHUNK, rows - r0), xb, acc);
    } else {
      const cols = Array.from({ length: fw }, (_, kw) => {
        const lo = Math.max(0, Math.ceil((padLeft - kw) / sw));
        const hi = Math.min(ow, Math.floor((w - 1 + padLeft - kw) / sw) + 1);
        return { lo, n: Math.max(0, hi - lo) };
      });
      for (let b = 0; b < g.batch; b++) {
        for (let o = 0; o < oh; o++) {
          for (let kh = 0; kh < fh; kh++) {
            const ih = o * sh + kh - padTop;
            if (ih < 0 || ih >= h) continue;
            for (let kw = 0; kw < fw; kw++) {
              const { lo, n } = cols[kw];
              if (n === 0) continue;
              const iw = lo * sw + kw - padLeft;
              run(
                xp + ((b * h + ih) * w + iw) * xb,
                dyp + ((b * oh + o) * ow + lo) * db,
                n,
                sw * xb,
                acc + (kh * fw + kw) * ci * co * 4,
              );
            }
          }
        }
      }
    }
    const a = scratch.view(acc, taps * ci * co);
    const o = scratch.view(ptrOf(backend, out), taps * ci * co);
    if (!swap) o.set(a);
    else {
      for (let t = 0; t < taps; t++) {
        for (let k = 0; k < ci; k++)
          for (let j = 0; j < co; j++) o[(t * ci + k) * co + j] = a[(t * co + j) * ci + k];
      }
    }
  } finally {
    scratch.dispose();
  }
  return out;
}

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
  if (x.dtype === 'float32' && dy.dtype === 'float32' && (co % 4 === 0 || ci % 4 === 0)) {
    return convFilterSimd(args.backend as BackendWasm, x, dy, g);
  }
  return withScope(args.backend, (scope) => {
    const filters = identityTap ? [] : oneHotTapFilters(fh, fw, ci);
    const tapView = (t: number): tf.TensorInfo => {
      if (identityTap) return scope.reshape(x, [rows, ci]);
      const f = scope.constant([fh, fw, ci, 1], filters[t]);
      const v = scope.run(
        'DepthwiseConv2dNative',
        { x, filter: f },
        {
          strides: [g.strideHeight, g.strideWidth],
          pad: attrs.pad,
          dilations: [1, 1],
          dimRoundingMode: attrs.dimRoundingMode,
        },
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
