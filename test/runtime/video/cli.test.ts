/**
 * `edgekd video` as a user runs it: the built bin in a child process, a model written by the
 * exporter, clips made by ffmpeg. Covers outputs, stdin / stdout, bad input, and SIGINT leaving
 * no ffmpeg behind.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createReadStream, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitSource } from '../../../runtime/video-cli.js';
import { writeTestModels } from '../fixtures.js';
import { delay, makeClip, pidsWithArg, probeVideo, SKIP, tmp } from './helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/edgekd.js', import.meta.url));
const dir = SKIP ? '' : tmp('edgekd-video-cli-');
after(() => dir && rmSync(dir, { recursive: true, force: true }));
const model = SKIP ? '' : writeTestModels(dir).boxes;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function edgekd(
  args: string[],
  opts: { stdinFile?: string; onStart?: (kill: (s: NodeJS.Signals) => void) => void } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: [opts.stdinFile ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, EDGEKD_LOG_LEVEL: 'warn' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.stdinFile) createReadStream(opts.stdinFile).pipe(child.stdin!);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      // Wait for the pipes to drain.
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
    opts.onStart?.((s) => child.kill(s));
  });
}

test('splits the positional SOURCE from the flags', () => {
  assert.deepEqual(splitSource(['clip.mp4', '--model', 'm.onnx']), {
    source: 'clip.mp4',
    rest: ['--model', 'm.onnx'],
  });
  assert.deepEqual(splitSource(['--model', 'm.onnx', '--live', '-', '--batch', '4']), {
    source: '-',
    rest: ['--model', 'm.onnx', '--live', '--batch', '4'],
  });
  assert.deepEqual(splitSource(['--count-line', '-5,0,5,10', 'rtsp://cam/1']).source, 'rtsp://cam/1');
  assert.deepEqual(splitSource(['--live', 'false', 'x.mp4']).source, 'x.mp4');
  assert.equal(splitSource(['--model', 'm.onnx']).source, undefined);
});

test('edgekd video writes JSONL, the annotated video and a JSON summary', { skip: SKIP }, async () => {
  const clip = makeClip(join(dir, 'clip.mp4'), { seconds: 1 });
  const jsonl = join(dir, 'out.jsonl');
  const out = join(dir, 'out.mp4');
  const r = await edgekd([
    'video',
    clip,
    '--model',
    model,
    '--jsonl',
    jsonl,
    '--out',
    out,
    '--count-line',
    '160,0,160,240',
    '--batch',
    '2',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as {
    frames: number;
    processed: number;
    dropped: number;
    counts: unknown;
  };
  assert.equal(summary.frames, 25);
  assert.equal(summary.processed, 25);
  assert.equal(summary.dropped, 0);
  assert.deepEqual(summary.counts, { in: 0, out: 0 });
  const lines = readFileSync(jsonl, 'utf8').trim().split('\n');
  assert.equal(lines.length, 25);
  assert.ok(lines.every((l) => 'counts' in (JSON.parse(l) as object)));
  assert.deepEqual(probeVideo(out), { width: 320, height: 240, frames: 25, codec: 'h264' });
  assert.match(r.stderr, /video: .*clip\.mp4 -> model 'rt-micro' on cpu/);
  assert.match(r.stderr, /frame \d+ \| [\d.]+ fps/, 'a progress line');
  assert.deepEqual(pidsWithArg(clip), []);
});

test(
  'edgekd video - reads stdin and writes JSONL to stdout (summary to stderr)',
  { skip: SKIP },
  async () => {
    const ts = makeClip(join(dir, 'stdin.ts'), {
      seconds: 1,
      codec: ['-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'mpegts'],
    });
    const r = await edgekd(['video', '-', '--model', model, '--jsonl', '-', '--no-track'], { stdinFile: ts });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 25);
    const first = JSON.parse(lines[0]) as { frame: number; trackIds: unknown[] };
    assert.equal(first.frame, 0);
    assert.ok(
      first.trackIds.every((v) => v === null),
      '--no-track',
    );
    assert.match(r.stderr, /"processed":25/);
  },
);

test(
  'bad input: a missing source or an unknown flag exits 2 at once with a clear message',
  { skip: SKIP },
  async () => {
    const t0 = Date.now();
    const missing = await edgekd(['video', join(dir, 'nope.mp4'), '--model', model]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /error\[ERR_FILE_NOT_FOUND\]: video source not found: '.*nope\.mp4'/);
    const typo = await edgekd(['video', join(dir, 'clip.mp4'), '--model', model, '--jsnol', 'x']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown flag --jsnol; did you mean --jsonl\?/);
    const line = await edgekd(['video', join(dir, 'clip.mp4'), '--model', model, '--count-line', '1,2,3']);
    assert.equal(line.code, 2);
    assert.match(line.stderr, /--count-line/);
    assert.ok(Date.now() - t0 < 12_000);
  },
);

test('SIGINT stops edgekd video cleanly: exit 130, no ffmpeg left', { skip: SKIP }, async () => {
  const clip = makeClip(join(dir, 'long.mp4'), { seconds: 20 });
  const out = join(dir, 'sigint.mp4');
  let sent = 0;
  const r = await edgekd(['video', clip, '--model', model, '--live', '--out', out], {
    onStart: (kill) => {
      void (async () => {
        // Wait until ffmpeg is running, then interrupt.
        for (let i = 0; i < 100 && pidsWithArg(clip).length === 0; i++) await delay(50);
        await delay(700);
        sent = pidsWithArg(clip).length;
        kill('SIGINT');
      })();
    },
  });
  assert.ok(sent >= 1, 'ffmpeg was running when the signal came');
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: stopping/);
  assert.match(r.stderr, /error\[ERR_INTERRUPTED\]/);
  assert.deepEqual(pidsWithArg(clip), []);
  assert.deepEqual(pidsWithArg(out), [], 'the encoder finished too');
  assert.ok(probeVideo(out).frames > 0, 'the annotated video was finalised');
});
