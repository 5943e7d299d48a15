/**
 * Training augmentation in pure JS on an {@link RgbImage}: random zoom (in = crop, out = pad),
 * random placement, horizontal flip and colour jitter, producing the network-input-sized image
 * in one resampling pass, with boxes moved exactly as the pixels were.
 *
 * Geometry: the image is first fitted as the spec's resize mode says (letterbox or stretch),
 * then scaled by a log-uniform zoom and placed at a uniform random offset: `xOut = x * scaleX +
 * offsetX` (then `W - xOut` when flipped). Boxes are clipped to the output; a box keeping less
 * than `minVisible` of its area, or thinner than `minSize` px, is dropped (or kept as an ignore
 * region with `partialAsIgnore`), so a person cut to a sliver is never a positive.
 */
import type { Annotation, BoxXyxy } from '../../models/core/detection.js';
import { LETTERBOX_PAD, letterboxTransform, type ResizeMode } from './image.js';
import { resampleAxisAligned } from './resample.js';
import type { Rng } from './rng.js';
import type { RgbImage } from './types.js';

/** Augmentation settings; every field has a default suited to pedestrian training. */
export interface AugmentOptions {
  /** Zoom range relative to the fitted size, log-uniform (default `[0.6, 1.6]`; > 1 crops). */
  scale?: [number, number];
  /** Max relative change of the x scale against the y scale, log-uniform (default 0: none). */
  aspectJitter?: number;
  /** Probability of a horizontal flip (default 0.5). */
  flipProb?: number;
  /** Max relative brightness change (default 0.25: factor in [0.75, 1.25]). */
  brightness?: number;
  /** Max relative contrast change around the mean grey (default 0.25). */
  contrast?: number;
  /** Max relative saturation change (default 0.3). */
  saturation?: number;
  /** Max hue rotation as a fraction of a full turn (default 0.02). */
  hue?: number;
  /** Boxes keeping less than this share of their area after clipping are dropped (default 0.3). */
  minVisible?: number;
  /** Boxes narrower or shorter than this many output px are dropped (default 2). */
  minSize?: number;
  /** Keep boxes failing `minVisible` as ignore regions instead of dropping them (default false). */
  partialAsIgnore?: boolean;
  /** Grey of padded pixels (default 114). */
  pad?: number;
  /** How the image is fitted before the zoom (default `'letterbox'`). */
  resize?: ResizeMode;
}

/** The geometry an augmentation applied: `x' = x * scaleX + offsetX`, then mirrored if `flipX`. */
export interface AugmentTransform {
  scaleX: number;
  scaleY: number;
  offsetX: number;
  offsetY: number;
  flipX: boolean;
  /** Output size. */
  width: number;
  height: number;
}

/** Output of {@link augmentSample}. */
export interface AugmentResult {
  image: RgbImage;
  annotations: Annotation[];
  transform: AugmentTransform;
}

/**
 * Maps boxes through an augmentation transform, clipping and filtering them.
 * @returns the surviving annotations in output pixels (ignore flags and track ids kept).
 */
export function transformAnnotations(
  annotations: Annotation[],
  t: AugmentTransform,
  opts: Pick<AugmentOptions, 'minVisible' | 'minSize' | 'partialAsIgnore'> = {},
): Annotation[] {
  const minVisible = opts.minVisible ?? 0.3;
  const minSize = opts.minSize ?? 2;
  const out: Annotation[] = [];
  for (const a of annotations) {
    let x1 = a.box[0] * t.scaleX + t.offsetX;
    let x2 = a.box[2] * t.scaleX + t.offsetX;
    if (t.flipX) [x1, x2] = [t.width - x2, t.width - x1];
    const y1 = a.box[1] * t.scaleY + t.offsetY;
    const y2 = a.box[3] * t.scaleY + t.offsetY;
    const area = (x2 - x1) * (y2 - y1);
    const c: BoxXyxy = [Math.max(0, x1), Math.max(0, y1), Math.min(t.width, x2), Math.min(t.height, y2)];
    const cw = c[2] - c[0];
    const ch = c[3] - c[1];
    if (!(cw > 0 && ch > 0 && area > 0)) continue;
    let ignore = a.ignore === true;
    if (ignore) {
      if (cw < 1 || ch < 1) continue;
    } else {
      if (cw < minSize || ch < minSize) continue;
      if ((cw * ch) / area < minVisible) {
        if (!opts.partialAsIgnore) continue;
        ignore = true;
      }
    }
    const ann: Annotation = { ...a, box: c };
    if (ignore) ann.ignore = true;
    out.push(ann);
  }
  return out;
}

/** 3x4 affine colour transform, row-major: `out = M * rgb + b`. */
type ColourAffine = Float64Array;

function mul(a: ColourAffine, b: ColourAffine): ColourAffine {
  // (a ∘ b)(x) = A(Bx + b_b) + b_a
  const o = new Float64Array(12);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++)
      o[r * 4 + c] = a[r * 4] * b[c] + a[r * 4 + 1] * b[4 + c] + a[r * 4 + 2] * b[8 + c];
    o[r * 4 + 3] = a[r * 4] * b[3] + a[r * 4 + 1] * b[7] + a[r * 4 + 2] * b[11] + a[r * 4 + 3];
  }
  return o;
}

function colourJitterMatrix(
  rng: Rng,
  meanGrey: number,
  o: Required<Pick<AugmentOptions, 'brightness' | 'contrast' | 'saturation' | 'hue'>>,
): ColourAffine {
  const fb = 1 + rng.uniform(-o.brightness, o.brightness);
  const fc = 1 + rng.uniform(-o.contrast, o.contrast);
  const fs = 1 + rng.uniform(-o.saturation, o.saturation);
  const th = rng.uniform(-o.hue, o.hue) * 2 * Math.PI;
  const bright = Float64Array.from([fb, 0, 0, 0, 0, fb, 0, 0, 0, 0, fb, 0]);
  const m = meanGrey * fb * (1 - fc);
  const contrast = Float64Array.from([fc, 0, 0, m, 0, fc, 0, m, 0, 0, fc, m]);
  const L = [0.299, 0.587, 0.114];
  const sat = new Float64Array(12);
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 3; c++) sat[r * 4 + c] = (r === c ? fs : 0) + (1 - fs) * L[c];
  // Hue: rotation about the grey axis (1,1,1)/sqrt(3) (Rodrigues).
  const cos = Math.cos(th);
  const sin = Math.sin(th);
  const k = 1 / Math.sqrt(3);
  const t = (1 - cos) / 3;
  const hue = Float64Array.from([
    cos + t,
    t - k * sin,
    t + k * sin,
    0,
    t + k * sin,
    cos + t,
    t - k * sin,
    0,
    t - k * sin,
    t + k * sin,
    cos + t,
    0,
  ]);
  return mul(hue, mul(sat, mul(contrast, bright)));
}

/** Applies a colour affine in place to pixels of rows [y0, y1) and columns [x0, x1). */
function applyColour(img: RgbImage, M: ColourAffine, x0: number, x1: number, y0: number, y1: number): void {
  const d = img.data;
  const [m0, m1, m2, b0, m4, m5, m6, b1, m8, m9, m10, b2] = M;
  for (let y = y0; y < y1; y++) {
    let q = (y * img.width + x0) * 3;
    for (let x = x0; x < x1; x++, q += 3) {
      const r = d[q];
      const g = d[q + 1];
      const b = d[q + 2];
      const nr = m0 * r + m1 * g + m2 * b + b0 + 0.5;
      const ng = m4 * r + m5 * g + m6 * b + b1 + 0.5;
      const nb = m8 * r + m9 * g + m10 * b + b2 + 0.5;
      d[q] = nr < 0 ? 0 : nr > 255 ? 255 : nr;
      d[q + 1] = ng < 0 ? 0 : ng > 255 ? 255 : ng;
      d[q + 2] = nb < 0 ? 0 : nb > 255 ? 255 : nb;
    }
  }
}

/** Mean of (r+g+b)/3 over a subsample of pixels in a rectangle. */
function meanGreyOf(img: RgbImage, x0: number, x1: number, y0: number, y1: number): number {
  const d = img.data;
  let sum = 0;
  let n = 0;
  for (let y = y0; y < y1; y += 4) {
    for (let x = x0; x < x1; x += 4) {
      const q = (y * img.width + x) * 3;
      sum += d[q] + d[q + 1] + d[q + 2];
      n += 3;
    }
  }
  return n > 0 ? sum / n : 128;
}

/**
 * Augments one sample into a `height x width` image.
 * @param img - the decoded source image.
 * @param annotations - boxes in source pixels.
 * @param rng - the sample's own stream (seed it from (seed, epoch, sample) for reproducibility).
 * @returns the output image, boxes in output pixels and the transform applied.
 */
export function augmentSample(
  img: RgbImage,
  annotations: Annotation[],
  height: number,
  width: number,
  rng: Rng,
  opts: AugmentOptions = {},
): AugmentResult {
  const [zLo, zHi] = opts.scale ?? [0.6, 1.6];
  if (!(zLo > 0 && zHi >= zLo))
    throw new RangeError(`'scale' must be [lo, hi] with 0 < lo <= hi, got [${zLo}, ${zHi}]`);
  const fit = letterboxTransform(img.width, img.height, height, width, opts.resize ?? 'letterbox');
  const zoom = rng.logUniform(zLo, zHi + 1e-12);
  const aj = opts.aspectJitter ?? 0;
  const ar = aj > 0 ? rng.logUniform(1 / (1 + aj), 1 + aj) : 1;
  const scaleX = fit.scaleX * zoom * Math.sqrt(ar);
  const scaleY = (fit.scaleY * zoom) / Math.sqrt(ar);
  const sw = img.width * scaleX;
  const sh = img.height * scaleY;
  // Uniform placement: padded on both sides when smaller, cropped anywhere when larger.
  const offsetX = Math.round(sw <= width ? rng.uniform(0, width - sw) : rng.uniform(width - sw, 0));
  const offsetY = Math.round(sh <= height ? rng.uniform(0, height - sh) : rng.uniform(height - sh, 0));
  const flipX = rng.chance(opts.flipProb ?? 0.5);
  const transform: AugmentTransform = { scaleX, scaleY, offsetX, offsetY, flipX, width, height };

  const image = resampleAxisAligned(
    img,
    width,
    height,
    { scale: scaleX, offset: offsetX },
    { scale: scaleY, offset: offsetY },
    { flipX, pad: opts.pad ?? LETTERBOX_PAD },
  );

  // Colour jitter on the image area only (padding stays the constant grey the runtime uses).
  let cx0 = Math.max(0, Math.ceil(offsetX - 0.5));
  let cx1 = Math.min(width, Math.ceil(offsetX + sw - 0.5));
  if (flipX) [cx0, cx1] = [width - cx1, width - cx0];
  const cy0 = Math.max(0, Math.ceil(offsetY - 0.5));
  const cy1 = Math.min(height, Math.ceil(offsetY + sh - 0.5));
  const jit = {
    brightness: opts.brightness ?? 0.25,
    contrast: opts.contrast ?? 0.25,
    saturation: opts.saturation ?? 0.3,
    hue: opts.hue ?? 0.02,
  };
  if (
    cx1 > cx0 &&
    cy1 > cy0 &&
    (jit.brightness > 0 || jit.contrast > 0 || jit.saturation > 0 || jit.hue > 0)
  ) {
    const M = colourJitterMatrix(rng, meanGreyOf(image, cx0, cx1, cy0, cy1), jit);
    applyColour(image, M, cx0, cx1, cy0, cy1);
  }
  return { image, annotations: transformAnnotations(annotations, transform, opts), transform };
}
