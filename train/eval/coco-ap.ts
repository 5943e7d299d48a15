/**
 * COCO-style average precision for box detections, computed the way pycocotools'
 * `COCOeval` (iouType 'bbox') does it, re-implemented from the algorithm:
 *
 * - per image and class, detections are sorted by score (stable) and cut to `maxDets`;
 * - ground truths that are `ignore` (treated as COCO `iscrowd`) or whose box area is outside
 *   the area range are "ignored": a detection matched to one is neither TP nor FP;
 * - greedy matching in score order, per IoU threshold, preferring non-ignored ground truths;
 *   crowd (`ignore`) boxes use IoU = intersection / detection area and may absorb many detections;
 * - unmatched detections whose area is outside the range are ignored too;
 * - precision is made monotone from the right and sampled at 101 recall points (0, 0.01, …, 1)
 *   with a left search; AP is the mean over IoU thresholds, recall points and classes that have
 *   at least one non-ignored ground truth.
 *
 * Checked against pycocotools 2.0.11 (`COCOeval`, iouType 'bbox') on randomized sets with crowd
 * boxes, score ties and `maxDets` truncation: all summary figures agree to 1e-12. Known differences:
 * - areas are box areas (w·h); pycocotools reads the annotation's `area` field, which for COCO
 *   itself is the segmentation area — on bbox-only datasets the two coincide;
 * - detections with equal scores in different images keep the order of `images`; pycocotools
 *   orders images by sorted id (identical when `images` is sorted by id);
 * - `AP50`/`AP75` look the threshold up with a 1e-9 tolerance, so custom thresholds typed as
 *   0.75 are found; pycocotools compares exactly. AR100 means AR at `maxDets` (100 by default).
 *
 * Pure functions: no tfjs, no I/O. Boxes are xyxy in pixels, areas in pixels².
 */

import { boxArea, type Annotation, type BoxXyxy, type Detection } from '../../models/core/detection.js';

/** One evaluated image: its ground truths and the detector's output on it, same pixel space. */
export interface EvalImage {
  /** Unique within one evaluation; only used for error messages and duplicate checks. */
  id: string | number;
  gts: Annotation[];
  dets: Detection[];
}

/** Inclusive box-area interval `[min, max]` in pixels², as pycocotools' `areaRng`. */
export type AreaRange = readonly [min: number, max: number];

/** The four COCO area ranges, by name. */
export interface CocoAreaRanges {
  all: AreaRange;
  small: AreaRange;
  medium: AreaRange;
  large: AreaRange;
}

/** pycocotools' default area ranges: all [0, 1e10], small [0, 32²], medium [32², 96²], large [96², 1e10]. */
export const COCO_AREA_RANGES: Readonly<CocoAreaRanges> = Object.freeze({
  all: Object.freeze([0, 1e10] as const),
  small: Object.freeze([0, 32 ** 2] as const),
  medium: Object.freeze([32 ** 2, 96 ** 2] as const),
  large: Object.freeze([96 ** 2, 1e10] as const),
});

/**
 * IoU thresholds 0.50:0.05:0.95, bit-for-bit the values of numpy's `linspace(.5, .95, 10)`
 * (so a box at IoU exactly 0.6 passes the 0.6 threshold, as it does in pycocotools).
 */
export const COCO_IOU_THRESHOLDS: readonly number[] = Object.freeze(linspace(0.5, 0.95, 10));

/** Recall sampling points 0, 0.01, …, 1 (101 values, numpy `linspace(0, 1, 101)` bit-for-bit). */
export const COCO_RECALL_THRESHOLDS: readonly number[] = Object.freeze(linspace(0, 1, 101));

/** Options of {@link evaluateCocoAp}. Every field is optional; defaults are pycocotools'. */
export interface CocoApOptions {
  /**
   * Number of classes; classes are `0 … numClasses-1` and any `classId` outside that range is a
   * RangeError. Default: the classes that occur in the input (classes with no ground truth are
   * excluded from the mean either way, so this only adds validation).
   */
  numClasses?: number;
  /** Detections kept per image and class, top-scored first. Default 100. */
  maxDets?: number;
  /** IoU thresholds in (0, 1]. Default {@link COCO_IOU_THRESHOLDS}. */
  iouThresholds?: readonly number[];
  /** Overrides for some or all of {@link COCO_AREA_RANGES}. */
  areaRanges?: Partial<CocoAreaRanges>;
}

/** Per-class figures (area 'all', `maxDets`). */
export interface CocoClassResult {
  classId: number;
  /** Non-ignored ground truths of this class (area 'all'). */
  numGt: number;
  /** AP over all IoU thresholds; -1 when `numGt` is 0. */
  AP: number;
  /** AP at IoU 0.5; -1 when `numGt` is 0 or 0.5 is not among the thresholds. */
  AP50: number;
}

/**
 * COCO summary figures, each in [0, 1] (higher is better), or -1 when no class has a non-ignored
 * ground truth in that area range (or the requested IoU threshold is not evaluated), as
 * pycocotools prints it. `AR100` is the mean recall at `maxDets` (100 by default).
 */
export interface CocoApResult {
  AP: number;
  AP50: number;
  AP75: number;
  APsmall: number;
  APmedium: number;
  APlarge: number;
  AR100: number;
  /** Sorted by classId; one entry per class evaluated. */
  perClass: CocoClassResult[];
}

const AREA_NAMES = ['all', 'small', 'medium', 'large'] as const;
const OPTION_KEYS = ['numClasses', 'maxDets', 'iouThresholds', 'areaRanges'] as const;
/** numpy's `np.spacing(1)`, added to the precision denominator by pycocotools. */
const EPS = Number.EPSILON;

/**
 * COCO box AP/AR over a set of images.
 *
 * @param images - The evaluation set; image ids must be unique. Images with neither ground truth
 *   nor detections change nothing; images with detections but no ground truth add false positives.
 * @param options - See {@link CocoApOptions}.
 * @returns The summary figures (see {@link CocoApResult}; -1 means "not defined").
 * @throws {TypeError} when `images` or `options` has the wrong shape or an unknown option key.
 * @throws {RangeError} naming the parameter when a value is out of range.
 *
 * @example
 * ```ts
 * const r = evaluateCocoAp([{ id: 1, gts: [{ box: [0, 0, 40, 80], classId: 0 }],
 *   dets: [{ box: [0, 0, 40, 80], score: 0.9, classId: 0 }] }]);
 * r.AP50; // ≈ 1 (pycocotools gives 1/(1+2^-52) for a perfect detector)
 * ```
 */
export function evaluateCocoAp(images: readonly EvalImage[], options: CocoApOptions = {}): CocoApResult {
  const opts = resolveCocoOptions(options);
  validateEvalImages(images, opts.numClasses);
  const { maxDets, iouThresholds } = opts;
  const numT = iouThresholds.length;
  const ranges = AREA_NAMES.map((n) => opts.areaRanges[n]);

  const classIds = collectClassIds(images, opts.numClasses);
  // per class, per area range: precision [T][R] flattened, recall [T]; null when no non-ignored GT.
  const precision: (Float64Array | null)[][] = [];
  const recall: (Float64Array | null)[][] = [];
  const numGtAll: number[] = [];

  for (const classId of classIds) {
    const cells = images
      .map((img) => prepareCell(img, classId, maxDets))
      .filter((c): c is Cell => c !== null);
    // All detections of the class in image order, then one stable sort by score: the merged
    // order is the same for every area range, only the TP/FP/ignored status changes.
    const offsets: number[] = [];
    let numDets = 0;
    for (const cell of cells) {
      offsets.push(numDets);
      numDets += cell.scores.length;
    }
    const scores = new Float64Array(numDets);
    cells.forEach((cell, c) => scores.set(cell.scores, offsets[c]));
    const order = Uint32Array.from({ length: numDets }, (_, i) => i).sort(
      (a, b) => scores[b] - scores[a] || a - b,
    );
    const pByArea: (Float64Array | null)[] = [];
    const rByArea: (Float64Array | null)[] = [];
    ranges.forEach((range, a) => {
      const status = new Uint8Array(numT * numDets);
      let numGt = 0;
      cells.forEach((cell, c) => {
        numGt += matchCell(cell, range, iouThresholds, status, offsets[c], numDets);
      });
      const acc = numGt === 0 ? null : accumulate(status, order, numGt, numT);
      pByArea.push(acc?.precision ?? null);
      rByArea.push(acc?.recall ?? null);
      if (a === 0) numGtAll.push(numGt);
    });
    precision.push(pByArea);
    recall.push(rByArea);
  }

  const t50 = thresholdIndex(iouThresholds, 0.5);
  const t75 = thresholdIndex(iouThresholds, 0.75);
  const ap = (area: number, t: number | null): number =>
    t === -1
      ? -1
      : meanOver(
          precision.map((byArea) => byArea[area]),
          numT,
          t,
        );
  return {
    AP: ap(0, null),
    AP50: ap(0, t50),
    AP75: ap(0, t75),
    APsmall: ap(1, null),
    APmedium: ap(2, null),
    APlarge: ap(3, null),
    AR100: meanOver(
      recall.map((byArea) => byArea[0]),
      numT,
      null,
    ),
    perClass: classIds.map((classId, k) => ({
      classId,
      numGt: numGtAll[k],
      AP: meanOver([precision[k][0]], numT, null),
      AP50: t50 === -1 ? -1 : meanOver([precision[k][0]], numT, t50),
    })),
  };
}

/**
 * Checks the shape of an evaluation set: unique ids, finite xyxy boxes with x2 ≥ x1 and y2 ≥ y1,
 * finite scores, non-negative integer class ids (below `numClasses` when given).
 * Shared by the AP and miss-rate evaluators.
 *
 * @param images - The evaluation set.
 * @param numClasses - Optional exclusive upper bound on `classId`.
 * @throws {TypeError} on a wrong type, naming the path (`'images[3].dets[0].score'`).
 * @throws {RangeError} on a value out of range or a duplicate image id.
 */
export function validateEvalImages(images: readonly EvalImage[], numClasses?: number): void {
  if (!Array.isArray(images))
    throw new TypeError(`'images' must be an array of EvalImage, got ${typeOf(images)}`);
  const seen = new Set<string | number>();
  images.forEach((img, i) => {
    const at = `images[${i}]`;
    if (typeof img !== 'object' || img === null)
      throw new TypeError(`'${at}' must be an object, got ${typeOf(img)}`);
    if (typeof img.id !== 'string' && typeof img.id !== 'number') {
      throw new TypeError(`'${at}.id' must be a string or a number, got ${typeOf(img.id)}`);
    }
    if (seen.has(img.id))
      throw new RangeError(`'${at}.id' must be unique, got duplicate ${JSON.stringify(img.id)}`);
    seen.add(img.id);
    if (!Array.isArray(img.gts)) throw new TypeError(`'${at}.gts' must be an array, got ${typeOf(img.gts)}`);
    if (!Array.isArray(img.dets))
      throw new TypeError(`'${at}.dets' must be an array, got ${typeOf(img.dets)}`);
    img.gts.forEach((g: Annotation, j: number) => {
      checkBox(g?.box, `${at}.gts[${j}].box`);
      checkClassId(g.classId, `${at}.gts[${j}].classId`, numClasses);
      if (g.ignore !== undefined && typeof g.ignore !== 'boolean') {
        throw new TypeError(`'${at}.gts[${j}].ignore' must be a boolean, got ${typeOf(g.ignore)}`);
      }
    });
    img.dets.forEach((d: Detection, j: number) => {
      checkBox(d?.box, `${at}.dets[${j}].box`);
      checkClassId(d.classId, `${at}.dets[${j}].classId`, numClasses);
      if (typeof d.score !== 'number' || !Number.isFinite(d.score)) {
        throw new RangeError(`'${at}.dets[${j}].score' must be a finite number, got ${String(d.score)}`);
      }
    });
  });
}

// #region internals

interface ResolvedCocoOptions {
  numClasses: number | undefined;
  maxDets: number;
  iouThresholds: readonly number[];
  areaRanges: CocoAreaRanges;
}

/** One (image, class) pair, ready for matching: dets sorted and truncated, IoU matrix computed. */
interface Cell {
  scores: Float64Array; // [D], descending
  detArea: Float64Array; // [D]
  gtArea: Float64Array; // [G]
  gtCrowd: Uint8Array; // [G]
  ious: Float64Array; // [D * G], row = detection
}

/** Detection status codes in the `status` arrays. */
const FP = 0;
const TP = 1;
const IGNORED = 2;

function resolveCocoOptions(options: CocoApOptions): ResolvedCocoOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`'options' must be an object, got ${typeOf(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!(OPTION_KEYS as readonly string[]).includes(key)) {
      throw new TypeError(`'options.${key}' is not an option: expected one of ${OPTION_KEYS.join(', ')}`);
    }
  }
  const { numClasses, maxDets = 100, iouThresholds = COCO_IOU_THRESHOLDS, areaRanges = {} } = options;
  if (numClasses !== undefined && !(Number.isInteger(numClasses) && numClasses >= 1)) {
    throw new RangeError(`'numClasses' must be a positive integer, got ${String(numClasses)}`);
  }
  if (!(Number.isInteger(maxDets) && maxDets >= 1)) {
    throw new RangeError(`'maxDets' must be a positive integer, got ${String(maxDets)}`);
  }
  if (!Array.isArray(iouThresholds) || iouThresholds.length === 0) {
    throw new RangeError(`'iouThresholds' must be a non-empty array of numbers in (0, 1]`);
  }
  iouThresholds.forEach((t, i) => {
    if (typeof t !== 'number' || !(t > 0 && t <= 1)) {
      throw new RangeError(`'iouThresholds[${i}]' must be in (0, 1], got ${String(t)}`);
    }
  });
  if (typeof areaRanges !== 'object' || areaRanges === null) {
    throw new TypeError(`'areaRanges' must be an object, got ${typeOf(areaRanges)}`);
  }
  for (const key of Object.keys(areaRanges)) {
    if (!(AREA_NAMES as readonly string[]).includes(key)) {
      throw new TypeError(
        `'areaRanges.${key}' is not an area range: expected one of ${AREA_NAMES.join(', ')}`,
      );
    }
  }
  const resolved = { ...COCO_AREA_RANGES, ...areaRanges };
  for (const name of AREA_NAMES) {
    const r = resolved[name];
    if (!Array.isArray(r) || r.length !== 2 || !(r[0] >= 0) || !(r[1] >= r[0])) {
      throw new RangeError(
        `'areaRanges.${name}' must be [min, max] with 0 <= min <= max, got ${JSON.stringify(r)}`,
      );
    }
  }
  return { numClasses, maxDets, iouThresholds, areaRanges: resolved };
}

/** Classes to evaluate: 0…numClasses-1, or the sorted ids that occur in the input. */
function collectClassIds(images: readonly EvalImage[], numClasses: number | undefined): number[] {
  if (numClasses !== undefined) return Array.from({ length: numClasses }, (_, i) => i);
  const ids = new Set<number>();
  for (const img of images) {
    for (const g of img.gts) ids.add(g.classId);
    for (const d of img.dets) ids.add(d.classId);
  }
  return [...ids].sort((a, b) => a - b);
}

function prepareCell(img: EvalImage, classId: number, maxDets: number): Cell | null {
  const gts = img.gts.filter((g) => g.classId === classId);
  // Stable sort: ties keep input order, as numpy's mergesort does.
  const dets = img.dets
    .filter((d) => d.classId === classId)
    .sort((a, b) => b.score - a.score)
    .slice(0, maxDets);
  if (gts.length === 0 && dets.length === 0) return null;
  const numG = gts.length;
  const ious = new Float64Array(dets.length * numG);
  dets.forEach((d, i) => {
    gts.forEach((g, j) => {
      ious[i * numG + j] = overlap(d.box, g.box, g.ignore === true);
    });
  });
  return {
    scores: Float64Array.from(dets, (d) => d.score),
    detArea: Float64Array.from(dets, (d) => boxArea(d.box)),
    gtArea: Float64Array.from(gts, (g) => boxArea(g.box)),
    gtCrowd: Uint8Array.from(gts, (g) => (g.ignore === true ? 1 : 0)),
    ious,
  };
}

/**
 * IoU of a detection with a ground truth; for a crowd ground truth, intersection over the
 * detection's area (pycocotools' `iscrowd` rule), so a small box inside a crowd region scores 1.
 */
function overlap(det: BoxXyxy, gt: BoxXyxy, crowd: boolean): number {
  const iw = Math.min(det[2], gt[2]) - Math.max(det[0], gt[0]);
  const ih = Math.min(det[3], gt[3]) - Math.max(det[1], gt[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = crowd ? boxArea(det) : boxArea(det) + boxArea(gt) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * pycocotools `evaluateImg` for one cell and one area range, all IoU thresholds. Writes the
 * status of detection d at threshold t to `status[t * stride + offset + d]`; returns the number
 * of non-ignored ground truths.
 */
function matchCell(
  cell: Cell,
  range: AreaRange,
  iouThresholds: readonly number[],
  status: Uint8Array,
  offset: number,
  stride: number,
): number {
  const [lo, hi] = range;
  const numD = cell.scores.length;
  const numG = cell.gtArea.length;
  const gtIgnored = (g: number): boolean =>
    cell.gtCrowd[g] === 1 || cell.gtArea[g] < lo || cell.gtArea[g] > hi;
  // Non-ignored ground truths first (stable), so matching prefers them.
  const order = Array.from({ length: numG }, (_, g) => g).sort(
    (a, b) => Number(gtIgnored(a)) - Number(gtIgnored(b)),
  );
  const ig = Uint8Array.from(order, (g) => (gtIgnored(g) ? 1 : 0));
  const crowd = Uint8Array.from(order, (g) => cell.gtCrowd[g]);
  const numGt = ig.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
  const taken = new Uint8Array(numG);

  iouThresholds.forEach((t, ti) => {
    taken.fill(0);
    for (let d = 0; d < numD; d++) {
      let best = Math.min(t, 1 - 1e-10);
      let m = -1;
      for (let k = 0; k < numG; k++) {
        if (taken[k] === 1 && crowd[k] === 0) continue; // a non-crowd GT matches once
        if (m > -1 && ig[m] === 0 && ig[k] === 1) break; // already on a real GT: ignored ones can't win
        const o = cell.ious[d * numG + order[k]];
        if (o < best) continue;
        best = o;
        m = k;
      }
      let s: number;
      if (m === -1) {
        const a = cell.detArea[d];
        s = a < lo || a > hi ? IGNORED : FP; // an unmatched det outside the range is not an FP
      } else {
        taken[m] = 1;
        s = ig[m] === 1 ? IGNORED : TP;
      }
      status[ti * stride + offset + d] = s;
    }
  });
  return numGt;
}

/**
 * pycocotools `accumulate` for one class and area range: walk the detections of all images in
 * merged score order, build the PR curve per IoU threshold and sample it at the recall points.
 * `status` is [T * N] (see {@link matchCell}), `order` the score-descending permutation of N.
 */
function accumulate(
  status: Uint8Array,
  order: Uint32Array,
  numGt: number,
  numT: number,
): { precision: Float64Array; recall: Float64Array } {
  const numR = COCO_RECALL_THRESHOLDS.length;
  const precision = new Float64Array(numT * numR);
  const recall = new Float64Array(numT);
  const nd = order.length;
  const rc = new Float64Array(nd);
  const pr = new Float64Array(nd);
  for (let t = 0; t < numT; t++) {
    let tp = 0;
    let fp = 0;
    for (let i = 0; i < nd; i++) {
      const s = status[t * nd + order[i]];
      if (s === TP) tp++;
      else if (s === FP) fp++;
      rc[i] = tp / numGt;
      pr[i] = tp / (tp + fp + EPS);
    }
    recall[t] = nd > 0 ? rc[nd - 1] : 0;
    for (let i = nd - 1; i > 0; i--) if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
    // searchsorted(rc, r, 'left'): first index with rc >= r; past the end the precision stays 0.
    let idx = 0;
    for (let r = 0; r < numR; r++) {
      while (idx < nd && rc[idx] < COCO_RECALL_THRESHOLDS[r]) idx++;
      if (idx >= nd) break;
      precision[t * numR + r] = pr[idx];
    }
  }
  return { precision, recall };
}

/**
 * Mean of the defined entries, like pycocotools' `np.mean(s[s > -1])`: over classes that have a
 * curve, and over all thresholds (t = null) or one threshold index. -1 when nothing is defined.
 */
function meanOver(perClass: (Float64Array | null)[], numT: number, t: number | null): number {
  let sum = 0;
  let n = 0;
  for (const arr of perClass) {
    if (arr === null) continue;
    const per = arr.length / numT;
    const from = t === null ? 0 : t * per;
    const to = t === null ? arr.length : from + per;
    for (let i = from; i < to; i++) sum += arr[i];
    n += to - from;
  }
  return n === 0 ? -1 : sum / n;
}

/** Index of `value` among the thresholds (to 1e-9, so user-typed 0.75 finds linspace's), or -1. */
function thresholdIndex(thresholds: readonly number[], value: number): number {
  return thresholds.findIndex((t) => Math.abs(t - value) < 1e-9);
}

/** numpy's `linspace(start, stop, num)` (num ≥ 2), reproducing its float rounding. */
function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : i * step + start));
}

function checkBox(box: unknown, at: string): void {
  if (!Array.isArray(box) || box.length !== 4) {
    throw new TypeError(`'${at}' must be [x1, y1, x2, y2], got ${typeOf(box)}`);
  }
  if (!box.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new RangeError(`'${at}' must hold 4 finite numbers, got ${JSON.stringify(box)}`);
  }
  if (box[2] < box[0] || box[3] < box[1]) {
    throw new RangeError(`'${at}' must have x2 >= x1 and y2 >= y1, got ${JSON.stringify(box)}`);
  }
}

function checkClassId(classId: unknown, at: string, numClasses: number | undefined): void {
  if (typeof classId !== 'number' || !Number.isInteger(classId) || classId < 0) {
    throw new RangeError(`'${at}' must be a non-negative integer, got ${String(classId)}`);
  }
  if (numClasses !== undefined && classId >= numClasses) {
    throw new RangeError(`'${at}' must be < numClasses (${numClasses}), got ${classId}`);
  }
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

// #endregion
