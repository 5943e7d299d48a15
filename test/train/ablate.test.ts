/**
 * `edgekd ablate`: how a config expands into train runs, and a tiny end-to-end ablation through
 * the real trainer (a micro teacher trained first, then no-kd + hpl at one seed, 1 epoch each),
 * checking the report files, finite losses and resume.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { validateConfig } from '../../models/core/config.js';
import {
  AblateConfigSchema,
  ablationVariants,
  planAblation,
  readResults,
  runAblation,
  type AblateConfigInput,
  type AblateEvent,
} from '../../train/ablate.js';
import { TrainConfigSchema, type TrainConfigInput } from '../../train/config.js';
import { KD_METHODS } from '../../train/distill/config.js';
import { runTraining } from '../../train/trainer/loop.js';
import { tempDir } from '../fixtures/make-data-fixtures.js';
import { microSpec } from '../helpers/specs.js';

const spec = microSpec('abl');

function base(over: Partial<TrainConfigInput> = {}): TrainConfigInput {
  return {
    model: spec,
    backend: 'wasm',
    workers: 1,
    data: {
      train: { kind: 'synthetic', count: 16, seed: 3 },
      val: { kind: 'synthetic', count: 8, seed: 99 },
    },
    train: { epochs: 1, batchSize: 8, microBatch: 4, warmupEpochs: 0.5, ema: 0 },
    eval: { every: 1 },
    ...over,
  };
}

const teachers = [{ kind: 'edgekd' as const, checkpoint: 'teacher.safetensors' }];
const parse = (c: AblateConfigInput) => validateConfig(AblateConfigSchema, c);

describe('planAblation', () => {
  test('defaults to no-kd, one variant per method and the combined recipe, seed-major', () => {
    const cfg = parse({ name: 'abl', out: 'o', base: base(), distill: { teachers } });
    assert.deepEqual(
      ablationVariants(cfg).map((v) => v.name),
      ['no-kd', ...KD_METHODS, 'combined'],
    );
    const plan = planAblation(cfg);
    assert.equal(plan.length, (KD_METHODS.length + 2) * 2);
    assert.deepEqual(
      plan.slice(0, 2).map((p) => [p.name, p.seed, p.config.seed, p.config.out, p.config.name]),
      [
        ['abl-no-kd-s0', 0, 0, 'o', 'abl-no-kd-s0'],
        ['abl-hpl-s0', 0, 0, 'o', 'abl-hpl-s0'],
      ],
    );
    assert.equal(plan[KD_METHODS.length + 2].name, 'abl-no-kd-s1');
    assert.equal(plan[0].config.distill, undefined);
    const hpl = plan[1].config.distill!;
    assert.deepEqual(
      Object.keys(hpl).filter((k) => (KD_METHODS as readonly string[]).includes(k)),
      ['hpl'],
    );
    assert.equal(hpl.hpl?.hint, 2, 'method defaults filled in');
    assert.equal(hpl.teachers[0].kind, 'edgekd');
    assert.equal(hpl.stopFraction, 0.9);
    const combined = plan[KD_METHODS.length + 1].config.distill!;
    assert.deepEqual(
      [
        combined.rmPfi?.rm,
        combined.rmPfi?.pfi,
        combined.hmkd?.decoder,
        combined.hpl?.hint,
        combined.hpl?.relation,
      ],
      [4, 1.5, 0, 0, 1],
    );
    assert.equal(combined.hkd, undefined);
    // Everything but name, seed and distill is the same base.
    for (const p of plan) assert.deepEqual(p.config.train, plan[0].config.train);
  });

  test('a recipe variant takes per-field overrides without losing recipe values', () => {
    const cfg = parse({
      base: base(),
      seeds: [7],
      distill: { teachers, warmupEpochs: 0 },
      variants: [{ name: 'no-kd' }, { name: 'mix', recipe: 'default', methods: { hpl: { relation: 2 } } }],
    });
    const [none, mix] = planAblation(cfg);
    assert.equal(none.name, 'ablate-no-kd-s7');
    assert.deepEqual([mix.config.distill?.hpl?.hint, mix.config.distill?.hpl?.relation], [0, 2]);
    assert.equal(mix.config.distill?.warmupEpochs, 0);
    assert.equal(mix.config.distill?.rmPfi?.rm, 4);
  });

  test('rejects a KD variant without teachers, a base without val, bad keys and duplicates', () => {
    assert.throws(() => planAblation(parse({ base: base() })), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /variant 'hpl' uses KD.*distill/,
    });
    const noVal = base();
    noVal.data = { train: noVal.data.train };
    assert.throws(() => planAblation(parse({ base: noVal, variants: [{ name: 'no-kd' }] })), {
      name: 'ConfigError',
      message: /data\.val is required/,
    });
    assert.throws(() => planAblation(parse({ base: { ...base(), distill: { teachers } } })), {
      name: 'ConfigError',
      message: /distill block/,
    });
    assert.throws(
      () => parse({ base: base(), variants: [{ name: 'x', methods: { hpl: { hnit: 1 } } }] } as never),
      {
        name: 'ConfigError',
        code: 'ERR_CONFIG_UNKNOWN_KEY',
      },
    );
    assert.throws(() => parse({ base: base(), variants: [{ name: 'a' }, { name: 'a' }] }), {
      name: 'ConfigError',
      message: /duplicate variant name 'a'/,
    });
    assert.throws(() => parse({ base: base(), seeds: [1, 1] }), {
      name: 'ConfigError',
      message: /duplicate seed/,
    });
  });
});

describe('runAblation (tiny, end to end)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let teacherCkpt: string;
  before(async () => {
    ({ dir, cleanup } = await tempDir('edgekd-ablate-'));
    const t = await runTraining(
      validateConfig(TrainConfigSchema, {
        ...base(),
        name: 'teacher',
        out: dir,
        model: microSpec('teacher'),
      }),
    );
    teacherCkpt = t.checkpoint;
  });
  after(() => cleanup());

  test('trains no-kd and hpl, writes the table, chart and raw numbers, and resumes', async () => {
    const out = join(dir, 'ablation');
    const cfg = parse({
      name: 'tiny',
      out,
      base: base(),
      seeds: [0],
      distill: { teachers: [{ kind: 'edgekd', checkpoint: teacherCkpt }], warmupEpochs: 0 },
      variants: [{ name: 'no-kd' }, { name: 'hpl', methods: { hpl: {} } }],
    });
    const events: AblateEvent[] = [];
    const r = await runAblation(cfg, {
      onEvent: (e) => events.push(e),
      command: 'edgekd ablate --config tiny.json',
    });
    assert.equal(r.interrupted, false);
    assert.equal(r.failed, 0);
    assert.deepEqual(
      r.runs.map((x) => [x.name, x.status]),
      [
        ['tiny-no-kd-s0', 'done'],
        ['tiny-hpl-s0', 'done'],
      ],
    );
    for (const run of r.runs) {
      assert.ok(run.lossesFinite, `${run.name} losses finite: ${JSON.stringify(run.finalLosses)}`);
      assert.ok(Number.isFinite(run.finalLosses.total), run.name);
      assert.ok(run.metrics.AP50 >= 0 && run.metrics.AP50 <= 1, `${run.name} AP50`);
      assert.ok('MR2Reasonable' in run.metrics);
      assert.ok(run.trainSeconds > 0 && run.trainSeconds <= run.seconds);
      assert.ok(existsSync(join(out, run.name, 'config.json')));
    }
    assert.equal(r.runs[1].config.distill?.hpl?.hint, 2);
    // The KD run reports its own loss terms, the no-KD run none.
    assert.ok(
      Object.keys(r.runs[1].finalLosses).some((k) => k.startsWith('hpl.')),
      JSON.stringify(r.runs[1].finalLosses),
    );
    assert.ok(!Object.keys(r.runs[0].finalLosses).some((k) => k.startsWith('hpl.')));

    const md = readFileSync(r.markdown, 'utf8');
    assert.match(md, /^# KD ablation: tiny/);
    assert.match(md, /\| no-kd \| 0 \| [\d.]+ \| [\d.]+ \| /);
    assert.match(md, /\| hpl \| 0 \| [\d.]+ \| [\d.]+ \| /);
    assert.match(md, /\| hpl \| [\d.]+ \| [+−][\d.]+ \| n\/a \| n\/a \(needs ≥ 2 seeds\) \|/);
    assert.match(md, /\| tiny-hpl-s0 \| [\d.]+ \|.*\| yes \|/);
    const png = await sharp(r.chart).metadata();
    assert.equal(png.format, 'png');
    assert.ok(png.width! >= 560 && png.height === 440);
    const json = JSON.parse(readFileSync(r.json, 'utf8'));
    // 64x64 synthetic people are under 50 px: MR⁻² falls back from Reasonable to all heights.
    assert.deepEqual(json.metricKeys.slice(0, 3), ['AP', 'AP50', 'APsmall']);
    assert.match(json.metricKeys[3], /^MR2(Reasonable)?$/);
    assert.equal(json.commands.ablation, 'edgekd ablate --config tiny.json');
    assert.match(json.commands.runs['tiny-hpl-s0'], /^edgekd train --config .*tiny-hpl-s0.config\.json$/);
    assert.equal(json.runs.length, 2);
    assert.equal(readResults(out).length, 2);

    // Resume: both runs are in results.json with the same config, so nothing trains again.
    const again: AblateEvent[] = [];
    const r2 = await runAblation(cfg, { onEvent: (e) => again.push(e) });
    assert.equal(r2.reused, 2);
    assert.equal(again.filter((e) => e.kind === 'run-start').length, 0);
    assert.deepEqual(
      r2.runs.map((x) => x.metrics.AP50),
      r.runs.map((x) => x.metrics.AP50),
    );
  });
});
