/**
 * CenterNet training targets, built in plain TypeScript on the loader side so that the
 * training step only sees dense tensors (no gather: wasm has no gradient for it).
 */
import type { Annotation } from '../models/core/detection.js';

/** Dense targets for a batch at head resolution (h = H / stride, w = W / stride), NHWC. */
export interface HeadTargets {
  batch: number;
  h: number;
  w: number;
  numClasses: number;
  /** Gaussian heatmap [B, h, w, C], 1 exactly at object centres. */
  heatmap: Float32Array;
  /** Per-cell weight of the heatmap loss [B, h, w, 1]: 0 inside ignore regions, else 1. */
  heatmapWeight: Float32Array;
  /** 1 at object centre cells, else 0 [B, h, w, 1]: positives of the focal loss and the regression mask. */
  centerMask: Float32Array;
  /** log(w / stride), log(h / stride) at centre cells [B, h, w, 2]. */
  size: Float32Array;
  /** Centre offset inside its cell, in cells [B, h, w, 2]. */
  offset: Float32Array;
  /** Number of centre cells in the batch (the loss normaliser). */
  numPos: number;
  /**
   * Box of the object that owns each cell of its Gaussian area, corners in cells (x1, y1, x2, y2)
   * [B, h, w, 4]; a dummy unit box where no object owns the cell (keeps GIoU finite; its weight is 0).
   */
  boxTarget: Float32Array;
  /**
   * GIoU regression weight [B, h, w, 1] (TTFNet): the object's Gaussian over its area, scaled so an
   * object's weights sum to log(box area in input px): large objects count more, but not in
   * proportion to their area.
   */
  regWeight: Float32Array;
  /** Sum of regWeight (the GIoU loss normaliser). */
  regWeightSum: number;
}

/**
 * Share of the box half-extent covered by the Gaussian (TTFNet's alpha). TTFNet showed that an
 * elliptical Gaussian shaped like the box converges several times faster than CenterNet's
 * round one, whose IoU-derived radius is 0 cells for most pedestrians narrower than 3 cells,
 * leaving a one-cell target surrounded by look-alike cells taught as background.
 */
export const GAUSSIAN_ALPHA = 0.54;

/**
 * Per-axis Gaussian radii in cells: r = floor(alpha * extent / 2), sigma = (2r + 1) / 6.
 * @param w - box width in cells
 * @param h - box height in cells
 */
export function gaussianRadii(w: number, h: number, alpha = GAUSSIAN_ALPHA): { rx: number; ry: number } {
  return { rx: Math.max(0, Math.floor((alpha * w) / 2)), ry: Math.max(0, Math.floor((alpha * h) / 2)) };
}

/**
 * Builds targets for a batch.
 * @param annotations - per image, boxes in network-input pixels
 * @param height - network input height (pixels)
 * @param width - network input width (pixels)
 * @param stride - head stride (input pixels per cell)
 * @param numClasses - heatmap channels
 */
export function buildTargets(
  annotations: Annotation[][],
  height: number,
  width: number,
  stride: number,
  numClasses: number,
): HeadTargets {
  const B = annotations.length;
  const h = Math.ceil(height / stride);
  const w = Math.ceil(width / stride);
  const C = numClasses;
  const heatmap = new Float32Array(B * h * w * C);
  const heatmapWeight = new Float32Array(B * h * w).fill(1);
  const centerMask = new Float32Array(B * h * w);
  const size = new Float32Array(B * h * w * 2);
  const offset = new Float32Array(B * h * w * 2);
  // Area of the object that owns each centre cell, so the smaller object wins a shared cell.
  const ownerArea = new Float32Array(B * h * w).fill(Infinity);
  const boxTarget = new Float32Array(B * h * w * 4);
  for (let i = 0; i < B * h * w; i++) boxTarget.set([0, 0, 1, 1], i * 4);
  const regWeight = new Float32Array(B * h * w);
  const regOwnerArea = new Float32Array(B * h * w).fill(Infinity);
  let numPos = 0;
  for (let b = 0; b < B; b++) {
    for (const a of annotations[b]) {
      const [x1, y1, x2, y2] = a.box;
      if (a.ignore) {
        const cx1 = Math.max(0, Math.floor(x1 / stride));
        const cy1 = Math.max(0, Math.floor(y1 / stride));
        const cx2 = Math.min(w - 1, Math.ceil(x2 / stride) - 1);
        const cy2 = Math.min(h - 1, Math.ceil(y2 / stride) - 1);
        for (let y = cy1; y <= cy2; y++)
          for (let x = cx1; x <= cx2; x++) heatmapWeight[(b * h + y) * w + x] = 0;
        continue;
      }
      if (a.classId < 0 || a.classId >= C)
        throw new RangeError(`'classId' must be in [0, ${C - 1}], got ${a.classId}`);
      const bw = (x2 - x1) / stride;
      const bh = (y2 - y1) / stride;
      if (!(bw > 0 && bh > 0)) continue;
      const fx = (x1 + x2) / 2 / stride;
      const fy = (y1 + y2) / 2 / stride;
      const ix = Math.floor(fx);
      const iy = Math.floor(fy);
      if (ix < 0 || iy < 0 || ix >= w || iy >= h) continue;
      const { rx, ry } = gaussianRadii(bw, bh);
      const sx = (2 * rx + 1) / 6;
      const sy = (2 * ry + 1) / 6;
      const area = bw * bh;
      const y0 = Math.max(0, iy - ry);
      const y1c = Math.min(h - 1, iy + ry);
      const x0 = Math.max(0, ix - rx);
      const x1c = Math.min(w - 1, ix + rx);
      const gauss = (x: number, y: number) =>
        Math.exp(-((x - ix) ** 2) / (2 * sx * sx) - (y - iy) ** 2 / (2 * sy * sy));
      let gSum = 0;
      for (let y = y0; y <= y1c; y++) for (let x = x0; x <= x1c; x++) gSum += gauss(x, y);
      const objWeight = Math.log(Math.max(2, (x2 - x1) * (y2 - y1))) / gSum;
      for (let y = y0; y <= y1c; y++) {
        for (let x = x0; x <= x1c; x++) {
          const g = gauss(x, y);
          const c = (b * h + y) * w + x;
          const k = c * C + a.classId;
          if (g > heatmap[k]) heatmap[k] = g;
          if (area < regOwnerArea[c]) {
            regOwnerArea[c] = area;
            regWeight[c] = g * objWeight;
            boxTarget.set([x1 / stride, y1 / stride, x2 / stride, y2 / stride], c * 4);
          }
        }
      }
      const cell = (b * h + iy) * w + ix;
      heatmap[cell * C + a.classId] = 1;
      if (centerMask[cell] === 0) numPos++;
      if (area < ownerArea[cell]) {
        ownerArea[cell] = area;
        centerMask[cell] = 1;
        size[cell * 2] = Math.log(bw);
        size[cell * 2 + 1] = Math.log(bh);
        offset[cell * 2] = fx - ix;
        offset[cell * 2 + 1] = fy - iy;
      }
    }
  }
  // A centre inside an ignore region still counts: ignore must not hide a labelled object.
  for (let i = 0; i < centerMask.length; i++) if (centerMask[i] === 1) heatmapWeight[i] = 1;
  let regWeightSum = 0;
  for (let i = 0; i < regWeight.length; i++) regWeightSum += regWeight[i];
  return {
    batch: B,
    h,
    w,
    numClasses: C,
    heatmap,
    heatmapWeight,
    centerMask,
    size,
    offset,
    numPos,
    boxTarget,
    regWeight,
    regWeightSum,
  };
}
