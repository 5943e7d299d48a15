import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { randomHost, relMaxDiff, setupBackends } from './kernel-harness.js';

/** conv s2 -> BN (batch moments) -> relu6 -> depthwise -> BN -> relu6 -> 1x1 conv -> sum of squares. */
async function netGrads(backend: 'cpu' | 'wasm'): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const h = (shape: number[], seed: number) =>
    tf.tensor4d(randomHost(shape, seed).data, shape as [number, number, number, number]);
  const x = h([3, 9, 8, 3], 1);
  const v = (shape: number, seed: number) => tf.tensor1d(randomHost([shape], seed).data);
  const params: tf.Tensor[] = [h([3, 3, 3, 8], 2), h([3, 3, 8, 1], 3), h([1, 1, 8, 4], 4), v(8, 5), v(8, 6)];
  const bn = (t: tf.Tensor4D, g: tf.Tensor, b: tf.Tensor): tf.Tensor4D => {
    const { mean, variance } = tf.moments(t, [0, 1, 2]);
    return tf.batchNorm4d(
      t,
      mean as tf.Tensor1D,
      variance as tf.Tensor1D,
      b as tf.Tensor1D,
      g as tf.Tensor1D,
      1e-3,
    );
  };
  const f = (w1: tf.Tensor, w2: tf.Tensor, w3: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Scalar => {
    let y = tf.relu6(bn(tf.conv2d(x, w1 as tf.Tensor4D, 2, 'same'), g, b));
    y = tf.relu6(bn(tf.depthwiseConv2d(y, w2 as tf.Tensor4D, 1, 'same'), g, b));
    return tf
      .conv2d(y, w3 as tf.Tensor4D, 1, 'valid')
      .mul(3)
      .square()
      .sum();
  };
  const grads = tf.grads(f as (...a: tf.Tensor[]) => tf.Tensor)(params);
  const out = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
  tf.dispose([x, ...params, ...grads]);
  return out;
}

before(setupBackends);

test('gradients of a conv/depthwise/BN/relu6 net on wasm match cpu', async () => {
  const want = await netGrads('cpu');
  const got = await netGrads('wasm');
  want.forEach((w, i) => assert.ok(relMaxDiff(got[i], w) <= 1e-4, `param ${i}: ${relMaxDiff(got[i], w)}`));
});

test('resize-nearest gradient on wasm (batch 3) matches finite differences', async () => {
  // The cpu backend's ResizeNearestNeighborGrad is wrong for batch > 1 in tfjs 4.22, so check against
  // central differences of L = sum(w * resize(x)), which is linear in x (exact up to rounding).
  await tf.setBackend('wasm');
  const xh = randomHost([3, 3, 4, 2], 7);
  const wt = tf.tensor(randomHost([3, 6, 8, 2], 8).data, [3, 6, 8, 2]);
  const loss = (x: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [6, 8]), wt));
  const g = await tf.grad(loss)(tf.tensor(xh.data, xh.shape)).data();
  const eps = 1e-2;
  const fd = new Float32Array(xh.data.length);
  for (let i = 0; i < fd.length; i++) {
    const plus = Float32Array.from(xh.data);
    const minus = Float32Array.from(xh.data);
    plus[i] += eps;
    minus[i] -= eps;
    const lp = tf.tidy(() => loss(tf.tensor(plus, xh.shape)).dataSync()[0]);
    const lm = tf.tidy(() => loss(tf.tensor(minus, xh.shape)).dataSync()[0]);
    fd[i] = (lp - lm) / (2 * eps);
  }
  wt.dispose();
  assert.ok(relMaxDiff(g, fd) <= 1e-3, `relative max diff ${relMaxDiff(g, fd)}`);
});
