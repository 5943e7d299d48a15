import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildOnnxModel } from '../../export/onnx-graph.js';
import { verifyParity } from '../../export/verify.js';
import { deployWeights, loadCheckpoint } from '../../models/core/checkpoint.js';
import { calibrateBn, randomWeights, tinySpec } from './export-fixture.js';
import { readModelSpec } from '../../models/core/spec.js';

await tf.setBackend('cpu');
const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../../..');

for (const outputs of ['heads', 'boxes'] as const) {
  test(`${outputs}: exported model matches the tfjs student within 1e-4 (random BN stats, batch 3)`, async () => {
    const spec = tinySpec();
    const weights = randomWeights(spec, 3);
    const r = await verifyParity(buildOnnxModel(spec, weights, { outputs, opset: 17 }), spec, weights, {
      batch: 3,
    });
    assert.ok(r.ok, JSON.stringify(r));
    for (const d of Object.values(r.maxAbsDiff)) assert.ok(d < 1e-4, `diff ${d}`);
    assert.deepEqual(
      r.inputs.map((i) => [i.kind, i.batch]),
      [
        ['random', 3],
        ['synthetic', 3],
      ],
    );
    if (outputs === 'boxes') {
      const b = r.boxes!;
      assert.ok(b.reference > 20, `only ${b.reference} reference detections: parity would be vacuous`);
      assert.equal(b.unexplained, 0, b.mismatches.join('\n'));
      assert.equal(b.matched + b.borderline, b.reference);
      assert.ok(b.maxCoordDiff < 1e-3);
    } else assert.equal(r.boxes, undefined);
  });
}

test('boxes parity with BN statistics calibrated on synthetic scenes (trained-like activations)', async () => {
  const spec = tinySpec();
  const weights = calibrateBn(spec, randomWeights(spec, 9), 9);
  const r = await verifyParity(buildOnnxModel(spec, weights, { outputs: 'boxes', opset: 17 }), spec, weights);
  assert.ok(r.ok, JSON.stringify(r.boxes));
  for (const d of Object.values(r.maxAbsDiff)) assert.ok(d < 1e-4, `diff ${d}`);
});

test('boxes parity holds with mean/std normalisation, BGR order and a 5x5 peak window', async () => {
  const spec = tinySpec({
    input: {
      height: 64,
      width: 96,
      channelOrder: 'bgr',
      normalization: { kind: 'meanstd', mean: [120, 110, 100], std: [60, 58, 57] },
    },
    decode: { topK: 30, scoreThreshold: 0.4, poolSize: 5 },
  });
  const weights = randomWeights(spec, 5);
  const r = await verifyParity(buildOnnxModel(spec, weights, { outputs: 'boxes', opset: 17 }), spec, weights);
  assert.ok(r.ok, JSON.stringify(r.boxes));
  assert.ok(r.boxes!.matched > 0);
});

test('parity fails when the exported weights differ from the tfjs ones', async () => {
  const spec = tinySpec();
  const weights = randomWeights(spec, 3);
  const model = buildOnnxModel(spec, weights, { outputs: 'boxes', opset: 17 });
  const b = model.graph!.initializer!.find((t) => t.name === 'head.offset.out.bias')!;
  const v = new Float32Array(b.rawData!.slice().buffer);
  v[0] += 0.01;
  b.rawData = new Uint8Array(v.buffer);
  const r = await verifyParity(model, spec, weights);
  assert.equal(r.ok, false);
  assert.ok(Math.abs(r.maxAbsDiff.offset - 0.01) < 1e-4, `offset diff ${r.maxAbsDiff.offset}`);
  assert.ok(r.boxes!.unexplained > 0);
});

const TRAINED = join(ROOT, 'runs/tiny/last.safetensors');
test(
  'trained tiny checkpoint: heads and boxes parity',
  { skip: existsSync(TRAINED) ? false : `no ${TRAINED} (train:tiny writes it)` },
  async () => {
    const ck = loadCheckpoint(TRAINED);
    const w = deployWeights(ck);
    for (const outputs of ['heads', 'boxes'] as const) {
      const r = await verifyParity(buildOnnxModel(ck.spec, w, { outputs, opset: 17 }), ck.spec, w);
      assert.ok(r.ok, JSON.stringify(r));
    }
  },
);

test(
  'ped-nano spec at 320x320 (random weights, BN statistics from synthetic scenes): heads and boxes parity',
  { skip: process.env.EDGEKD_SLOW === '1' ? false : 'slow (~40 s): set EDGEKD_SLOW=1' },
  async () => {
    const spec = readModelSpec(join(ROOT, 'train/configs/ped-nano.spec.json'));
    const w = calibrateBn(spec, randomWeights(spec, 7, -1), 7, 4);
    for (const outputs of ['heads', 'boxes'] as const) {
      const r = await verifyParity(buildOnnxModel(spec, w, { outputs, opset: 17 }), spec, w);
      assert.ok(r.ok, JSON.stringify({ d: r.maxAbsDiff, scale: r.scale, boxes: r.boxes }));
    }
  },
);
