import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { decodeCellBoxes, giouLossSum } from '../../../train/losses/giou.js';

await tf.setBackend('cpu');

const col = (v: number) => tf.tensor4d([v], [1, 1, 1, 1]);

test('GIoU loss matches hand values: identical, overlapping and disjoint boxes', () => {
  const target = tf.tensor4d([0, 0, 2, 2], [1, 1, 1, 4]);
  const w = tf.ones([1, 1, 1, 1]) as tf.Tensor4D;
  const loss = (b: number[]) => giouLossSum(b.map(col), target, w).dataSync()[0];
  assert.ok(Math.abs(loss([0, 0, 2, 2])) < 1e-6);
  // [1,0,3,2]: inter 2, union 6, enclosure 6 -> GIoU 1/3 -> loss 2/3
  assert.ok(Math.abs(loss([1, 0, 3, 2]) - 2 / 3) < 1e-6);
  // [3,0,4,1]: inter 0, union 5, enclosure 4*2 = 8 -> GIoU = 0 - 3/8 -> loss 1.375
  assert.ok(Math.abs(loss([3, 0, 4, 1]) - 1.375) < 1e-6);
  tf.dispose([target, w]);
});

test('weights scale each cell and zero weight drops it', () => {
  const target = tf.tensor4d([0, 0, 2, 2, 0, 0, 2, 2], [1, 1, 2, 4]);
  const pred = [
    tf.tensor4d([1, 5], [1, 1, 2, 1]),
    tf.tensor4d([0, 5], [1, 1, 2, 1]),
    tf.tensor4d([3, 6], [1, 1, 2, 1]),
    tf.tensor4d([2, 6], [1, 1, 2, 1]),
  ];
  const w = tf.tensor4d([3, 0], [1, 1, 2, 1]);
  assert.ok(Math.abs(giouLossSum(pred, target, w).dataSync()[0] - 2) < 1e-6); // 3 * 2/3
  tf.dispose([target, w, ...pred]);
});

test('decodeCellBoxes inverts the head encoding at each cell', () => {
  // cell (x=1, y=0) of a 1x2 map: offset (0.5, 0.25), size log(2), log(4) -> centre (1.5, 0.25), 2 x 4
  const size = tf.tensor4d([0, 0, Math.log(2), Math.log(4)], [1, 1, 2, 2]);
  const offset = tf.tensor4d([0, 0, 0.5, 0.25], [1, 1, 2, 2]);
  const [x1, y1, x2, y2] = decodeCellBoxes(size, offset).map((t) => t.dataSync()[1]);
  const want = [0.5, -1.75, 2.5, 2.25];
  [x1, y1, x2, y2].forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-6, `${v} vs ${want[i]}`));
  tf.dispose([size, offset]);
});
