import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, saveCheckpoint, deployWeights } from '../../../models/core/checkpoint.js';
import { decodeSafetensors, encodeSafetensors } from '../../../models/core/safetensors.js';
import { parseModelSpec } from '../../../models/core/spec.js';

const spec = parseModelSpec({
  name: 'c',
  classes: ['person'],
  input: { height: 64, width: 64 },
  backbone: {
    stages: [
      { channels: 8, depth: 1 },
      { channels: 8, depth: 1 },
      { channels: 8, depth: 1 },
      { channels: 8, depth: 1 },
    ],
  },
  neck: { channels: 8 },
  head: { channels: 8 },
  decode: {},
});

test('safetensors layout: u64 header length, 8-byte aligned JSON, little-endian F32 data', () => {
  const buf = encodeSafetensors(new Map([['a', { shape: [2], data: new Float32Array([1.5, -2]) }]]), {
    k: 'v',
  });
  const hlen = Number(buf.readBigUInt64LE(0));
  assert.equal(hlen % 8, 0);
  const header = JSON.parse(buf.subarray(8, 8 + hlen).toString());
  assert.deepEqual(header.a, { dtype: 'F32', shape: [2], data_offsets: [0, 8] });
  assert.equal(buf.readFloatLE(8 + hlen), 1.5);
  assert.equal(buf.readFloatLE(12 + hlen), -2);
  const back = decodeSafetensors(buf);
  assert.deepEqual(Array.from(back.tensors.get('a')!.data), [1.5, -2]);
  assert.equal(back.metadata.k, 'v');
});

test('checkpoint round-trips spec, params, EMA, optimiser and state; deploy weights prefer EMA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-ckpt-'));
  const path = join(dir, 'last.safetensors');
  saveCheckpoint(path, {
    spec,
    params: new Map([
      ['w', { shape: [2], data: new Float32Array([1, 2]) }],
      ['s', { shape: [1], data: new Float32Array([3]) }],
    ]),
    ema: new Map([['w', { shape: [2], data: new Float32Array([5, 6]) }]]),
    optimizer: { m: new Float32Array([0.1, 0.2]), v: new Float32Array([0.3, 0.4]) },
    state: {
      epoch: 3,
      globalStep: 42,
      optimizerKind: 'adamw',
      optimizerStep: 42,
      emaUpdates: 42,
      config: { a: 1 },
    },
  });
  assert.deepEqual(readdirSync(dir), ['last.safetensors'], 'no temp file is left behind');
  const ck = loadCheckpoint(path);
  assert.deepEqual(ck.spec, spec);
  assert.equal(ck.state?.globalStep, 42);
  assert.ok(Math.abs(ck.optimizer!.v[1] - 0.4) < 1e-7);
  const dep = deployWeights(ck);
  assert.deepEqual(Array.from(dep.get('w')!.data), [5, 6]);
  assert.deepEqual(Array.from(dep.get('s')!.data), [3]);
});

test('deploy weights leave out distillation-only kd/ parameters (export and eval use them)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-ckpt-'));
  const path = join(dir, 'kd.safetensors');
  saveCheckpoint(path, {
    spec,
    params: new Map([
      ['w', { shape: [2], data: new Float32Array([1, 2]) }],
      ['kd/kd.adapter.t0.P3.weight', { shape: [1], data: new Float32Array([7]) }],
    ]),
    ema: new Map([['w', { shape: [2], data: new Float32Array([3, 4]) }]]),
  });
  const ck = loadCheckpoint(path);
  assert.ok(ck.params.has('kd/kd.adapter.t0.P3.weight'), 'kept in the checkpoint for --resume');
  assert.deepEqual([...deployWeights(ck).keys()], ['w']);
  assert.deepEqual(Array.from(deployWeights(ck).get('w')!.data), [3, 4]);
});

test('rejects a truncated checkpoint with ERR_CHECKPOINT naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-ckpt-'));
  const path = join(dir, 'x.safetensors');
  saveCheckpoint(path, {
    spec,
    params: new Map([['w', { shape: [1000], data: new Float32Array(1000) }]]),
    ema: new Map(),
  });
  const full = readFileSync(path);
  writeFileSync(path, full.subarray(0, full.length - 100));
  assert.throws(() => loadCheckpoint(path), {
    name: 'ModelFormatError',
    code: 'ERR_CHECKPOINT',
    message: /x\.safetensors.*truncated/,
  });
  writeFileSync(path, 'not a checkpoint at all');
  assert.throws(() => loadCheckpoint(path), { name: 'ModelFormatError', code: 'ERR_CHECKPOINT' });
});

test('rejects a missing checkpoint with ERR_FILE_NOT_FOUND', () => {
  assert.throws(() => loadCheckpoint('/nonexistent/dir/ck.safetensors'), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
    message: /ck\.safetensors/,
  });
});

test('a failed save leaves the previous checkpoint intact', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-ckpt-'));
  const path = join(dir, 'last.safetensors');
  saveCheckpoint(path, {
    spec,
    params: new Map([['w', { shape: [1], data: new Float32Array([7]) }]]),
    ema: new Map(),
  });
  // A tensor whose shape disagrees with its data makes encoding throw before anything is written.
  assert.throws(
    () =>
      saveCheckpoint(path, {
        spec,
        params: new Map([['w', { shape: [3], data: new Float32Array([1]) }]]),
        ema: new Map(),
      }),
    RangeError,
  );
  assert.deepEqual(Array.from(loadCheckpoint(path).params.get('w')!.data), [7]);
  assert.deepEqual(readdirSync(dir), ['last.safetensors']);
});
