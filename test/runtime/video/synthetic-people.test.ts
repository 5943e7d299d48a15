/**
 * The pipeline on a clip of generator-rendered people (train/data/synthetic.ts, the scenes the
 * students train on): the clip decodes to the rendered pixels, every frame is processed, boxes
 * land inside the source, the annotated video keeps the source size, and a person whose box the
 * detector reports on every frame keeps one track id.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelSpec } from '../../../models/core/spec.js';
import { createDetector } from '../../../runtime/detector.js';
import type { Detector } from '../../../runtime/types.js';
import { liveFfmpegPids } from '../../../runtime/video/ffmpeg.js';
import { runVideoPipeline } from '../../../runtime/video/pipeline.js';
import { AnnotatedVideoSink, JsonlSink, type FrameRecord } from '../../../runtime/video/sinks.js';
import { generateSyntheticScene } from '../../../train/data/synthetic.js';
import { microSpec } from '../../helpers/specs.js';
import { writeConstantDetector, writeTestModels } from '../fixtures.js';
import { probeVideo, SKIP, tmp } from './helpers.js';

const W = 320;
const H = 240;
const FRAMES = 12;
const dir = SKIP ? '' : tmp('edgekd-video-synth-');
let real: Detector;
let constant: Detector;
let clip = '';
let firstScene: Uint8Array;

before(async () => {
  if (SKIP) return;
  // One rendered scene per frame; lossless (ffv1) so the decoded pixels can be compared exactly.
  const frames = Array.from({ length: FRAMES }, (_, i) => generateSyntheticScene(`clip-${i}`, W, H).image);
  firstScene = frames[0].data;
  clip = join(dir, 'people.mkv');
  execFileSync(
    'ffmpeg',
    ['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${W}x${H}`, '-r', '10', '-i', '-'].concat([
      '-c:v',
      'ffv1',
      '-pix_fmt',
      'bgr0',
      '-y',
      clip,
    ]),
    { input: Buffer.concat(frames.map((f) => Buffer.from(f.data))) },
  );
  real = await createDetector(writeTestModels(dir).boxes, { intraOpThreads: 1 });
  const model = join(dir, 'constant.onnx');
  writeConstantDetector(model, [[16, 18, 48, 50, 0.9, 0]]);
  const specPath = join(dir, 'constant.json');
  writeFileSync(specPath, JSON.stringify(parseModelSpec({ ...microSpec('constant'), decode: { topK: 4 } })));
  constant = await createDetector(model, { specPath, intraOpThreads: 1 });
});

after(async () => {
  await real?.close();
  await constant?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test(
  'the clip holds the generator pixels and every frame goes through the real detector',
  { skip: SKIP },
  async () => {
    const decoded = execFileSync(
      'ffmpeg',
      ['-v', 'error', '-i', clip, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
      { maxBuffer: 16 << 20 },
    );
    assert.equal(decoded.length, W * H * 3);
    assert.ok(decoded.equals(Buffer.from(firstScene)), 'lossless clip decodes to the rendered scene');

    const jsonl = join(dir, 'people.jsonl');
    const out = join(dir, 'people-annotated.mp4');
    const s = await runVideoPipeline({
      source: clip,
      detector: real,
      sinks: [new JsonlSink(jsonl), new AnnotatedVideoSink(out)],
    });
    assert.equal(s.processed, FRAMES);
    assert.equal(s.dropped, 0);
    const lines = readFileSync(jsonl, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as FrameRecord);
    assert.deepEqual(
      lines.map((l) => l.frame),
      Array.from({ length: FRAMES }, (_, i) => i),
    );
    for (const l of lines) {
      assert.deepEqual([l.width, l.height], [W, H]);
      for (const [x1, y1, x2, y2] of l.boxes)
        assert.ok(x1 >= 0 && y1 >= 0 && x2 <= W && y2 <= H && x2 > x1 && y2 > y1);
    }
    const probe = probeVideo(out);
    assert.deepEqual([probe.width, probe.height, probe.frames], [W, H, FRAMES]);
    assert.deepEqual(liveFfmpegPids(), [], 'no ffmpeg left');
  },
);

test('a box reported on every frame keeps one track id through the clip', { skip: SKIP }, async () => {
  const jsonl = join(dir, 'tracks.jsonl');
  await runVideoPipeline({ source: clip, detector: constant, sinks: [new JsonlSink(jsonl)] });
  const ids = readFileSync(jsonl, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as FrameRecord).trackIds[0]);
  const assigned = ids.filter((id) => id !== null);
  assert.ok(assigned.length >= FRAMES - 1, `track ids ${JSON.stringify(ids)}`);
  assert.equal(new Set(assigned).size, 1);
});
