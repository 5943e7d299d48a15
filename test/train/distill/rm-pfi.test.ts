import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { Level } from '../../../models/core/spec.js';
import { RmPfiConfigSchema } from '../../../train/distill/config.js';
import {
  pfiLoss,
  rankMimicFromSets,
  rankMimicLoss,
  rmCandidates,
  rmPfiTerms,
} from '../../../train/distill/rm-pfi.js';
import { safeLogit } from '../../../train/distill/common.js';
import type { KdBox, KdContext, KdLevel } from '../../../train/distill/types.js';
import { close, assertStudentOnlyStep, kdContext, kdLevel, randomPyramid } from '../../helpers/kd-context.js';

await tf.setBackend('cpu');

const SIZE = 64;

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < got.length; i++) close(got[i], want[i], tol, `[${i}]`);
}

const scalar = (x: tf.Scalar) => x.dataSync()[0];

const lvl = kdLevel;

interface CtxParts {
  neck: KdLevel[];
  headLogits: tf.Tensor4D;
  headProb?: tf.Tensor4D;
  gts: KdBox[][];
  headStride?: number;
  size?: [number, number];
}

const ctxOf = (p: CtxParts): KdContext => kdContext({ ...p, size: p.size ?? [SIZE, SIZE] });

const pyramid = (c: number, seed: number, n = 1): tf.Tensor4D[] => randomPyramid(SIZE, c, seed, n);

const box = (x1: number, y1: number, x2: number, y2: number, ignore = false): KdBox => ({
  box: [x1, y1, x2, y2],
  classId: 0,
  ignore,
});

test('RM matches the hand example: 0.266217 and gradient [-0.331908, 0.088605, 0.243303]', () => {
  const t = tf.tensor2d([[2, 1, 0]]);
  const s = tf.tensor2d([[0, 0, 0]]);
  close(scalar(rankMimicLoss(s, t, 1)), 0.266217, 1e-5);
  const g = tf.grad((x: tf.Tensor) => rankMimicLoss(x as tf.Tensor2D, t, 1))(s);
  assertClose(g.dataSync(), [-0.331908, 0.088605, 0.243303], 1e-5);
  close(scalar(rankMimicLoss(s, t, 2)), 0.313684, 1e-5, 'T=2');
  tf.dispose([t, s, g]);
});

test('RM is invariant to a shift of the student logits and 0 when they equal the teacher', () => {
  const t = tf.tensor2d([[2, 1, 0, -1]]);
  const s = tf.tensor2d([[0.3, -1, 2, 0]]);
  close(scalar(rankMimicLoss(s.add(5) as tf.Tensor2D, t, 1)), scalar(rankMimicLoss(s, t, 1)), 1e-6);
  close(scalar(rankMimicLoss(t, t, 1)), 0, 1e-7);
  close(scalar(rankMimicLoss(t.add(5) as tf.Tensor2D, t, 2)), 0, 1e-6);
  tf.dispose([t, s]);
});

test('RM candidates: 3x3 around the centre cell, clipped at borders, ignore and empty boxes skipped', () => {
  const gts: KdBox[][] = [
    [box(0, 0, 6, 6), box(20, 0, 30, 4), box(20, 20, 30, 30), box(20, 20, 30, 30, true), box(5, 5, 5, 9)],
    [box(56, 56, 64, 64)],
  ];
  const sets = rmCandidates(gts, 4, 16, 16, 1);
  assert.deepEqual(
    sets.map((s) => s.cells.length),
    [4, 6, 9, 4],
  );
  // GT 3: centre (25, 25) -> cell (6, 6); neighbourhood rows 5..7, columns 5..7.
  assert.deepEqual(
    sets[2].cells,
    [5, 6, 7].flatMap((y) => [5, 6, 7].map((x) => y * 16 + x)),
  );
  assert.equal(sets[3].batch, 1);
  assert.ok(sets[3].cells.every((c) => c >= 256));
  assert.throws(() => rmCandidates([[{ box: [0, 0, 8, 8], classId: 2, ignore: false }]], 4, 16, 16, 2), {
    name: 'RangeError',
  });
});

test('RM over sets: a single-candidate GT contributes 0 and is excluded from G_n', () => {
  const teacher = tf.tensor4d([2, 1, 0, 3, -1, 0.5], [2, 1, 3, 1]);
  const student = tf.zeros([2, 1, 3, 1]) as tf.Tensor4D;
  const three = { batch: 0, classId: 0, cells: [0, 1, 2] };
  const single = { batch: 0, classId: 0, cells: [1] };
  const only = scalar(rankMimicFromSets(student, teacher, [three], 1));
  close(only, 0.266217 / 2, 1e-5, 'N = 2 images');
  close(scalar(rankMimicFromSets(student, teacher, [three, single], 1)), only, 1e-7);
  close(scalar(rankMimicFromSets(student, teacher, [single], 1)), 0, 0);
  // Per image: divide by its G_n, then average over the N images.
  const second = { batch: 1, classId: 0, cells: [3, 4, 5] };
  const row2 = scalar(rankMimicLoss(tf.zeros([1, 3]) as tf.Tensor2D, tf.tensor2d([[3, -1, 0.5]]), 1));
  close(scalar(rankMimicFromSets(student, teacher, [three, three, second], 1)), (0.266217 + row2) / 2, 1e-5);
  tf.dispose([teacher, student]);
});

test('rmPfiTerms RM reproduces the hand example on a 1x3 head grid, times lambda', () => {
  // Head grid 1x3 at stride 4 (input 4x12); GT centre in cell 1: candidates = all three cells.
  const prob = tf.sigmoid(tf.tensor4d([2, 1, 0], [1, 1, 3, 1])) as tf.Tensor4D;
  const logits = tf.zeros([1, 1, 3, 1]) as tf.Tensor4D;
  const neck = [lvl(2, tf.zeros([1, 1, 3, 2]) as tf.Tensor4D, tf.zeros([1, 1, 3, 2]) as tf.Tensor4D)];
  const cfg = RmPfiConfigSchema.parse({ pfi: 0 });
  const ctx = (z: tf.Tensor4D) =>
    ctxOf({ neck, headLogits: z, headProb: prob, gts: [[box(4, 0, 8, 4)]], size: [4, 12] });
  const terms = rmPfiTerms(ctx(logits), cfg);
  assert.deepEqual(Object.keys(terms), ['rmPfi.rm']);
  close(scalar(terms['rmPfi.rm']), 4 * 0.266217, 1e-4);
  const g = tf.grad((z: tf.Tensor) => rmPfiTerms(ctx(z as tf.Tensor4D), cfg)['rmPfi.rm'])(logits);
  assertClose(
    g.dataSync(),
    [-0.331908, 0.088605, 0.243303].map((v) => 4 * v),
    1e-4,
  );
  tf.dispose([prob, logits, g]);
});

test('PFI matches the hand examples: logit 1.0, prob 0.036252, prob normalised 0.5', () => {
  const adapted = tf.tensor4d([1, 0, 0, 0], [1, 1, 2, 2]);
  const teacher = tf.zeros([1, 1, 2, 2]) as tf.Tensor4D;
  const z = tf.tensor4d([0, 1], [1, 1, 2, 1]);
  const prob = tf.sigmoid(tf.tensor4d([2, 1], [1, 1, 2, 1])) as tf.Tensor4D;
  const levels = [{ adapted, teacher, synthetic: false }];
  const run = (variant: 'prob' | 'logit', normalizeWeights: boolean) =>
    scalar(pfiLoss(levels, z, prob, { variant, normalizeWeights, stopGradient: true, norm: 'none' }));
  close(run('logit', false), 1.0, 1e-5, 'logit');
  close(run('prob', false), 0.036252, 1e-6, 'prob');
  close(run('prob', true), 0.5, 1e-4, 'prob normalised');
  // Location 2 has identical predictions: changing its features changes nothing.
  const adapted2 = tf.tensor4d([1, 0, 5, -3], [1, 1, 2, 2]);
  const l2 = [{ adapted: adapted2, teacher, synthetic: false }];
  close(
    scalar(
      pfiLoss(l2, z, prob, { variant: 'prob', normalizeWeights: false, stopGradient: true, norm: 'none' }),
    ),
    0.036252,
    1e-6,
  );
  tf.dispose([adapted, teacher, z, prob, adapted2]);
});

test('PFI with stop-gradient has exactly zero gradient w.r.t. the student logits (T2)', () => {
  const s = pyramid(3, 1);
  const t = pyramid(3, 11);
  const z = tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 5) as tf.Tensor4D;
  const prob = tf.sigmoid(tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 6)) as tf.Tensor4D;
  const levels = [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], t[i]));
  for (const variant of ['prob', 'logit'] as const) {
    const grad = (stopGradient: boolean) =>
      tf.grad((x: tf.Tensor) =>
        pfiLoss(levels, x as tf.Tensor4D, prob, {
          variant,
          normalizeWeights: true,
          stopGradient,
          norm: 'pkd',
        }),
      )(z);
    const g0 = grad(true);
    assert.ok(
      g0.dataSync().every((v) => v === 0),
      variant,
    );
    const g1 = grad(false);
    assert.ok(g1.dataSync().every(Number.isFinite) && g1.dataSync().some((v) => v !== 0), variant);
    tf.dispose([g0, g1]);
  }
  tf.dispose([...s, ...t, z, prob]);
});

test('PFI weights are average-pooled to coarser levels and resampled to finer ones', () => {
  // Head 4x4 (stride 4), level 3 at 2x2: each level cell takes the mean gap of its 2x2 head cells.
  const zData = Array.from({ length: 16 }, (_, i) => (i % 5) - 2);
  const z = tf.tensor4d(zData, [1, 4, 4, 1]);
  const prob = tf.fill([1, 4, 4, 1], 0.5) as tf.Tensor4D;
  const gap = zData.map((v) => (0.5 - 1 / (1 + Math.exp(-v))) ** 2);
  const adapted = tf.tensor4d([1, 0, 0, 0, 0, 0, 0, 0], [1, 2, 2, 2]); // f = [0.5, 0, 0, 0]
  const teacher = tf.zeros([1, 2, 2, 2]) as tf.Tensor4D;
  const opts = { variant: 'prob', normalizeWeights: false, stopGradient: true, norm: 'none' } as const;
  const got = scalar(pfiLoss([{ adapted, teacher, synthetic: false }], z, prob, opts));
  const cell0 = (gap[0] + gap[1] + gap[4] + gap[5]) / 4;
  close(got, (cell0 * 0.5) / 4, 1e-7);
  // A finer level (8x8 from a 4x4 head) is bilinearly upsampled: constant gap stays constant.
  const fine = tf.fill([1, 8, 8, 2], 1) as tf.Tensor4D;
  const zc = tf.fill([1, 4, 4, 1], 1) as tf.Tensor4D;
  const g = (0.5 - 1 / (1 + Math.exp(-1))) ** 2;
  const zeros8 = tf.zeros([1, 8, 8, 2]) as tf.Tensor4D;
  close(
    scalar(pfiLoss([{ adapted: fine, teacher: zeros8, synthetic: true }], zc, prob, opts)),
    0.5 * g,
    1e-7,
  );
  tf.dispose([z, prob, adapted, teacher, fine, zc, zeros8]);
});

test('rmPfiTerms: terms weighted by lambda, filtered levels, nothing without a head map', () => {
  const s = pyramid(3, 1);
  const t = pyramid(3, 11);
  const z = tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 5) as tf.Tensor4D;
  const prob = tf.sigmoid(tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 6)) as tf.Tensor4D;
  const neck = [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], t[i]));
  const gts = [[box(10, 10, 30, 40), box(40, 5, 60, 25)]];
  assert.deepEqual(rmPfiTerms(ctxOf({ neck, headLogits: z, gts }), RmPfiConfigSchema.parse({})), {});
  const cfg = RmPfiConfigSchema.parse({ levels: [3, 4] });
  const terms = rmPfiTerms(ctxOf({ neck, headLogits: z, headProb: prob, gts }), cfg);
  assert.deepEqual(Object.keys(terms).sort(), ['rmPfi.pfi', 'rmPfi.rm']);
  close(scalar(terms['rmPfi.pfi']), 1.5 * scalar(pfiLoss(neck.slice(1, 3), z, prob, cfg)), 1e-6);
  const sets = rmCandidates(gts, 4, 16, 16, 1);
  close(scalar(terms['rmPfi.rm']), 4 * scalar(rankMimicFromSets(z, safeLogit(prob), sets, 1)), 1e-6);
  assert.deepEqual(
    Object.keys(
      rmPfiTerms(
        ctxOf({ neck, headLogits: z, headProb: prob, gts }),
        RmPfiConfigSchema.parse({ rm: 0, levels: [] }),
      ),
    ),
    [],
  );
  tf.dispose([...s, ...t, z, prob]);
});

test('student equal to teacher with identity adapters gives zero loss (T0)', () => {
  const t = pyramid(4, 1, 2);
  const prob = tf.sigmoid(tf.randomNormal([2, 16, 16, 1], -1, 2, 'float32', 3)) as tf.Tensor4D;
  const logits = safeLogit(prob);
  const gts = [[box(10, 10, 30, 40)], [box(0, 0, 20, 20), box(50, 50, 64, 64)]];
  for (const norm of ['pkd', 'none'] as const)
    for (const variant of ['prob', 'logit'] as const) {
      const ctx = ctxOf({
        neck: [2, 3, 4, 5].map((l, i) => lvl(l as Level, t[i], t[i])),
        headLogits: logits,
        headProb: prob,
        gts,
      });
      const terms = rmPfiTerms(ctx, RmPfiConfigSchema.parse({ norm, variant }));
      assert.equal(Object.keys(terms).length, 2);
      for (const [k, v] of Object.entries(terms))
        assert.ok(Math.abs(scalar(v)) < 1e-6, `${norm} ${variant} ${k}: ${scalar(v)}`);
    }
  tf.dispose([...t, prob, logits]);
});

test('gradients reach student, adapter and head variables, teacher tensors stay unchanged (T1)', () => {
  const t = pyramid(4, 21);
  const prob = tf.sigmoid(tf.randomNormal([1, 16, 16, 1], -1, 2, 'float32', 3)) as tf.Tensor4D;
  const teachers = [...t, prob];
  const before = teachers.map((x) => Array.from(x.dataSync()));
  const sv = pyramid(3, 31).map((x) => tf.variable(x));
  const av = [0, 1, 2, 3].map((i) => tf.variable(tf.randomNormal([1, 1, 3, 4], 0, 0.5, 'float32', 41 + i)));
  const hv = tf.variable(tf.randomNormal([1, 16, 16, 1], 0, 1, 'float32', 51));
  const vars = [...sv, ...av, hv];
  const gts = [[box(10, 10, 30, 40), box(40, 5, 60, 25)]];
  const { value, grads } = tf.variableGrads(() => {
    const neck = [2, 3, 4, 5].map((l, i) =>
      lvl(
        l as Level,
        sv[i] as tf.Tensor4D,
        t[i],
        tf.conv2d(sv[i] as tf.Tensor4D, av[i] as tf.Tensor4D, 1, 'same'),
      ),
    );
    const ctx = ctxOf({ neck, headLogits: hv as tf.Tensor4D, headProb: prob, gts });
    return tf.addN(Object.values(rmPfiTerms(ctx, RmPfiConfigSchema.parse({})))) as tf.Scalar;
  }, vars);
  assert.ok(Number.isFinite(scalar(value)));
  assertStudentOnlyStep(grads, vars, teachers, before);
  tf.dispose([...teachers, ...vars, value, ...Object.values(grads)]);
});

test('no gradient flows into the teacher side (T2)', () => {
  const s = pyramid(3, 1);
  const t = pyramid(3, 11);
  const z = tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 5) as tf.Tensor4D;
  const prob = tf.sigmoid(tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 6)) as tf.Tensor4D;
  const gts = [[box(10, 10, 30, 40), box(40, 5, 60, 25)]];
  for (const stopGradient of [true, false]) {
    const g = tf.grads((...xs: tf.Tensor[]) => {
      const neck = [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], xs[i] as tf.Tensor4D));
      const ctx = ctxOf({ neck, headLogits: z, headProb: xs[4] as tf.Tensor4D, gts });
      return tf.addN(Object.values(rmPfiTerms(ctx, RmPfiConfigSchema.parse({ stopGradient }))));
    })([...t, prob]);
    for (const x of g) assert.ok(x.dataSync().every((v) => v === 0));
    tf.dispose(g);
  }
  tf.dispose([...s, ...t, z, prob]);
});

test('pkd PFI is invariant to T -> 7T + 3 per channel (T3)', () => {
  const s = pyramid(3, 1, 2);
  const t = pyramid(3, 11, 2);
  const scale = tf.tensor1d([7, 2, 0.5]);
  const shift = tf.tensor1d([3, -1, 10]);
  const t2 = t.map((x) => x.mul(scale).add(shift) as tf.Tensor4D);
  const z = tf.randomNormal([2, 16, 16, 1], 0, 2, 'float32', 5) as tf.Tensor4D;
  const prob = tf.sigmoid(tf.randomNormal([2, 16, 16, 1], 0, 2, 'float32', 6)) as tf.Tensor4D;
  const run = (tt: tf.Tensor4D[]) =>
    scalar(
      rmPfiTerms(
        ctxOf({
          neck: [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], tt[i])),
          headLogits: z,
          headProb: prob,
          gts: [[], []],
        }),
        RmPfiConfigSchema.parse({ rm: 0 }),
      )['rmPfi.pfi'],
    );
  close(run(t), run(t2), 1e-5, 'T3');
  tf.dispose([...s, ...t, ...t2, scale, shift, z, prob]);
});

test('rmPfiTerms leaks no tensors', () => {
  const s = pyramid(3, 1);
  const t = pyramid(3, 11);
  const z = tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 5) as tf.Tensor4D;
  const prob = tf.sigmoid(tf.randomNormal([1, 16, 16, 1], 0, 2, 'float32', 6)) as tf.Tensor4D;
  const ctx = ctxOf({
    neck: [2, 3, 4, 5].map((l, i) => lvl(l as Level, s[i], t[i])),
    headLogits: z,
    headProb: prob,
    gts: [[box(10, 10, 30, 40)]],
  });
  const n0 = tf.memory().numTensors;
  tf.dispose(Object.values(rmPfiTerms(ctx, RmPfiConfigSchema.parse({}))));
  assert.equal(tf.memory().numTensors, n0);
  tf.dispose([...s, ...t, z, prob]);
});
