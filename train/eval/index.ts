/**
 * Detection evaluation: COCO AP/AR ({@link evaluateCocoAp}) and the pedestrian log-average miss
 * rate ({@link evaluateMissRate}), plus {@link evaluateDetections}, which runs both and returns one
 * flat record for logs and checkpoints. Pure functions: no tfjs, no I/O.
 */

import { evaluateCocoAp, type CocoApOptions, type EvalImage } from './coco-ap.js';
import { evaluateMissRate, type MissRateOptions } from './miss-rate.js';

export {
  COCO_AREA_RANGES,
  COCO_IOU_THRESHOLDS,
  COCO_RECALL_THRESHOLDS,
  evaluateCocoAp,
  validateEvalImages,
  type AreaRange,
  type CocoApOptions,
  type CocoApResult,
  type CocoAreaRanges,
  type CocoClassResult,
  type EvalImage,
} from './coco-ap.js';
export {
  MISS_RATE_FPPI_REFS,
  MISS_RATE_SUBSETS,
  evaluateMissRate,
  logAverageMissRate,
  missRateCurve,
  type HeightRange,
  type MissRateCurve,
  type MissRateOptions,
  type MissRateResult,
  type MissRateSubsets,
} from './miss-rate.js';

/**
 * The keys of {@link evaluateDetections}' record, in display order. AP* and AR100 are in [0, 1]
 * (higher is better, -1 = undefined); MR2* are in [1e-10, 1] (lower is better, NaN = undefined).
 */
export const EVAL_METRIC_KEYS = Object.freeze([
  'AP',
  'AP50',
  'AP75',
  'APsmall',
  'APmedium',
  'APlarge',
  'AR100',
  'MR2',
  'MR2Reasonable',
  'MR2Small',
] as const);

/** One of {@link EVAL_METRIC_KEYS}. */
export type EvalMetricKey = (typeof EVAL_METRIC_KEYS)[number];

/** Options of {@link evaluateDetections}: one block per evaluator. */
export interface EvaluateOptions {
  /** Passed to {@link evaluateCocoAp}. */
  coco?: CocoApOptions;
  /** Passed to {@link evaluateMissRate}. */
  missRate?: MissRateOptions;
}

/**
 * Runs both evaluators over the same images and merges their summaries into one flat record
 * (per-class figures are left out; call {@link evaluateCocoAp} for those).
 *
 * @param images - The evaluation set (see {@link EvalImage}).
 * @param options - `{ coco?, missRate? }`.
 * @returns `{ AP, AP50, AP75, APsmall, APmedium, APlarge, AR100, MR2, MR2Reasonable, MR2Small }`.
 * @throws {TypeError} on a wrong shape or an unknown option key.
 * @throws {RangeError} naming the parameter when a value is out of range.
 *
 * @example
 * ```ts
 * const m = evaluateDetections([{ id: 0, gts: [{ box: [0, 0, 30, 60], classId: 0 }],
 *   dets: [{ box: [0, 0, 30, 60], score: 0.9, classId: 0 }] }]);
 * // m.AP ≈ 1, m.APmedium ≈ 1 (1800 px²), m.APsmall = -1 (no small GT), m.MR2 ≈ 1e-10
 * ```
 */
export function evaluateDetections(
  images: readonly EvalImage[],
  options: EvaluateOptions = {},
): Record<EvalMetricKey, number> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`'options' must be an object, got ${options === null ? 'null' : typeof options}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'coco' && key !== 'missRate') {
      throw new TypeError(`'options.${key}' is not an option: expected one of coco, missRate`);
    }
  }
  const { perClass: _perClass, ...ap } = evaluateCocoAp(images, options.coco);
  return { ...ap, ...evaluateMissRate(images, options.missRate) };
}
