import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Student } from '../../../models/arch/student.js';
import { batchNormTrain } from '../../../models/arch/batch-norm.js';
import { parseModelSpec } from '../../../models/core/spec.js';

await tf.setBackend('cpu');

const spec = parseModelSpec({
  name: 's',
  classes: ['person'],
  input: { height: 64, width: 64 },
  backbone: {
    stemChannels: 4,
    stages: [
      { channels: 8, depth: 1 },
      { channels: 8, depth: 2 },
      { channels: 12, depth: 1 },
      { channels: 16, depth: 1 },
    ],
  },
  neck: { channels: 8 },
  head: { channels: 8 },
  decode: {},
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
}

test('forward gives heads at stride 4 and every tap', () => {
  const s = new Student(spec, 0);
  tf.tidy(() => {
    const out = s.apply(tf.randomUniform([2, 64, 64, 3]) as tf.Tensor4D, { training: false });
    assert.deepEqual(out.heatmap.shape, [2, 16, 16, 1]);
    assert.deepEqual(out.size.shape, [2, 16, 16, 2]);
    assert.deepEqual(out.offset.shape, [2, 16, 16, 2]);
    assert.deepEqual(out.features.C3.shape, [2, 8, 8, 8]);
    assert.deepEqual(out.features.P5.shape, [2, 2, 2, 8]);
  });
  s.dispose();
});

test('rejects an input of the wrong size naming the parameter', () => {
  const s = new Student(spec, 0);
  assert.throws(
    () => tf.tidy(() => s.apply(tf.zeros([1, 32, 64, 3]) as tf.Tensor4D, { training: false }).heatmap),
    { name: 'RangeError', message: /'imageNhwc'/ },
  );
  s.dispose();
});

test('batchNormTrain gradient equals autodiff of the textbook formula', () => {
  const x = tf.randomNormal([3, 5, 4, 6], 1, 2, 'float32', 7) as tf.Tensor4D;
  const gamma = tf.randomNormal([6], 1, 0.3, 'float32', 8) as tf.Tensor1D;
  const beta = tf.randomNormal([6], 0, 0.3, 'float32', 9) as tf.Tensor1D;
  const dy = tf.randomNormal([3, 5, 4, 6], 0, 1, 'float32', 10);
  const eps = 1e-3;
  const ref = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const { mean, variance } = tf.moments(xx, [0, 1, 2]);
    return xx.sub(mean).div(variance.add(eps).sqrt()).mul(g).add(b).mul(dy).sum();
  };
  const ours = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    batchNormTrain(xx as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, eps)
      .mul(dy)
      .sum();
  const gRef = tf.grads(ref)([x, gamma, beta]);
  const gOurs = tf.grads(ours)([x, gamma, beta]);
  assert.ok(Math.abs(ours(x, gamma, beta).dataSync()[0] - ref(x, gamma, beta).dataSync()[0]) < 1e-3);
  for (let i = 0; i < 3; i++) {
    const scale = tf.tidy(() => gRef[i].abs().max().dataSync()[0]);
    assert.ok(maxAbsDiff(gRef[i], gOurs[i]) <= 1e-4 * Math.max(1, scale), `grad ${i} differs`);
  }
  tf.dispose([x, gamma, beta, dy, ...gRef, ...gOurs]);
});

test('get/setWeights round-trips and names a missing parameter', () => {
  const a = new Student(spec, 1);
  const b = new Student(spec, 2);
  const w = a.getWeights();
  b.setWeights(w);
  const x = tf.randomUniform([1, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const ya = tf.tidy(() => a.apply(x, { training: false }).heatmap);
  const yb = tf.tidy(() => b.apply(x, { training: false }).heatmap);
  assert.equal(maxAbsDiff(ya, yb), 0);
  const broken = { ...w };
  delete broken['backbone.stem.conv.weight'];
  assert.throws(() => b.setWeights(broken, 'ckpt.safetensors'), {
    name: 'ModelFormatError',
    message: /ckpt\.safetensors.*backbone\.stem\.conv\.weight/,
  });
  const reshaped = { ...w, 'backbone.stem.bn.gamma': { shape: [5], data: new Float32Array(5) } };
  assert.throws(() => b.setWeights(reshaped), { name: 'ModelFormatError', message: /shape \[5\].*\[4\]/ });
  tf.dispose([x, ya, yb]);
  a.dispose();
  b.dispose();
});

test('apply leaks no tensors under tidy', () => {
  const s = new Student(spec, 0);
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    s.apply(tf.zeros([1, 64, 64, 3]) as tf.Tensor4D, { training: true });
  });
  assert.equal(tf.memory().numTensors, before);
  s.dispose();
});
