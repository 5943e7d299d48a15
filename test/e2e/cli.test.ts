/**
 * The `edgekd` binary as a user runs it: real child processes, exit codes, files on disk,
 * Ctrl-C during training.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { microSpec } from '../helpers/specs.js';
import sharp from 'sharp';
import { loadCheckpoint } from '../../models/core/checkpoint.js';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const BIN = join(ROOT, 'dist/bin/edgekd.js');
const run = (args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });

const spec = microSpec('cli');

function writeConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'train.json');
  writeFileSync(
    file,
    JSON.stringify({
      name: 'r',
      out: dir,
      model: spec,
      backend: 'wasm',
      workers: 1,
      data: {
        train: { kind: 'synthetic', count: 8, seed: 1 },
        val: { kind: 'synthetic', count: 4, seed: 2 },
      },
      train: { epochs: 1, batchSize: 4, microBatch: 4 },
      ...extra,
    }),
  );
  return file;
}

test('model info prints params, MACs and taps of a spec', () => {
  const r = run(['model', 'info', '--spec', 'train/configs/ped-nano.spec.json']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /params\s+717,749/);
  assert.match(r.stdout, /MACs\s+0\.537 G/);
  assert.match(r.stdout, /P2 80x80x64/);
});

test('train then eval through the binary; metrics JSON on stdout', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-cli-'));
  const t = run(['train', '--config', writeConfig(dir)]);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stderr, /backend wasm/);
  const summary = JSON.parse(t.stdout.trim().split('\n').pop()!);
  assert.ok('AP50' in summary.metrics);
  const e = run([
    'eval',
    '--checkpoint',
    join(dir, 'r', 'last.safetensors'),
    '--data',
    'synthetic:4:2',
    '--workers',
    '1',
    '--json',
  ]);
  assert.equal(e.status, 0, e.stderr);
  const ev = JSON.parse(e.stdout);
  assert.equal(ev.images, 4);
  // Same weights, same images, same settings as the trainer's final eval.
  assert.equal(ev.metrics.AP50, summary.metrics.AP50);
});

test('data synth writes a COCO set that reads back', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'edgekd-cli-')), 'synth');
  const r = run(['data', 'synth', '--out', dir, '--count', '3', '--width', '96', '--height', '64']);
  assert.equal(r.status, 0, r.stderr);
  const coco = JSON.parse(readFileSync(join(dir, 'annotations.json'), 'utf8'));
  assert.equal(coco.images.length, 3);
  assert.equal(coco.images[0].width, 96);
  assert.ok(coco.annotations.length > 0);
  assert.equal(readdirSync(join(dir, 'images')).length, 3);
});

test('rejects bad flags and configs with exit code 2 and the field named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-cli-'));
  const a = run(['train', '--config', writeConfig(dir), '--train.epochz', '3']);
  assert.equal(a.status, 2);
  assert.match(a.stderr, /error\[ERR_CONFIG_UNKNOWN_KEY\].*did you mean --train\.epochs/);
  const b = run(['train', '--config', writeConfig(dir, { train: { epochs: -1 } })]);
  assert.equal(b.status, 2);
  assert.match(b.stderr, /train\.epochs/);
  const c = run(['eval', '--checkpoint', join(dir, 'missing.safetensors'), '--data', 'synthetic:2']);
  assert.equal(c.status, 2);
  assert.match(c.stderr, /ERR_FILE_NOT_FOUND.*missing\.safetensors/);
  const d = run(['frobnicate']);
  assert.equal(d.status, 2);
});

test('Ctrl-C during training saves a checkpoint and the process exits with 130', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-cli-'));
  const cfg = writeConfig(dir, {
    data: { train: { kind: 'synthetic', count: 400, seed: 1 } },
    train: { epochs: 50, batchSize: 4, microBatch: 4 },
  });
  const child = spawn(process.execPath, [BIN, 'train', '--config', cfg], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no training output: ${stderr}`)), 60_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/backend wasm/.test(stderr)) {
        clearTimeout(timer);
        // Give it a few steps, then interrupt as a terminal would.
        setTimeout(() => {
          child.kill('SIGINT');
          res();
        }, 1500);
      }
    });
  });
  const code = await exited;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /checkpoint \(interrupt\)/);
  const ck = join(dir, 'r', 'last.safetensors');
  assert.ok(existsSync(ck));
  assert.ok((loadCheckpoint(ck).state?.globalStep ?? 0) >= 1);
  assert.deepEqual(
    readdirSync(join(dir, 'r')).filter((f) => f.includes('.tmp')),
    [],
  );
});

const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0;

test(
  'data frames writes the requested frames of a video as JPEGs, atomically',
  { skip: hasFfmpeg ? false : 'ffmpeg not installed' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgekd-cli-'));
    const clip = join(dir, 'clip.mp4');
    const mk = spawnSync('ffmpeg', [
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=96x64:rate=10',
      '-frames:v',
      '30',
      '-pix_fmt',
      'yuv420p',
      clip,
    ]);
    assert.equal(mk.status, 0, String(mk.stderr));
    const r = run([
      'data',
      'frames',
      '--video',
      clip,
      '--out',
      join(dir, 'frames'),
      '--start',
      '5',
      '--count',
      '4',
      '--step',
      '5',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(join(dir, 'frames')), [
      'frame_000005.jpg',
      'frame_000010.jpg',
      'frame_000015.jpg',
      'frame_000020.jpg',
    ]);
    const meta = await sharp(join(dir, 'frames', 'frame_000010.jpg')).metadata();
    assert.deepEqual([meta.width, meta.height], [96, 64]);
    const again = run(['data', 'frames', '--video', clip, '--out', join(dir, 'frames')]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /exists/);
    const bad = run(['data', 'frames', '--video', join(dir, 'missing.mp4'), '--out', join(dir, 'f2')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /ERR_PIPELINE/);
    assert.deepEqual(readdirSync(dir).sort(), ['clip.mp4', 'frames']);
  },
);
