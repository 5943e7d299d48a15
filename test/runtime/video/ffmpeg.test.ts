import { test } from 'node:test';
import assert from 'node:assert/strict';
import { letterboxTransform } from '../../../models/core/letterbox.js';
import {
  cleanLine,
  decoderArgs,
  decoderFilterGraph,
  encoderArgs,
  findFfmpeg,
  isErrorLine,
  parseShowinfo,
} from '../../../runtime/video/ffmpeg.js';
import { parseSource } from '../../../runtime/video/source.js';
import { SKIP } from './helpers.js';

test('parses showinfo lines with and without the level prefix', () => {
  const plain =
    '[Parsed_showinfo_0 @ 0x55a34b8e14c0] n:   1 pts:    512 pts_time:0.04    pos:     7028 fmt:yuv420p sar:1/1 s:300x170 i:P iskey:0 type:B ';
  assert.deepEqual(parseShowinfo(plain), { ptsTime: 0.04, width: 300, height: 170 });
  const level =
    '[Parsed_showinfo_0 @ 0x55fbc829dc40] [info] n:  48 pts:  24576 pts_time:1.92    pos:    54252 fmt:yuv420p sar:1/1 s:640x360 i:P iskey:0 type:B checksum:ABCD';
  assert.deepEqual(parseShowinfo(level), { ptsTime: 1.92, width: 640, height: 360 });
  const nopts =
    '[Parsed_showinfo_0 @ 0x1] n:   0 pts:NOPTS pts_time:NOPTS pos: -1 fmt:rgb24 sar:0/1 s:64x48 i:P iskey:1 type:I';
  assert.deepEqual(parseShowinfo(nopts), { ptsTime: null, width: 64, height: 48 });
  assert.equal(
    parseShowinfo('[Parsed_showinfo_0 @ 0x55] config in time_base: 1/12800, frame_rate: 25/1'),
    null,
  );
  assert.equal(parseShowinfo('  Duration: 00:00:02.00, start: 0.000000, bitrate: 226 kb/s'), null);
});

test('classifies stderr lines by level and cleans their prefixes', () => {
  const l = '[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5575174868c0] [error] stream 0, offset 0x886a: partial file';
  assert.equal(isErrorLine(l), true);
  assert.equal(isErrorLine('[info] Stream mapping:'), false);
  assert.equal(isErrorLine('[warning] corrupt input packet in stream 0'), false);
  assert.equal(cleanLine(l), 'stream 0, offset 0x886a: partial file');
  assert.equal(cleanLine('[error] /x.mp4: No such file or directory'), '/x.mp4: No such file or directory');
});

/** ffmpeg's fitted size for force_original_aspect_ratio=decrease (libavfilter/scale_eval.c, av_rescale rounding). */
function ffmpegFit(sw: number, sh: number, H: number, W: number): [number, number] {
  const rescale = (a: number, b: number, c: number) => Math.floor((a * b + Math.floor(c / 2)) / c);
  return [Math.min(W, rescale(H, sw, sh)), Math.min(H, rescale(W, sh, sw))];
}

test("ffmpeg's decrease-fit equals models/core letterboxTransform for every size that does not round to 0", () => {
  let checked = 0;
  for (const [H, W] of [
    [320, 320],
    [64, 64],
    [320, 544],
    [384, 640],
  ])
    for (let sw = 16; sw <= 2000; sw += 3)
      for (const sh of [sw - 1, Math.round(sw * 0.5625), Math.round(sw * 0.75), 170, 240, 576, 1080, 333]) {
        if (sh < 16) continue;
        const t = letterboxTransform(sw, sh, H, W);
        const [fw, fh] = ffmpegFit(sw, sh, H, W);
        assert.deepEqual(
          [Math.round(t.scaleX * sw), Math.round(t.scaleY * sh)],
          [fw, fh],
          `${sw}x${sh} -> ${W}x${H}`,
        );
        checked++;
      }
  assert.ok(checked > 10_000);
});

test(
  'builds the decoder graph: showinfo first, fit + RGB pad 114, optional source branch',
  { skip: SKIP },
  async () => {
    const bin = await findFfmpeg();
    const g = decoderFilterGraph({ width: 320, height: 320, resize: 'letterbox', sourceOutput: true }, bin);
    assert.match(g, /^\[0:v:0\]showinfo(=checksum=0)?,split=2\[m0\]\[s0\];/);
    assert.match(
      g,
      /scale=320:320:force_original_aspect_ratio=decrease:flags=bilinear[^,]*,format=rgb24,pad=320:320:floor\(\(ow-iw\)\/2\):floor\(\(oh-ih\)\/2\):color=0x727272\[m\]/,
    );
    assert.match(g, /\[s0\]format=rgb24\[s\]$/);
    const stretch = decoderFilterGraph(
      { width: 64, height: 32, resize: 'stretch', sourceOutput: false },
      bin,
    );
    assert.doesNotMatch(stretch, /pad=|split/);
    const args = decoderArgs(
      bin,
      { input: '/x.mp4', inputOptions: ['-re'] },
      { width: 64, height: 64, resize: 'letterbox', sourceOutput: true },
      10,
    );
    assert.deepEqual(args.slice(args.indexOf('-re') - 0, args.indexOf('-re') + 3), ['-re', '-i', '/x.mp4']);
    assert.ok(args.includes('pipe:1') && args.includes('pipe:3'));
    assert.equal(args.filter((a) => a === '-frames:v').length, 2);
    assert.ok(args.includes('-nostdin'));
  },
);

test('encodes odd sizes 4:4:4 with libx264, even sizes 4:2:0', { skip: SKIP }, async () => {
  const bin = await findFfmpeg();
  const odd = await encoderArgs(bin, {
    out: 'a.mp4',
    width: 301,
    height: 171,
    fps: '25',
    codec: 'libx264',
    crf: 23,
  });
  assert.equal(odd[odd.indexOf('-pix_fmt', odd.indexOf('-c:v')) + 1], 'yuv444p');
  assert.ok(odd.includes('+faststart'));
  const even = await encoderArgs(bin, {
    out: 'a.mkv',
    width: 320,
    height: 240,
    fps: '25',
    codec: 'auto',
    crf: 23,
  });
  assert.ok(even.includes('yuv420p'));
  assert.ok(!even.includes('+faststart'));
  await assert.rejects(
    encoderArgs(bin, { out: 'a.mp4', width: 2, height: 2, fps: '25', codec: 'nope' as 'mpeg4', crf: 23 }),
    { name: 'PipelineError', message: /no 'nope' encoder/ },
  );
});

test('classifies sources; a missing path fails at once', () => {
  assert.deepEqual(parseSource('-'), { kind: 'stdin', location: '-' });
  assert.deepEqual(parseSource('rtsp://cam.local/stream1'), {
    kind: 'url',
    location: 'rtsp://cam.local/stream1',
    protocol: 'rtsp',
  });
  assert.equal(parseSource('HTTPS://x/y.mp4').protocol, 'https');
  assert.equal(parseSource('/tmp').kind, 'folder');
  assert.throws(() => parseSource('/no/such/clip.mp4'), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
    message: /video source not found: '\/no\/such\/clip\.mp4'/,
  });
  assert.throws(() => parseSource('/dev/video99'), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
    message: /device/,
  });
  assert.throws(() => parseSource('gopher://x'), {
    name: 'ConfigError',
    code: 'ERR_CONFIG_INVALID',
    message: /rtsp, /,
  });
  assert.throws(() => parseSource(''), { name: 'ConfigError', code: 'ERR_CONFIG_INVALID' });
});
