/** Reading a model's spec, output form and precision from ONNX metadata or a sidecar JSON. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModelInfo, readOnnxMetadata } from '../../runtime/model-info.js';
import { writeTestModels } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'edgekd-model-info-'));
const m = writeTestModels(dir);

test('reads spec, output form and precision from an edgekd export', async () => {
  const boxes = await readModelInfo(m.boxes);
  assert.deepEqual(boxes.spec, m.spec);
  assert.equal(boxes.specSource, 'metadata');
  assert.equal(boxes.outputs, 'boxes');
  assert.equal(boxes.precision, 'fp32');
  assert.equal(boxes.producer, 'edgekd');
  assert.equal(JSON.parse(boxes.metadata['edgekd.input']).layout, 'NCHW');
  assert.equal((await readModelInfo(m.heads)).outputs, 'heads');
});

test('rejects a plain ONNX model without a sidecar spec, naming the fix', async () => {
  await assert.rejects(readModelInfo(m.plain), {
    name: 'ModelFormatError',
    code: 'ERR_MODEL_FORMAT',
    message: /has no edgekd\.spec metadata \(producer 'someone-else'\).*sidecar JSON/,
  });
});

test('a sidecar spec (or a model card holding one) makes a plain model usable', async () => {
  const info = await readModelInfo(m.plain, m.specPath);
  assert.deepEqual(info.spec, m.spec);
  assert.equal(info.specSource, 'sidecar');
  assert.equal(info.outputs, undefined);
  assert.equal(info.precision, 'unknown');
  const card = join(dir, 'card.json');
  writeFileSync(card, JSON.stringify({ format: 'edgekd-model-card', version: 1, spec: m.spec }));
  assert.deepEqual((await readModelInfo(m.plain, card)).spec, m.spec);
  const bad = join(dir, 'bad-spec.json');
  writeFileSync(bad, JSON.stringify({ name: 'x' }));
  await assert.rejects(readModelInfo(m.plain, bad), {
    name: 'ModelFormatError',
    message: /bad-spec\.json' is invalid/,
  });
  await assert.rejects(readModelInfo(m.plain, join(dir, 'missing.json')), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
  });
});

test('rejects a missing, empty, truncated or foreign file with a clear error', async () => {
  await assert.rejects(readModelInfo(join(dir, 'nope.onnx')), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
    message: /model file not found/,
  });
  const bytes = readFileSync(m.boxes);
  const cases: Record<string, Uint8Array> = {
    'empty.onnx': new Uint8Array(0),
    'truncated.onnx': bytes.subarray(0, Math.floor(bytes.length / 2)),
    'json.onnx': Buffer.from(JSON.stringify({ hello: 'world' })),
    'noise.onnx': Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff),
  };
  for (const [name, data] of Object.entries(cases)) {
    const p = join(dir, name);
    writeFileSync(p, data);
    await assert.rejects(readModelInfo(p), { name: 'ModelFormatError', code: 'ERR_MODEL_FORMAT' }, name);
  }
});

test('the wire reader skips the graph and returns every metadata entry', () => {
  const { metadata } = readOnnxMetadata(readFileSync(m.heads));
  assert.deepEqual(Object.keys(metadata).sort(), [
    'edgekd.classes',
    'edgekd.decode.scoreThreshold',
    'edgekd.input',
    'edgekd.io',
    'edgekd.outputs',
    'edgekd.precision',
    'edgekd.spec',
  ]);
});
