import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { Level } from '../../../models/core/spec.js';
import { HplConfigSchema } from '../../../train/distill/config.js';
import { hintLoss, hplTerms, relationLoss } from '../../../train/distill/hpl.js';
import type { KdContext, KdLevel } from '../../../train/distill/types.js';
import { close, assertStudentOnlyStep, kdContext, kdLevel, randomPyramid } from '../../helpers/kd-context.js';

await tf.setBackend('cpu');

const lvl = kdLevel;
const pyramid = randomPyramid;

/** Single-teacher context whose head and input sizes follow the first neck level. */
function ctxOf(neck: KdLevel[]): KdContext {
  const [n, h, w] = neck[0].student.shape;
  return kdContext({
    neck,
    headLogits: tf.zeros([n, h, w, 1]) as tf.Tensor4D,
    headStride: neck[0].stride,
    size: [h * neck[0].stride, w * neck[0].stride],
  });
}

const scalar = (x: tf.Scalar) => x.dataSync()[0];

test('hint loss matches the hand example (2.761594)', () => {
  const t = tf.tensor4d([1, 3], [1, 1, 2, 1]);
  const s = tf.tensor4d([1, 1], [1, 1, 2, 1]);
  close(scalar(hintLoss(s, t, s, 1, 'none')), 2.761594, 1e-5);
  tf.dispose([t, s]);
});

test('hint mask is stop-gradient: the gradient w.r.t. S holds M fixed (T2)', () => {
  const t = tf.tensor4d([1, 3], [1, 1, 2, 1]);
  const s = tf.tensor4d([1, 1], [1, 1, 2, 1]);
  // With Ŝ = S: dL/dS = 2·M·(S − T)/count, M = [0.619203, 1.380797], count = 2.
  const g = tf.grad((x: tf.Tensor) => hintLoss(x as tf.Tensor4D, t, x as tf.Tensor4D, 1, 'none'))(s);
  const gd = g.dataSync();
  close(gd[0], 0, 1e-6);
  close(gd[1], -2.761594, 1e-5);
  // S enters only through the mask when Ŝ is a separate tensor: exactly zero gradient.
  const sa = s.clone();
  const g0 = tf.grad((x: tf.Tensor) => hintLoss(x as tf.Tensor4D, t, sa, 1, 'none'))(s);
  assert.deepEqual(Array.from(g0.dataSync()), [0, 0]);
  // Same for the teacher: its only paths are the mask and the sg'd target.
  const gt = tf.grad((x: tf.Tensor) => hintLoss(s, x as tf.Tensor4D, sa, 1, 'pkd'))(t);
  assert.deepEqual(Array.from(gt.dataSync()), [0, 0]);
  tf.dispose([t, s, sa, g, g0, gt]);
});

test('relation loss matches the hand example (0.25)', () => {
  const s = [tf.tensor4d([1, 0], [1, 1, 1, 2]), tf.tensor4d([0, 1], [1, 1, 1, 2])];
  const t = [tf.tensor4d([1, 0], [1, 1, 1, 2]), tf.tensor4d([1, 1], [1, 1, 1, 2])];
  close(scalar(relationLoss(s, t)), 0.25, 1e-6);
  tf.dispose([...s, ...t]);
});

test('relation loss falls back to spatial descriptors when level widths differ', () => {
  const t = pyramid(64, 4, 1).map((x, i) => tf.tile(x, [1, 1, 1, i + 1]) as tf.Tensor4D); // widths 4, 8, 12, 16
  const s = pyramid(64, 3, 9);
  const v = scalar(relationLoss(s, t));
  assert.ok(Number.isFinite(v) && v > 0, String(v));
  assert.ok(scalar(relationLoss(t, t)) < 1e-9);
  tf.dispose([...s, ...t]);
});

test('hplTerms weights terms by lambda, halves synthetic hints and drops them from the relation', () => {
  const s = pyramid(32, 3, 1);
  const t = pyramid(32, 3, 11);
  const levels = [2, 3, 4, 5] as const;
  const cfg = HplConfigSchema.parse({ hint: 2, relation: 3, tau: 0.5, norm: 'none' });
  const neck = levels.map((l, i) => lvl(l, s[i], t[i], s[i], i === 0));
  const terms = hplTerms(ctxOf(neck), cfg);
  assert.deepEqual(Object.keys(terms).sort(), ['hpl.hint', 'hpl.relation']);
  const hints = levels.map((_, i) => scalar(hintLoss(s[i], t[i], s[i], 0.5, 'none')));
  close(scalar(terms['hpl.hint']), (2 * (0.5 * hints[0] + hints[1] + hints[2] + hints[3])) / 4, 1e-5);
  close(scalar(terms['hpl.relation']), 3 * scalar(relationLoss(s.slice(1), t.slice(1))), 1e-6);
  tf.dispose([...s, ...t, ...Object.values(terms)]);
});

test('hplTerms omits zero-weight terms, filters levels and needs two real levels for the relation', () => {
  const s = pyramid(32, 3, 1);
  const t = pyramid(32, 3, 11);
  const neck = [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], t[i]));
  assert.deepEqual(Object.keys(hplTerms(ctxOf(neck), HplConfigSchema.parse({ hint: 0 }))), ['hpl.relation']);
  assert.deepEqual(Object.keys(hplTerms(ctxOf(neck), HplConfigSchema.parse({ relation: 0 }))), ['hpl.hint']);
  const only3 = hplTerms(ctxOf(neck), HplConfigSchema.parse({ levels: [3], norm: 'none' }));
  assert.deepEqual(Object.keys(only3), ['hpl.hint']);
  close(scalar(only3['hpl.hint']), 2 * scalar(hintLoss(s[1], t[1], s[1], 0.5, 'none')), 1e-6);
  assert.deepEqual(hplTerms(ctxOf(neck), HplConfigSchema.parse({ levels: [] })), {});
  tf.dispose([...s, ...t]);
});

test('student equal to teacher with identity adapters gives zero loss (T0)', () => {
  const t = pyramid(64, 4, 5, 2);
  for (const norm of ['pkd', 'none'] as const) {
    const neck = [2, 3, 4, 5].map((l, i) => lvl(l as Level, t[i], t[i]));
    const terms = hplTerms(ctxOf(neck), HplConfigSchema.parse({ norm }));
    assert.equal(Object.keys(terms).length, 2);
    for (const [k, v] of Object.entries(terms))
      assert.ok(Math.abs(scalar(v)) < 1e-6, `${norm} ${k}: ${scalar(v)}`);
  }
  tf.dispose(t);
});

test('gradients reach student and adapter variables, teacher tensors stay unchanged (T1)', () => {
  const t = pyramid(64, 4, 21);
  const before = t.map((x) => Array.from(x.dataSync()));
  const sv = pyramid(64, 3, 31).map((x) => tf.variable(x));
  const av = [0, 1, 2, 3].map((i) => tf.variable(tf.randomNormal([1, 1, 3, 4], 0, 0.5, 'float32', 41 + i)));
  const cfg = HplConfigSchema.parse({});
  const { value, grads } = tf.variableGrads(() => {
    const neck = [2, 3, 4, 5].map((l, i) =>
      lvl(
        l as Level,
        sv[i] as tf.Tensor4D,
        t[i],
        tf.conv2d(sv[i] as tf.Tensor4D, av[i] as tf.Tensor4D, 1, 'same'),
      ),
    );
    return tf.addN(Object.values(hplTerms(ctxOf(neck), cfg))) as tf.Scalar;
  }, [...sv, ...av]);
  assert.ok(Number.isFinite(scalar(value)));
  assertStudentOnlyStep(grads, [...sv, ...av], t, before);
  tf.dispose([...t, ...sv, ...av, value, ...Object.values(grads)]);
});

test('a constant (dead) student channel keeps the gradients finite', () => {
  const t = pyramid(64, 3, 21);
  // Channel 0 of every student level is 0 everywhere: its pkd std is 0.
  const s = pyramid(64, 3, 31).map((x) => x.mul(tf.tensor1d([0, 1, 1])) as tf.Tensor4D);
  const g = tf.grads((...xs: tf.Tensor[]) => {
    const neck = [2, 3, 4, 5].map((l, i) => lvl(l as Level, xs[i] as tf.Tensor4D, t[i]));
    return tf.addN(Object.values(hplTerms(ctxOf(neck), HplConfigSchema.parse({}))));
  })(s);
  for (const x of g) assert.ok(x.dataSync().every(Number.isFinite));
  tf.dispose([...t, ...s, ...g]);
});

test('pkd hint is invariant to T -> 7T + 3 per channel (T3)', () => {
  const s = pyramid(32, 3, 1);
  const t = pyramid(32, 3, 11);
  const scale = tf.tensor1d([7, 2, 0.5]);
  const shift = tf.tensor1d([3, -1, 10]);
  const t2 = t.map((x) => x.mul(scale).add(shift) as tf.Tensor4D);
  const cfg = HplConfigSchema.parse({ relation: 0 });
  const neck = (tt: tf.Tensor4D[]) => [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], tt[i]));
  const a = scalar(hplTerms(ctxOf(neck(t)), cfg)['hpl.hint']);
  const b = scalar(hplTerms(ctxOf(neck(t2)), cfg)['hpl.hint']);
  close(a, b, 1e-5, 'T3');
  tf.dispose([...s, ...t, ...t2, scale, shift]);
});

test('hplTerms leaks no tensors', () => {
  const s = pyramid(32, 3, 1);
  const t = pyramid(32, 3, 11);
  const neck = [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], t[i]));
  const ctx = ctxOf(neck);
  const n0 = tf.memory().numTensors;
  const terms = hplTerms(ctx, HplConfigSchema.parse({}));
  tf.dispose(Object.values(terms));
  assert.equal(tf.memory().numTensors, n0);
  tf.dispose([...s, ...t, ctx.headLogits]);
});
