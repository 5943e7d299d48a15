import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readMot } from '../../../train/data/mot.js';
import { readVideoFrames } from '../../../train/data/video-frames.js';
import {
  FFMPEG,
  ffmpegSkipReason,
  makeTestsrcClip,
  tempDir,
  writeRectImage,
} from '../../fixtures/make-data-fixtures.js';

const GT = [
  '1,1,11,6,10,30,1,1,1.0', // person, track 1 -> [10, 5, 20, 35]
  '1,2,31,11,8,20,0,1,1.0', // conf 0 -> ignore
  '2,1,12,6,10,30,1,1,0.25', // low visibility
  '2,3,1,1,5,5,1,3,1.0', // car -> skipped
  '2,4,41,6,10,20,1,7,1.0', // static person -> ignore
  '3,5,60,40,10,20,1,1,1.0', // clipped to the 64x48 frame
  '9,1,1,1,5,5,1,1,1.0', // frame 9 does not exist in img1/
].join('\n');

describe('readMot', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    const seq = join(dir, 'MOT-test');
    await mkdir(join(seq, 'gt'), { recursive: true });
    await mkdir(join(seq, 'img1'), { recursive: true });
    await writeFile(join(seq, 'gt', 'gt.txt'), GT + '\n');
    for (let f = 1; f <= 3; f++)
      await writeRectImage(join(seq, 'img1', `${String(f).padStart(6, '0')}.png`), 64, 48, [f, 0, f + 4, 4]);
  });
  after(() => cleanup());

  test('reads gt.txt with an img1 folder: boxes, track ids, ignore rules, skips', async () => {
    const ds = await readMot(join(dir, 'MOT-test', 'gt', 'gt.txt'), {
      classes: ['person'],
      minVisibility: 0.3,
    });
    assert.equal(ds.name, 'MOT-test');
    assert.deepEqual(
      ds.samples.map((s) => [s.id, s.width, s.height]),
      [
        ['MOT-test/000001', 64, 48],
        ['MOT-test/000002', 64, 48],
        ['MOT-test/000003', 64, 48],
      ],
    );
    assert.deepEqual(ds.samples[0].annotations, [
      { box: [10, 5, 20, 35], classId: 0, trackId: 1 },
      { box: [30, 10, 38, 30], classId: 0, trackId: 2, ignore: true },
    ]);
    assert.deepEqual(ds.samples[1].annotations, [
      { box: [11, 5, 21, 35], classId: 0, trackId: 1, ignore: true },
      { box: [40, 5, 50, 25], classId: 0, trackId: 4, ignore: true },
    ]);
    assert.deepEqual(ds.samples[2].annotations, [{ box: [59, 39, 64, 48], classId: 0, trackId: 5 }]);
    const reasons = ds.skipped.map((s) => s.reason).sort();
    assert.deepEqual(reasons, ['MOT class 3 (car) is not a pedestrian class', 'frame 9 has no image']);
    const img = await ds.samples[1].load();
    assert.equal(img.data[(0 * 64 + 2) * 3], 255);
  });

  test('maps onto a multi-class list and rejects one without a person class', async () => {
    const gt = join(dir, 'MOT-test', 'gt', 'gt.txt');
    const ds = await readMot(gt, { classes: ['car', 'pedestrian'] });
    assert.ok(ds.samples[0].annotations.every((a) => a.classId === 1));
    await assert.rejects(readMot(gt, { classes: ['car'] }), {
      name: 'RangeError',
      message: /'classes' must contain 'person'/,
    });
  });

  test('rejects a malformed row naming file and line', async () => {
    const seq = join(dir, 'bad');
    await mkdir(join(seq, 'gt'), { recursive: true });
    await mkdir(join(seq, 'img1'), { recursive: true });
    await writeFile(join(seq, 'gt', 'gt.txt'), '1,1,1,1,5,5,1,1,1\n1,2,abc\n');
    await assert.rejects(readMot(join(seq, 'gt', 'gt.txt'), { classes: ['person'] }), {
      name: 'DataFormatError',
      code: 'ERR_DATA_FORMAT',
      message: /gt\.txt:2: expected/,
    });
  });

  test('reads frames from a video file', { skip: ffmpegSkipReason() }, async () => {
    const clip = makeTestsrcClip(join(dir, 'clip.avi'), { frames: 8, width: 64, height: 48 });
    const gt = join(dir, 'vid', 'gt', 'gt.txt');
    await mkdir(join(dir, 'vid', 'gt'), { recursive: true });
    await writeFile(gt, '1,1,11,6,10,30,1,1,1\n8,1,21,6,10,30,0,1,1\n');
    const ds = await readMot(gt, {
      classes: ['person'],
      video: clip,
      ffmpegPath: FFMPEG,
      videoEncoding: 'raw',
    });
    assert.equal(ds.samples.length, 8);
    assert.deepEqual(ds.samples[0].annotations, [{ box: [10, 5, 20, 35], classId: 0, trackId: 1 }]);
    assert.deepEqual(ds.samples[7].annotations, [
      { box: [20, 5, 30, 35], classId: 0, trackId: 1, ignore: true },
    ]);
    // Frame n of gt.txt is the n-th decoded frame, whatever order the loads come in.
    const frames: Uint8Array[] = [];
    for await (const f of readVideoFrames(clip, { ffmpegPath: FFMPEG })) frames.push(f.image.data);
    assert.equal(frames.length, 8);
    const loaded = await Promise.all([7, 2, 0, 5].map((i) => ds.samples[i].load()));
    [7, 2, 0, 5].forEach((i, k) =>
      assert.ok(Buffer.from(loaded[k].data).equals(Buffer.from(frames[i])), `frame ${i + 1}`),
    );
    const ranged = await readMot(gt, {
      classes: ['person'],
      video: clip,
      ffmpegPath: FFMPEG,
      frameRange: [3, 5],
    });
    assert.deepEqual(
      ranged.samples.map((s) => s.id),
      ['vid/000003', 'vid/000004', 'vid/000005'],
    );
  });
});
