/**
 * CenterNet decoding in plain TypeScript (no tfjs, no ORT): peak picking by a max-pool
 * window, top-K over all classes, box assembly. Used by training-time eval and by the
 * runtime for models exported with raw heads; the ONNX `boxes` output does the same in-graph.
 */
import type { Detection } from './detection.js';

export interface HeadMaps {
  /** Heatmap probabilities (after sigmoid), HWC [h, w, numClasses]. */
  heatmap: Float32Array;
  /** log(w / stride), log(h / stride), HWC [h, w, 2]. */
  size: Float32Array;
  /** Centre offset within the cell, in cells, HWC [h, w, 2] (x, y). */
  offset: Float32Array;
  h: number;
  w: number;
  numClasses: number;
}

export interface DecodeOptions {
  /** Cell size in input pixels (4 for a head on P2). */
  stride: number;
  topK: number;
  scoreThreshold: number;
  /** Odd max-pool window; a cell is a peak when it equals the window maximum. */
  poolSize: number;
}

/**
 * Decodes one image's head maps into detections in network-input pixels, best first.
 * A cell is kept when its score is the maximum of its poolSize x poolSize neighbourhood
 * (ties keep both, as max-pool equality does in the ONNX graph) and >= scoreThreshold.
 * @returns at most `topK` detections sorted by descending score
 */
export function decodeCenterNet(maps: HeadMaps, opts: DecodeOptions): Detection[] {
  const { heatmap, size, offset, h, w, numClasses: C } = maps;
  if (heatmap.length !== h * w * C)
    throw new RangeError(`'heatmap' must have ${h * w * C} values, got ${heatmap.length}`);
  if (size.length !== h * w * 2 || offset.length !== h * w * 2)
    throw new RangeError(`'size' and 'offset' must have ${h * w * 2} values`);
  if (opts.poolSize % 2 !== 1) throw new RangeError(`'poolSize' must be odd, got ${opts.poolSize}`);
  const r = (opts.poolSize - 1) / 2;
  const cand: { score: number; idx: number; c: number }[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < C; c++) {
        const v = heatmap[(y * w + x) * C + c];
        if (v < opts.scoreThreshold) continue;
        let peak = true;
        for (let dy = -r; dy <= r && peak; dy++) {
          const yy = y + dy;
          if (yy < 0 || yy >= h) continue;
          for (let dx = -r; dx <= r; dx++) {
            const xx = x + dx;
            if (xx < 0 || xx >= w) continue;
            if (heatmap[(yy * w + xx) * C + c] > v) {
              peak = false;
              break;
            }
          }
        }
        if (peak) cand.push({ score: v, idx: y * w + x, c });
      }
    }
  }
  cand.sort((a, b) => b.score - a.score || a.idx - b.idx || a.c - b.c);
  const s = opts.stride;
  return cand.slice(0, opts.topK).map(({ score, idx, c }) => {
    const x = idx % w;
    const y = (idx - x) / w;
    const cx = (x + offset[idx * 2]) * s;
    const cy = (y + offset[idx * 2 + 1]) * s;
    const bw = Math.exp(size[idx * 2]) * s;
    const bh = Math.exp(size[idx * 2 + 1]) * s;
    return { box: [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], score, classId: c };
  });
}
