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
}

/**
 * CenterNet's Gaussian radius: the largest corner shift r such that a box displaced by r
 * still overlaps the true box with IoU >= minOverlap (smallest root of three cases).
 * @param h - box height in cells
 * @param w - box width in cells
 */
export function gaussianRadius(h: number, w: number, minOverlap = 0.7): number {
  const a1 = 1;
  const b1 = h + w;
  const c1 = (w * h * (1 - minOverlap)) / (1 + minOverlap);
  const r1 = (b1 - Math.sqrt(b1 * b1 - 4 * a1 * c1)) / (2 * a1);
  const a2 = 4;
  const b2 = 2 * (h + w);
  const c2 = (1 - minOverlap) * w * h;
  const r2 = (b2 - Math.sqrt(b2 * b2 - 4 * a2 * c2)) / (2 * a2);
  const a3 = 4 * minOverlap;
  const b3 = -2 * minOverlap * (h + w);
  const c3 = (minOverlap - 1) * w * h;
  const r3 = (b3 + Math.sqrt(b3 * b3 - 4 * a3 * c3)) / (2 * a3);
  return Math.min(r1, r2, r3);
}

/**
 * Builds targets for a batch.
 * @param annotations - per image, boxes in network-input pixels
 * @param height - network input height (pixels)
 * @param width - network input width (pixels)
 * @param stride - head stride (input pixels per cell)
 * @param numClasses - heatmap channels
 */
export function buildTargets(annotations: Annotation[][], height: number, width: number, stride: number, numClasses: number): HeadTargets {
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
  let numPos = 0;
  for (let b = 0; b < B; b++) {
    for (const a of annotations[b]) {
      const [x1, y1, x2, y2] = a.box;
      if (a.ignore) {
        const cx1 = Math.max(0, Math.floor(x1 / stride));
        const cy1 = Math.max(0, Math.floor(y1 / stride));
        const cx2 = Math.min(w - 1, Math.ceil(x2 / stride) - 1);
        const cy2 = Math.min(h - 1, Math.ceil(y2 / stride) - 1);
        for (let y = cy1; y <= cy2; y++) for (let x = cx1; x <= cx2; x++) heatmapWeight[(b * h + y) * w + x] = 0;
        continue;
      }
      if (a.classId < 0 || a.classId >= C) throw new RangeError(`'classId' must be in [0, ${C - 1}], got ${a.classId}`);
      const bw = (x2 - x1) / stride;
      const bh = (y2 - y1) / stride;
      if (!(bw > 0 && bh > 0)) continue;
      const fx = (x1 + x2) / 2 / stride;
      const fy = (y1 + y2) / 2 / stride;
      const ix = Math.floor(fx);
      const iy = Math.floor(fy);
      if (ix < 0 || iy < 0 || ix >= w || iy >= h) continue;
      const radius = Math.max(0, Math.floor(gaussianRadius(Math.ceil(bh), Math.ceil(bw))));
      const sigma = (2 * radius + 1) / 6;
      for (let y = Math.max(0, iy - radius); y <= Math.min(h - 1, iy + radius); y++) {
        for (let x = Math.max(0, ix - radius); x <= Math.min(w - 1, ix + radius); x++) {
          const g = Math.exp(-((x - ix) ** 2 + (y - iy) ** 2) / (2 * sigma * sigma));
          const k = ((b * h + y) * w + x) * C + a.classId;
          if (g > heatmap[k]) heatmap[k] = g;
        }
      }
      const cell = (b * h + iy) * w + ix;
      heatmap[cell * C + a.classId] = 1;
      const area = bw * bh;
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
  return { batch: B, h, w, numClasses: C, heatmap, heatmapWeight, centerMask, size, offset, numPos };
}
