import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../../train/backend/index.js';
import { TeacherConfigSchema } from '../../../train/distill/config.js';
import {
  createCenterNetTeacher,
  createTeacher,
  humanModelsDir,
  teacherStrides,
  type CenterNetTeacherConfig,
} from '../../../train/teachers/index.js';
import { tempDir } from './teacher-fixture.js';

// The cpu backend needs ~7 s per 512x512 frame for this graph; wasm ~0.2 s.
await selectBackend('wasm');

const VIDEO = '/usr/share/doc/opencv-doc/examples/data/vtest.avi';
const hasFfmpeg = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
const skipFrame = !existsSync(VIDEO)
  ? `${VIDEO} is absent (Debian package opencv-doc)`
  : !hasFfmpeg
    ? 'ffmpeg is not installed'
    : false;
const modelsDir = humanModelsDir();
const skipModel =
  modelsDir && existsSync(join(modelsDir, 'centernet.json')) ? false : '@vladmandic/human is not installed';

/** One RGB frame of vtest.avi (768x576), optionally letterboxed to 512x512 (pad 114) by ffmpeg. */
function frame(seconds: number, letterbox: boolean): { pixels: Float32Array; width: number; height: number } {
  const [width, height] = letterbox ? [512, 512] : [768, 576];
  const vf = letterbox ? ['-vf', 'scale=512:384,pad=512:512:0:64:color=0x727272'] : [];
  const r = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      '-ss',
      String(seconds),
      '-i',
      VIDEO,
      '-frames:v',
      '1',
      ...vf,
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      '-',
    ],
    { maxBuffer: 1 << 24 },
  );
  assert.equal(r.status, 0, `ffmpeg failed: ${r.stderr?.toString()}`);
  assert.equal(r.stdout.length, width * height * 3);
  return { pixels: Float32Array.from(r.stdout), width, height };
}

const cfg = TeacherConfigSchema.parse({ kind: 'centernet' }) as CenterNetTeacherConfig;

test(
  'runs on a real vtest.avi frame: taps at strides 4/8/16, person headProb, >= 2 people',
  { skip: skipFrame || skipModel },
  async (t) => {
    const teacher = await createTeacher(cfg, { classes: ['person'] });
    try {
      assert.deepEqual(teacherStrides(teacher), { neck: [4, 8, 16], backbone: [4, 8, 16, 32] });
      assert.deepEqual(
        [...teacher.neckChannels],
        [
          [4, 128],
          [8, 192],
          [16, 256],
        ],
      );
      assert.deepEqual(
        [...teacher.backboneChannels],
        [
          [4, 24],
          [8, 32],
          [16, 88],
          [32, 120],
        ],
      );
      assert.deepEqual(teacher.headClasses, ['person']);
      assert.match(teacher.fingerprint, /^centernet:[0-9a-f]{16}$/);

      const f = frame(2, true);
      const before = tf.memory().numTensors;
      const t0 = performance.now();
      const out = await teacher.run(f.pixels, 1, 512, 512);
      t.diagnostic(`run: ${(performance.now() - t0).toFixed(0)} ms per 512x512 frame on ${tf.getBackend()}`);
      assert.equal(tf.memory().numTensors, before, 'run leaks no tensors');
      for (const [s, c] of teacher.neckChannels)
        assert.deepEqual(out.neck.get(s)!.shape, [1, 512 / s, 512 / s, c]);
      for (const [s, c] of teacher.backboneChannels)
        assert.deepEqual(out.backbone.get(s)!.shape, [1, 512 / s, 512 / s, c]);
      assert.equal(out.headProb!.stride, 4);
      assert.deepEqual(out.headProb!.map.shape, [1, 128, 128, 1]);
      const prob = out.headProb!.map.data;
      assert.ok(prob.every((v) => v >= 0 && v <= 1));
      assert.ok(Math.max(...prob) > 0.3, 'a confident person peak');

      const dets = (await teacher.detect(f.pixels, 1, 512, 512, { scoreThreshold: 0.3 }))[0];
      t.diagnostic(
        `people >= 0.3: ${dets.length}: ${JSON.stringify(dets.map((d) => [...d.box.map(Math.round), +d.score.toFixed(2)]))}`,
      );
      assert.ok(dets.length >= 2, `found ${dets.length} people`);
      for (const d of dets) {
        assert.equal(d.classId, 0);
        assert.ok(d.score >= 0.3);
        const [x1, y1, x2, y2] = d.box;
        assert.ok(
          0 <= x1 && x1 < x2 && x2 <= 512 && 64 <= y2 && y1 < y2 && y2 <= 512,
          `box ${d.box.join(', ')}`,
        );
      }
      // Walking people: at least two boxes clearly taller than wide.
      assert.ok(dets.filter((d) => d.box[3] - d.box[1] > 1.5 * (d.box[2] - d.box[0])).length >= 2);
    } finally {
      teacher.dispose();
    }
  },
);

test(
  "a batch of two frames, one non-square: maps stack, boxes come back in each frame's pixels",
  { skip: skipFrame || skipModel },
  async () => {
    const teacher = await createTeacher(cfg, { classes: ['person'] });
    try {
      const raw = frame(30, false); // 768x576, stretched to 512x512 by the adapter
      const two = new Float32Array(raw.pixels.length * 2);
      two.set(raw.pixels);
      two.set(raw.pixels, raw.pixels.length);
      const out = await teacher.run(two, 2, raw.height, raw.width);
      const p4 = out.neck.get(4)!;
      assert.deepEqual(p4.shape, [2, 128, 128, 128]);
      const half = p4.data.length / 2;
      assert.deepEqual(p4.data.subarray(0, half), p4.data.subarray(half));
      const dets = await teacher.detect(raw.pixels, 1, raw.height, raw.width, {
        scoreThreshold: 0.3,
        maxDetections: 20,
      });
      assert.ok(dets[0].length >= 2 && dets[0].length <= 20);
      for (const d of dets[0]) {
        const [x1, y1, x2, y2] = d.box;
        assert.ok(
          0 <= x1 && x1 < x2 && x2 <= 768 && 0 <= y1 && y1 < y2 && y2 <= 576,
          `box ${d.box.join(', ')}`,
        );
      }
    } finally {
      teacher.dispose();
    }
  },
);

test('rejects a missing modelDir with ERR_FILE_NOT_FOUND and the install hint', async () => {
  const dir = join(tempDir(), 'no-models');
  await assert.rejects(createTeacher({ ...cfg, modelDir: dir }, { classes: ['person'] }), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
    message: /no-models\/centernet\.json.*npm install @vladmandic\/human/,
  });
});

test('rejects a node name the graph lacks, naming it', { skip: skipModel }, async () => {
  await assert.rejects(
    createCenterNetTeacher(cfg, { classes: ['person'], nodes: { heatmap: 'tower_0/heatmap_nope' } }),
    {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /'tower_0\/heatmap_nope' \(heatmap\)/,
    },
  );
});

test(
  'rejects an inputSize the fixed graph cannot run, and an unknown class',
  { skip: skipModel },
  async () => {
    await assert.rejects(createTeacher({ ...cfg, inputSize: 320 }, { classes: ['person'] }), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_RANGE',
      message: /inputSize must be 512x512.*got 320/,
    });
    await assert.rejects(createTeacher(cfg, { classes: ['pedestrian'] }), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /'person' is not a student class/,
    });
  },
);
