/** Box and detection types shared by training, export and runtime. */

/** Axis-aligned box in pixels, corners (x1, y1) top-left and (x2, y2) bottom-right, x2 > x1, y2 > y1. */
export type BoxXyxy = [number, number, number, number];

/** One ground-truth object. `ignore` marks crowd / don't-care regions (not counted as misses or FPs). */
export interface Annotation {
  box: BoxXyxy;
  /** Index into the model spec's `classes`. */
  classId: number;
  ignore?: boolean;
  /** Optional track id (MOT sources). */
  trackId?: number;
}

/** One detection: box in the pixel space of the image it was computed on. */
export interface Detection {
  box: BoxXyxy;
  score: number;
  classId: number;
}

/** Box width * height (0 for degenerate boxes). */
export function boxArea(b: BoxXyxy): number {
  return Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
}

/** Intersection over union of two xyxy boxes; 0 when the union is empty. */
export function iou(a: BoxXyxy, b: BoxXyxy): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = boxArea(a) + boxArea(b) - inter;
  return union > 0 ? inter / union : 0;
}
