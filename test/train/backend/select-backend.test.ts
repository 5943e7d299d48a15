import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { selectBackend } from '../../../train/backend/index.js';

test("'auto' picks wasm here and records why tensorflow was skipped", async () => {
  const b = await selectBackend('auto');
  assert.equal(b.name, 'wasm');
  assert.match(b.detail, /Conv2DBackpropFilter/);
  assert.equal(b.fallbacks[0]?.name, 'tensorflow');
  assert.match(b.fallbacks[0]?.reason ?? '', /tfjs-node-gpu.*tfjs-node/);
});

test("rejects explicit 'tensorflow' with ProviderUnavailableError", async () => {
  await assert.rejects(selectBackend('tensorflow'), {
    name: 'ProviderUnavailableError',
    code: 'ERR_BACKEND_UNAVAILABLE',
    message: /\[tensorflow\] .*tfjs-node/,
  });
});

test('rejects an unknown preference with a RangeError', async () => {
  await assert.rejects(selectBackend('gpu' as 'cpu'), { name: 'RangeError', message: /'pref'/ });
});

test('selects wasm inside a worker_thread and trains a depthwise conv there', async () => {
  const url = new URL('../../../train/backend/index.js', import.meta.url).href;
  const tfUrl = import.meta.resolve('@tensorflow/tfjs');
  const src = `
    const { parentPort } = await import('node:worker_threads');
    const tf = await import(${JSON.stringify(tfUrl)});
    const { selectBackend } = await import(${JSON.stringify(url)});
    const b = await selectBackend('wasm');
    const x = tf.randomNormal([2, 8, 8, 3]);
    const w = tf.variable(tf.randomNormal([3, 3, 3, 1]));
    const g = tf.grad((f) => tf.depthwiseConv2d(x, f, 2, 'same').square().sum())(w);
    parentPort.postMessage({ name: b.name, backend: tf.getBackend(), finite: g.isFinite().all().dataSync()[0] });`;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(src)}`));
  const msg = await new Promise<{ name: string; backend: string; finite: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  assert.deepEqual(msg, { name: 'wasm', backend: 'wasm', finite: 1 });
});
