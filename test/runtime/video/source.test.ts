/**
 * VideoSource against real ffmpeg children on clips made here: frame counts, pts, the letterbox
 * geometry of the frames ffmpeg produces, source-resolution frames, size changes, truncated and
 * missing inputs, stop, folders, stdin, and reconnecting an HTTP stream that drops.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { letterboxTransform } from '../../../models/core/letterbox.js';
import { liveFfmpegPids } from '../../../runtime/video/ffmpeg.js';
import {
  VideoSource,
  type DecodedFrame,
  type SourceEvent,
  type SourceOptions,
} from '../../../runtime/video/source.js';
import { makeClip, makeTruncatedClip, pidAlive, SKIP, tmp } from './helpers.js';

const dir = SKIP ? '' : tmp();
after(() => dir && rmSync(dir, { recursive: true, force: true }));
const clip = SKIP ? '' : makeClip(join(dir, 'clip.mp4'));
const input = (width = 64, height = 64): SourceOptions['input'] => ({ width, height, resize: 'letterbox' });

async function collect(
  source: string,
  opts: Partial<SourceOptions> = {},
): Promise<{
  frames: DecodedFrame[];
  events: SourceEvent[];
  result: Awaited<ReturnType<VideoSource['run']>>;
}> {
  const events: SourceEvent[] = [];
  const src = await VideoSource.open(source, { input: input(), ...opts, onEvent: (e) => events.push(e) });
  const frames: DecodedFrame[] = [];
  const result = await src.run((f) => frames.push(f));
  return { frames, events, result };
}

function decoderPids(events: SourceEvent[]): number[] {
  return events.flatMap((e) => (e.kind === 'ffmpeg-start' ? [e.pid] : []));
}

/** Bounding box of the pixels brighter than 128 (R channel) in a packed RGB24 frame. */
function brightBox(rgb: Uint8Array, width: number, height: number): [number, number, number, number] {
  let x1 = Infinity;
  let y1 = Infinity;
  let x2 = -Infinity;
  let y2 = -Infinity;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      if (rgb[(y * width + x) * 3] > 128) {
        x1 = Math.min(x1, x);
        y1 = Math.min(y1, y);
        x2 = Math.max(x2, x + 1);
        y2 = Math.max(y2, y + 1);
      }
  return [x1, y1, x2, y2];
}

test(
  'file mode delivers every frame with increasing pts and the letterbox transform',
  { skip: SKIP },
  async () => {
    const { frames, events, result } = await collect(clip);
    assert.equal(frames.length, 50, '2 s at 25 fps');
    assert.deepEqual(result, { frames: 50, sessions: 1, reconnects: 0, ended: 'eof' });
    frames.forEach((f, i) => {
      assert.equal(f.index, i);
      assert.ok(Math.abs(f.pts! - i / 25) < 1e-6, `pts of frame ${i}: ${f.pts}`);
      assert.equal(f.rgb.length, 64 * 64 * 3);
    });
    assert.deepEqual(frames[0].transform, letterboxTransform(320, 240, 64, 64));
    const pids = decoderPids(events);
    assert.equal(pids.length, 1);
    assert.equal(pidAlive(pids[0]), false, 'decoder reaped after the end');
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test(
  'an odd-sized source is padded with grey 114 exactly where the transform says',
  { skip: SKIP },
  async () => {
    // testsrc2 only makes even sizes: scale to an odd one, keep it lossless (ffv1 takes odd sizes).
    const odd = makeClip(join(dir, 'odd.mkv'), {
      vf: 'scale=301:171',
      codec: ['-c:v', 'ffv1'],
      seconds: 0.4,
    });
    const { frames } = await collect(odd, { input: input(320, 320) });
    assert.equal(frames.length, 10);
    const t = frames[0].transform;
    assert.deepEqual(t, letterboxTransform(301, 171, 320, 320));
    assert.equal(t.padY, 69); // 171 * 320/301 = 181.8 -> 182 rows, (320 - 182) / 2 = 69
    const rgb = frames[0].rgb;
    const row = (y: number) => Array.from(rgb.subarray(y * 320 * 3, (y + 1) * 320 * 3));
    assert.ok(row(0).every((v) => v === 114) && row(t.padY - 1).every((v) => v === 114), 'top pad');
    assert.ok(!row(t.padY).every((v) => v === 114), 'first image row');
    const lastImageRow = t.padY + Math.round(171 * t.scaleY) - 1;
    assert.ok(!row(lastImageRow).every((v) => v === 114), 'last image row');
    assert.ok(
      row(lastImageRow + 1).every((v) => v === 114) && row(319).every((v) => v === 114),
      'bottom pad',
    );
  },
);

test(
  'a box drawn in the source maps back through the transform to where it was drawn',
  { skip: SKIP },
  async () => {
    for (const [size, box] of [
      ['320x240', [100, 60, 40, 80]],
      ['300x170', [36, 20, 120, 64]],
    ] as const) {
      const [sw, sh] = size.split('x').map(Number);
      const path = makeClip(join(dir, `box-${size}.mkv`), {
        source: `color=c=black:size=${size}:rate=25`,
        seconds: 0.2,
        vf: `drawbox=x=${box[0]}:y=${box[1]}:w=${box[2]}:h=${box[3]}:color=white:t=fill`,
        codec: ['-c:v', 'ffv1', '-pix_fmt', 'yuv444p'],
      });
      const { frames } = await collect(path, { input: input(160, 160), sourceFrames: true });
      const f = frames[0];
      const t = f.transform;
      const [x1, y1, x2, y2] = brightBox(f.rgb, 160, 160);
      const back = [
        (x1 - t.padX) / t.scaleX,
        (y1 - t.padY) / t.scaleY,
        (x2 - t.padX) / t.scaleX,
        (y2 - t.padY) / t.scaleY,
      ];
      const want = [box[0], box[1], box[0] + box[2], box[1] + box[3]];
      // One model pixel is 1/scale source pixels; bilinear edges may add one more.
      const tol = 1.5 / Math.min(t.scaleX, t.scaleY);
      back.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= tol, `${size}: ${back} vs ${want}`));
      // The source-resolution frame is exact.
      assert.deepEqual([f.source!.width, f.source!.height], [sw, sh]);
      assert.deepEqual(brightBox(f.source!.rgb, sw, sh), want);
    }
  },
);

test(
  'follows a frame size change mid-stream: transforms and source frames change with it',
  { skip: SKIP },
  async () => {
    const a = makeClip(join(dir, 'a.ts'), { size: '320x240', seconds: 1 });
    const b = makeClip(join(dir, 'b.ts'), { size: '640x360', seconds: 1 });
    const ab = join(dir, 'ab.ts');
    writeFileSync(ab, Buffer.concat([readFileSync(a), readFileSync(b)]));
    const { frames, events } = await collect(ab, { sourceFrames: true });
    assert.equal(frames.length, 50);
    assert.deepEqual(frames[0].transform, letterboxTransform(320, 240, 64, 64));
    assert.deepEqual(frames[49].transform, letterboxTransform(640, 360, 64, 64));
    assert.deepEqual([frames[49].source!.width, frames[49].source!.height], [640, 360]);
    assert.equal(frames[49].source!.rgb.length, 640 * 360 * 3);
    const change = events.find((e) => e.kind === 'size-change');
    assert.deepEqual(change, { kind: 'size-change', frame: 25, from: [320, 240], to: [640, 360] });
  },
);

test(
  'rejects a truncated file after its decodable frames, and its ffmpeg is gone',
  { skip: SKIP },
  async () => {
    const cut = makeTruncatedClip(dir);
    const events: SourceEvent[] = [];
    const src = await VideoSource.open(cut, { input: input(), onEvent: (e) => events.push(e) });
    let n = 0;
    await assert.rejects(
      src.run(() => n++),
      {
        name: 'PipelineError',
        code: 'ERR_PIPELINE',
        message: /cut\.mp4' is truncated or corrupt: decoding stopped after \d+ of 50 frames/,
      },
    );
    assert.ok(n > 0 && n < 50);
    const pids = decoderPids(events);
    assert.equal(pids.length, 1);
    assert.equal(pidAlive(pids[0]), false);
    // Cut before the index (moov at the end): the probe already fails, clearly.
    const plain = readFileSync(clip);
    writeFileSync(cut, plain.subarray(0, plain.length - 2000));
    await assert.rejects(VideoSource.open(cut, { input: input() }), {
      name: 'PipelineError',
      message: /cannot open video source '.*cut\.mp4': .*moov atom not found/,
    });
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test('missing sources fail fast with a clear error', { skip: SKIP }, async () => {
  const t0 = Date.now();
  await assert.rejects(VideoSource.open(join(dir, 'nope.mp4'), { input: input() }), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
    message: /video source not found/,
  });
  // A port nobody listens on: connection refused.
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  await assert.rejects(
    VideoSource.open(`http://127.0.0.1:${port}/live.ts`, { input: input(), openTimeoutMs: 3000 }),
    {
      name: 'PipelineError',
      message: /cannot open video source 'http:\/\/127\.0\.0\.1:\d+\/live\.ts': .*(refused|Connection)/i,
    },
  );
  await assert.rejects(VideoSource.open(dir + '/empty', { input: input() }), { code: 'ERR_FILE_NOT_FOUND' });
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
});

test('stop() and maxFrames end the decoder; the child is reaped', { skip: SKIP }, async () => {
  const r = await collect(clip, { maxFrames: 7 });
  assert.equal(r.frames.length, 7);
  assert.equal(r.result.ended, 'max-frames');
  const events: SourceEvent[] = [];
  const src = await VideoSource.open(clip, {
    input: input(),
    realtime: true,
    onEvent: (e) => events.push(e),
  });
  let n = 0;
  const run = src.run(() => {
    if (++n === 3) void src.stop();
  });
  assert.equal((await run).ended, 'stopped');
  assert.ok(n >= 3 && n < 50);
  for (const pid of decoderPids(events)) assert.equal(pidAlive(pid), false);
  assert.deepEqual(liveFfmpegPids(), []);
});

test('reads an image folder in natural order, and stdin', { skip: SKIP }, async () => {
  const folder = join(dir, 'frames');
  mkdirSync(folder);
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=96x64:rate=5',
    '-frames:v',
    '12',
    join(folder, 'f_%d.png'),
  ]);
  const { frames } = await collect(folder);
  assert.equal(frames.length, 12);
  assert.deepEqual(frames[0].transform, letterboxTransform(96, 64, 64, 64));
  const ts = makeClip(join(dir, 'stdin.ts'), {
    codec: ['-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'mpegts'],
  });
  const piped = await collect('-', { stdin: createReadStream(ts) });
  assert.equal(piped.frames.length, 50);
  assert.deepEqual(piped.frames[0].transform, letterboxTransform(320, 240, 64, 64));
});

test(
  'reconnects a dropped HTTP stream with back-off; gives up after the attempts',
  { skip: SKIP },
  async () => {
    const ts = readFileSync(
      makeClip(join(dir, 'live.ts'), {
        codec: ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '5', '-f', 'mpegts'],
      }),
    );
    let requests = 0;
    let refuse = false;
    const server: Server = createServer((req, res) => {
      requests++;
      if (refuse) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-type': 'video/mp2t' });
      // The decoder's first connection drops a third of the way in; later ones send the whole clip.
      if (requests === 2) res.write(ts.subarray(0, Math.floor(ts.length / 3)), () => res.socket?.destroy());
      else res.end(ts);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/live.ts`;
    try {
      const r = await collect(url, {
        live: true,
        maxFrames: 80,
        reconnect: { attempts: 3, baseDelayMs: 50 },
      });
      assert.equal(r.frames.length, 80);
      assert.equal(r.result.ended, 'max-frames');
      assert.ok(r.result.reconnects >= 1, `reconnects ${r.result.reconnects}`);
      const rec = r.events.filter((e) => e.kind === 'reconnect');
      assert.equal(rec[0].kind === 'reconnect' && rec[0].delayMs, 50);
      for (let i = 1; i < r.frames.length; i++)
        assert.ok(r.frames[i].pts! > r.frames[i - 1].pts!, `pts increase across sessions at ${i}`);
      r.frames.forEach((f, i) => assert.equal(f.index, i));
      for (const pid of decoderPids(r.events)) assert.equal(pidAlive(pid), false);

      // Lost for good: every reconnect is refused.
      requests = 0;
      const events: SourceEvent[] = [];
      const src = await VideoSource.open(url, {
        input: input(),
        live: true,
        reconnect: { attempts: 2, baseDelayMs: 20 },
        onEvent: (e) => events.push(e),
      });
      refuse = true;
      await assert.rejects(
        src.run(() => {}),
        {
          name: 'PipelineError',
          message: /stream lost: .*gave up after 2 reconnect attempts/,
        },
      );
      assert.deepEqual(
        events.filter((e) => e.kind === 'reconnect').map((e) => (e.kind === 'reconnect' ? e.delayMs : 0)),
        [20, 40],
      );
      assert.deepEqual(liveFfmpegPids(), []);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  },
);
