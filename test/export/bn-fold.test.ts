import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { onnx } from '../../export/onnx-proto.js';
import { foldBatchNorm, kernelToOihw } from '../../export/bn-fold.js';
import { valueInfo } from '../../export/onnx-graph.js';
import { batchNormInfer } from '../../models/arch/batch-norm.js';
import { samePads } from '../../models/arch/graph.js';

await tf.setBackend('cpu');

const rand = (n: number, lo = -1, hi = 1) =>
  Float32Array.from({ length: n }, () => lo + (hi - lo) * Math.random());

test('kernelToOihw maps HWIO [k,k,in,out] to OIHW and depthwise [k,k,C,1] to [C,1,k,k]', () => {
  // value encodes its HWIO position: y*1000 + x*100 + i*10 + o
  const hwio = new Float32Array(2 * 3 * 4 * 5);
  for (let y = 0; y < 2; y++)
    for (let x = 0; x < 3; x++)
      for (let i = 0; i < 4; i++)
        for (let o = 0; o < 5; o++) hwio[((y * 3 + x) * 4 + i) * 5 + o] = y * 1000 + x * 100 + i * 10 + o;
  const r = kernelToOihw({ shape: [2, 3, 4, 5], data: hwio }, false);
  assert.deepEqual(r.dims, [5, 4, 2, 3]);
  assert.equal(r.data[((3 * 4 + 2) * 2 + 1) * 3 + 2], 1000 + 200 + 20 + 3); // o=3, i=2, y=1, x=2
  const dw = new Float32Array(3 * 3 * 6).map((_, j) => j);
  const d = kernelToOihw({ shape: [3, 3, 6, 1], data: dw }, true);
  assert.deepEqual(d.dims, [6, 1, 3, 3]);
  assert.equal(d.data[4 * 9 + (1 * 3 + 2)], (1 * 3 + 2) * 6 + 4); // c=4, y=1, x=2
});

test('conv + inference BN (tfjs) equals the folded conv run by onnxruntime-node, normal and depthwise, stride 1 and 2', async () => {
  for (const depthwise of [false, true])
    for (const stride of [1, 2] as const) {
      const [H, W, cin, k] = [10, 12, 6, 3];
      const cout = depthwise ? cin : 4;
      const kernel = rand(k * k * cin * (depthwise ? 1 : cout));
      const bias = rand(cout, -0.5, 0.5);
      const bn = {
        gamma: rand(cout, 0.5, 2),
        beta: rand(cout),
        movingMean: rand(cout),
        movingVariance: rand(cout, 0.1, 3),
        epsilon: 1e-3,
      };
      const x = rand(H * W * cin);
      const want = tf.tidy(() => {
        const xt = tf.tensor4d(x, [1, H, W, cin]);
        const kt = tf.tensor4d(kernel, [k, k, cin, depthwise ? 1 : cout]);
        let y = depthwise ? tf.depthwiseConv2d(xt, kt, stride, 'same') : tf.conv2d(xt, kt, stride, 'same');
        y = y.add(tf.tensor1d(bias));
        const t1 = (a: Float32Array) => tf.tensor1d(a);
        return batchNormInfer(
          y,
          t1(bn.gamma),
          t1(bn.beta),
          t1(bn.movingMean),
          t1(bn.movingVariance),
          bn.epsilon,
        )
          .transpose([0, 3, 1, 2])
          .dataSync() as Float32Array;
      });
      const { data, dims } = kernelToOihw(
        { shape: [k, k, cin, depthwise ? 1 : cout], data: kernel },
        depthwise,
      );
      const f = foldBatchNorm(data, bias, bn);
      const [pt, pb] = samePads(H, k, stride);
      const [pl, pr] = samePads(W, k, stride);
      const F = onnx.TensorProto.DataType.FLOAT;
      const init = (name: string, d: number[], a: Float32Array) =>
        onnx.TensorProto.create({ name, dims: d, dataType: F, rawData: new Uint8Array(a.slice().buffer) });
      const A = onnx.AttributeProto.AttributeType;
      const model = onnx.ModelProto.create({
        irVersion: 8,
        opsetImport: [{ domain: '', version: 17 }],
        graph: {
          name: 'g',
          node: [
            {
              opType: 'Conv',
              name: 'c',
              input: ['x', 'w', 'b'],
              output: ['y'],
              attribute: [
                { name: 'strides', type: A.INTS, ints: [stride, stride] },
                { name: 'pads', type: A.INTS, ints: [pt, pl, pb, pr] },
                { name: 'group', type: A.INT, i: depthwise ? cin : 1 },
              ],
            },
          ],
          initializer: [init('w', dims, f.weight), init('b', [cout], f.bias)],
          input: [valueInfo('x', F, [1, cin, H, W])],
          output: [valueInfo('y', F, [1, cout, Math.ceil(H / stride), Math.ceil(W / stride)])],
        },
      });
      const s = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish());
      const xNchw = tf.tidy(
        () => tf.tensor4d(x, [1, H, W, cin]).transpose([0, 3, 1, 2]).dataSync() as Float32Array,
      );
      const got = (await s.run({ x: new ort.Tensor('float32', xNchw, [1, cin, H, W]) })).y
        .data as Float32Array;
      await s.release();
      assert.equal(got.length, want.length);
      let max = 0;
      for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]));
      assert.ok(max < 1e-5, `depthwise=${depthwise} stride=${stride}: max abs diff ${max}`);
    }
});

test('foldBatchNorm without a conv bias uses b = 0 and leaves its inputs untouched', () => {
  const w = Float32Array.from([1, 2, 3, 4]);
  const r = foldBatchNorm(w, undefined, {
    gamma: Float32Array.from([4, 1]),
    beta: Float32Array.from([0.5, 0]),
    movingMean: Float32Array.from([1, 0]),
    movingVariance: Float32Array.from([4 - 1e-3, 1 - 1e-3]),
    epsilon: 1e-3,
  });
  // s = gamma / sqrt(var + eps) = [2, 1]; b' = beta + (0 - mean) * s
  const close = (a: Float32Array, b: number[]) =>
    b.forEach((v, i) => assert.ok(Math.abs(a[i] - v) < 1e-5, `${a[i]} vs ${v}`));
  close(r.weight, [2, 4, 3, 4]);
  close(r.bias, [0.5 - 2, 0]);
  assert.deepEqual([...w], [1, 2, 3, 4]);
});
