import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { focalLossSum } from '../../../train/losses/focal.js';
import { maskedL1Sum } from '../../../train/losses/masked-l1.js';

await tf.setBackend('cpu');

test('focal loss matches a hand computation', () => {
  // Two cells: a positive with p = 0.8 and a negative with target 0.5, p = 0.3.
  const logit = (p: number) => Math.log(p / (1 - p));
  const logits = tf.tensor4d([logit(0.8), logit(0.3)], [1, 1, 2, 1]);
  const target = tf.tensor4d([1, 0.5], [1, 1, 2, 1]);
  const weight = tf.ones([1, 1, 2, 1]) as tf.Tensor4D;
  const pos = -((1 - 0.8) ** 2) * Math.log(0.8);
  const neg = -((1 - 0.5) ** 4) * 0.3 ** 2 * Math.log(0.7);
  const got = focalLossSum(logits, target, weight).dataSync()[0];
  assert.ok(Math.abs(got - (pos + neg)) < 1e-5, `${got} vs ${pos + neg}`);
  // A zero weight removes the negative term only.
  const w0 = tf.tensor4d([1, 0], [1, 1, 2, 1]);
  assert.ok(Math.abs(focalLossSum(logits, target, w0).dataSync()[0] - pos) < 1e-5);
  tf.dispose([logits, target, weight, w0]);
});

test('focal loss is near zero for confident correct predictions and finite for extreme logits', () => {
  const logits = tf.tensor4d([20, -20, 1e4, -1e4], [1, 2, 2, 1]);
  const target = tf.tensor4d([1, 0, 1, 0], [1, 2, 2, 1]);
  const w = tf.ones([1, 2, 2, 1]) as tf.Tensor4D;
  const v = focalLossSum(logits, target, w).dataSync()[0];
  assert.ok(Number.isFinite(v) && v < 1e-6, String(v));
  const bad = focalLossSum(tf.neg(logits) as tf.Tensor4D, target, w).dataSync()[0];
  assert.ok(Number.isFinite(bad) && bad > 10);
  tf.dispose([logits, target, w]);
});

test('masked L1 sums only masked cells over both channels', () => {
  const pred = tf.tensor4d([1, 2, 3, 4], [1, 1, 2, 2]);
  const tgt = tf.tensor4d([0, 0, 0, 0], [1, 1, 2, 2]);
  const mask = tf.tensor4d([0, 1], [1, 1, 2, 1]);
  assert.equal(maskedL1Sum(pred, tgt, mask).dataSync()[0], 7);
  tf.dispose([pred, tgt, mask]);
});
