/**
 * Post-processing: model outputs -> detections in source pixels.
 *
 * - `boxes` models decode in-graph: `detections` `[n, K, 6]` rows (x1, y1, x2, y2, score, class
 *   id as a float; network-input pixels; best first; rows that are not peaks have score 0), read by
 *   {@link detectionsFromRows}.
 * - `heads` models return raw `heatmap` `[n, h, w, C]` (sigmoid applied), `size` and `offset`
 *   `[n, h, w, 2]`, NHWC; {@link detectionsFromHeads} decodes them with the same peak picking as
 *   the graph (models/core/decode.ts), so both forms give the same boxes for the same weights.
 * - Optional class-aware {@link nms} (CenterNet's max-pool peaks need none; a plain ONNX detector
 *   that returns overlapping candidates does), then {@link mapToSource} through the letterbox.
 */
import { decodeCenterNet, type HeadMaps } from '../models/core/decode.js';
import { iou, type Detection } from '../models/core/detection.js';
import { boxToSource } from '../models/core/letterbox.js';
import type { LetterboxTransform } from './types.js';

/** Filters applied to one image's detections. */
export interface DetectionFilter {
  /** Keep detections with score >= this. */
  scoreThreshold: number;
  /** Keep at most this many (best first). */
  maxDetections: number;
  /** Keep only these class ids (all when undefined). */
  classes?: ReadonlySet<number>;
  /** Class-aware NMS IoU threshold (none when undefined). */
  nmsIouThreshold?: number;
}

/**
 * Reads one image's `[K, 6]` rows of a `detections` output.
 * @param rows - the image's K * 6 values (e.g. `detections.subarray(i * K * 6, (i + 1) * K * 6)`)
 * @returns detections in network-input pixels, best first
 */
export function detectionsFromRows(rows: Float32Array, f: DetectionFilter): Detection[] {
  if (rows.length % 6 !== 0) throw new RangeError(`'rows' must hold K * 6 values, got ${rows.length}`);
  const out: Detection[] = [];
  for (let r = 0; r < rows.length; r += 6) {
    const score = rows[r + 4];
    if (!(score >= f.scoreThreshold)) continue;
    const classId = Math.round(rows[r + 5]);
    if (f.classes && !f.classes.has(classId)) continue;
    out.push({ box: [rows[r], rows[r + 1], rows[r + 2], rows[r + 3]], score, classId });
  }
  // The graph returns rows best first; sort anyway so a foreign model's order does not matter.
  out.sort((a, b) => b.score - a.score);
  return finish(out, f);
}

/**
 * Decodes one image's raw heads (peak picking over a `poolSize` window, then the filters).
 * @param stride - head cell size in input pixels
 * @returns detections in network-input pixels, best first
 */
export function detectionsFromHeads(
  maps: HeadMaps,
  f: DetectionFilter,
  decode: { stride: number; poolSize: number },
): Detection[] {
  // decodeCenterNet sorts every peak above the threshold anyway; filtering by class before
  // truncating lets a class filter keep maxDetections boxes of the wanted classes.
  let dets = decodeCenterNet(maps, {
    stride: decode.stride,
    poolSize: decode.poolSize,
    scoreThreshold: f.scoreThreshold,
    topK: Number.MAX_SAFE_INTEGER,
  });
  if (f.classes) dets = dets.filter((d) => f.classes!.has(d.classId));
  return finish(dets, f);
}

function finish(dets: Detection[], f: DetectionFilter): Detection[] {
  const kept = f.nmsIouThreshold === undefined ? dets : nms(dets, f.nmsIouThreshold);
  return kept.length > f.maxDetections ? kept.slice(0, f.maxDetections) : kept;
}

/**
 * Greedy class-aware non-maximum suppression: in descending score order (ties keep input order),
 * a box is dropped when its IoU with an already kept box of the same class is > `iouThreshold`.
 * @param iouThreshold - in [0, 1]
 * @returns the kept detections, best first
 */
export function nms(dets: readonly Detection[], iouThreshold: number): Detection[] {
  if (!(iouThreshold >= 0 && iouThreshold <= 1))
    throw new RangeError(`'iouThreshold' must be in [0, 1], got ${iouThreshold}`);
  const order = dets.map((d, i) => ({ d, i })).sort((a, b) => b.d.score - a.d.score || a.i - b.i);
  const kept: Detection[] = [];
  for (const { d } of order) {
    let keep = true;
    for (const k of kept) {
      if (k.classId === d.classId && iou(k.box, d.box) > iouThreshold) {
        keep = false;
        break;
      }
    }
    if (keep) kept.push(d);
  }
  return kept;
}

/**
 * Maps detections from network-input pixels to source pixels, clipped to the source image;
 * boxes left with no area (entirely in the letterbox padding) are dropped.
 */
export function mapToSource(dets: readonly Detection[], t: LetterboxTransform): Detection[] {
  const out: Detection[] = [];
  for (const d of dets) {
    const box = boxToSource(d.box, t);
    if (box[2] > box[0] && box[3] > box[1]) out.push({ box, score: d.score, classId: d.classId });
  }
  return out;
}
