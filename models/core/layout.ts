/** Tensor layout conversions shared by training (tfjs, NHWC) and ONNX consumers (NCHW). */

/**
 * Reorders an NHWC batch into NCHW (the layout of edgekd's ONNX input `images`).
 * @param nhwc - [n, h, w, c] values
 * @returns a new array holding [n, c, h, w]
 */
export function nhwcToNchw(nhwc: Float32Array, n: number, h: number, w: number, c = 3): Float32Array {
  if (nhwc.length !== n * h * w * c)
    throw new RangeError(`'nhwc' must hold ${n * h * w * c} values, got ${nhwc.length}`);
  const out = new Float32Array(nhwc.length);
  const hw = h * w;
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < hw; p++) {
      const src = (b * hw + p) * c;
      const dst = b * c * hw + p;
      for (let k = 0; k < c; k++) out[dst + k * hw] = nhwc[src + k];
    }
  }
  return out;
}
