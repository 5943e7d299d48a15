/**
 * Train -> export -> run: a student trained for a few steps is exported in every form and each
 * ONNX model runs in onnxruntime-node; FP32 forms match the tfjs model (the exporter's parity
 * check), quantised forms stay close to FP32.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { validateConfig } from '../../models/core/config.js';
import { TrainConfigSchema } from '../../train/config.js';
import { runTraining } from '../../train/trainer/loop.js';
import { ExportConfigSchema } from '../../export/config.js';
import { exportOnnx } from '../../export/export-model.js';
import { microSpec } from '../helpers/specs.js';
import { evaluateOnnxModel, openOnnxModel } from '../../train/eval-onnx.js';
import { syntheticDataset } from '../../train/data/synthetic.js';

await tf.setBackend('cpu');

test('a trained student exports as heads, boxes, fp16 and int8, and each runs in ONNX Runtime', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-roundtrip-'));
  const trained = await runTraining(
    validateConfig(TrainConfigSchema, {
      name: 'rt',
      out: dir,
      model: microSpec('rt'),
      backend: 'wasm',
      workers: 2,
      data: {
        train: { kind: 'synthetic', count: 32, seed: 4 },
        val: { kind: 'synthetic', count: 8, seed: 99 },
      },
      train: { epochs: 2, batchSize: 8, microBatch: 4, optimizer: { kind: 'adamw', lr: 0.01 } },
    }),
  );
  const input = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => (i % 251) / 251),
    [2, 3, 64, 64],
  );
  const outputsOf = async (file: string) => {
    const s = await ort.InferenceSession.create(readFileSync(file));
    try {
      return await s.run({ images: input });
    } finally {
      await s.release();
    }
  };
  const forms = [
    { name: 'heads', outputs: 'heads', precision: 'fp32' },
    { name: 'boxes', outputs: 'boxes', precision: 'fp32' },
    { name: 'fp16', outputs: 'heads', precision: 'fp16' },
    { name: 'int8', outputs: 'heads', precision: 'int8', calibration: 'synthetic:16' },
  ] as const;
  const results: Record<string, ort.InferenceSession.OnnxValueMapType> = {};
  for (const { name, ...form } of forms) {
    const r = await exportOnnx(
      ExportConfigSchema.parse({ checkpoint: trained.checkpoint, out: join(dir, `${name}.onnx`), ...form }),
    );
    // The exporter's own parity check ran on the FP32 graph and passed (it throws otherwise).
    assert.ok(r.parity && r.parity.ok, `${name}: parity`);
    assert.ok(r.parity.maxAbsDiff.heatmap <= 1e-4, `${name}: heatmap diff ${r.parity.maxAbsDiff.heatmap}`);
    results[name] = await outputsOf(r.model);
  }
  assert.deepEqual(results.boxes.detections.dims, [2, 100, 6]); // K = decode.topK
  assert.deepEqual(results.heads.heatmap.dims, [2, 16, 16, 1]);
  const maxDiff = (a: ort.Tensor, b: ort.Tensor) => {
    const x = a.data as Float32Array;
    const y = b.data as Float32Array;
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
    return m;
  };
  // `edgekd eval --model`: the exported boxes and heads models score what the trainer's tfjs eval
  // scored on the same held-out images (same letterbox, decode and metrics; only float rounding differs).
  const valSet = syntheticDataset({ count: 8, seed: 99, width: 64, height: 64, classes: ['person'] });
  for (const name of ['boxes', 'heads']) {
    const m = await openOnnxModel(join(dir, `${name}.onnx`));
    const metrics = await evaluateOnnxModel(m, valSet, { scoreThreshold: 0.01, maxDetections: 100 });
    await m.session.release();
    for (const k of ['AP', 'AP50', 'MR2'])
      assert.ok(
        Math.abs(metrics[k] - trained.metrics![k]) < 1e-3,
        `${name} ${k}: ${metrics[k]} vs tfjs ${trained.metrics![k]}`,
      );
  }
  // Heatmap probabilities: fp16 within 1e-2, int8 within 0.1 of fp32 on this input.
  assert.ok(maxDiff(results.fp16.heatmap, results.heads.heatmap) < 1e-2);
  assert.ok(maxDiff(results.int8.heatmap, results.heads.heatmap) < 0.1);
});
