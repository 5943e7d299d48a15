/**
 * Log-average miss rate MR⁻² (Caltech Pedestrian protocol, as in Dollár's `dbEval.m` /
 * `bbGt.m`, with CityPersons' height subsets), re-implemented from the algorithm:
 *
 * - one class (`classId`); ground truths outside the subset's height range, or flagged `ignore`,
 *   are "ignore" boxes; detections outside the expanded range [min/1.25, max·1.25) are dropped;
 * - per image, detections in score order are matched greedily at IoU ≥ 0.5, preferring
 *   non-ignore ground truths; overlap with an ignore box is intersection / detection area and
 *   one ignore box may absorb many detections; detections on ignore boxes are discarded;
 * - over all images, the miss rate (1 − recall) is traced against false positives per image
 *   (FPPI) for every score threshold, sampled at 9 FPPI points log-spaced in [1e-2, 1]
 *   (the last point with FPPI ≤ ref, or a miss rate of 1 when there is none), and averaged in
 *   log space: MR⁻² = exp(mean(log(max(1e-10, mr)))).
 *
 * Lower is better; values lie in [1e-10, 1]. Pure functions: no tfjs, no I/O. Heights in pixels.
 */

import { boxArea, type BoxXyxy } from '../../models/core/detection.js';
import { validateEvalImages, type EvalImage } from './coco-ap.js';

/** Inclusive ground-truth box-height interval `[min, max]` in pixels (Caltech's `hRng`). */
export type HeightRange = readonly [min: number, max: number];

/** The three reported subsets. */
export interface MissRateSubsets {
  /** Every annotated pedestrian tall enough to be scored. */
  all: HeightRange;
  /** Caltech/CityPersons "Reasonable" (height part only, see {@link evaluateMissRate}). */
  reasonable: HeightRange;
  /** CityPersons "Small". */
  small: HeightRange;
}

/** Default subsets: all [20, ∞], reasonable [50, ∞], small [50, 75] (CityPersons). */
export const MISS_RATE_SUBSETS: Readonly<MissRateSubsets> = Object.freeze({
  all: Object.freeze([20, Infinity] as const),
  reasonable: Object.freeze([50, Infinity] as const),
  small: Object.freeze([50, 75] as const),
});

/** The 9 reference FPPI values 10^(−2:0.25:0) at which the miss rate is sampled. */
export const MISS_RATE_FPPI_REFS: readonly number[] = Object.freeze(
  Array.from({ length: 9 }, (_, i) => 10 ** (-2 + 0.25 * i)),
);

/** Options of {@link evaluateMissRate}; all optional. */
export interface MissRateOptions {
  /** The pedestrian class; ground truths and detections of other classes are left out. Default 0. */
  classId?: number;
  /** Match threshold in (0, 1]. Default 0.5. */
  iouThreshold?: number;
  /** Detections are kept when min/heightExpand ≤ h < max·heightExpand. ≥ 1; default 1.25 (Caltech). */
  heightExpand?: number;
  /** Overrides for some or all of {@link MISS_RATE_SUBSETS}. */
  subsets?: Partial<MissRateSubsets>;
}

/** MR⁻² per subset, in [1e-10, 1] (lower is better); NaN when the subset has no non-ignore ground truth. */
export interface MissRateResult {
  MR2: number;
  MR2Reasonable: number;
  MR2Small: number;
}

/**
 * Miss rate against FPPI, one point per kept (non-discarded) detection in descending score
 * order: point i is the operating point with the top i+1 detections accepted.
 */
export interface MissRateCurve {
  /** False positives per image, non-decreasing. */
  fppi: number[];
  /** 1 − recall, non-increasing, same length as `fppi`. */
  missRate: number[];
  /** Non-ignore ground truths (the recall denominator). */
  numGt: number;
  /** Images in the set, with or without objects (the FPPI denominator). */
  numImages: number;
}

const OPTION_KEYS = ['classId', 'iouThreshold', 'heightExpand', 'subsets'] as const;
const SUBSET_NAMES = ['all', 'reasonable', 'small'] as const;
const FLOOR = 1e-10;

/**
 * MR⁻² for the `all`, `reasonable` and `small` subsets.
 *
 * Deviations from the full benchmarks: there is no visibility filter (CityPersons' Reasonable
 * also needs ≥ 65 % visible; {@link EvalImage} has no visibility) and no Caltech aspect-ratio
 * "squarify" of boxes.
 *
 * @param images - The evaluation set; every image counts in the FPPI denominator.
 * @param options - See {@link MissRateOptions}.
 * @returns `{ MR2, MR2Reasonable, MR2Small }`. A perfect detector gives 1e-10 (the floor), no
 *   detections at all give 1, and a subset without ground truth gives NaN.
 * @throws {TypeError} on a wrong shape or an unknown option key.
 * @throws {RangeError} naming the parameter when a value is out of range.
 *
 * @example
 * ```ts
 * evaluateMissRate([{ id: 0, gts: [{ box: [0, 0, 30, 60], classId: 0 }],
 *   dets: [{ box: [0, 0, 30, 60], score: 0.9, classId: 0 }] }]);
 * // { MR2: ≈1e-10, MR2Reasonable: ≈1e-10, MR2Small: ≈1e-10 } (the floor: nothing missed)
 * ```
 */
export function evaluateMissRate(
  images: readonly EvalImage[],
  options: MissRateOptions = {},
): MissRateResult {
  const opts = resolveMissRateOptions(options);
  validateEvalImages(images);
  const mr = (range: HeightRange): number => {
    const curve = curveFor(images, range, opts);
    return curve.numGt === 0 ? NaN : logAverageMissRate(curve);
  };
  return {
    MR2: mr(opts.subsets.all),
    MR2Reasonable: mr(opts.subsets.reasonable),
    MR2Small: mr(opts.subsets.small),
  };
}

/**
 * The miss-rate/FPPI curve of one height subset (for plots, or to sample differently).
 *
 * @param images - The evaluation set.
 * @param heightRange - Inclusive ground-truth height range in pixels.
 * @param options - `classId`, `iouThreshold`, `heightExpand` as in {@link MissRateOptions}.
 * @returns The curve; empty arrays when no detection survives.
 * @throws {TypeError | RangeError} as {@link evaluateMissRate}.
 */
export function missRateCurve(
  images: readonly EvalImage[],
  heightRange: HeightRange,
  options: Omit<MissRateOptions, 'subsets'> = {},
): MissRateCurve {
  const opts = resolveMissRateOptions(options);
  checkHeightRange(heightRange, 'heightRange');
  validateEvalImages(images);
  return curveFor(images, heightRange, opts);
}

/**
 * Samples a miss-rate/FPPI curve at the reference FPPI values and averages in log space,
 * as Caltech's `bbGt('compRoc')` + `dbEval`: for each ref, the miss rate of the last point
 * with FPPI ≤ ref; when no point qualifies, the curve's implicit start (FPPI −∞, miss rate 1).
 * Each sample is floored at 1e-10 before the log.
 *
 * @param curve - `fppi` non-decreasing and `missRate` of the same length (see {@link MissRateCurve}).
 * @param refs - Reference FPPI values; default {@link MISS_RATE_FPPI_REFS}.
 * @returns exp(mean(log(max(1e-10, mr_i)))), in [1e-10, 1] for miss rates in [0, 1].
 * @throws {RangeError} when the arrays differ in length or `refs` is empty.
 */
export function logAverageMissRate(
  curve: { fppi: readonly number[]; missRate: readonly number[] },
  refs: readonly number[] = MISS_RATE_FPPI_REFS,
): number {
  const { fppi, missRate } = curve;
  if (fppi.length !== missRate.length) {
    throw new RangeError(
      `'curve.missRate' must have the length of 'curve.fppi' (${fppi.length}), got ${missRate.length}`,
    );
  }
  if (refs.length === 0) throw new RangeError(`'refs' must be a non-empty array of FPPI values`);
  let sumLog = 0;
  for (const ref of refs) {
    let j = -1;
    while (j + 1 < fppi.length && fppi[j + 1] <= ref) j++;
    sumLog += Math.log(Math.max(FLOOR, j === -1 ? 1 : missRate[j]));
  }
  return Math.exp(sumLog / refs.length);
}

// #region internals

interface ResolvedMissRateOptions {
  classId: number;
  iouThreshold: number;
  heightExpand: number;
  subsets: MissRateSubsets;
}

function resolveMissRateOptions(options: MissRateOptions): ResolvedMissRateOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`'options' must be an object, got ${options === null ? 'null' : typeof options}`);
  }
  for (const key of Object.keys(options)) {
    if (!(OPTION_KEYS as readonly string[]).includes(key)) {
      throw new TypeError(`'options.${key}' is not an option: expected one of ${OPTION_KEYS.join(', ')}`);
    }
  }
  const { classId = 0, iouThreshold = 0.5, heightExpand = 1.25, subsets = {} } = options;
  if (!(Number.isInteger(classId) && classId >= 0)) {
    throw new RangeError(`'classId' must be a non-negative integer, got ${String(classId)}`);
  }
  if (typeof iouThreshold !== 'number' || !(iouThreshold > 0 && iouThreshold <= 1)) {
    throw new RangeError(`'iouThreshold' must be in (0, 1], got ${String(iouThreshold)}`);
  }
  if (typeof heightExpand !== 'number' || !(heightExpand >= 1 && Number.isFinite(heightExpand))) {
    throw new RangeError(`'heightExpand' must be a finite number >= 1, got ${String(heightExpand)}`);
  }
  if (typeof subsets !== 'object' || subsets === null) {
    throw new TypeError(`'subsets' must be an object, got ${subsets === null ? 'null' : typeof subsets}`);
  }
  for (const key of Object.keys(subsets)) {
    if (!(SUBSET_NAMES as readonly string[]).includes(key)) {
      throw new TypeError(`'subsets.${key}' is not a subset: expected one of ${SUBSET_NAMES.join(', ')}`);
    }
  }
  const resolved = { ...MISS_RATE_SUBSETS, ...subsets };
  for (const name of SUBSET_NAMES) checkHeightRange(resolved[name], `subsets.${name}`);
  return { classId, iouThreshold, heightExpand, subsets: resolved };
}

function checkHeightRange(r: HeightRange, at: string): void {
  if (!Array.isArray(r) || r.length !== 2 || !(r[0] >= 0) || !(r[1] >= r[0])) {
    throw new RangeError(`'${at}' must be [min, max] with 0 <= min <= max (pixels), got ${String(r)}`);
  }
}

const height = (b: BoxXyxy): number => b[3] - b[1];

/** Caltech `evalRes` per image, then `compRoc` over the set. */
function curveFor(
  images: readonly EvalImage[],
  range: HeightRange,
  opts: ResolvedMissRateOptions,
): MissRateCurve {
  const [hMin, hMax] = range;
  const dMin = hMin / opts.heightExpand;
  const dMax = hMax * opts.heightExpand;
  const kept: { score: number; tp: boolean }[] = [];
  let numGt = 0;

  for (const img of images) {
    // Ignore boxes last (stable), so matching prefers real pedestrians.
    const gts = img.gts
      .filter((g) => g.classId === opts.classId)
      .map((g) => {
        const h = height(g.box);
        return { box: g.box, ignore: g.ignore === true || h < hMin || h > hMax };
      })
      .sort((a, b) => Number(a.ignore) - Number(b.ignore));
    const dets = img.dets
      .filter((d) => d.classId === opts.classId && height(d.box) >= dMin && height(d.box) < dMax)
      .sort((a, b) => b.score - a.score);
    numGt += gts.reduce((n, g) => n + (g.ignore ? 0 : 1), 0);

    const matched = new Uint8Array(gts.length);
    for (const d of dets) {
      let best = opts.iouThreshold;
      let bestG = -1;
      for (let k = 0; k < gts.length; k++) {
        if (matched[k] === 1) continue; // only non-ignore boxes are ever marked
        if (bestG !== -1 && gts[k].ignore) break; // any match beats an ignore box
        const o = overlap(d.box, gts[k].box, gts[k].ignore);
        if (o < best) continue;
        best = o;
        bestG = k;
      }
      if (bestG === -1) kept.push({ score: d.score, tp: false });
      else if (!gts[bestG].ignore) {
        matched[bestG] = 1;
        kept.push({ score: d.score, tp: true });
      } // else: on an ignore box, discarded
    }
  }

  kept.sort((a, b) => b.score - a.score); // stable: ties keep image order
  const fppi: number[] = [];
  const missRate: number[] = [];
  let tp = 0;
  let fp = 0;
  for (const k of kept) {
    if (k.tp) tp++;
    else fp++;
    fppi.push(fp / images.length);
    missRate.push(numGt === 0 ? NaN : 1 - tp / numGt);
  }
  return { fppi, missRate, numGt, numImages: images.length };
}

/** IoU, or intersection / detection area against an ignore box (Caltech `compOas`). */
function overlap(det: BoxXyxy, gt: BoxXyxy, ignore: boolean): number {
  const iw = Math.min(det[2], gt[2]) - Math.max(det[0], gt[0]);
  const ih = Math.min(det[3], gt[3]) - Math.max(det[1], gt[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = ignore ? boxArea(det) : boxArea(det) + boxArea(gt) - inter;
  return union > 0 ? inter / union : 0;
}

// #endregion
