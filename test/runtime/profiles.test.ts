/** Deployment profiles: catalog, providers, session hints and ffmpeg decode arguments. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  PROFILES,
  PROFILE_NAMES,
  decodeArgsFor,
  parseProfile,
  precisionAdvice,
  resolveDecodePlan,
  sessionHints,
} from '../../runtime/profiles.js';
import { liveFfmpegPids, parseHwaccelList, parseVideoCodecList } from '../../runtime/video/ffmpeg.js';
import { VideoSource } from '../../runtime/video/source.js';
import { makeClip, SKIP, tmp } from './video/helpers.js';

/** Abridged `ffmpeg -decoders` of a JetPack ffmpeg (Jetson Linux), as the listing is laid out. */
const JETPACK_DECODERS = `Decoders:
 V..... = Video
 A..... = Audio
 S..... = Subtitle
 .F.... = Frame-level multithreading
 ..S... = Slice-level multithreading
 ...X.. = Codec is experimental
 ....B. = Supports draw_horiz_band
 .....D = Supports direct rendering method 1
 ------
 V....D h264                 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10
 V..... h264_nvv4l2dec       h264 (nvv4l2 decoder) (codec h264)
 V....D hevc                 HEVC (High Efficiency Video Coding)
 V..... hevc_nvv4l2dec       hevc (nvv4l2 decoder) (codec hevc)
 V....D mpeg2video           MPEG-2 video
 V..... mpeg2_nvv4l2dec      mpeg2 (nvv4l2 decoder) (codec mpeg2video)
 V....D msmpeg4v3            MPEG-4 part 2 Microsoft variant version 3
 A....D aac                  AAC (Advanced Audio Coding)
`;

/** Abridged `ffmpeg -decoders` of a stock desktop build (Debian): CUVID decoders, no Jetson ones. */
const DEBIAN_DECODERS = ` V..... = Video
 ------
 VFS..D h264                 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10
 V..... h264_cuvid           Nvidia CUVID H264 decoder (codec h264)
 VFS..D hevc                 HEVC (High Efficiency Video Coding)
 V..... hevc_v4l2m2m         V4L2 mem2mem HEVC decoder wrapper (codec hevc)
`;

test('parses ffmpeg -decoders and -hwaccels listings', () => {
  const jp = parseVideoCodecList(JETPACK_DECODERS);
  assert.ok(jp.has('h264_nvv4l2dec') && jp.has('mpeg2_nvv4l2dec') && jp.has('h264'));
  assert.ok(!jp.has('aac'), 'audio decoders are not video decoders');
  assert.ok(!jp.has('='), 'the legend is not a decoder');
  assert.deepEqual(
    [...parseHwaccelList('Hardware acceleration methods:\nvdpau\ncuda\nvaapi\n\n')],
    ['vdpau', 'cuda', 'vaapi'],
  );
  assert.deepEqual([...parseHwaccelList('Hardware acceleration methods:\n\n')], []);
});

test('jetson and nvidia profiles try TensorRT, then CUDA, then CPU', () => {
  assert.deepEqual([...PROFILE_NAMES], ['jetson', 'nvidia']);
  for (const name of PROFILE_NAMES) {
    const p = parseProfile(name);
    assert.equal(p, PROFILES[name]);
    assert.deepEqual([...p.providers], ['tensorrt', 'cuda', 'cpu']);
    assert.ok(p.notes.some((n) => /only deviceId/.test(n) && /--precision fp16/.test(n)));
  }
  assert.equal(parseProfile(' Jetson '), PROFILES.jetson);
  assert.ok(PROFILES.jetson.notes.some((n) => /CPU-only on linux-arm64/.test(n)));
  assert.ok(Object.isFrozen(PROFILES) && Object.isFrozen(PROFILES.jetson.providers));
});

test('rejects an unknown profile with ConfigError naming the valid ones', () => {
  assert.throws(() => parseProfile('jetsn'), {
    name: 'ConfigError',
    code: 'ERR_CONFIG_INVALID',
    message: /unknown profile 'jetsn' \(did you mean 'jetson'\?\); valid profiles: jetson, nvidia/,
  });
  assert.throws(() => parseProfile(''), { name: 'ConfigError', message: /valid profiles/ });
});

test('session hints keep cores for ffmpeg and the main thread, spinning off', () => {
  assert.deepEqual(sessionHints(PROFILES.jetson, 6), { intraOpThreads: 4, allowSpinning: false });
  assert.deepEqual(sessionHints(PROFILES.jetson, 12, 2), { intraOpThreads: 5, allowSpinning: false });
  assert.equal(sessionHints(PROFILES.jetson, 2).intraOpThreads, 1, 'never below one thread');
  assert.throws(() => sessionHints(PROFILES.jetson, 0), { name: 'RangeError', message: /'cores'/ });
  assert.throws(() => sessionHints(PROFILES.jetson, 4, 0), { name: 'RangeError', message: /'workers'/ });
});

test('jetson: nvv4l2 decoder for the codec when ffmpeg lists it', () => {
  const decoders = parseVideoCodecList(JETPACK_DECODERS);
  const plan = (codec: string) => decodeArgsFor(PROFILES.jetson, { decoders, codec, source: 'file' });
  assert.deepEqual(plan('h264'), {
    hardware: true,
    decoder: 'h264_nvv4l2dec',
    args: ['-c:v', 'h264_nvv4l2dec'],
  });
  assert.deepEqual(plan('hevc').args, ['-c:v', 'hevc_nvv4l2dec']);
  assert.deepEqual(plan('mpeg2video').args, ['-c:v', 'mpeg2_nvv4l2dec'], 'ffprobe name -> decoder prefix');
  assert.deepEqual(
    decodeArgsFor(PROFILES.jetson, { decoders: ['h264', 'h264_nvv4l2dec'], codec: 'h264', source: 'url' })
      .args,
    ['-c:v', 'h264_nvv4l2dec'],
    'RTSP cameras are the main case',
  );
  // jetson-ffmpeg (nvmpi) is taken when the nvv4l2 decoder is missing, never before it.
  assert.deepEqual(
    decodeArgsFor(PROFILES.jetson, { decoders: ['h264_nvmpi'], codec: 'h264', source: 'file' }).args,
    ['-c:v', 'h264_nvmpi'],
  );
  assert.deepEqual(
    decodeArgsFor(PROFILES.jetson, {
      decoders: ['h264_nvmpi', 'h264_nvv4l2dec'],
      codec: 'h264',
      source: 'file',
    }).args,
    ['-c:v', 'h264_nvv4l2dec'],
  );
});

test('jetson: software decode with a reason when the nv decoders are missing or do not fit', () => {
  const noNv = decodeArgsFor(PROFILES.jetson, {
    decoders: parseVideoCodecList(DEBIAN_DECODERS),
    codec: 'h264',
    source: 'file',
  });
  assert.equal(noNv.hardware, false);
  assert.deepEqual(noNv.args, []);
  assert.match(noNv.reason!, /no Jetson hardware decoders .*nvv4l2dec.*docs\/jetson\.md/);

  const jp = parseVideoCodecList(JETPACK_DECODERS);
  const other = decodeArgsFor(PROFILES.jetson, { decoders: jp, codec: 'msmpeg4v3', source: 'file' });
  assert.equal(other.hardware, false);
  assert.match(
    other.reason!,
    /no Jetson hardware decoder for 'msmpeg4v3' \(it has: h264_nvv4l2dec, hevc_nvv4l2dec, mpeg2_nvv4l2dec\)/,
  );
  assert.match(decodeArgsFor(PROFILES.jetson, { decoders: jp, source: 'file' }).reason!, /codec is unknown/);
  for (const source of ['device', 'folder', 'stdin'] as const) {
    const p = decodeArgsFor(PROFILES.jetson, { decoders: jp, codec: 'h264', source });
    assert.equal(p.hardware, false, source);
    assert.match(p.reason!, /decoded in software/);
  }
});

test('nvidia: -hwaccel cuda (with the device) when ffmpeg has the cuda hwaccel, else software', () => {
  const decoders = parseVideoCodecList(DEBIAN_DECODERS);
  assert.deepEqual(
    decodeArgsFor(PROFILES.nvidia, { decoders, hwaccels: ['vaapi', 'cuda'], codec: 'h264', source: 'file' }),
    { hardware: true, decoder: 'cuda (-hwaccel)', args: ['-hwaccel', 'cuda'] },
  );
  assert.deepEqual(
    decodeArgsFor(PROFILES.nvidia, { decoders, hwaccels: ['cuda'], source: 'url', deviceId: 1 }).args,
    ['-hwaccel', 'cuda', '-hwaccel_device', '1'],
  );
  const none = decodeArgsFor(PROFILES.nvidia, { decoders, hwaccels: ['vaapi'], source: 'file' });
  assert.equal(none.hardware, false);
  assert.match(none.reason!, /no cuda hwaccel \(ffmpeg -hwaccels lists: vaapi\)/);
});

test('precision advice only for an fp32 model on TensorRT', () => {
  assert.match(precisionAdvice('tensorrt', 'fp32')!, /--precision fp16/);
  assert.equal(precisionAdvice('tensorrt', 'fp16'), undefined);
  assert.equal(precisionAdvice('cpu', 'fp32'), undefined);
});

test(
  'resolveDecodePlan falls back to software on this machine, with the reason, and leaves no ffmpeg',
  { skip: SKIP },
  async () => {
    const clip = makeClip(join(tmp(), 'clip.mp4'), { size: '160x120', seconds: 0.4 });
    const jet = await resolveDecodePlan(PROFILES.jetson, clip, { openTimeoutMs: 5000 });
    // A JetPack ffmpeg would pass this check; a desktop ffmpeg has no nvv4l2 decoders.
    if (jet.hardware) assert.deepEqual(jet.args, ['-c:v', 'h264_nvv4l2dec']);
    else assert.match(jet.reason!, /Jetson hardware decoder/);
    // -hwaccel cuda on a machine without a usable GPU fails on the first frame: software, and why.
    const nv = await resolveDecodePlan(PROFILES.nvidia, clip, { openTimeoutMs: 5000 });
    if (!nv.hardware) assert.match(nv.reason!, /cuda/i);
    await assert.rejects(resolveDecodePlan(PROFILES.jetson, join(tmp(), 'missing.mp4')), {
      name: 'ConfigError',
      code: 'ERR_FILE_NOT_FOUND',
    });
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

/**
 * A stand-in for JetPack's ffmpeg: a bash wrapper around this machine's ffmpeg that adds
 * h264_nvv4l2dec to `-decoders` and logs its command lines; with `works`, it decodes that name
 * with the software h264 decoder, otherwise ffmpeg rejects the unknown decoder.
 */
function fakeJetpackFfmpeg(dir: string, works: boolean): { path: string; log: string } {
  const log = join(dir, 'calls.log');
  const path = join(dir, 'ffmpeg');
  writeFileSync(
    path,
    [
      '#!/bin/bash',
      `echo "$*" >> '${log}'`,
      'for a in "$@"; do if [ "$a" = "-decoders" ]; then ffmpeg "$@"; echo " V..... h264_nvv4l2dec       h264 (nvv4l2 decoder) (codec h264)"; exit 0; fi; done',
      'args=()',
      `for a in "$@"; do ${works ? '[ "$a" = "h264_nvv4l2dec" ] && a=h264; ' : ''}args+=("$a"); done`,
      'exec ffmpeg "${args[@]}"',
      '',
    ].join('\n'),
  );
  chmodSync(path, 0o755);
  // The sibling ffprobe (findFfmpeg looks for it next to the ffmpeg it was given).
  writeFileSync(join(dir, 'ffprobe'), '#!/bin/bash\nexec ffprobe "$@"\n');
  chmodSync(join(dir, 'ffprobe'), 0o755);
  return { path, log };
}

test(
  'jetson with a JetPack-like ffmpeg: -c:v h264_nvv4l2dec reaches the decoder, or software when the trial frame fails',
  { skip: SKIP || (process.platform === 'win32' ? 'needs bash' : false) },
  async () => {
    const clipDir = tmp();
    const clip = makeClip(join(clipDir, 'clip.mp4'), { size: '160x120', seconds: 0.4 });

    const good = fakeJetpackFfmpeg(tmp(), true);
    const plan = await resolveDecodePlan(PROFILES.jetson, clip, {
      ffmpegPath: good.path,
      openTimeoutMs: 5000,
    });
    assert.deepEqual(plan, { hardware: true, decoder: 'h264_nvv4l2dec', args: ['-c:v', 'h264_nvv4l2dec'] });
    const src = await VideoSource.open(clip, {
      input: { width: 64, height: 64, resize: 'letterbox' },
      inputArgs: plan.args,
      ffmpegPath: good.path,
    });
    const r = await src.run(() => {});
    assert.equal(r.frames, 10);
    const decoderLine = readFileSync(good.log, 'utf8')
      .split('\n')
      .find((l) => l.includes('-filter_complex'));
    assert.match(
      decoderLine ?? '',
      /-c:v h264_nvv4l2dec -i \S*clip\.mp4/,
      'the decoder option goes before -i',
    );

    const bad = fakeJetpackFfmpeg(tmp(), false);
    const fallback = await resolveDecodePlan(PROFILES.jetson, clip, {
      ffmpegPath: bad.path,
      openTimeoutMs: 5000,
    });
    assert.equal(fallback.hardware, false);
    assert.deepEqual(fallback.args, []);
    assert.match(fallback.reason!, /h264_nvv4l2dec failed on the first frame: .*h264_nvv4l2dec/);
    assert.deepEqual(liveFfmpegPids(), []);
  },
);
