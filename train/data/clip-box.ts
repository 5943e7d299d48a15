/** Clipping of label boxes to the image, shared by the readers and augmentation. */
import type { BoxXyxy } from '../../models/core/detection.js';

/** Why a box did not survive clipping (used as a skip reason). */
export type ClipRejection = 'not finite' | 'zero-area box' | 'box outside image';

/**
 * Clips an xyxy box to `[0, width] x [0, height]`.
 * @returns the clipped box, or the reason it is unusable: a non-finite coordinate, no area
 *   before clipping (x2 <= x1 or y2 <= y1), or no area left inside the image.
 */
export function clipBox(b: BoxXyxy, width: number, height: number): BoxXyxy | ClipRejection {
  if (!b.every(Number.isFinite)) return 'not finite';
  if (!(b[2] > b[0] && b[3] > b[1])) return 'zero-area box';
  const x1 = Math.max(0, b[0]);
  const y1 = Math.max(0, b[1]);
  const x2 = Math.min(width, b[2]);
  const y2 = Math.min(height, b[3]);
  if (!(x2 > x1 && y2 > y1)) return 'box outside image';
  return [x1, y1, x2, y2];
}
