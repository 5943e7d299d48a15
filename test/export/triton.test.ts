import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx, type OnnxTypes } from '../../export/onnx-proto.js';
import * as ort from 'onnxruntime-node';
import { tritonConfig, writeTritonRepository, type TritonOptions } from '../../export/triton.js';

const F = onnx.TensorProto.DataType.FLOAT;
const vi = (name: string, dims: (number | string)[]) =>
  onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: F,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });

/** A one-node model (Relu) with a dynamic batch axis: enough for the repository layout. */
function reluModel(batch: number | string = 'batch'): OnnxTypes.ModelProto {
  return onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'edgekd-test',
    graph: {
      name: 'g',
      node: [{ opType: 'Relu', input: ['images'], output: ['heatmap'], name: 'relu' }],
      input: [vi('images', [batch, 3, 8, 8])],
      output: [vi('heatmap', [batch, 3, 8, 8])],
    },
  });
}

const opts: TritonOptions = {
  name: 'ped',
  maxBatchSize: 8,
  preferredBatchSizes: [4, 8],
  maxQueueDelayUs: 2000,
  instanceKind: 'KIND_GPU',
  instanceCount: 1,
  overwrite: false,
};

test('config.pbtxt takes names, types and non-batch dims from the graph', () => {
  const text = tritonConfig(reluModel(), opts);
  assert.match(text, /^name: "ped"$/m);
  assert.match(text, /^platform: "onnxruntime_onnx"$/m);
  assert.match(text, /^max_batch_size: 8$/m);
  assert.match(text, /name: "images"\n\s+data_type: TYPE_FP32\n\s+dims: \[ 3, 8, 8 \]/);
  assert.match(text, /name: "heatmap"/);
  assert.match(text, /preferred_batch_size: \[ 4, 8 \]\n\s+max_queue_delay_microseconds: 2000/);
  assert.match(text, /kind: KIND_GPU/);
});

test('writes <dir>/<name>/config.pbtxt and 1/model.onnx that ONNX Runtime loads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-triton-'));
  const bytes = onnx.ModelProto.encode(reluModel()).finish();
  const folder = writeTritonRepository(dir, reluModel(), bytes, opts);
  assert.deepEqual(readdirSync(dir), ['ped']);
  assert.deepEqual(readdirSync(folder).sort(), ['1', 'config.pbtxt']);
  const onDisk = readFileSync(join(folder, '1', 'model.onnx'));
  const session = await ort.InferenceSession.create(onDisk);
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 2 * 3 * 64 }, (_, i) => i - 100),
    [2, 3, 8, 8],
  );
  const out = await session.run({ images: x });
  assert.equal((out.heatmap.data as Float32Array)[0], 0);
  await session.release();
});

test('rejects a static batch axis, an existing folder and bad sizes without leaving files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-triton-'));
  const bytes = onnx.ModelProto.encode(reluModel()).finish();
  assert.throws(() => writeTritonRepository(dir, reluModel(1), bytes, opts), {
    name: 'ModelFormatError',
    message: /dynamic first \(batch\) axis/,
  });
  assert.throws(
    () => writeTritonRepository(dir, reluModel(), bytes, { ...opts, preferredBatchSizes: [16] }),
    { name: 'ConfigError', code: 'ERR_CONFIG_RANGE' },
  );
  assert.deepEqual(readdirSync(dir), []);
  writeTritonRepository(dir, reluModel(), bytes, opts);
  assert.throws(() => writeTritonRepository(dir, reluModel(), bytes, opts), {
    name: 'ConfigError',
    message: /exists/,
  });
  writeFileSync(join(dir, 'ped', 'config.pbtxt'), 'stale');
  writeTritonRepository(dir, reluModel(), bytes, { ...opts, overwrite: true });
  assert.match(readFileSync(join(dir, 'ped', 'config.pbtxt'), 'utf8'), /platform/);
  assert.deepEqual(readdirSync(dir), ['ped']);
});

test('edgekd export --triton writes a repository whose config matches the exported model', async () => {
  const { exportOnnx } = await import('../../export/export-model.js');
  const { ExportConfigSchema } = await import('../../export/config.js');
  const { saveCheckpoint } = await import('../../models/core/checkpoint.js');
  const { parseModelSpec } = await import('../../models/core/spec.js');
  const { buildGraph, initialWeights } = await import('../../models/arch/graph.js');
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-triton-'));
  const spec = parseModelSpec({
    name: 'tri',
    classes: ['person'],
    input: { height: 64, width: 64 },
    backbone: {
      stemChannels: 8,
      stages: [
        { channels: 8, depth: 1 },
        { channels: 8, depth: 1 },
        { channels: 8, depth: 1 },
        { channels: 8, depth: 1 },
      ],
    },
    neck: { channels: 8 },
    head: { channels: 8 },
    decode: { topK: 20 },
  });
  const g = buildGraph(spec);
  const init = initialWeights(g, 1);
  const ckpt = join(dir, 'tri.safetensors');
  saveCheckpoint(ckpt, {
    spec,
    params: new Map(g.params.map((p) => [p.name, { shape: p.shape, data: init.get(p.name)! }])),
    ema: new Map(),
  });
  const r = await exportOnnx(
    ExportConfigSchema.parse({
      checkpoint: ckpt,
      out: join(dir, 'tri.onnx'),
      verify: false,
      triton: join(dir, 'repo'),
      tritonMaxBatch: 8,
    }),
  );
  assert.equal(r.triton, join(dir, 'repo', 'tri'));
  const cfg = readFileSync(join(dir, 'repo', 'tri', 'config.pbtxt'), 'utf8');
  assert.match(cfg, /name: "images"\n\s+data_type: TYPE_FP32\n\s+dims: \[ 3, 64, 64 \]/);
  assert.match(cfg, /name: "detections"\n\s+data_type: TYPE_FP32\n\s+dims: \[ 20, 6 \]/);
  assert.match(cfg, /preferred_batch_size: \[ 2, 4, 8 \]/);
  assert.deepEqual(
    readFileSync(join(dir, 'repo', 'tri', '1', 'model.onnx')),
    readFileSync(join(dir, 'tri.onnx')),
  );
});
