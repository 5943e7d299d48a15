/**
 * Distillation end to end through the real trainer: an edgekd teacher checkpoint, every method
 * at once in wasm replica workers, the teacher-output cache, checkpoints that keep the KD-only
 * parameters apart from the student's, and the recipe-level guarantees of the method spec.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../models/core/config.js';
import { buildGraph, graphCost, initialWeights } from '../../models/arch/graph.js';
import { loadCheckpoint, saveCheckpoint } from '../../models/core/checkpoint.js';
import { parseModelSpec } from '../../models/core/spec.js';
import type { ProgressEvent } from '../../models/core/events.js';
import { ConfigError } from '../../models/core/errors.js';
import { TrainConfigSchema, type TrainConfigInput } from '../../train/config.js';
import { runTraining } from '../../train/trainer/loop.js';
import { KD_CHECKPOINT_PREFIX } from '../../train/distill/kd-params.js';
import { microSpec } from '../helpers/specs.js';

const studentSpec = microSpec('kd-student');

/** A wider teacher of the same family (untrained weights are enough to exercise the plumbing). */
function teacherCheckpoint(dir: string): string {
  const spec = parseModelSpec({ ...microSpec('kd-teacher'), neck: { channels: 12 }, head: { channels: 12 } });
  const w = initialWeights(buildGraph(spec), 5);
  const params = new Map([...w].map(([k, v]) => [k, { shape: [v.length], data: v }]));
  // Shapes matter for the tfjs executor: take them from the graph.
  for (const p of buildGraph(spec).params) params.get(p.name)!.shape = p.shape;
  const path = join(dir, 'teacher.safetensors');
  saveCheckpoint(path, { spec, params, ema: new Map() });
  return path;
}

function config(out: string, name: string, distill?: TrainConfigInput['distill']): TrainConfigInput {
  return {
    name,
    out,
    model: studentSpec,
    backend: 'wasm',
    workers: 2,
    seed: 4,
    data: {
      train: { kind: 'synthetic', count: 16, seed: 3 },
      val: { kind: 'synthetic', count: 8, seed: 99 },
    },
    train: { epochs: 2, batchSize: 8, microBatch: 4, warmupEpochs: 0.5 },
    eval: { every: 0 },
    ...(distill ? { distill } : {}),
  };
}

const ALL_METHODS = {
  hpl: {},
  hkd: {},
  rmPfi: {},
  adversarial: { warmupSteps: 1, channels: 8 },
  hmkd: { midChannels: 8 },
};

test('every method trains together: finite KD terms, KD params saved apart, cache hit on the second run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-kd-'));
  const teacher = teacherCheckpoint(dir);
  const distill = {
    teachers: [{ kind: 'edgekd' as const, checkpoint: teacher }],
    warmupEpochs: 0.5,
    stopFraction: 1,
    cache: { dir: join(dir, 'cache'), variants: 1 },
    ...ALL_METHODS,
  };
  const events: ProgressEvent[] = [];
  const r = await runTraining(validateConfig(TrainConfigSchema, config(dir, 'kd', distill)), {
    onEvent: (e) => events.push(e),
  });
  const last = events.filter((e) => e.kind === 'batch-end').at(-1);
  assert.ok(last && last.kind === 'batch-end');
  for (const k of [
    'hpl.hint',
    'hpl.relation',
    'hkd.feature',
    'hkd.region',
    'hkd.logit',
    'rmPfi.rm',
    'rmPfi.pfi',
    'adversarial.adv',
    'adversarial.anchor',
    'adversarial.disc',
    'hmkd.match',
    'hmkd.decoder',
    'hmkd.supplementary',
  ]) {
    assert.ok(k in last.losses, `missing loss term ${k}`);
    assert.ok(Number.isFinite(last.losses[k]), `${k} = ${last.losses[k]}`);
  }
  const ck = loadCheckpoint(r.checkpoint);
  const kdNames = [...ck.params.keys()].filter((k) => k.startsWith(KD_CHECKPOINT_PREFIX));
  assert.ok(
    kdNames.some((k) => k.includes('adapter')),
    'adapters saved',
  );
  assert.ok(
    kdNames.some((k) => k.includes('adv.')),
    'discriminators saved',
  );
  // The deployable student is exactly the no-KD student: same parameter names and count.
  const studentCount = [...ck.params]
    .filter(([k]) => !k.startsWith(KD_CHECKPOINT_PREFIX))
    .reduce((a, [, t]) => a + t.data.length, 0);
  const g = buildGraph(parseModelSpec(studentSpec));
  assert.equal(
    studentCount,
    g.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0),
  );
  assert.ok(graphCost(parseModelSpec(studentSpec)).params > 0);

  const metrics = (name: string) =>
    readFileSync(join(dir, name, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kd?: { cache?: { hits: number; misses: number } } });
  const first = metrics('kd');
  assert.ok(first[0].kd?.cache && first[0].kd.cache.misses > 0, 'first epoch fills the cache');
  // Same data, seed and variant: the second run reads every teacher output from the cache.
  await runTraining(validateConfig(TrainConfigSchema, config(dir, 'kd2', distill)));
  const second = metrics('kd2');
  assert.equal(second[0].kd?.cache?.misses, 0);
  assert.ok((second[0].kd?.cache?.hits ?? 0) > 0);
});

test('with every KD weight at 0 the student trains bit-identically to the no-KD baseline', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-kd0-'));
  const teacher = teacherCheckpoint(dir);
  const base = await runTraining(validateConfig(TrainConfigSchema, config(dir, 'base')));
  const zero = await runTraining(
    validateConfig(
      TrainConfigSchema,
      config(dir, 'zero', {
        teachers: [{ kind: 'edgekd', checkpoint: teacher }],
        hpl: { hint: 0, relation: 0 },
        rmPfi: { rm: 0, pfi: 0 },
      }),
    ),
  );
  const a = loadCheckpoint(base.checkpoint);
  const b = loadCheckpoint(zero.checkpoint);
  for (const [k, t] of a.params) {
    const u = b.params.get(k);
    assert.ok(u, k);
    assert.deepEqual(Buffer.from(u.data.buffer), Buffer.from(t.data.buffer), `param ${k} differs`);
  }
});

test('bad distillation config fails before training with a message naming the problem', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-kdbad-'));
  assert.throws(
    () =>
      validateConfig(
        TrainConfigSchema,
        config(dir, 'x', { teachers: [{ kind: 'edgekd', checkpoint: 't' }], hpl: { hnt: 2 } as never }),
      ),
    (e: Error) => e instanceof ConfigError && /hnt/.test(e.message),
  );
  await assert.rejects(
    runTraining(
      validateConfig(
        TrainConfigSchema,
        config(dir, 'y', {
          teachers: [{ kind: 'edgekd', checkpoint: join(dir, 'missing.safetensors') }],
          hpl: {},
        }),
      ),
    ),
    (e: Error) => e instanceof ConfigError && /missing\.safetensors/.test(e.message),
  );
});
