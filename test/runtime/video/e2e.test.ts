/**
 * End to end with the real detector (runtime/detector.ts, ONNX Runtime in a worker) on models
 * written by the project's exporter (test/runtime/fixtures.ts) and clips made by ffmpeg here:
 * JSONL content, the annotated video (decoded back with ffprobe / ffmpeg), the MJPEG / SSE hub,
 * stats, and that no ffmpeg child outlives a run that ends, fails or is aborted.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { boxToSource, letterboxTransform } from '../../../models/core/letterbox.js';
import { parseModelSpec } from '../../../models/core/spec.js';
import { createDetector } from '../../../runtime/detector.js';
import type { Detector } from '../../../runtime/types.js';
import { liveFfmpegPids } from '../../../runtime/video/ffmpeg.js';
import { runVideoPipeline, type VideoEvent } from '../../../runtime/video/pipeline.js';
import {
  AnnotatedVideoSink,
  JsonlSink,
  StatsSink,
  StreamHub,
  type FrameRecord,
  type JpegFrame,
} from '../../../runtime/video/sinks.js';
import { microSpec } from '../../helpers/specs.js';
import { writeConstantDetector, writeTestModels } from '../fixtures.js';
import { makeClip, makeTruncatedClip, pidAlive, probeVideo, SKIP, tmp } from './helpers.js';

const dir = SKIP ? '' : tmp('edgekd-video-e2e-');
let real: Detector;
let constant: Detector;
/** The constant detector's one box in network pixels (64x64 input), and where it lands in a 320x240 source. */
const ROW = [16, 18, 48, 50, 0.9, 0];
const BOX_320x240 = [80, 50, 240, 210];

before(async () => {
  if (SKIP) return;
  const m = writeTestModels(dir);
  real = await createDetector(m.boxes, { intraOpThreads: 1 });
  const model = join(dir, 'constant.onnx');
  writeConstantDetector(model, [ROW]);
  const specPath = join(dir, 'constant.json');
  writeFileSync(
    specPath,
    JSON.stringify(parseModelSpec({ ...microSpec('constant'), decode: { topK: 4, scoreThreshold: 0.3 } })),
  );
  constant = await createDetector(model, { specPath, intraOpThreads: 1 });
});

after(async () => {
  await real?.close();
  await constant?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const readJsonl = (path: string): FrameRecord[] =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as FrameRecord);

function ffmpegPids(events: VideoEvent[]): number[] {
  return events.flatMap((e) => (e.kind === 'ffmpeg-start' ? [e.pid] : []));
}

/** First frame of a video decoded to RGB24 at its own size. */
function firstFrameRgb(path: string): Buffer {
  return execFileSync(
    'ffmpeg',
    ['-v', 'error', '-i', path, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    {
      maxBuffer: 64 << 20,
    },
  );
}

test(
  'runs the real detector over a clip: JSONL per frame, annotated video, SSE/MJPEG hub, stats',
  { skip: SKIP },
  async () => {
    const clip = makeClip(join(dir, 'clip.mp4'));
    const jsonl = join(dir, 'clip.jsonl');
    const out = join(dir, 'clip-annotated.mp4');
    const hub = new StreamHub({ maxWidth: 160 });
    const events: VideoEvent[] = [];
    const sse: FrameRecord[] = [];
    const jpegs: JpegFrame[] = [];
    hub.on('detections', (e) => sse.push(e));
    const consumer = (async () => {
      for await (const f of hub.jpegFrames()) jpegs.push(f);
    })();
    const lines: string[] = [];
    const s = await runVideoPipeline({
      source: clip,
      detector: real,
      sinks: [
        new JsonlSink(jsonl),
        new AnnotatedVideoSink(out),
        hub,
        new StatsSink((_s, line) => lines.push(line), 0),
      ],
      onEvent: (e) => events.push(e),
    });
    await consumer;
    assert.equal(s.frames, 50);
    assert.equal(s.processed, 50);
    assert.equal(s.dropped, 0);
    assert.equal(s.ended, 'eof');
    assert.equal(s.provider, 'cpu');
    assert.ok(s.meanMs.infer > 0);
    assert.ok(s.tracks > 0, 'tracking is on by default');

    const recs = readJsonl(jsonl);
    assert.equal(recs.length, 50);
    recs.forEach((r, i) => {
      assert.equal(r.frame, i);
      assert.ok(Math.abs(r.pts! - i / 25) < 1e-6);
      assert.deepEqual([r.width, r.height], [320, 240]);
      assert.equal(r.scores.length, r.boxes.length);
      assert.equal(r.classes.length, r.boxes.length);
      assert.equal(r.trackIds.length, r.boxes.length);
      for (const [x1, y1, x2, y2] of r.boxes)
        assert.ok(x1 >= 0 && y1 >= 0 && x2 <= 320 && y2 <= 240 && x2 > x1 && y2 > y1);
      assert.ok(r.scores.every((v) => v >= 0.3));
    });
    assert.ok(recs.reduce((n, r) => n + r.boxes.length, 0) > 0, 'the random-weight model finds boxes');
    assert.ok(recs.some((r) => r.trackIds.some((id) => id !== null)));
    assert.deepEqual(sse, recs, 'SSE events carry the JSONL records');
    assert.ok(jpegs.length > 0 && jpegs[0].jpeg[0] === 0xff && jpegs[0].jpeg[1] === 0xd8, 'JPEG frames');
    assert.deepEqual([jpegs[0].width, jpegs[0].height], [160, 120]);

    assert.deepEqual(probeVideo(out), { width: 320, height: 240, frames: 50, codec: 'h264' });
    assert.ok(lines.length > 0 && /^frame \d+ \| /.test(lines.at(-1)!));
    const pids = ffmpegPids(events);
    assert.equal(pids.length, 2, 'one decoder, one encoder');
    for (const pid of pids) assert.equal(pidAlive(pid), false);
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test(
  'boxes land where the model put them, in JSONL and drawn on the source-resolution video',
  { skip: SKIP },
  async () => {
    const clip = makeClip(join(dir, 'black.mp4'), {
      source: 'color=c=black:size=320x240:rate=25',
      seconds: 0.4,
    });
    const jsonl = join(dir, 'black.jsonl');
    const out = join(dir, 'black-annotated.mkv');
    const s = await runVideoPipeline({
      source: clip,
      detector: constant,
      sinks: [new JsonlSink(jsonl), new AnnotatedVideoSink(out, { codec: 'libx264', crf: 10 })],
      countLine: [160, 0, 160, 240],
    });
    assert.equal(s.processed, 10);
    assert.deepEqual(s.counts, { in: 0, out: 0 });
    const recs = readJsonl(jsonl);
    // Network box -> source box through the letterbox transform (scale 0.2, 8 px of padding on top).
    const t = letterboxTransform(320, 240, 64, 64);
    assert.deepEqual([t.scaleX, t.padY], [0.2, 8]);
    assert.deepEqual(recs[0].boxes, [BOX_320x240]);
    assert.deepEqual(recs[0].trackIds, [1]);
    assert.deepEqual(recs[0].counts, { in: 0, out: 0 });
    const v = probeVideo(out);
    assert.deepEqual([v.width, v.height, v.frames], [320, 240, 10]);
    const rgb = firstFrameRgb(out);
    const px = (x: number, y: number) => Array.from(rgb.subarray((y * 320 + x) * 3, (y * 320 + x) * 3 + 3));
    const bright = (p: number[]) => Math.max(...p) > 150;
    assert.ok(bright(px(81, 130)), `left edge of the box drawn: ${px(81, 130)}`);
    assert.ok(bright(px(160, 211 - 2)), `bottom edge: ${px(160, 209)}`);
    assert.ok(!bright(px(120, 130)), `inside stays black: ${px(120, 130)}`);
    assert.ok(!bright(px(40, 130)), `outside stays black: ${px(40, 130)}`);
    assert.ok(bright(px(160, 20)), 'the count line is drawn');
  },
);

test('an odd-sized source gives an annotated video of exactly that size', { skip: SKIP }, async () => {
  const clip = makeClip(join(dir, 'odd.mkv'), { vf: 'scale=301:171', codec: ['-c:v', 'ffv1'], seconds: 0.4 });
  const out = join(dir, 'odd-annotated.mp4');
  const s = await runVideoPipeline({ source: clip, detector: real, sinks: [new AnnotatedVideoSink(out)] });
  assert.equal(s.processed, 10);
  assert.deepEqual(probeVideo(out), { width: 301, height: 171, frames: 10, codec: 'h264' });
});

test(
  'a truncated file: frames before the cut are written, then a clear error; no ffmpeg left',
  { skip: SKIP },
  async () => {
    const cut = makeTruncatedClip(dir);
    const events: VideoEvent[] = [];
    const jsonl = join(dir, 'cut.jsonl');
    await assert.rejects(
      runVideoPipeline({
        source: cut,
        detector: real,
        sinks: [new JsonlSink(jsonl), new AnnotatedVideoSink(join(dir, 'cut-annotated.mp4'))],
        onEvent: (e) => events.push(e),
      }),
      {
        name: 'PipelineError',
        code: 'ERR_PIPELINE',
        message: /truncated or corrupt: decoding stopped after \d+ of 50 frames/,
      },
    );
    const n = readJsonl(jsonl).length;
    assert.ok(n > 0 && n < 50, `${n} frames written`);
    const pids = ffmpegPids(events);
    assert.equal(pids.length, 2);
    for (const pid of pids) assert.equal(pidAlive(pid), false);
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test(
  'abort stops the pipeline: ERR_INTERRUPTED, the video is finalised, no ffmpeg left',
  { skip: SKIP },
  async () => {
    const clip = makeClip(join(dir, 'long.mp4'), { seconds: 8 });
    const out = join(dir, 'aborted.mp4');
    const controller = new AbortController();
    const events: VideoEvent[] = [];
    let seen = 0;
    const t0 = Date.now();
    await assert.rejects(
      runVideoPipeline({
        source: clip,
        detector: real,
        live: true, // native rate: 8 s unless aborted
        sinks: [
          new AnnotatedVideoSink(out),
          {
            name: 'abort-at-10',
            write: () => void (++seen === 10 && controller.abort()),
            close: async () => {},
          },
        ],
        signal: controller.signal,
        onEvent: (e) => events.push(e),
      }),
      { name: 'EdgekdError', code: 'ERR_INTERRUPTED' },
    );
    assert.ok(Date.now() - t0 < 4000, `stopped in ${Date.now() - t0} ms`);
    for (const pid of ffmpegPids(events)) assert.equal(pidAlive(pid), false);
    assert.deepEqual(liveFfmpegPids(), []);
    const v = probeVideo(out);
    assert.ok(v.frames >= 10 && v.frames < 200, `${v.frames} frames in the finalised file`);
  },
);

test(
  'a size change mid-stream: JSONL follows it, the annotated video stops with a clear error',
  { skip: SKIP },
  async () => {
    const a = makeClip(join(dir, 'a.ts'), { size: '320x240', seconds: 0.6 });
    const b = makeClip(join(dir, 'b.ts'), { size: '640x360', seconds: 0.6 });
    const ab = join(dir, 'ab.ts');
    writeFileSync(ab, Buffer.concat([readFileSync(a), readFileSync(b)]));
    const jsonl = join(dir, 'ab.jsonl');
    const s = await runVideoPipeline({ source: ab, detector: constant, sinks: [new JsonlSink(jsonl)] });
    assert.equal(s.processed, 30);
    const recs = readJsonl(jsonl);
    assert.deepEqual([recs[0].width, recs[0].height, recs[29].width, recs[29].height], [320, 240, 640, 360]);
    assert.deepEqual(recs[0].boxes, [BOX_320x240]);
    // 640x360 has another aspect: scale 0.1, 14 px of padding; the box is clipped to the frame.
    const t2 = letterboxTransform(640, 360, 64, 64);
    const want = boxToSource(ROW.slice(0, 4) as [number, number, number, number], t2);
    assert.deepEqual(want, [160, 40, 480, 360]);
    assert.deepEqual(recs[29].boxes, [want], 'the new transform maps the same network box');

    const events: VideoEvent[] = [];
    await assert.rejects(
      runVideoPipeline({
        source: ab,
        detector: constant,
        sinks: [new AnnotatedVideoSink(join(dir, 'ab.mp4'))],
        onEvent: (e) => events.push(e),
      }),
      { name: 'PipelineError', message: /frame size changed mid-stream from 320x240 to 640x360 at frame 15/ },
    );
    for (const pid of ffmpegPids(events)) assert.equal(pidAlive(pid), false);
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test('an output in a missing folder fails before any ffmpeg starts', { skip: SKIP }, async () => {
  const events: VideoEvent[] = [];
  await assert.rejects(
    runVideoPipeline({
      source: makeClip(join(dir, 'short.mp4'), { seconds: 0.2 }),
      detector: real,
      sinks: [new AnnotatedVideoSink(join(dir, 'no', 'such', 'out.mp4'))],
      onEvent: (e) => events.push(e),
    }),
    { name: 'ConfigError', code: 'ERR_FILE_WRITE', message: /annotated video .*folder .* does not exist/ },
  );
  assert.deepEqual(ffmpegPids(events), []);
  assert.deepEqual(liveFfmpegPids(), []);
});
