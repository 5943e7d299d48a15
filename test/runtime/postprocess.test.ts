/** Post-processing: NMS, reading `detections` rows, decoding raw heads, mapping back to source pixels. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Detection } from '../../models/core/detection.js';
import { letterboxTransform } from '../../models/core/letterbox.js';
import { detectionsFromHeads, detectionsFromRows, mapToSource, nms } from '../../runtime/postprocess.js';

const d = (box: [number, number, number, number], score: number, classId = 0): Detection => ({
  box,
  score,
  classId,
});

// Hand-computed IoUs: A/B = 90/110 = 0.818, A/D = 50/150 = 0.333, B/D = 60/140 = 0.429.
const A = d([0, 0, 10, 10], 0.9);
const B = d([1, 0, 11, 10], 0.8);
const C = d([1, 0, 11, 10], 0.7, 1); // B's box, other class
const D = d([5, 0, 15, 10], 0.6);
const E = d([20, 20, 30, 30], 0.95);

test('nms drops same-class boxes above the IoU threshold, best first, and keeps other classes', () => {
  assert.deepEqual(nms([A, B, C, D, E], 0.5), [E, A, C, D]);
  // D overlaps A by 0.333 > 0.3; B (suppressed) does not suppress anything.
  assert.deepEqual(nms([A, B, C, D, E], 0.3), [E, A, C]);
});

test('nms keeps a box whose IoU equals the threshold exactly', () => {
  assert.deepEqual(nms([A, D], 1 / 3), [A, D]);
  assert.deepEqual(nms([D, A], 0.33), [A]);
});

test('nms keeps input order for equal scores and rejects a threshold outside [0, 1]', () => {
  const p = d([100, 100, 110, 110], 0.5);
  const q = d([200, 200, 210, 210], 0.5);
  assert.deepEqual(nms([p, q], 0.5), [p, q]);
  assert.deepEqual(nms([], 0.5), []);
  assert.throws(() => nms([A], 1.5), { name: 'RangeError', message: /'iouThreshold'/ });
});

test('detection rows: threshold, class filter, cap, best first', () => {
  const rows = Float32Array.from([
    ...[10, 10, 20, 20, 0.5, 0],
    ...[30, 30, 40, 40, 0.9, 1],
    ...[50, 50, 60, 60, 0.0, 0], // a non-peak row (score 0)
    ...[70, 70, 80, 80, 0.7, 0],
    ...[90, 90, 95, 95, 0.2, 0], // below threshold
  ]);
  const all = detectionsFromRows(rows, { scoreThreshold: 0.3, maxDetections: 10 });
  assert.deepEqual(
    all.map((x) => [x.box[0], x.classId]),
    [
      [30, 1],
      [70, 0],
      [10, 0],
    ],
  );
  assert.ok(Math.abs(all[0].score - 0.9) < 1e-6);
  const person = detectionsFromRows(rows, { scoreThreshold: 0.3, maxDetections: 1, classes: new Set([0]) });
  assert.deepEqual(
    person.map((x) => x.box),
    [[70, 70, 80, 80]],
  );
  assert.throws(
    () => detectionsFromRows(new Float32Array(5), { scoreThreshold: 0, maxDetections: 1 }),
    RangeError,
  );
});

test('raw heads decode to hand-computed boxes (peak, size in log-stride units, offset)', () => {
  const h = 4;
  const w = 4;
  const heatmap = new Float32Array(h * w);
  const size = new Float32Array(h * w * 2);
  const offset = new Float32Array(h * w * 2);
  const cell = (x: number, y: number) => y * w + x;
  heatmap[cell(1, 2)] = 0.9;
  heatmap[cell(2, 2)] = 0.5; // next to a higher cell: not a peak
  heatmap[cell(3, 0)] = 0.4;
  size.set([Math.log(2), Math.log(3)], cell(1, 2) * 2);
  offset.set([0.5, 0.25], cell(1, 2) * 2);
  const dets = detectionsFromHeads(
    { heatmap, size, offset, h, w, numClasses: 1 },
    { scoreThreshold: 0.3, maxDetections: 10 },
    { stride: 4, poolSize: 3 },
  );
  assert.equal(dets.length, 2);
  // centre ((1 + 0.5) * 4, (2 + 0.25) * 4) = (6, 9), size (2 * 4, 3 * 4) = (8, 12)
  const b = dets[0].box;
  [2, 3, 10, 15].forEach((v, i) => assert.ok(Math.abs(b[i] - v) < 1e-5, `box[${i}] ${b[i]} != ${v}`));
  assert.ok(Math.abs(dets[0].score - 0.9) < 1e-6);
  // size 0 -> exp(0) * 4 = 4 px around the centre (3 + 0) * 4 + ... of cell (3, 0)
  assert.deepEqual(dets[1].box, [10, -2, 14, 2]);
  const capped = detectionsFromHeads(
    { heatmap, size, offset, h, w, numClasses: 1 },
    { scoreThreshold: 0.3, maxDetections: 1 },
    { stride: 4, poolSize: 3 },
  );
  assert.equal(capped.length, 1);
});

test('boxes map from a 64x64 letterbox back to a 200x100 source (hand values), clipped', () => {
  // 200x100 into 64x64: scale 0.32, resized 64x32, 16 px of padding above and below.
  const t = letterboxTransform(200, 100, 64, 64);
  assert.deepEqual([t.scaleX, t.scaleY, t.padX, t.padY], [0.32, 0.32, 0, 16]);
  const out = mapToSource(
    [
      d([16, 24, 48, 40], 0.9),
      d([0, 0, 10, 10], 0.8), // entirely in the top padding: dropped
      d([-5, 10, 70, 30], 0.7), // sticks out: clipped to the source
    ],
    t,
  );
  assert.equal(out.length, 2);
  const close = (a: number[], b: number[]) =>
    a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-9, `${a} vs ${b}`));
  close(out[0].box, [50, 25, 150, 75]);
  close(out[1].box, [0, 0, 200, 43.75]);
  // stretch: x / (64 / 200), y / (64 / 100)
  const s = letterboxTransform(200, 100, 64, 64, 'stretch');
  close(mapToSource([d([16, 16, 32, 48], 1)], s)[0].box, [50, 25, 100, 75]);
});
