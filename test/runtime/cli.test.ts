/** `edgekd detect` and `edgekd bench` through the binary: real child processes, files on disk. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { formatBenchTable, overlaySvg, percentile } from '../../runtime/cli.js';
import { writeTestModels } from './fixtures.js';

const BIN = fileURLToPath(new URL('../../bin/edgekd.js', import.meta.url));
const run = (args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });

const dir = mkdtempSync(join(tmpdir(), 'edgekd-detect-cli-'));
const m = writeTestModels(dir);

async function writeImage(name: string, width: number, height: number): Promise<string> {
  const px = new Uint8Array(width * height * 3).map((_, i) => (i * 2654435761) >>> 24);
  const p = join(dir, name);
  await sharp(px, { raw: { width, height, channels: 3 } }).toFile(p);
  return p;
}

test('edgekd detect writes JSON lines, per-image JSON and annotated JPEGs, and a summary line', async () => {
  const a = await writeImage('street.png', 200, 100);
  const b = await writeImage('crowd.jpg', 90, 120);
  const out = join(dir, 'out');
  const r = run(['detect', a, b, '--model', m.boxes, '--out', out, '--ep', 'cuda,cpu', '--batch', '2']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => [l.image, l.width, l.height]),
    [
      [a, 200, 100],
      [b, 90, 120],
    ],
  );
  assert.ok(lines[0].detections.length > 0);
  const d0 = lines[0].detections[0];
  assert.equal(d0.class, 'person');
  assert.equal(d0.box.length, 4);
  assert.match(r.stderr, /warn: execution provider 'cuda' skipped/);
  assert.match(
    r.stderr,
    /detect: 2\/2 images, \d+ detections, model rt-micro \(boxes, fp32\) on cpu \(skipped: cuda\), batch 2: pre [\d.]+ ms, infer/,
  );
  assert.deepEqual(readdirSync(out).sort(), ['crowd.jpg', 'crowd.json', 'street.jpg', 'street.json']);
  const saved = JSON.parse(readFileSync(join(out, 'street.json'), 'utf8'));
  assert.equal(saved.provider, 'cpu');
  assert.deepEqual(saved.detections, lines[0].detections);
  const meta = await sharp(join(out, 'street.jpg')).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 200, 100]);
  // The overlay changed pixels: the annotated image differs from the source.
  const [src, ann] = await Promise.all([
    sharp(a).raw().toBuffer(),
    sharp(join(out, 'street.jpg')).raw().toBuffer(),
  ]);
  let maxDiff = 0;
  for (let i = 0; i < src.length; i++) maxDiff = Math.max(maxDiff, Math.abs(src[i] - ann[i]));
  assert.ok(maxDiff > 100, `annotation should draw boxes (max pixel diff ${maxDiff})`);
});

test('edgekd detect reports a bad image and goes on; exit 1', async () => {
  const good = await writeImage('good.png', 64, 64);
  const bad = join(dir, 'bad.jpg');
  writeFileSync(bad, 'not a jpeg');
  const r = run(['detect', bad, good, '--model', m.heads]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.jpg: error\[ERR_IMAGE_DECODE\]/);
  assert.equal(r.stdout.trim().split('\n').length, 1);
});

test('edgekd detect runs the shipped model without --model; rejects an unknown provider and flag with exit 2', async () => {
  const img = await writeImage('x.png', 32, 32);
  const a = run(['detect', img]);
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /model ped-pico \(boxes, fp32\)/);
  const b = run(['detect', img, '--model', m.boxes, '--ep', 'cuda,gpu']);
  assert.equal(b.status, 2);
  assert.match(b.stderr, /unknown execution provider 'gpu'.*valid providers: tensorrt, cuda, webgpu, cpu/);
  const c = run(['detect', img, '--model', m.boxes, '--treshold', '0.5']);
  assert.equal(c.status, 2);
  assert.match(c.stderr, /unknown flag --treshold; did you mean --threshold\?/);
  const d = run(['detect', img, '--model', m.plain]);
  assert.equal(d.status, 1);
  assert.match(d.stderr, /ERR_MODEL_FORMAT.*no edgekd\.spec metadata/);
});

test('edgekd bench prints latency percentiles and throughput per provider and batch size', () => {
  const r = run([
    'bench',
    m.boxes,
    '--batch',
    '1,2',
    '--iterations',
    '4',
    '--warmup',
    '1',
    '--ep',
    'cuda,cpu',
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(
    j.rows.map((x: { provider: string; batch: number }) => [x.provider, x.batch]),
    [
      ['cpu', 1],
      ['cpu', 2],
    ],
  );
  for (const row of j.rows) assert.ok(row.p50 > 0 && row.p99 >= row.p50 && row.fps > 0);
  assert.match(j.skipped[0], /^cuda: /);
  const t = run(['bench', m.heads, '--batch', '1', '--iterations', '2', '--warmup', '0']);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /provider\s+batch\s+p50 ms\s+p90 ms\s+p99 ms/);
  assert.match(t.stdout, /\ncpu\s+1\s+[\d.]+/);
});

test('bench helpers: nearest-rank percentiles and the table layout', () => {
  const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.deepEqual([percentile(v, 50), percentile(v, 90), percentile(v, 99)], [5, 9, 10]);
  assert.ok(Number.isNaN(percentile([], 50)));
  const table = formatBenchTable([
    {
      provider: 'cpu',
      batch: 8,
      iterations: 1,
      p50: 1,
      p90: 2,
      p99: 3,
      inferP50: 0.5,
      overheadP50: 0.25,
      fps: 1000,
    },
  ]);
  assert.equal(table.split('\n').length, 3);
  assert.match(table, /cpu\s+8\s+1\.00\s+2\.00\s+3\.00\s+0\.50\s+0\.25\s+1000\.0/);
});

test('the overlay SVG escapes class names and has the image size', () => {
  const svg = overlaySvg(20, 10, [{ box: [1, 2, 5, 8], score: 0.5, classId: 0 }], ['a<b>&"c']);
  assert.match(svg, /^<svg [^>]*width="20" height="10"/);
  assert.match(svg, /a&lt;b&gt;&amp;&quot;c 0\.50/);
});
