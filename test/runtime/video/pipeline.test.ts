/**
 * Timing behaviour of the pipeline: live mode drops stale frames under a slow model, file mode
 * processes every frame under the same model, batches fill up when inference is the
 * bottleneck. A stand-in detector with a fixed delay is used here because the point is the
 * delay; everything else (ffmpeg, queues, tracker, sinks) is real. Detection quality and the
 * real detector are in e2e.test.ts.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelSpec } from '../../../models/core/spec.js';
import type { Detector, DetectResult, PreparedFrame } from '../../../runtime/types.js';
import { liveFfmpegPids } from '../../../runtime/video/ffmpeg.js';
import {
  assignTrackIds,
  runVideoPipeline,
  type FrameResult,
  type VideoEvent,
} from '../../../runtime/video/pipeline.js';
import { formatStatsLine, JsonlSink } from '../../../runtime/video/sinks.js';
import { microSpec } from '../../helpers/specs.js';
import { makeClip, pidAlive, SKIP, tmp } from './helpers.js';

const dir = SKIP ? '' : tmp();
after(() => dir && rmSync(dir, { recursive: true, force: true }));
const clip = SKIP ? '' : makeClip(join(dir, 'clip.mp4'), { seconds: 2 });

/** A Detector that takes `delayMs` per call (whatever the batch) and finds one fixed box. */
function slowDetector(delayMs: number): Detector & { calls: number[] } {
  const spec = parseModelSpec(microSpec('slow'));
  const calls: number[] = [];
  const one = (f: PreparedFrame): DetectResult => ({
    detections: [{ box: [40, 30, 80, 120], score: 0.9, classId: 0 }],
    width: f.transform.srcWidth,
    height: f.transform.srcHeight,
    timings: { preMs: 0, inferMs: delayMs, postMs: 0, totalMs: delayMs },
  });
  return {
    spec,
    provider: 'cpu',
    fallbacks: [],
    outputs: 'boxes',
    precision: 'fp32',
    calls,
    detectImage: () => Promise.reject(new Error('not used')),
    detectImages: () => Promise.reject(new Error('not used')),
    async detectPrepared(frames) {
      calls.push(frames.length);
      await new Promise((r) => setTimeout(r, delayMs));
      return frames.map(one);
    },
    close: async () => {},
  };
}

function decoderPids(events: VideoEvent[]): number[] {
  return events.flatMap((e) => (e.kind === 'ffmpeg-start' ? [e.pid] : []));
}

test(
  'live mode drops stale frames under a slow model and keeps latency bounded',
  { skip: SKIP },
  async () => {
    const det = slowDetector(120);
    const events: VideoEvent[] = [];
    const seen: number[] = [];
    const s = await runVideoPipeline({
      source: clip,
      detector: det,
      live: true, // a file read at its native rate, like a camera
      sinks: [{ name: 'probe', write: (r: FrameResult) => void seen.push(r.index), close: async () => {} }],
      onEvent: (e) => events.push(e),
    });
    assert.equal(s.live, true);
    assert.equal(s.frames, 50);
    assert.ok(s.dropped > 0, `dropped ${s.dropped}`);
    assert.equal(s.processed + s.dropped, s.frames);
    assert.equal(seen.length, s.processed);
    assert.ok(
      seen.every((v, i) => i === 0 || v > seen[i - 1]),
      'frames stay in order',
    );
    // A frame waits at most about one inference call (plus scheduling noise), never a backlog.
    assert.ok(s.meanMs.wait < 2 * 120, `mean wait ${s.meanMs.wait} ms`);
    assert.ok(s.meanMs.latency < 4 * 120, `mean latency ${s.meanMs.latency} ms`);
    for (const pid of decoderPids(events)) assert.equal(pidAlive(pid), false);
  },
);

test(
  'file mode processes every frame under the same slow model (backpressure, no drops)',
  { skip: SKIP },
  async () => {
    const det = slowDetector(25);
    const lines = join(dir, 'file-mode.jsonl');
    const s = await runVideoPipeline({ source: clip, detector: det, sinks: [new JsonlSink(lines)] });
    assert.equal(s.live, false);
    assert.equal(s.frames, 50);
    assert.equal(s.processed, 50);
    assert.equal(s.dropped, 0);
    assert.equal(det.calls.length, 50, 'batch 1: one call per frame');
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test('batches up to N frames when inference is the bottleneck', { skip: SKIP }, async () => {
  const det = slowDetector(40);
  const s = await runVideoPipeline({ source: clip, detector: det, batch: 4, maxFrames: 40 });
  assert.equal(s.processed, 40);
  assert.ok(det.calls.every((n) => n >= 1 && n <= 4));
  assert.ok(s.meanBatch > 2, `mean batch ${s.meanBatch} (calls ${det.calls.join(',')})`);
  assert.equal(
    det.calls.reduce((a, b) => a + b, 0),
    40,
  );
  assert.match(
    formatStatsLine({
      elapsedSec: 1,
      decoded: 40,
      processed: 40,
      dropped: 0,
      reconnects: 0,
      fps: 30,
      decodeFps: 31,
      queues: { decode: 1, decodePeak: 4, results: 0, resultsPeak: 1 },
      ms: { wait: 1, pre: 0.5, infer: 40, post: 0.2, track: 0.1, sink: 0.3, latency: 45 },
      meanBatch: s.meanBatch,
    }),
    /^frame 40 \| 30\.0 fps \(decode 31\.0\) \| drop 0 \| wait 1\.0 pre 0\.5 infer 40\.0 post 0\.2 track 0\.1 sink 0\.3 ms \| latency 45 ms \| queue 1\/0 \| batch \d\.\d$/,
  );
});

test('attaches track ids to the detections they overlap most, per class', () => {
  const dets = [
    { box: [0, 0, 10, 10] as [number, number, number, number], score: 0.9, classId: 0 },
    { box: [20, 0, 30, 10] as [number, number, number, number], score: 0.8, classId: 0 },
    { box: [20, 0, 30, 10] as [number, number, number, number], score: 0.7, classId: 1 },
  ];
  const tracks = [
    { id: 7, box: [21, 0, 31, 10] as [number, number, number, number], score: 0.8, classId: 0, age: 3 },
    { id: 9, box: [1, 1, 11, 11] as [number, number, number, number], score: 0.9, classId: 0, age: 1 },
  ];
  assert.deepEqual(
    assignTrackIds(dets, tracks).map((o) => o.trackId),
    [9, 7, null],
  );
  assert.deepEqual(
    assignTrackIds(dets, null).map((o) => o.trackId),
    [null, null, null],
  );
});
