/**
 * `npm run bench`: runs the bench/ scripts one after the other on the shipped student and writes
 * docs/benchmarks.md — the machine, the date, and each script's own tables, as printed. Every
 * ratio in the report comes from one script measuring both sides in the same run (the scripts
 * are written that way); nothing here recomputes or edits their figures.
 *
 *   npm run bench -- [--only train,export,export-zoo,video,models,server] [--out docs/benchmarks.md]
 *     [--spec train/configs/ped-pico.spec.json] [--quick]
 *
 * `--quick` passes smaller run counts to every script (a smoke run of the report, not figures to
 * publish). A script that fails is reported with its exit code and the tail of its stderr; the
 * others still run, and the command exits 1.
 */
import { spawn } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem, release, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    out: { type: 'string', default: 'docs/benchmarks.md' },
    spec: { type: 'string', default: 'train/configs/ped-pico.spec.json' },
    quick: { type: 'boolean', default: false },
  },
});

interface Bench {
  key: string;
  title: string;
  script: string;
  args: string[];
  quickArgs: string[];
  what: string;
}

const spec = args.spec;
const BENCHES: Bench[] = [
  {
    key: 'train',
    title: 'Training throughput per backend',
    script: 'train-step.js',
    args: ['--spec', spec, '--steps', '3', '--warmup', '1'],
    quickArgs: ['--spec', spec, '--steps', '1', '--warmup', '0', '--skip-cpu'],
    what: 'images/s of one full data-parallel training step (forward, losses, backward, AdamW) on tfjs wasm with 2 replicas, wasm with 1, and the tfjs cpu backend.',
  },
  {
    key: 'export',
    title: 'Export: latency per precision (onnxruntime-node CPU provider)',
    script: 'export.js',
    args: [],
    quickArgs: ['--runs', '3', '--warmup', '1', '--calib', '4'],
    what: 'median latency at batch 1 and 8 of the default training student (ped-nano, `train/configs/default.json`) exported as FP32, INT8 (QDQ) and FP16, and the INT8/FP32 ratio.',
  },
  {
    key: 'export-zoo',
    title: 'Export: latency per precision of the shipped student',
    script: 'export.js',
    args: ['--spec', spec],
    quickArgs: ['--spec', spec, '--runs', '3', '--warmup', '1', '--calib', '4'],
    what: 'the same for the shipped student (random weights: latency does not depend on them).',
  },
  {
    key: 'video',
    title: 'Video: decode-only, inference-only and end-to-end fps',
    script: 'video.js',
    args: ['--spec', spec],
    quickArgs: ['--spec', spec, '--frames', '40'],
    what: 'the video pipeline on vtest.avi (when installed) and a 1080p clip: each stage alone and the whole pipeline, in one run.',
  },
  {
    key: 'models',
    title: 'Teacher vs shipped student: speed per image',
    script: 'teacher-student.js',
    args: ['--images', '30'],
    quickArgs: ['--images', '5', '--warmup', '1'],
    what: 'the CenterNet teacher (tfjs) and the shipped student (ONNX Runtime CPU) on the same vtest.avi frames, decode and letterbox included.',
  },
  {
    key: 'server',
    title: 'HTTP server: throughput and latency vs raw session.run',
    script: 'server.js',
    args: ['--spec', spec],
    quickArgs: ['--spec', spec, '--quick'],
    what: 'autocannon on loopback against `edgekd serve` at concurrency 1, 8, 32, micro-batching on and off, next to the raw session.run throughput of the same model.',
  },
];

const here = dirname(fileURLToPath(import.meta.url));
const selected = args.only ? new Set(args.only.split(',').map((s) => s.trim())) : null;
if (selected) {
  const unknown = [...selected].filter((k) => !BENCHES.some((b) => b.key === k));
  if (unknown.length) {
    console.error(
      `error: unknown bench '${unknown.join(', ')}' (have: ${BENCHES.map((b) => b.key).join(', ')})`,
    );
    process.exit(2);
  }
}

interface Outcome {
  bench: Bench;
  code: number;
  stdout: string;
  stderrTail: string;
  seconds: number;
}

function runBench(b: Bench): Promise<Outcome> {
  const argv = [join(here, b.script), ...(args.quick ? b.quickArgs : b.args)];
  console.log(`\n== ${b.title}: node ${argv.map((a) => a.replace(process.cwd() + '/', '')).join(' ')}`);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      process.stdout.write(c);
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      process.stderr.write(c);
      stderr = (stderr + c.toString()).slice(-4000);
    });
    child.on('close', (code, signal) =>
      resolve({
        bench: b,
        code: code ?? (signal ? 128 : 1),
        stdout,
        stderrTail: stderr.split('\n').slice(-15).join('\n'),
        seconds: (performance.now() - t0) / 1000,
      }),
    );
  });
}

// Ctrl-C reaches the running script through the process group; we only stop starting new ones.
let interrupted = false;
process.on('SIGINT', () => {
  interrupted = true;
});

const started = new Date();
const load0 = loadavg();
const outcomes: Outcome[] = [];
for (const b of BENCHES) {
  if (selected && !selected.has(b.key)) continue;
  if (interrupted) break;
  outcomes.push(await runBench(b));
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
const lines = [
  '# Benchmarks',
  '',
  `Produced by \`npm run bench${args.quick ? ' -- --quick' : ''}\` on ${started.toISOString().slice(0, 10)}` +
    ` (${started.toISOString()}). Regenerate with the same command; each section is the`,
  'output of one bench/ script, and every ratio in it was measured side by side in that one run.',
  args.quick ? '\n**Quick run: reduced run counts, a smoke test of the report, not figures to quote.**' : '',
  '',
  '## Machine',
  '',
  `- CPU: ${cpu}, ${availableParallelism()} cores available to Node`,
  `- Memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB; OS: ${platform()} ${release()}; Node ${process.version}`,
  `- Load average when the run started: ${load0.map((l) => l.toFixed(2)).join(' / ')} (1 / 5 / 15 min) —` +
    ' other jobs on the host compete for the same cores; compare ratios, not absolute figures.',
  `- Model: \`${spec}\``,
  '',
];
for (const o of outcomes) {
  lines.push(
    `## ${o.bench.title}`,
    '',
    `${o.bench.what} (\`node dist/bench/${o.bench.script}\`, ${o.seconds.toFixed(0)} s)`,
    '',
  );
  if (o.code !== 0)
    lines.push(`**Failed with exit code ${o.code}.** Last stderr lines:`, '', '```', o.stderrTail, '```', '');
  lines.push('```', o.stdout.trim(), '```', '');
}
const tmp = join(dirname(args.out), `.${Date.now()}.benchmarks.md.tmp`);
writeFileSync(tmp, lines.filter((l, i, a) => !(l === '' && a[i - 1] === '')).join('\n'));
renameSync(tmp, args.out);
const failed = outcomes.filter((o) => o.code !== 0);
console.log(
  `\nwrote ${args.out} (${outcomes.length} benchmarks${failed.length ? `, ${failed.length} failed` : ''})`,
);
process.exit(failed.length || interrupted ? 1 : 0);
