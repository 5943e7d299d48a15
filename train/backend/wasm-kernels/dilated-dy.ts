/**
 * The input gradient of a strided convolution written as a stride-1 convolution:
 * `dx = conv(dilate(dy, stride), flip(filter))` with "full" padding, so that XNNPACK's fast
 * forward convolution does the work.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ConvGeometry } from './conv-geometry.js';
import type { KernelScope } from './kernel-scope.js';

/** `dy` dilated by the stride and cropped, plus the explicit padding for the stride-1 conv. */
export interface DilatedDy {
  /** `[batch, rows, cols, channels]` */
  dy: tf.TensorInfo;
  /** tfjs explicit padding `[[0, 0], [top, bottom], [left, right], [0, 0]]`, all >= 0. */
  pad: [[number, number], [number, number], [number, number], [number, number]];
}

/**
 * Dilates `dy` (`[batch, outHeight, outWidth, channels]`) by the forward strides, inserting
 * `stride - 1` zeros after each element (one PadV2 on a 6-D view: no scatter), and computes the
 * padding that makes a stride-1, flipped-filter correlation return exactly `inHeight x inWidth`.
 *
 * Row `ih` of dx needs dilated rows `ih + padTop - kh`, i.e. top padding `fh - 1 - padTop`; the
 * dilated map is `outHeight * stride` rows long (its last `stride - 1` rows are zeros), so the
 * bottom padding is `inHeight + padTop - outHeight * stride`. Negative paddings are cropped.
 */
export function dilateDy(scope: KernelScope, dy: tf.TensorInfo, g: ConvGeometry): DilatedDy {
  const [b, oh, ow, c] = dy.shape;
  const sh = g.strideHeight;
  const sw = g.strideWidth;
  let d = dy;
  if (sh > 1 || sw > 1) {
    const v = scope.reshape(dy, [b, oh, 1, ow, 1, c]);
    const padded = scope.run(
      'PadV2',
      { x: v },
      {
        paddings: [
          [0, 0],
          [0, 0],
          [0, sh - 1],
          [0, 0],
          [0, sw - 1],
          [0, 0],
        ],
        constantValue: 0,
      },
    );
    d = scope.reshape(padded, [b, oh * sh, ow * sw, c]);
  }
  let top = g.filterHeight - 1 - g.padTop;
  let bottom = g.inHeight + g.padTop - oh * sh;
  let left = g.filterWidth - 1 - g.padLeft;
  let right = g.inWidth + g.padLeft - ow * sw;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const r0 = Math.max(0, -top);
    const c0 = Math.max(0, -left);
    const rows = oh * sh - r0 - Math.max(0, -bottom);
    const cols = ow * sw - c0 - Math.max(0, -right);
    d = scope.run('Slice', { x: d }, { begin: [0, r0, c0, 0], size: [b, rows, cols, c] });
    top = Math.max(0, top);
    bottom = Math.max(0, bottom);
    left = Math.max(0, left);
    right = Math.max(0, right);
  }
  return {
    dy: d,
    pad: [
      [0, 0],
      [top, bottom],
      [left, right],
      [0, 0],
    ],
  };
}
