/**
 * RGB uint8 pixels -> the network's float input, as the model spec's `input` says: channel order
 * (`rgb` | `bgr`) and normalisation (`unit`: p/255, `raw`: p, `meanstd`: (p - mean) / std).
 * `mean` and `std` are listed in the network's channel order (the order after `channelOrder`
 * is applied), on the 0..255 scale.
 */
import type { ModelSpec } from '../../models/core/spec.js';
import type { RgbImage } from './types.js';

/** The part of the spec that normalisation reads. */
export type InputSpec = Pick<ModelSpec['input'], 'channelOrder' | 'normalization'>;

/**
 * Per network channel c: `x = p * scale[c] + shift[c]`, where p is the source pixel feeding
 * channel c (`src[c]`: 0/1/2 for rgb, 2/1/0 for bgr).
 */
export function normalizationCoefficients(input: InputSpec): {
  src: [number, number, number];
  scale: [number, number, number];
  shift: [number, number, number];
} {
  const src: [number, number, number] = input.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  const n = input.normalization;
  switch (n.kind) {
    case 'unit':
      return { src, scale: [1 / 255, 1 / 255, 1 / 255], shift: [0, 0, 0] };
    case 'raw':
      return { src, scale: [1, 1, 1], shift: [0, 0, 0] };
    case 'meanstd':
      return {
        src,
        scale: [1 / n.std[0], 1 / n.std[1], 1 / n.std[2]],
        shift: [-n.mean[0] / n.std[0], -n.mean[1] / n.std[1], -n.mean[2] / n.std[2]],
      };
  }
}

/**
 * Writes `img` as normalised HWC floats into `out` starting at `offset`
 * (`img.height * img.width * 3` values).
 */
export function normalizeInto(img: RgbImage, input: InputSpec, out: Float32Array, offset = 0): void {
  const { src, scale, shift } = normalizationCoefficients(input);
  const [i0, i1, i2] = src;
  const [s0, s1, s2] = scale;
  const [t0, t1, t2] = shift;
  const d = img.data;
  const n = img.width * img.height * 3;
  if (out.length < offset + n)
    throw new RangeError(`'out' must hold ${offset + n} values, got ${out.length}`);
  for (let q = 0, o = offset; q < n; q += 3, o += 3) {
    out[o] = d[q + i0] * s0 + t0;
    out[o + 1] = d[q + i1] * s1 + t1;
    out[o + 2] = d[q + i2] * s2 + t2;
  }
}
