import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { Level } from '../../../models/core/spec.js';
import { HkdConfigSchema } from '../../../train/distill/config.js';
import {
  featureMse,
  hkdTerms,
  logitLoss,
  regionLoss,
  regionRois,
  roiLevel,
} from '../../../train/distill/hkd.js';
import { safeLogit } from '../../../train/distill/common.js';
import type { KdBox, KdContext, KdLevel } from '../../../train/distill/types.js';
import { close, assertStudentOnlyStep, kdContext, kdLevel, randomPyramid } from '../../helpers/kd-context.js';

await tf.setBackend('cpu');

const SIZE = 64;

const scalar = (x: tf.Scalar) => x.dataSync()[0];

const lvl = kdLevel;

interface CtxParts {
  neck: KdLevel[];
  backbone?: KdLevel[];
  headLogits: tf.Tensor4D;
  headProb?: tf.Tensor4D;
  gts: KdBox[][];
}

const ctxOf = (p: CtxParts): KdContext => kdContext({ ...p, size: [SIZE, SIZE] });

const pyramid = (c: number, seed: number, n = 1): tf.Tensor4D[] => randomPyramid(SIZE, c, seed, n);

const GTS: KdBox[][] = [
  [
    { box: [4, 6, 30, 58], classId: 0, ignore: false },
    { box: [40, 40, 48, 50], classId: 0, ignore: false },
    { box: [0, 0, 64, 20], classId: 0, ignore: true },
  ],
  [{ box: [10, 20, 60, 40], classId: 0, ignore: false }],
];

test('RoI level rule: 224 -> 4, 112 -> 3, 50x120 -> 2, clipped to the levels present', () => {
  assert.equal(roiLevel(224, 224), 4);
  assert.equal(roiLevel(112, 112), 3);
  assert.equal(roiLevel(50, 120), 2);
  assert.equal(roiLevel(2000, 2000), 5);
  assert.equal(roiLevel(4, 4), 2);
  assert.equal(roiLevel(4, 4, [3, 4]), 3);
  assert.equal(roiLevel(1000, 1000, [3, 4]), 4);
  assert.equal(roiLevel(224, 224, [2, 5]), 5);
  assert.throws(() => roiLevel(10, 10, []), { name: 'RangeError' });
});

test('RoIs: each non-ignored GT plus deterministic jittered copies, clipped to the image', () => {
  const a = regionRois(GTS, 2, SIZE, SIZE);
  assert.equal(a.length, 3 * 3);
  assert.deepEqual(a, regionRois(GTS, 2, SIZE, SIZE));
  assert.deepEqual(a[0], { batch: 0, box: [4, 6, 30, 58] });
  assert.equal(a[6].batch, 1);
  for (const r of a) {
    const [x1, y1, x2, y2] = r.box;
    assert.ok(x1 >= 0 && y1 >= 0 && x2 <= SIZE && y2 <= SIZE && x2 > x1 && y2 > y1, String(r.box));
  }
  // The copies differ from the GT: the first is shifted +10 % and scaled 1.1.
  const [cx, cy, w] = [(4 + 30) / 2 + 2.6, (6 + 58) / 2 + 5.2, 26 * 1.1];
  close(a[1].box[0], cx - w / 2, 1e-9, 'x1');
  close((a[1].box[1] + a[1].box[3]) / 2, Math.min(cy + 28.6, SIZE) / 2 + (cy - 28.6) / 2, 1e-9, 'cy');
  assert.equal(regionRois(GTS, 0, SIZE, SIZE).length, 3);
});

test('student equal to teacher with identity adapters gives zero loss (T0)', () => {
  const t = pyramid(4, 1, 2);
  const b = pyramid(4, 7, 2).slice(0, 2);
  const prob = tf.sigmoid(tf.randomNormal([2, 16, 16, 1], -2, 2, 'float32', 3)) as tf.Tensor4D;
  const logits = safeLogit(prob);
  for (const norm of ['pkd', 'none'] as const) {
    const ctx = ctxOf({
      neck: [2, 3, 4, 5].map((l, i) => lvl(l as Level, t[i], t[i])),
      backbone: [2, 3].map((l, i) => lvl(l as Level, b[i], b[i])),
      headLogits: logits,
      headProb: prob,
      gts: GTS,
    });
    const terms = hkdTerms(ctx, HkdConfigSchema.parse({ norm }));
    assert.deepEqual(Object.keys(terms).sort(), ['hkd.backbone', 'hkd.feature', 'hkd.logit', 'hkd.region']);
    for (const [k, v] of Object.entries(terms))
      assert.ok(Math.abs(scalar(v)) < 1e-6, `${norm} ${k}: ${scalar(v)}`);
  }
  tf.dispose([...t, ...b, prob, logits]);
});

test('terms are weighted by their lambdas, synthetic levels halved, absent inputs omitted', () => {
  const s = pyramid(3, 1);
  const t = pyramid(3, 11);
  const neck = [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], t[i], s[i], i === 0));
  const logits = tf.zeros([1, 16, 16, 1]) as tf.Tensor4D;
  const cfg = HkdConfigSchema.parse({ feature: 3, region: 0, logit: 2, norm: 'none' });
  const terms = hkdTerms(ctxOf({ neck, headLogits: logits, gts: GTS.slice(0, 1) }), cfg);
  // No backbone levels, no head map, region weight 0: only the feature term.
  assert.deepEqual(Object.keys(terms), ['hkd.feature']);
  const mse = (i: number) => scalar(tf.mean(tf.squaredDifference(s[i], t[i])) as tf.Scalar);
  close(scalar(terms['hkd.feature']), (3 * (0.5 * mse(0) + mse(1) + mse(2) + mse(3))) / 4, 1e-5);
  close(scalar(featureMse(neck[1], 'pkd')), 0.5 * scalar(featureMse(lvl(3, s[1], t[1]), 'none')), 10);
  // No GTs: the region term is 0.
  const r = hkdTerms(ctxOf({ neck, headLogits: logits, gts: [[]] }), HkdConfigSchema.parse({}));
  assert.equal(scalar(r['hkd.region']), 0);
  tf.dispose([...s, ...t, logits]);
});

test('logit term: MSE of clipped logits over active cells only', () => {
  // Cells: inactive (P^T = 0.01, P^S ≈ 0), active (P^T = 0.5, Z^S = 1), active (clip: Z^S = 20).
  const prob = tf.tensor4d([0.01, 0.5, 0.5], [1, 1, 3, 1]);
  const logits = tf.tensor4d([-10, 1, 20], [1, 1, 3, 1]);
  close(scalar(logitLoss(logits, prob)), (1 + 64) / 2, 1e-4);
  const quiet = tf.tensor4d([0.01, 0.01, 0.01], [1, 1, 3, 1]);
  const neg = tf.tensor4d([-10, -10, -10], [1, 1, 3, 1]);
  assert.equal(scalar(logitLoss(neg, quiet)), 0);
  assert.throws(() => logitLoss(logits, tf.zeros([1, 1, 2, 1]) as tf.Tensor4D), { name: 'RangeError' });
  tf.dispose([prob, logits, quiet, neg]);
});

test('gradients reach student and adapter variables, teacher tensors stay unchanged (T1)', () => {
  const t = pyramid(4, 21);
  const bt = pyramid(4, 25).slice(0, 2);
  const prob = tf.sigmoid(tf.randomNormal([1, 16, 16, 1], -1, 2, 'float32', 3)) as tf.Tensor4D;
  const teachers = [...t, ...bt, prob];
  const before = teachers.map((x) => Array.from(x.dataSync()));
  const sv = pyramid(3, 31).map((x) => tf.variable(x));
  const bv = pyramid(3, 35)
    .slice(0, 2)
    .map((x) => tf.variable(x));
  const av = [0, 1, 2, 3, 4, 5].map((i) =>
    tf.variable(tf.randomNormal([1, 1, 3, 4], 0, 0.5, 'float32', 41 + i)),
  );
  const hv = tf.variable(tf.randomNormal([1, 16, 16, 1], 0, 1, 'float32', 51));
  const vars = [...sv, ...bv, ...av, hv];
  const { value, grads } = tf.variableGrads(() => {
    const conv = (x: tf.Variable, a: tf.Variable) => tf.conv2d(x as tf.Tensor4D, a as tf.Tensor4D, 1, 'same');
    const ctx = ctxOf({
      neck: [2, 3, 4, 5].map((l, i) => lvl(l as Level, sv[i] as tf.Tensor4D, t[i], conv(sv[i], av[i]))),
      backbone: [2, 3].map((l, i) => lvl(l as Level, bv[i] as tf.Tensor4D, bt[i], conv(bv[i], av[4 + i]))),
      headLogits: hv as tf.Tensor4D,
      headProb: prob,
      gts: GTS.slice(0, 1),
    });
    return tf.addN(Object.values(hkdTerms(ctx, HkdConfigSchema.parse({})))) as tf.Scalar;
  }, vars);
  assert.ok(Number.isFinite(scalar(value)));
  assertStudentOnlyStep(grads, vars, teachers, before);
  tf.dispose([...teachers, ...vars, value, ...Object.values(grads)]);
});

test('no gradient flows into the teacher side (T2)', () => {
  const s = pyramid(3, 1);
  const t = pyramid(3, 11);
  const prob = tf.sigmoid(tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 3)) as tf.Tensor4D;
  const logits = tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 4) as tf.Tensor4D;
  const g = tf.grads((...xs: tf.Tensor[]) => {
    const ctx = ctxOf({
      neck: [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], xs[i] as tf.Tensor4D)),
      headLogits: logits,
      headProb: xs[4] as tf.Tensor4D,
      gts: GTS.slice(0, 1),
    });
    return tf.addN(Object.values(hkdTerms(ctx, HkdConfigSchema.parse({}))));
  })([...t, prob]);
  for (const x of g) assert.ok(x.dataSync().every((v) => v === 0));
  tf.dispose([...s, ...t, prob, logits, ...g]);
});

test('pkd feature, backbone and region terms are invariant to T -> 7T + 3 per channel (T3)', () => {
  const s = pyramid(3, 1, 2);
  const t = pyramid(3, 11, 2);
  const scale = tf.tensor1d([7, 2, 0.5]);
  const shift = tf.tensor1d([3, -1, 10]);
  const t2 = t.map((x) => x.mul(scale).add(shift) as tf.Tensor4D);
  const logits = tf.zeros([2, 16, 16, 1]) as tf.Tensor4D;
  const run = (tt: tf.Tensor4D[]) =>
    hkdTerms(
      ctxOf({
        neck: [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], tt[i])),
        backbone: [2, 3].map((l, i) => lvl(l as Level, s[i], tt[i])),
        headLogits: logits,
        gts: GTS,
      }),
      HkdConfigSchema.parse({}),
    );
  const a = run(t);
  const b = run(t2);
  for (const k of ['hkd.backbone', 'hkd.feature', 'hkd.region'])
    close(scalar(a[k]), scalar(b[k]), 1e-5, `T3 ${k}`);
  tf.dispose([...s, ...t, ...t2, scale, shift, logits]);
});

test('region term (norm none) has zero gradient at cells farther than one cell from every RoI', () => {
  const s = tf.randomNormal([1, 16, 16, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
  const t = tf.randomNormal([1, 16, 16, 2], 0, 1, 'float32', 2) as tf.Tensor4D;
  const box: [number, number, number, number] = [16, 20, 36, 44]; // level 2 (stride 4)
  const gts: KdBox[][] = [[{ box, classId: 0, ignore: false }]];
  const logits = tf.zeros([1, 16, 16, 1]) as tf.Tensor4D;
  const g = tf.grad((x: tf.Tensor) => {
    const ctx = ctxOf({ neck: [lvl(2, x as tf.Tensor4D, t)], headLogits: logits, gts });
    const cfg = HkdConfigSchema.parse({ backbone: 0, feature: 0, logit: 0, jitter: 0, norm: 'none' });
    return hkdTerms(ctx, cfg)['hkd.region'];
  })(s);
  const gd = g.dataSync();
  const [x0, y0, x1, y1] = box.map((v) => v / 4 - 0.5); // feature coordinates of the RoI
  let inside = 0;
  for (let i = 0; i < 16; i++)
    for (let j = 0; j < 16; j++) {
      const far = j < x0 - 1 || j > x1 + 1 || i < y0 - 1 || i > y1 + 1;
      for (let c = 0; c < 2; c++) {
        const v = gd[(i * 16 + j) * 2 + c];
        if (far) assert.equal(v, 0, `cell ${i},${j}`);
        else if (v !== 0) inside++;
      }
    }
  assert.ok(inside > 0);
  tf.dispose([s, t, logits, g]);
});

test('region loss averages per-RoI means over all RoIs and levels', () => {
  const s = pyramid(2, 1);
  const t = pyramid(2, 11);
  const neck = [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], t[i]));
  const rois = regionRois(GTS.slice(0, 1), 1, SIZE, SIZE);
  assert.throws(() => regionLoss(neck, regionRois(GTS, 0, SIZE, SIZE), 'none'), { name: 'RangeError' });
  const all = scalar(regionLoss(neck, rois, 'none'));
  const each = rois.map((r) => scalar(regionLoss(neck, [r], 'none')));
  close(all, each.reduce((a, b) => a + b) / rois.length, 1e-5);
  tf.dispose([...s, ...t]);
});

test('hkdTerms leaks no tensors', () => {
  const s = pyramid(3, 1);
  const t = pyramid(3, 11);
  const prob = tf.sigmoid(tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 3)) as tf.Tensor4D;
  const logits = tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 4) as tf.Tensor4D;
  const ctx = ctxOf({
    neck: [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], t[i])),
    headLogits: logits,
    headProb: prob,
    gts: GTS.slice(0, 1),
  });
  const n0 = tf.memory().numTensors;
  tf.dispose(Object.values(hkdTerms(ctx, HkdConfigSchema.parse({}))));
  assert.equal(tf.memory().numTensors, n0);
  tf.dispose([...s, ...t, prob, logits]);
});
