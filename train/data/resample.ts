/**
 * Axis-aligned resampling of an {@link RgbImage} in pure JS: the one geometric kernel behind
 * letterboxing and augmentation (scale, crop, pad, horizontal flip all reduce to
 * `xDst = xSrc * scaleX + offsetX`, `yDst = ySrc * scaleY + offsetY`, optionally mirrored).
 *
 * It is separable (a horizontal then a vertical pass) with a triangle filter whose support
 * widens when shrinking (as Pillow's antialiased bilinear), so a 4x downscale averages 4x4
 * source pixels instead of aliasing: 8 px pedestrians survive the resize. Only the source rows
 * and columns that reach the output are touched, so a crop costs the crop, not the image.
 */
import type { RgbImage } from './types.js';

/** One axis of the mapping: `dst = src * scale + offset`, in continuous pixel-edge coordinates. */
export interface AxisMap {
  scale: number;
  offset: number;
}

/** Per-destination-index filter taps over one source axis. */
interface AxisTaps {
  /** First source index of each destination index; -1 marks padding. */
  start: Int32Array;
  count: Int32Array;
  /** `weights[j * maxTaps + k]` for tap k of destination j; each row sums to 1. */
  weights: Float32Array;
  maxTaps: number;
}

function axisTaps(srcN: number, dstN: number, map: AxisMap, mirror: boolean): AxisTaps {
  const { scale, offset } = map;
  const radius = Math.max(1, 1 / scale);
  const maxTaps = Math.ceil(2 * radius) + 2;
  const start = new Int32Array(dstN).fill(-1);
  const count = new Int32Array(dstN);
  const weights = new Float32Array(dstN * maxTaps);
  for (let jj = 0; jj < dstN; jj++) {
    // When mirrored, destination jj shows what the unmirrored mapping puts at dstN-1-jj.
    const j = mirror ? dstN - 1 - jj : jj;
    const u = (j + 0.5 - offset) / scale; // source coordinate of the destination pixel centre
    if (!(u >= 0 && u < srcN)) continue;
    const c = u - 0.5; // in source pixel-index space
    const i0 = Math.max(0, Math.ceil(c - radius));
    const i1 = Math.min(srcN - 1, Math.floor(c + radius));
    let sum = 0;
    let n = 0;
    const base = jj * maxTaps;
    let first = -1;
    for (let i = i0; i <= i1 && n < maxTaps; i++) {
      const w = 1 - Math.abs(i - c) / radius;
      if (w <= 0) {
        if (first >= 0) break;
        continue;
      }
      if (first < 0) first = i;
      weights[base + n++] = w;
      sum += w;
    }
    if (n === 0) {
      // Exactly on a sample: nearest pixel.
      first = Math.min(srcN - 1, Math.max(0, Math.round(c)));
      weights[base] = 1;
      n = 1;
      sum = 1;
    }
    for (let k = 0; k < n; k++) weights[base + k] /= sum;
    start[jj] = first;
    count[jj] = n;
  }
  return { start, count, weights, maxTaps };
}

/** Options of {@link resampleAxisAligned}. */
export interface ResampleOptions {
  /** Mirror the output horizontally (after the mapping). */
  flipX?: boolean;
  /** Grey value of output pixels that no source pixel covers (0..255). */
  pad?: number;
}

/**
 * Resamples `src` into a new `outWidth x outHeight` RGB image under an axis-aligned mapping.
 * Destination pixels whose centre falls outside the source get `pad`.
 * @param src - source image (HWC RGB uint8).
 * @param mapX - `xDst = xSrc * scale + offset`; `scale > 0`.
 * @param mapY - same for y.
 * @returns the new image; `src` is not modified.
 */
export function resampleAxisAligned(
  src: RgbImage,
  outWidth: number,
  outHeight: number,
  mapX: AxisMap,
  mapY: AxisMap,
  opts: ResampleOptions = {},
): RgbImage {
  if (!(mapX.scale > 0) || !(mapY.scale > 0))
    throw new RangeError(`'scale' must be > 0, got ${mapX.scale}, ${mapY.scale}`);
  const pad = opts.pad ?? 114;
  const sw = src.width;
  const sd = src.data;
  const cols = axisTaps(src.width, outWidth, mapX, opts.flipX === true);
  const rows = axisTaps(src.height, outHeight, mapY, false);
  const out = new Uint8Array(outWidth * outHeight * 3);

  // Source rows that any output row reads.
  let r0 = Infinity;
  let r1 = -1;
  for (let i = 0; i < outHeight; i++) {
    if (rows.start[i] < 0) continue;
    r0 = Math.min(r0, rows.start[i]);
    r1 = Math.max(r1, rows.start[i] + rows.count[i] - 1);
  }
  if (r1 < 0) {
    out.fill(pad);
    return { data: out, width: outWidth, height: outHeight };
  }

  // Horizontal pass: tmp[(r - r0), j, c] for the needed source rows.
  const rowStride = outWidth * 3;
  const tmp = new Float32Array((r1 - r0 + 1) * rowStride);
  const cStart = cols.start;
  const cCount = cols.count;
  const cW = cols.weights;
  const cT = cols.maxTaps;
  for (let r = r0; r <= r1; r++) {
    const srcRow = r * sw * 3;
    let t = (r - r0) * rowStride;
    for (let j = 0; j < outWidth; j++, t += 3) {
      const s = cStart[j];
      if (s < 0) continue;
      const n = cCount[j];
      const wb = j * cT;
      let a = 0;
      let b = 0;
      let c = 0;
      let p = srcRow + s * 3;
      for (let k = 0; k < n; k++, p += 3) {
        const w = cW[wb + k];
        a += sd[p] * w;
        b += sd[p + 1] * w;
        c += sd[p + 2] * w;
      }
      tmp[t] = a;
      tmp[t + 1] = b;
      tmp[t + 2] = c;
    }
  }

  // Vertical pass.
  const rW = rows.weights;
  const rT = rows.maxTaps;
  for (let i = 0; i < outHeight; i++) {
    const o = i * rowStride;
    const s = rows.start[i];
    if (s < 0) {
      out.fill(pad, o, o + rowStride);
      continue;
    }
    const n = rows.count[i];
    const wb = i * rT;
    const tBase = (s - r0) * rowStride;
    for (let j = 0; j < outWidth; j++) {
      const q = o + j * 3;
      if (cStart[j] < 0) {
        out[q] = pad;
        out[q + 1] = pad;
        out[q + 2] = pad;
        continue;
      }
      let a = 0;
      let b = 0;
      let c = 0;
      let t = tBase + j * 3;
      for (let k = 0; k < n; k++, t += rowStride) {
        const w = rW[wb + k];
        a += tmp[t] * w;
        b += tmp[t + 1] * w;
        c += tmp[t + 2] * w;
      }
      // Uint8Array assignment truncates; +0.5 rounds. Non-negative weights keep values in 0..255.
      out[q] = a + 0.5;
      out[q + 1] = b + 0.5;
      out[q + 2] = c + 0.5;
    }
  }
  return { data: out, width: outWidth, height: outHeight };
}
