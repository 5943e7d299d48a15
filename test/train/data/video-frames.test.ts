import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  probeVideo,
  readVideoFrames,
  VideoFrameCache,
  videoFrameDataset,
} from '../../../train/data/video-frames.js';
import { FFMPEG, ffmpegSkipReason, makeTestsrcClip, tempDir } from '../../fixtures/make-data-fixtures.js';

const skip = ffmpegSkipReason();
if (skip) console.log(`# skipping ffmpeg tests: ${skip}`);

describe('video frames', () => {
  let dir: string;
  let clip: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    if (!skip) clip = makeTestsrcClip(join(dir, 'clip.avi'), { frames: 30, width: 96, height: 64, fps: 10 });
  });
  after(() => cleanup());

  test('probeVideo reads size, rate and frame count', { skip }, async () => {
    const info = await probeVideo(clip, { ffmpegPath: FFMPEG });
    assert.deepEqual([info.width, info.height, info.fps, info.frameCountEstimate], [96, 64, 10, 30]);
  });

  test('readVideoFrames yields every frame, or a start/count/step range, frame-exact', { skip }, async () => {
    const all: Uint8Array[] = [];
    for await (const f of readVideoFrames(clip, { ffmpegPath: FFMPEG })) {
      assert.equal(f.index, all.length);
      assert.equal(f.image.data.length, 96 * 64 * 3);
      all.push(f.image.data);
    }
    assert.equal(all.length, 30);
    assert.ok(!Buffer.from(all[0]).equals(Buffer.from(all[1])));
    const got: number[] = [];
    for await (const f of readVideoFrames(clip, { ffmpegPath: FFMPEG, start: 5, count: 4, step: 3 })) {
      got.push(f.index);
      assert.ok(Buffer.from(f.image.data).equals(Buffer.from(all[f.index])), `frame ${f.index}`);
    }
    assert.deepEqual(got, [5, 8, 11, 14]);
  });

  test('stopping early kills ffmpeg and returns at once', { skip }, async () => {
    const long = makeTestsrcClip(join(dir, 'long.avi'), { frames: 300, width: 320, height: 240, fps: 25 });
    let n = 0;
    const t0 = performance.now();
    for await (const f of readVideoFrames(long, { ffmpegPath: FFMPEG })) {
      if (++n === 2) break;
      assert.ok(f.image);
    }
    const early = performance.now() - t0;
    const t1 = performance.now();
    let total = 0;
    for await (const _ of readVideoFrames(long, { ffmpegPath: FFMPEG })) total++;
    const full = performance.now() - t1;
    assert.equal(total, 300);
    assert.ok(early < full, `early ${early} ms vs full ${full} ms`);
  });

  test('rejects an absent ffmpeg with a PipelineError', async () => {
    await assert.rejects(probeVideo('x.avi', { ffmpegPath: '/nonexistent/ffmpeg' }), {
      name: 'PipelineError',
      code: 'ERR_PIPELINE',
      message: /ffmpeg not found/,
    });
    const it = readVideoFrames('x.avi', { ffmpegPath: '/nonexistent/ffmpeg', size: { width: 8, height: 8 } });
    await assert.rejects(it.next(), {
      name: 'PipelineError',
      code: 'ERR_PIPELINE',
      message: /ffmpeg not found/,
    });
  });

  test('rejects a corrupt video with ffmpeg stderr attached', { skip }, async () => {
    const bad = join(dir, 'bad.avi');
    await writeFile(bad, 'not a video at all');
    await assert.rejects(
      probeVideo(bad, { ffmpegPath: FFMPEG }),
      (e: Error & { code?: string; stderrTail?: string[] }) => {
        assert.equal(e.name, 'PipelineError');
        assert.ok(e.stderrTail && e.stderrTail.length > 0);
        return true;
      },
    );
    const it = readVideoFrames(bad, { ffmpegPath: FFMPEG, size: { width: 8, height: 8 } });
    await assert.rejects(it.next(), (e: Error & { stderrTail?: string[] }) => {
      assert.equal(e.name, 'PipelineError');
      assert.match(e.message, /ffmpeg failed on/);
      assert.ok(e.stderrTail!.join('\n').length > 0);
      return true;
    });
  });

  test('VideoFrameCache serves frames in any order and reports frames past the end', { skip }, async () => {
    const cache = new VideoFrameCache(clip, { frames: [3, 29, 30, 10], ffmpegPath: FFMPEG, encoding: 'raw' });
    const ref: Uint8Array[] = [];
    for await (const f of readVideoFrames(clip, { ffmpegPath: FFMPEG })) ref.push(f.image.data);
    const [a, b] = await Promise.all([cache.get(29), cache.get(3)]);
    assert.ok(Buffer.from(a.data).equals(Buffer.from(ref[29])));
    assert.ok(Buffer.from(b.data).equals(Buffer.from(ref[3])));
    await assert.rejects(cache.get(30), { name: 'DataFormatError', message: /frame 30 is past the end/ });
    await assert.rejects(cache.get(4), { name: 'RangeError' });
    // JPEG storage returns the same (lossy) pixels every time.
    const jpeg = new VideoFrameCache(clip, { frames: [1, 2], ffmpegPath: FFMPEG });
    const first = await jpeg.get(2);
    const again = await jpeg.get(2);
    assert.ok(Buffer.from(first.data).equals(Buffer.from(again.data)));
  });

  test('videoFrameDataset exposes a frame range without labels', { skip }, async () => {
    const ds = await videoFrameDataset(clip, { start: 20, ffmpegPath: FFMPEG, step: 2 });
    assert.deepEqual(
      ds.samples.map((s) => s.id),
      ['clip.avi#20', 'clip.avi#22', 'clip.avi#24', 'clip.avi#26', 'clip.avi#28'],
    );
    assert.ok(ds.samples.every((s) => s.annotations.length === 0 && s.width === 96 && s.height === 64));
    const img = await ds.samples[4].load();
    assert.equal(img.data.length, 96 * 64 * 3);
  });
});
