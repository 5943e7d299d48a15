import assert from 'node:assert/strict';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { TeacherConfigSchema } from '../../../train/distill/config.js';
import { createTeacher, teacherStrides, type EdgekdTeacherConfig } from '../../../train/teachers/index.js';
import { maxAbsDiff, randomImages, teacherSpec, tempDir, writeTeacherCheckpoint } from './teacher-fixture.js';

await tf.setBackend('cpu');

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
const spec = teacherSpec(['person', 'car']);
const ckpt = writeTeacherCheckpoint(dir, spec, 1);
const cfg = TeacherConfigSchema.parse({ kind: 'edgekd', checkpoint: ckpt }) as EdgekdTeacherConfig;

test('gives P2..P5 / C2..C5 at strides 4..32 with the spec channels and headProb in [0, 1]', async () => {
  const t = await createTeacher(cfg, { classes: ['person', 'car'] });
  try {
    assert.deepEqual(teacherStrides(t), { neck: [4, 8, 16, 32], backbone: [4, 8, 16, 32] });
    assert.deepEqual([...t.neckChannels.values()], [8, 8, 8, 8]);
    assert.deepEqual(
      [...t.backboneChannels],
      [
        [4, 8],
        [8, 12],
        [16, 16],
        [32, 16],
      ],
    );
    const before = tf.memory().numTensors;
    const out = await t.run(randomImages(2, 64, 64), 2, 64, 64);
    assert.equal(tf.memory().numTensors, before, 'run leaks no tensors');
    for (const s of [4, 8, 16, 32]) {
      assert.deepEqual(out.neck.get(s)!.shape, [2, 64 / s, 64 / s, 8]);
      assert.deepEqual(out.backbone.get(s)!.shape, [2, 64 / s, 64 / s, t.backboneChannels.get(s)]);
      assert.ok(out.neck.get(s)!.data.every(Number.isFinite));
    }
    assert.equal(out.headProb!.stride, 4);
    assert.deepEqual(out.headProb!.map.shape, [2, 16, 16, 2]);
    assert.ok(out.headProb!.map.data.every((v) => v >= 0 && v <= 1));
    assert.deepEqual(t.headClasses, ['person', 'car']);
  } finally {
    t.dispose();
  }
});

test('maps head channels to the student classes by name, in the student order', async () => {
  const both = await createTeacher(cfg, { classes: ['person', 'car'] });
  const swapped = await createTeacher(cfg, { classes: ['car'] });
  try {
    const img = randomImages(1, 64, 64, 3);
    const a = (await both.run(img, 1, 64, 64)).headProb!.map;
    const b = (await swapped.run(img, 1, 64, 64)).headProb!.map;
    assert.deepEqual(swapped.headClasses, ['car']);
    assert.deepEqual(b.shape, [1, 16, 16, 1]);
    const carOfBoth = a.data.filter((_, i) => i % 2 === 1);
    assert.ok(maxAbsDiff(carOfBoth, b.data) < 1e-6);
  } finally {
    both.dispose();
    swapped.dispose();
  }
});

test('resizes a larger batch of the same aspect: same maps as the teacher-size image', async () => {
  const t = await createTeacher(cfg, { classes: ['person'] });
  try {
    const small = randomImages(1, 64, 64, 5);
    // 2x nearest upsampling: half-pixel bilinear downsampling gives back exactly `small`.
    const big = new Float32Array(128 * 128 * 3);
    for (let y = 0; y < 128; y++)
      for (let x = 0; x < 128; x++)
        for (let c = 0; c < 3; c++) big[(y * 128 + x) * 3 + c] = small[((y >> 1) * 64 + (x >> 1)) * 3 + c];
    const a = await t.run(small, 1, 64, 64);
    const b = await t.run(big, 1, 128, 128);
    for (const s of [4, 8, 16, 32]) {
      assert.deepEqual(
        b.neck.get(s)!.shape,
        a.neck.get(s)!.shape,
        'strides stay relative to the teacher input',
      );
      assert.ok(maxAbsDiff(a.neck.get(s)!.data, b.neck.get(s)!.data) < 1e-4);
    }
    const da = await t.detect(small, 1, 64, 64, { scoreThreshold: 0.01, maxDetections: 5 });
    const db = await t.detect(big, 1, 128, 128, { scoreThreshold: 0.01, maxDetections: 5 });
    assert.equal(da[0].length, 5);
    assert.equal(db[0].length, 5);
    da[0].forEach((d, i) => {
      assert.equal(d.classId, 0);
      d.box.forEach((v, k) =>
        assert.ok(Math.abs(2 * v - db[0][i].box[k]) < 1e-3, 'boxes scaled to the given pixels'),
      );
    });
  } finally {
    t.dispose();
  }
});

test('detect() returns student class ids and drops teacher classes the student lacks', async () => {
  const t = await createTeacher(cfg, { classes: ['car'] });
  try {
    const before = tf.memory().numTensors;
    const dets = await t.detect(randomImages(2, 64, 64), 2, 64, 64, { scoreThreshold: 0.0 });
    assert.equal(tf.memory().numTensors, before);
    assert.equal(dets.length, 2);
    // topK of the teacher spec covers both teacher classes; only 'car' rows remain, as class 0.
    assert.ok(dets[0].length > 0 && dets[0].length <= spec.decode.topK);
    assert.ok(dets[0].every((d) => d.classId === 0));
  } finally {
    t.dispose();
  }
});

test('rejects a student class the teacher does not have, naming it', async () => {
  await assert.rejects(createTeacher(cfg, { classes: ['person', 'bicycle'] }), {
    name: 'ConfigError',
    code: 'ERR_CONFIG_INVALID',
    message: /'bicycle'.*person, car/,
  });
});

test('rejects images whose aspect ratio differs from the teacher input', async () => {
  const t = await createTeacher(cfg, { classes: ['person'] });
  try {
    await assert.rejects(t.run(randomImages(1, 64, 96), 1, 64, 96), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /aspect/,
    });
    await assert.rejects(t.run(new Float32Array(10), 1, 64, 64), { name: 'RangeError', message: /'images'/ });
  } finally {
    t.dispose();
  }
});

test('rejects a missing checkpoint with ERR_FILE_NOT_FOUND naming the path', async () => {
  const missing = join(dir, 'nope.safetensors');
  await assert.rejects(createTeacher({ ...cfg, checkpoint: missing }, { classes: ['person'] }), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
    message: new RegExp(missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
  });
});

test('fingerprint is edgekd:<16 hex of the file sha256>, stable across loads and copies', async () => {
  const copy = join(dir, 'copy.safetensors');
  copyFileSync(ckpt, copy);
  const other = writeTeacherCheckpoint(dir, spec, 2, 'other.safetensors');
  const fps: string[] = [];
  for (const p of [ckpt, ckpt, copy, other]) {
    const t = await createTeacher({ ...cfg, checkpoint: p }, { classes: ['person'] });
    fps.push(t.fingerprint);
    t.dispose();
  }
  assert.match(fps[0], /^edgekd:[0-9a-f]{16}$/);
  assert.equal(fps[1], fps[0]);
  assert.equal(fps[2], fps[0]);
  assert.notEqual(fps[3], fps[0]);
});
