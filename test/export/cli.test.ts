/** `edgekd export` as a user runs it: a child process, exit codes, files on disk. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { tinySpec, writeRandomCheckpoint } from './export-fixture.js';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const BIN = join(ROOT, 'dist/bin/edgekd.js');
const run = (args: string[]) =>
  spawnSync(process.execPath, [BIN, 'export', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });

test('edgekd export writes model + card, prints the result line and a JSON summary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-export-cli-'));
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), tinySpec());
  const out = join(dir, 'tiny.onnx');
  const r = run(['--checkpoint', join(dir, 'ck.safetensors'), '--out', out, '--outputs', 'heads']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /export onnx ok \d+\.\ds tiny\.onnx \(\d+\.\d MB\)/);
  assert.match(r.stderr, /parity \(fp32, ort cpu vs tfjs cpu\): max abs diff heatmap/);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    model: string;
    outputs: string;
    parity: unknown;
  };
  assert.equal(summary.model, out);
  assert.equal(summary.outputs, 'heads');
  assert.ok(summary.parity);
  assert.ok(existsSync(join(dir, 'tiny.json')));
  const card = JSON.parse(readFileSync(join(dir, 'tiny.json'), 'utf8')) as { outputs: string };
  assert.equal(card.outputs, 'heads');

  const nv = run(['--checkpoint', join(dir, 'ck.safetensors'), '--out', join(dir, 'b.onnx'), '--no-verify']);
  assert.equal(nv.status, 0, nv.stderr);
  assert.equal((JSON.parse(nv.stdout.trim()) as { parity: unknown }).parity, null);
});

test('edgekd export: bad flags exit 2, a bad checkpoint exits 1 with its code, nothing written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-export-cli-'));
  const noOut = run(['--checkpoint', 'x.safetensors']);
  assert.equal(noOut.status, 2);
  assert.match(noOut.stderr, /error\[ERR_CONFIG_INVALID\].*out/);
  const typo = run(['--checkpoint', 'x', '--out', 'y', '--output', 'heads']);
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /did you mean --outputs/);
  const missing = run(['--checkpoint', join(dir, 'none.safetensors'), '--out', join(dir, 'm.onnx')]);
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /error\[ERR_FILE_NOT_FOUND\]/);
  assert.deepEqual(readdirSync(dir), []);
  const help = run(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--outputs VALUE/);
  assert.match(help.stdout, /--no-verify/);
});

test('edgekd export --input-size: the same weights at another resolution, parity checked, both sizes on the card', async () => {
  const ort = await import('onnxruntime-node');
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-export-cli-'));
  const spec = tinySpec();
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), spec);
  const out = join(dir, 'small.onnx');
  const w = spec.input.width + 32;
  const r = run([
    '--checkpoint',
    join(dir, 'ck.safetensors'),
    '--out',
    out,
    '--input-size',
    `${w}x${spec.input.height}`,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /parity \(fp32, ort cpu vs tfjs cpu\)/);
  const card = JSON.parse(readFileSync(join(dir, 'small.json'), 'utf8')) as {
    spec: { input: { width: number; height: number } };
    trainedInput: { width: number; height: number };
  };
  assert.deepEqual([card.spec.input.width, card.spec.input.height], [w, spec.input.height]);
  assert.deepEqual(card.trainedInput, { width: spec.input.width, height: spec.input.height });
  const session = await ort.InferenceSession.create(out);
  const input = new ort.Tensor('float32', new Float32Array(3 * w * spec.input.height), [
    1,
    3,
    spec.input.height,
    w,
  ]);
  const res = await session.run({ [session.inputNames[0]]: input });
  assert.ok(Object.keys(res).length > 0);
  await session.release();

  const bad = run([
    '--checkpoint',
    join(dir, 'ck.safetensors'),
    '--out',
    join(dir, 'bad.onnx'),
    '--input-size',
    '250',
  ]);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--input-size 250: .*multiple of 32/);
  assert.ok(!existsSync(join(dir, 'bad.onnx')));
});

test('edgekd export --precision int8 --calibration COCO.json calibrates on the images the file lists', async () => {
  const { default: sharp } = await import('sharp');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-export-cli-'));
  writeRandomCheckpoint(join(dir, 'ck.safetensors'), tinySpec());
  mkdirSync(join(dir, 'images'));
  for (const [i, c] of [40, 200].entries())
    await sharp({ create: { width: 48, height: 40, channels: 3, background: { r: c, g: 90, b: 255 - c } } })
      .png()
      .toFile(join(dir, 'images', `f${i}.png`));
  const coco = (files: string[]) =>
    JSON.stringify({
      images: files.map((f, i) => ({ id: i, file_name: f, width: 48, height: 40 })),
      annotations: [],
    });
  writeFileSync(join(dir, 'labels.json'), coco(['f0.png', 'f1.png']));
  const ok = run([
    '--checkpoint',
    join(dir, 'ck.safetensors'),
    '--out',
    join(dir, 'q.onnx'),
    '--precision',
    'int8',
    '--calibration',
    join(dir, 'labels.json'),
    '--no-verify',
  ]);
  assert.equal(ok.status, 0, ok.stderr);
  const card = JSON.parse(readFileSync(join(dir, 'q.json'), 'utf8')) as {
    quantization: { calibration: string };
  };
  assert.match(card.quantization.calibration, /labels\.json/);

  writeFileSync(join(dir, 'broken.json'), coco(['f0.png', 'missing.png']));
  const bad = run([
    '--checkpoint',
    join(dir, 'ck.safetensors'),
    '--out',
    join(dir, 'b.onnx'),
    '--precision',
    'int8',
    '--calibration',
    join(dir, 'broken.json'),
    '--no-verify',
  ]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /missing\.png/);
  assert.ok(!existsSync(join(dir, 'b.onnx')), 'no half-written model');
});
