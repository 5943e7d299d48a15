import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { batchNormActTrain, BN_ACT_KERNEL, type BnActivation } from '../../../models/arch/batch-norm.js';
import { randomHost, relMaxDiff, setupBackends } from './kernel-harness.js';

/** Value, batch stats and gradients of sum(w * act(bn(x))) w.r.t. x, gamma, beta on one backend. */
async function run(
  backend: 'cpu' | 'wasm',
  act: BnActivation,
  shape: [number, number, number, number],
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const c = shape[3];
  // Spread x and gamma so BN outputs cross both 0 and 6 (both ReLU6 clip points are exercised).
  const x = tf.tensor4d(randomHost(shape, 3).data, shape).mul(4).add(1) as tf.Tensor4D;
  const gamma = tf
    .tensor1d(randomHost([c], 5).data)
    .mul(4)
    .add(2) as tf.Tensor1D;
  const beta = tf.tensor1d(randomHost([c], 7).data).mul(3) as tf.Tensor1D;
  const w = tf.tensor4d(randomHost(shape, 11).data, shape);
  const stats: tf.Tensor[] = [];
  const f = (xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Scalar =>
    batchNormActTrain(xi as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3, act, (s) =>
      stats.push(s.mean, s.variance),
    )
      .mul(w)
      .sum();
  const { value, grads } = tf.valueAndGrads(f as (...a: tf.Tensor[]) => tf.Scalar)([x, gamma, beta]);
  const out = await Promise.all([value, ...stats, ...grads].map((t) => t.data() as Promise<Float32Array>));
  tf.dispose([x, gamma, beta, w, value, ...stats, ...grads]);
  return out;
}

before(setupBackends);

test('wasm registers the fused BN kernel and cpu does not (cpu runs the plain-op path)', () => {
  assert.ok(tf.getKernel(BN_ACT_KERNEL, 'wasm'));
  assert.equal(tf.getKernel(BN_ACT_KERNEL, 'cpu'), undefined);
});

for (const act of ['linear', 'relu', 'relu6'] as const) {
  for (const shape of [
    [2, 5, 6, 8],
    [3, 31, 30, 12],
  ] as [number, number, number, number][]) {
    test(`fused BN + ${act} on wasm matches plain ops on cpu: value, stats, dx, dgamma, dbeta [${shape}]`, async () => {
      const want = await run('cpu', act, shape);
      const got = await run('wasm', act, shape);
      const names = ['value', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'];
      want.forEach((wv, i) =>
        assert.ok(relMaxDiff(got[i], wv) <= 2e-4, `${names[i]}: ${relMaxDiff(got[i], wv)}`),
      );
    });
  }
}

test('wasm Identity shares data and leaves the source intact after dispose', async () => {
  await tf.setBackend('wasm');
  const a = tf.tensor1d([1, 2, 3]);
  const b = tf.engine().runKernel('Identity', { x: a }) as tf.Tensor;
  a.dispose();
  assert.deepEqual(Array.from(await b.data()), [1, 2, 3]);
  b.dispose();
});
