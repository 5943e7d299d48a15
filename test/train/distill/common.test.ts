import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  alignToStudent,
  bceLogits,
  bilinearPlan,
  bilinearSample,
  gatherRows,
  klRows,
  levelRelation,
  pkdNorm,
  roiAlign,
  safeLogit,
  sg,
  spatialSaliency,
} from '../../../train/distill/common.js';

await tf.setBackend('cpu');

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  assert.equal(got.length, want.length, `length ${got.length} vs ${want.length}`);
  for (let i = 0; i < got.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `[${i}] ${got[i]} vs ${want[i]} (tol ${tol})`);
}

/** 3×3 single-channel map F[y, x] = 10y + x, flattened to [9, 1]. */
function rampMap(): tf.Tensor2D {
  const data: number[] = [];
  for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) data.push(10 * y + x);
  return tf.tensor2d(data, [9, 1]);
}

test('sg is the identity forward and has zero gradient', () => {
  const x = tf.tensor1d([1, 2, 3]);
  const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(sg(v), v)))(x);
  assertClose(g.dataSync(), [1, 2, 3], 0);
  tf.dispose([x, g]);
});

test('spatialSaliency matches the hand example and averages 1 per image', () => {
  const x = tf.tensor4d([1, 3, -2, 0.5, 4, 4], [2, 1, 3, 1]);
  const a = spatialSaliency(x, 1);
  assert.deepEqual(a.shape, [2, 1, 3]);
  const hand = tf.tensor4d([1, 3], [1, 1, 2, 1]);
  const ah = spatialSaliency(hand, 1);
  assertClose(ah.dataSync(), [0.238406, 1.761594], 1e-5);
  assertClose(tf.mean(a, [1, 2]).dataSync(), [1, 1], 1e-6);
  tf.dispose([x, a, hand, ah]);
});

test('levelRelation gives cosine similarities of pooled level descriptors', () => {
  const g1 = tf.tensor4d([1, 0], [1, 1, 1, 2]);
  const g2 = tf.tensor4d([1, 1, 1, 1], [1, 2, 1, 2]);
  const r = levelRelation([g1, g2]);
  assert.deepEqual(r.shape, [1, 2, 2]);
  assertClose(r.dataSync(), [1, Math.SQRT1_2, Math.SQRT1_2, 1], 1e-6);
  assert.throws(() => levelRelation([g1, tf.zeros([1, 1, 1, 3]) as tf.Tensor4D]), { name: 'RangeError' });
  tf.dispose([g1, g2, r]);
});

test('bilinear sampler reproduces the hand values 5.5 and 11.5', () => {
  const map = rampMap();
  const plan = bilinearPlan({ batch: [0, 0], x: [8, 16], y: [8, 12] }, 8, 3, 3);
  const s = bilinearSample(map, plan);
  assert.deepEqual(s.shape, [2, 1]);
  assertClose(s.dataSync(), [5.5, 11.5], 1e-6);
  tf.dispose([map, s]);
});

test('bilinear sampler clamps at borders and indexes the right image', () => {
  const map = tf.concat([rampMap(), rampMap().add(100)]) as tf.Tensor2D; // N = 2
  const plan = bilinearPlan({ batch: [0, 1, 1], x: [-50, 4, 100], y: [-50, 4, 100] }, 8, 3, 3);
  assertClose(bilinearSample(map, plan).dataSync(), [0, 100, 122], 1e-6);
  tf.dispose(map);
});

test('bilinear sampler is differentiable w.r.t. the map (gather gradient)', () => {
  const map = rampMap();
  const plan = bilinearPlan({ batch: [0], x: [8], y: [8] }, 8, 3, 3);
  const g = tf.grad((m: tf.Tensor) => tf.sum(bilinearSample(m as tf.Tensor2D, plan)))(map);
  assertClose(g.dataSync(), [0.25, 0.25, 0, 0.25, 0.25, 0, 0, 0, 0], 1e-7);
  tf.dispose([map, g]);
});

test('sampler gradients (host scatter) equal tf.gather autodiff, repeated rows included', () => {
  const map = tf.randomNormal([2 * 4 * 5, 3], 0, 1, 'float32', 7) as tf.Tensor2D;
  const pts = { batch: [0, 1, 1, 0, 1], x: [3, 11.5, 11.5, 40, -3], y: [2, 9, 9.25, 30, 14] };
  const plan = bilinearPlan(pts, 4, 4, 5);
  const up = tf.randomNormal([5, 3], 0, 1, 'float32', 8);
  const ref = (m: tf.Tensor) => {
    const rows = tf.gather(m, tf.tensor1d(plan.index, 'int32')).reshape([4, 5, 3]);
    return tf.sum(tf.sum(rows.mul(tf.tensor3d(plan.weight, [4, 5, 1])), 0).mul(up));
  };
  const got = tf.grad((m: tf.Tensor) => tf.sum(bilinearSample(m as tf.Tensor2D, plan).mul(up)))(map);
  const want = tf.grad(ref)(map);
  assertClose(got.dataSync(), want.dataSync(), 1e-6);
  const idx = new Int32Array([4, 0, 4, 39]);
  const g2 = tf.grad((m: tf.Tensor) => tf.sum(gatherRows(m as tf.Tensor2D, idx).mul(up.slice(0, 4))))(map);
  const w2 = tf.grad((m: tf.Tensor) => tf.sum(tf.gather(m, tf.tensor1d(idx, 'int32')).mul(up.slice(0, 4))))(
    map,
  );
  assertClose(g2.dataSync(), w2.dataSync(), 1e-6);
  tf.dispose([map, up, got, want, g2, w2]);
});

test('roiAlign of a constant map returns the constant in every bin', () => {
  const map = tf.fill([2 * 6 * 5, 3], 2.5) as tf.Tensor2D;
  const rois = [
    { batch: 0, box: [3, 5, 30, 40] as const },
    { batch: 1, box: [0, 0, 40, 48] as const },
  ];
  const r = roiAlign(map, rois, 8, 6, 5);
  assert.deepEqual(r.shape, [2, 7, 7, 3]);
  assert.ok(r.dataSync().every((v) => Math.abs(v - 2.5) < 1e-6));
  tf.dispose([map, r]);
});

test('roiAlign of an x-coordinate map returns each bin centre', () => {
  // Cell (i, j) at stride 4 holds its centre x = (j + 0.5)·4; bilinear is exact on linear maps.
  const h = 16;
  const w = 16;
  const data: number[] = [];
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) data.push((j + 0.5) * 4);
  const map = tf.tensor2d(data, [h * w, 1]);
  const [x1, x2] = [10, 45];
  const r = roiAlign(map, [{ batch: 0, box: [x1, 12, x2, 50] }], 4, h, w);
  const got = r.dataSync();
  for (let by = 0; by < 7; by++)
    for (let bx = 0; bx < 7; bx++) {
      const want = x1 + ((bx + 0.5) * (x2 - x1)) / 7;
      assert.ok(Math.abs(got[by * 7 + bx] - want) < 1e-4, `bin ${by},${bx}: ${got[by * 7 + bx]} vs ${want}`);
    }
  tf.dispose([map, r]);
});

test('klRows matches the RM hand values for T = 1 and T = 2', () => {
  const p = tf.tensor2d([2, 1, 0, 0, 0, 0], [2, 3]);
  const q = tf.tensor2d([0, 0, 0, 0, 0, 0], [2, 3]);
  assertClose(klRows(p, q, 1).dataSync(), [0.266217, 0], 1e-5);
  assertClose(klRows(p, q, 2).dataSync(), [0.313684, 0], 1e-5);
  tf.dispose([p, q]);
});

test('bceLogits matches -y log p - (1-y) log(1-p) and stays finite', () => {
  const z = tf.tensor1d([-3, 0, 2, 80, -80]);
  const y = tf.tensor1d([1, 0.5, 0, 1, 0]);
  const got = bceLogits(z, y).dataSync();
  const want = [-3, 0, 2].map((zi, i) => {
    const p = 1 / (1 + Math.exp(-zi));
    const yi = [1, 0.5, 0][i];
    return -yi * Math.log(p) - (1 - yi) * Math.log(1 - p);
  });
  assertClose(Array.from(got).slice(0, 3), want, 1e-5);
  assert.ok(got[3] >= 0 && got[3] < 1e-6 && got[4] >= 0 && got[4] < 1e-6);
  assertClose(bceLogits(z, 1).dataSync().slice(0, 1), [want[0]], 1e-5);
  tf.dispose([z, y]);
});

test('safeLogit inverts the sigmoid and clips to [1e-4, 1 - 1e-4]', () => {
  const p = tf.tensor1d([0, 0.5, 0.880797, 1]);
  const lim = Math.log(1e-4 / (1 - 1e-4));
  assertClose(safeLogit(p).dataSync(), [lim, 0, 2, -lim], 1e-3);
  tf.dispose(p);
});

test('pkdNorm is invariant to a per-channel positive scale and shift (T3)', () => {
  const x = tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
  const y = x.mul(tf.tensor1d([7, 0.5])).add(tf.tensor1d([3, -2])) as tf.Tensor4D;
  const d = tf.max(tf.abs(pkdNorm(x).sub(pkdNorm(y)))).dataSync()[0];
  assert.ok(d < 1e-5, String(d));
  tf.dispose([x, y]);
});

test('pkdNorm has finite gradients for a constant (dead) channel', () => {
  const x = tf.randomNormal([1, 3, 3, 2], 0, 1, 'float32', 4).mul(tf.tensor1d([0, 1]));
  const up = tf.randomNormal([1, 3, 3, 2], 0, 1, 'float32', 5);
  const g = tf.grad((v: tf.Tensor) => tf.sum(pkdNorm(v as tf.Tensor4D).mul(up)))(x);
  assert.ok(g.dataSync().every(Number.isFinite));
  tf.dispose([x, up, g]);
});

test('alignToStudent maps a stride-8 x-coordinate map onto stride-4 cell centres (T4)', () => {
  const [h8, w8] = [6, 8];
  const data: number[] = [];
  for (let i = 0; i < h8; i++) for (let j = 0; j < w8; j++) data.push((j + 0.5) * 8);
  const t = tf.tensor4d(data, [1, h8, w8, 1]);
  const a = alignToStudent(t, 2 * h8, 2 * w8);
  assert.deepEqual(a.shape, [1, 2 * h8, 2 * w8, 1]);
  const got = a.dataSync();
  let worst = 0;
  for (let i = 1; i < 2 * h8 - 1; i++)
    for (let j = 1; j < 2 * w8 - 1; j++)
      worst = Math.max(worst, Math.abs(got[i * 2 * w8 + j] - (j + 0.5) * 4));
  assert.ok(worst < 1e-4, String(worst));
  tf.dispose([t, a]);
});
