import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { onnx } from '../../export/onnx-proto.js';
import { ExportConfigSchema, type ExportConfigInput } from '../../export/config.js';
import { exportOnnx, type ExportEvent, type ModelCard } from '../../export/export-model.js';
import { saveCheckpoint } from '../../models/core/checkpoint.js';
import { graphCost } from '../../models/arch/graph.js';
import { randomWeights, tinySpec, writeRandomCheckpoint } from './export-fixture.js';

await tf.setBackend('cpu');
const spec = tinySpec();
const tmp = () => mkdtempSync(join(tmpdir(), 'edgekd-export-'));
const cfg = (c: ExportConfigInput) => ExportConfigSchema.parse(c);

test('exports boxes with a model card, parity figures and the result line', async () => {
  const dir = tmp();
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), spec);
  const events: ExportEvent[] = [];
  const out = join(dir, 'exp-tiny.onnx');
  const r = await exportOnnx(cfg({ checkpoint: join(dir, 'ck.safetensors'), out }), (e) => events.push(e));
  assert.deepEqual(readdirSync(dir).sort(), ['ck.safetensors', 'exp-tiny.json', 'exp-tiny.onnx']);
  const done = events.at(-1)!;
  assert.equal(done.kind, 'export-done');
  assert.match(
    done.kind === 'export-done' ? done.line : '',
    /^export onnx ok \d+\.\ds exp-tiny\.onnx \(\d+\.\d MB\)$/,
  );
  assert.deepEqual(
    events.filter((e) => e.kind === 'export-op').map((e) => (e.kind === 'export-op' ? e.step : '')),
    ['load', 'build', 'check', 'verify', 'write'],
  );
  const card = JSON.parse(readFileSync(join(dir, 'exp-tiny.json'), 'utf8')) as ModelCard;
  const bytes = readFileSync(out);
  assert.equal(card.format, 'edgekd-model-card');
  assert.equal(card.model, 'exp-tiny.onnx');
  assert.equal(card.sizeBytes, bytes.length);
  assert.deepEqual(card.spec, spec);
  assert.equal(card.opset, 17);
  assert.equal(card.precision, 'fp32');
  assert.equal(card.outputs, 'boxes');
  assert.deepEqual(
    card.io.outputs.map((o) => [o.name, o.shape]),
    [['detections', ['batch', 50, 6]]],
  );
  assert.equal(card.io.input.layout, 'NCHW');
  const cost = graphCost(spec);
  assert.equal(card.params, cost.params);
  assert.equal(card.macs, cost.macs);
  assert.ok(card.parity && card.parity.ok && card.parity.boxes!.matched > 0);
  assert.ok(card.parity.maxAbsDiff.heatmap < 1e-4);
  assert.equal(r.parity?.ok, true);
  const m = onnx.ModelProto.decode(bytes);
  const md = Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value]));
  assert.equal(md['edgekd.precision'], 'fp32');
  const s = await ort.InferenceSession.create(out);
  assert.deepEqual(s.outputNames, ['detections']);
  await s.release();
});

test('heads form without verify: card parity is null, outputs are NHWC heads', async () => {
  const dir = tmp();
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), spec);
  const r = await exportOnnx(
    cfg({
      checkpoint: join(dir, 'ck.safetensors'),
      out: join(dir, 'm.onnx'),
      outputs: 'heads',
      verify: false,
    }),
  );
  assert.equal(r.parity, null);
  assert.equal(r.modelCard.parity, null);
  assert.deepEqual(
    r.modelCard.io.outputs.map((o) => `${o.name}:${o.layout}`),
    ['heatmap:NHWC', 'size:NHWC', 'offset:NHWC'],
  );
});

test('rejects a checkpoint whose weights do not match its spec, naming the parameter, and writes nothing', async () => {
  const dir = tmp();
  const params = randomWeights(spec);
  params.set('head.offset.out.weight', { shape: [1, 1, 8, 3], data: new Float32Array(24) });
  saveCheckpoint(join(dir, 'bad.safetensors'), { spec, params, ema: new Map() });
  const events: ExportEvent[] = [];
  await assert.rejects(
    exportOnnx(cfg({ checkpoint: join(dir, 'bad.safetensors'), out: join(dir, 'm.onnx') }), (e) =>
      events.push(e),
    ),
    {
      name: 'ModelFormatError',
      code: 'ERR_CHECKPOINT',
      message: /'head\.offset\.out\.weight' has shape \[1, 1, 8, 3\]/,
    },
  );
  assert.deepEqual(readdirSync(dir), ['bad.safetensors']);
  const last = events.at(-1)!;
  assert.ok(last.kind === 'export-done' && !last.ok && /^export onnx failed/.test(last.line));
});

test('rejects an unwritable output path before doing the work, leaving no file', async () => {
  const dir = tmp();
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), spec);
  await assert.rejects(
    exportOnnx(cfg({ checkpoint: join(dir, 'ck.safetensors'), out: join(dir, 'no-such-dir', 'm.onnx') })),
    { name: 'ConfigError', code: 'ERR_FILE_WRITE', message: /no-such-dir/ },
  );
  assert.deepEqual(readdirSync(dir), ['ck.safetensors']);
});

test('a failed card write removes the model and leaves no temp file', async () => {
  const dir = tmp();
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), spec);
  mkdirSync(join(dir, 'm.json', 'blocker'), { recursive: true }); // the card path is a non-empty folder
  await assert.rejects(
    exportOnnx(cfg({ checkpoint: join(dir, 'ck.safetensors'), out: join(dir, 'm.onnx'), verify: false })),
    { name: 'ConfigError', code: 'ERR_FILE_WRITE' },
  );
  assert.deepEqual(readdirSync(dir).sort(), ['ck.safetensors', 'm.json']);
  assert.ok(!existsSync(join(dir, 'm.onnx')));
});

test('rejects a missing checkpoint (ConfigError) and int8 without a calibration set', async () => {
  const dir = tmp();
  await assert.rejects(
    exportOnnx(cfg({ checkpoint: join(dir, 'nope.safetensors'), out: join(dir, 'm.onnx') })),
    {
      name: 'ConfigError',
      code: 'ERR_FILE_NOT_FOUND',
    },
  );
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), spec);
  await assert.rejects(
    exportOnnx(
      cfg({
        checkpoint: join(dir, 'ck.safetensors'),
        out: join(dir, 'm.onnx'),
        precision: 'int8',
        verify: false,
      }),
    ),
    { name: 'ConfigError', code: 'ERR_CONFIG_INVALID', message: /calibration/ },
  );
  await assert.rejects(
    exportOnnx(
      cfg({
        checkpoint: join(dir, 'ck.safetensors'),
        out: join(dir, 'm.onnx'),
        precision: 'int8',
        calibration: 'synthetic:0',
      }),
    ),
    { name: 'ConfigError', code: 'ERR_CONFIG_INVALID', message: /empty/ },
  );
  assert.deepEqual(readdirSync(dir), ['ck.safetensors']);
});

test('int8 (synthetic calibration) and fp16 exports: precision in card and metadata, int8 runs on the CPU provider', async () => {
  const dir = tmp();
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), spec);
  for (const precision of ['int8', 'fp16'] as const) {
    const out = join(dir, `${precision}.onnx`);
    const r = await exportOnnx(
      cfg({
        checkpoint: join(dir, 'ck.safetensors'),
        out,
        outputs: 'boxes',
        precision,
        calibration: 'synthetic:8',
      }),
    );
    assert.equal(r.modelCard.precision, precision);
    assert.equal(r.modelCard.parity?.of, 'fp32');
    const md = Object.fromEntries(
      onnx.ModelProto.decode(readFileSync(out)).metadataProps.map((p) => [p.key, p.value]),
    );
    assert.equal(md['edgekd.precision'], precision);
    if (precision === 'int8') {
      const s = await ort.InferenceSession.create(out);
      const y = await s.run({
        images: new ort.Tensor('float32', new Float32Array(2 * 3 * 64 * 64).fill(0.4), [2, 3, 64, 64]),
      });
      assert.deepEqual(y.detections.dims, [2, 50, 6]);
      await s.release();
    }
  }
});

test('int8 calibrates from a folder of images and rejects an empty or corrupt one naming it', async () => {
  const dir = tmp();
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), spec);
  const frames = join(dir, 'frames');
  mkdirSync(frames);
  for (let i = 0; i < 3; i++) {
    await sharp({
      create: { width: 96, height: 80, channels: 3, background: { r: 40 * i, g: 120, b: 200 - 50 * i } },
    })
      .png()
      .toFile(join(frames, `f${i}.png`));
  }
  const out = join(dir, 'int8.onnx');
  const r = await exportOnnx(
    cfg({
      checkpoint: join(dir, 'ck.safetensors'),
      out,
      precision: 'int8',
      calibration: frames,
      verify: false,
    }),
  );
  assert.equal(r.modelCard.precision, 'int8');
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  await assert.rejects(
    exportOnnx(
      cfg({
        checkpoint: join(dir, 'ck.safetensors'),
        out,
        precision: 'int8',
        calibration: empty,
        verify: false,
      }),
    ),
    {
      name: 'ConfigError',
      message: /holds no images/,
    },
  );
  writeFileSync(join(frames, 'z-broken.jpg'), 'not a jpeg');
  await assert.rejects(
    exportOnnx(
      cfg({
        checkpoint: join(dir, 'ck.safetensors'),
        out,
        precision: 'int8',
        calibration: frames,
        verify: false,
      }),
    ),
    {
      name: 'ConfigError',
      message: /z-broken\.jpg/,
    },
  );
});

test('the config schema rejects unknown outputs and opsets', () => {
  assert.throws(() => cfg({ checkpoint: 'a', out: 'b', outputs: 'logits' as never }));
  assert.throws(() => cfg({ checkpoint: 'a', out: 'b', opset: 13 as never }));
  assert.equal(cfg({ checkpoint: 'a', out: 'b' }).verify, true);
});
