/**
 * `edgekd demo` as a user runs it, in a child process: the video part on a generated clip with a
 * test model, the smallest distill-export-verify round (`--quick`), the files and the summary it
 * promises; Ctrl-C mid-video (exit 130, no ffmpeg left, no half-written outputs); the hints for a
 * missing ffmpeg and for bad flags.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTestModels } from '../runtime/fixtures.js';
import { pidsWithArg, probeVideo, SKIP } from '../runtime/video/helpers.js';

/** The compiled tree this test runs from (dist/ or another outDir). */
const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo in `cwd`; `onStdout` sees the output so far (to send a signal at the right moment). */
function demo(
  cwd: string,
  args: string[],
  onStdout?: (soFar: string, child: ReturnType<typeof spawn>) => void,
  timeoutMs = 150_000,
): Promise<Run> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [join(DIST, 'bin/edgekd.js'), 'demo', ...args], {
      cwd,
      env: { ...process.env, CI: '1' },
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      onStdout?.(stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', rej);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    });
  });
}

const explain = (r: Run) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.slice(-4000)}`;

let dir = '';
let model = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgekd-demo-'));
  mkdirSync(join(dir, 'models'));
  model = writeTestModels(join(dir, 'models')).boxes;
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test(
  'runs the video part and a distil-export-verify round, writes every output it lists and exits 0',
  { skip: SKIP },
  async () => {
    const r = await demo(dir, [
      '--out',
      'demo',
      '--model',
      model,
      '--source',
      'synthetic',
      '--frames',
      '20',
      '--quick',
    ]);
    assert.equal(r.code, 0, explain(r));
    const out = join(dir, 'demo');

    // Video part: a playable annotated video and one JSON line per processed frame.
    const video = probeVideo(join(out, 'video/annotated.mp4'));
    assert.deepEqual([video.width, video.height, video.frames], [640, 480, 20]);
    const lines = readFileSync(join(out, 'video/detections.jsonl'), 'utf8').trim().split('\n');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { frame: number }).frame),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.ok(Array.isArray(JSON.parse(readFileSync(join(out, 'video/tracks.json'), 'utf8'))));
    // The generated clip is kept, complete; no temporary files are left beside the outputs.
    const clip = probeVideo(join(out, 'video/sample-clip.mp4'));
    assert.deepEqual([clip.width, clip.height, clip.frames], [640, 480, 20]);
    assert.deepEqual(readdirSync(join(out, 'video')).sort(), [
      'annotated.mp4',
      'detections.jsonl',
      'sample-clip.mp4',
      'summary.json',
      'tracks.json',
    ]);
    assert.deepEqual(
      readdirSync(out).filter((f) => f.includes('partial')),
      [],
    );
    assert.match(
      r.stdout,
      /\$ edgekd video demo\/video\/sample-clip\.mp4 --model \S+ --out demo\/video\/annotated\.mp4/,
    );
    assert.match(r.stdout, /processed 20 frames .*\n\s+[\d.]+ fps end to end/);

    // Distillation part: the commands a user would type, losses per epoch, ONNX + card, parity.
    assert.match(r.stdout, /\$ edgekd train --config demo\/distill\/kd-demo\.json/);
    assert.match(r.stderr, /epoch 1\/1 total=[\d.]+ heatmap=[\d.]+ .*rmPfi\.rm=/);
    assert.match(
      r.stdout,
      /\$ edgekd export --checkpoint demo\/distill\/student\/\w+\.safetensors --out demo\/distill\/student\.onnx/,
    );
    for (const f of ['distill/student.onnx', 'distill/student.json', 'distill/samples/detected/sample-0.jpg'])
      assert.ok(existsSync(join(out, f)), `${f} missing`);
    const card = JSON.parse(readFileSync(join(out, 'distill/student.json'), 'utf8')) as {
      parity: { ok: boolean };
    };
    assert.equal(card.parity.ok, true);
    assert.match(r.stdout, /parity, ONNX Runtime vs TensorFlow\.js .*heatmap \d\.\de-?\d+.*-> ok/);
    assert.match(
      r.stdout,
      /\$ edgekd detect demo\/distill\/samples\/sample-0\.png demo\/distill\/samples\/sample-1\.png/,
    );
    assert.match(r.stdout, /sample-0\.png: \d+ people drawn by the generator; the student reports \d+/);

    // The summary names every output, relative to where the user ran it.
    const summary = r.stdout.slice(r.stdout.indexOf('== Summary'));
    for (const p of [
      'demo/video/annotated.mp4',
      'demo/video/detections.jsonl',
      'demo/video/tracks.json',
      'demo/distill/student.onnx',
      'demo/distill/student.json',
      'demo/distill/kd-demo.json',
      'demo/summary.json',
    ])
      assert.ok(summary.includes(p), `summary does not list ${p}:\n${summary}`);
    assert.match(summary, /checkpoint\s+demo\/distill\/student\/\w+\.safetensors/);
    assert.match(summary, /What to try next:[\s\S]*edgekd serve/);
    const json = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
      video: { ok: boolean; summary: { processed: number; fps: number } };
      distill: { ok: boolean };
    };
    assert.equal(json.video.ok, true);
    assert.equal(json.video.summary.processed, 20);
    assert.ok(json.video.summary.fps > 0);
    assert.equal(json.distill.ok, true);
    assert.deepEqual(pidsWithArg(dir), [], 'no ffmpeg left');
  },
);

test(
  'Ctrl-C during the video stops ffmpeg, leaves no half-written video outputs and exits 130',
  { skip: SKIP },
  async () => {
    let sent = false;
    const r = await demo(
      dir,
      ['--out', 'stopped', '--model', model, '--source', 'synthetic', '--frames', '400', '--skip-distill'],
      (soFar, child) => {
        // The detector is up and the pipeline starting: its ffmpeg decoder and encoder are running.
        if (!sent && /model 'rt-micro'/.test(soFar)) {
          sent = true;
          setTimeout(() => child.kill('SIGINT'), 500);
        }
      },
    );
    assert.ok(sent, explain(r));
    assert.equal(r.code, 130, explain(r));
    assert.match(r.stdout, /interrupted/);
    const out = join(dir, 'stopped');
    assert.deepEqual(
      readdirSync(out).filter((f) => f !== '.edgekd-demo'),
      [],
      'no video/ and no staging folder left',
    );
    assert.deepEqual(pidsWithArg(out), [], 'no ffmpeg left');
  },
);

test('without ffmpeg the video part says how to install it and the exit code is 1', async () => {
  const r = await demo(dir, [
    '--out',
    'noffmpeg',
    '--model',
    model,
    '--skip-distill',
    '--ffmpeg',
    join(dir, 'no-such-ffmpeg'),
  ]);
  assert.equal(r.code, 1, explain(r));
  assert.match(r.stdout, /video part did not run: .*no-such-ffmpeg/);
  assert.match(r.stdout, /apt-get install ffmpeg/);
  assert.match(r.stdout, /docs\/install\.md/);
});

test('rejects bad flags, a missing --model and a foreign output folder before running anything', async () => {
  const typo = await demo(dir, ['--frame', '3']);
  assert.equal(typo.code, 2, explain(typo));
  assert.match(typo.stderr, /error\[ERR_CONFIG_UNKNOWN_KEY\]: unknown flag --frame; did you mean --frames\?/);

  const missing = await demo(dir, ['--model', 'nope.onnx']);
  assert.equal(missing.code, 2, explain(missing));
  assert.match(missing.stderr, /ERR_FILE_NOT_FOUND.*nope\.onnx/);

  mkdirSync(join(dir, 'mine'));
  writeFileSync(join(dir, 'mine', 'thesis.txt'), 'precious');
  const foreign = await demo(dir, ['--out', 'mine', '--model', model]);
  assert.equal(foreign.code, 2, explain(foreign));
  assert.match(foreign.stderr, /'mine' already holds files that edgekd demo did not write/);
  assert.equal(readFileSync(join(dir, 'mine', 'thesis.txt'), 'utf8'), 'precious');
});
