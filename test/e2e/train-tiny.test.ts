/**
 * End to end through the real stack: synthetic data -> loader -> replica workers (wasm) ->
 * optimiser -> eval -> atomic checkpoints -> resume -> interrupt.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../models/core/config.js';
import { microSpec } from '../helpers/specs.js';
import { loadCheckpoint } from '../../models/core/checkpoint.js';
import type { ProgressEvent } from '../../models/core/events.js';
import { TrainConfigSchema, type TrainConfigInput } from '../../train/config.js';
import { runTraining } from '../../train/trainer/loop.js';

const spec = microSpec('e2e');

function config(
  out: string,
  over: Partial<TrainConfigInput['train']> = {},
  extra: Partial<TrainConfigInput> = {},
) {
  return validateConfig(TrainConfigSchema, rawConfig(out, over, extra));
}

function rawConfig(
  out: string,
  over: Partial<TrainConfigInput['train']> = {},
  extra: Partial<TrainConfigInput> = {},
): TrainConfigInput {
  return {
    name: 'run',
    out,
    model: spec,
    backend: 'wasm',
    workers: 2,
    data: {
      train: { kind: 'synthetic', count: 16, seed: 3 },
      val: { kind: 'synthetic', count: 8, seed: 99 },
    },
    train: { epochs: 2, batchSize: 8, microBatch: 4, warmupEpochs: 0.5, ...over },
    eval: { every: 1 },
    ...extra,
  };
}

test('trains, evaluates each epoch, writes metrics and an atomic checkpoint, and resumes', async () => {
  const out = mkdtempSync(join(tmpdir(), 'edgekd-e2e-'));
  const events: ProgressEvent[] = [];
  const r = await runTraining(config(out), { onEvent: (e) => events.push(e) });
  assert.equal(r.backend, 'wasm');
  assert.equal(r.epochsCompleted, 2);
  assert.equal(r.interrupted, false);
  const batches = events.filter((e) => e.kind === 'batch-end');
  assert.equal(batches.length, 4, '16 images / batch 8 = 2 steps per epoch');
  for (const b of batches)
    if (b.kind === 'batch-end')
      for (const k of ['total', 'heatmap', 'size', 'offset']) assert.ok(Number.isFinite(b.losses[k]), k);
  assert.ok(r.metrics && 'AP50' in r.metrics && 'MR2' in r.metrics);
  const lines = readFileSync(join(out, 'run', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[1].epoch, 2);
  assert.ok(lines[1].eval.AP50 >= 0);
  assert.deepEqual(
    readdirSync(join(out, 'run')).filter((f) => f.includes('.tmp')),
    [],
  );
  const ck = loadCheckpoint(r.checkpoint);
  assert.equal(ck.state?.epoch, 2);
  assert.equal(ck.state?.globalStep, 4);
  assert.ok(ck.ema.size > 0);

  // Resume for one more epoch: starts at epoch 3 with the optimiser step carried over.
  const events2: ProgressEvent[] = [];
  const r2 = await runTraining(config(out, { epochs: 3 }, { resume: r.checkpoint }), {
    onEvent: (e) => events2.push(e),
  });
  assert.equal(r2.epochsCompleted, 3);
  const first = events2.find((e) => e.kind === 'epoch-start');
  assert.equal(first?.kind === 'epoch-start' && first.epoch, 3);
  const ck2 = loadCheckpoint(r2.checkpoint);
  assert.equal(ck2.state?.globalStep, 6);
  assert.equal(ck2.state?.optimizerStep, 6);
});

test('an abort saves an interrupt checkpoint after the current step', async () => {
  const out = mkdtempSync(join(tmpdir(), 'edgekd-e2e-'));
  const ac = new AbortController();
  const r = await runTraining(config(out, { epochs: 5 }), {
    signal: ac.signal,
    onEvent: (e) => {
      if (e.kind === 'batch-end' && e.globalStep === 3) ac.abort();
    },
  });
  assert.equal(r.interrupted, true);
  assert.equal(r.epochsCompleted, 1);
  assert.ok(existsSync(r.checkpoint));
  const ck = loadCheckpoint(r.checkpoint);
  assert.equal(ck.state?.globalStep, 3);
  assert.equal(ck.state?.epoch, 1, 'resume restarts the interrupted epoch');
});

test('rejects resuming a checkpoint of a different model spec', async () => {
  const out = mkdtempSync(join(tmpdir(), 'edgekd-e2e-'));
  const r = await runTraining(
    config(out, { epochs: 1 }, { data: { train: { kind: 'synthetic', count: 8, seed: 1 } } }),
  );
  const other = { ...spec, neck: { channels: 16 } };
  await assert.rejects(
    runTraining(validateConfig(TrainConfigSchema, { ...rawConfig(out), model: other, resume: r.checkpoint })),
    {
      name: 'ConfigError',
      message: /different model spec/,
    },
  );
});

test('the same seed gives bit-identical weights (data-parallel sums in a fixed order)', async () => {
  const a = await runTraining(
    config(
      mkdtempSync(join(tmpdir(), 'edgekd-e2e-')),
      { epochs: 1 },
      { data: { train: { kind: 'synthetic', count: 16, seed: 5 } } },
    ),
  );
  const b = await runTraining(
    config(
      mkdtempSync(join(tmpdir(), 'edgekd-e2e-')),
      { epochs: 1 },
      { data: { train: { kind: 'synthetic', count: 16, seed: 5 } } },
    ),
  );
  const wa = loadCheckpoint(a.checkpoint).params;
  const wb = loadCheckpoint(b.checkpoint).params;
  for (const [k, t] of wa) assert.deepEqual(t.data, wb.get(k)!.data, k);
});
