/**
 * `edgekd ablate`: trains the same student without KD and with each distillation method (and the
 * combined default recipe), under the same seeds and budget, evaluates every run on the same
 * held-out set, and writes a report. Runs go one after another through {@link runTraining};
 * `<out>/results.json` is rewritten (atomically) after each, and a run already recorded there with
 * the same train config is not trained again, so an interrupted ablation resumes where it stopped.
 *
 * Written under `out`:
 * ```
 * <name>-<variant>-s<seed>/   each run's folder (config.json, metrics.jsonl, checkpoints)
 * results.json                run records (resume state)
 * ablation.md                 tables: per seed + mean ± half-range, ΔAP50 vs no-kd, final loss terms
 * ablation.png                AP50 bar chart (mean, min–max whisker, seed dots)
 * ablation.json               raw numbers, summaries and the commands that reproduce each run
 * ```
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { deepMerge, readJsonFile, validateConfig } from '../models/core/config.js';
import { ConfigError, EdgekdError } from '../models/core/errors.js';
import type { ProgressEvent } from '../models/core/events.js';
import { writeFileAtomic } from '../models/core/safetensors.js';
import {
  ablationChartSvg,
  ablationMarkdown,
  reportMetrics,
  summarizeVariants,
  svgToPng,
  type AblationRun,
} from './ablate-report.js';
import { TrainConfigSchema, type DataSource, type TrainConfig } from './config.js';
import { DEFAULT_RECIPE, DistillConfigSchema, KD_METHODS } from './distill/config.js';
import { runTraining, type TrainingResult } from './trainer/loop.js';

const NAME = /^[a-zA-Z0-9._-]+$/;

/** The distillation methods a variant turns on; each block's defaults come from the method's schema. */
const MethodsSchema = DistillConfigSchema.pick({
  hpl: true,
  hkd: true,
  rmPfi: true,
  adversarial: true,
  hmkd: true,
});

/** What every KD variant shares: teachers, cache and KD schedule. */
const SharedDistillSchema = DistillConfigSchema.pick({
  teachers: true,
  cache: true,
  warmupEpochs: true,
  stopFraction: true,
  projectChannels: true,
});

const VariantSchema = z.preprocess(
  // `recipe: 'default'` starts from DEFAULT_RECIPE and lets `methods` override single fields; the
  // merge happens before defaults are filled so a default never clobbers a recipe value.
  (raw) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
    const v = raw as Record<string, unknown>;
    if (v.recipe !== 'default') return raw;
    return { ...v, methods: deepMerge(structuredClone(DEFAULT_RECIPE), v.methods ?? {}) };
  },
  z.strictObject({
    name: z.string().regex(NAME).describe('(string) variant name, part of the run names'),
    recipe: z
      .literal('default')
      .optional()
      .describe("('default') start from the combined default recipe (methods override its fields)"),
    methods: MethodsSchema.optional().describe(
      '(object) methods turned on, e.g. {"hpl":{}}; none (and no recipe) = no KD',
    ),
  }),
);
export type AblationVariant = z.output<typeof VariantSchema>;

/** `edgekd ablate` configuration; defaults live here only. Paths are relative to the working directory. */
export const AblateConfigSchema = z
  .strictObject({
    name: z
      .string()
      .regex(NAME)
      .default('ablate')
      .describe('(string) ablation name, prefix of the run names'),
    out: z.string().default('runs/ablate').describe('(path) ablation folder: runs, results and report'),
    base: z
      .union([z.string(), z.record(z.string(), z.unknown())])
      .describe(
        '(path|object) train config JSON file or inline train config shared by every run (needs data.val)',
      ),
    seeds: z
      .array(z.number().int())
      .min(1)
      .default([0, 1])
      .describe('(int[]) seeds; every variant is trained once per seed'),
    distill: SharedDistillSchema.optional().describe(
      'teachers, cache and KD schedule shared by every KD variant',
    ),
    variants: z
      .array(VariantSchema)
      .min(1)
      .optional()
      .describe('(json) [{name, methods?, recipe?}]; default: no-kd, one per method, combined'),
    report: z
      .strictObject({
        title: z.string().optional().describe('(string) report title (default: "KD ablation: <name>")'),
        baseline: z.string().default('no-kd').describe('(string) variant the AP50 deltas are taken against'),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    if (new Set(c.seeds).size !== c.seeds.length)
      ctx.addIssue({ code: 'custom', path: ['seeds'], message: `duplicate seed in [${c.seeds.join(', ')}]` });
    if (c.variants) {
      const names = c.variants.map((v) => v.name);
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup)
        ctx.addIssue({ code: 'custom', path: ['variants'], message: `duplicate variant name '${dup}'` });
    }
  });
export type AblateConfig = z.output<typeof AblateConfigSchema>;
export type AblateConfigInput = z.input<typeof AblateConfigSchema>;

/**
 * The variants of a config: the listed ones, or by default `no-kd`, one per method in
 * {@link KD_METHODS} with its defaults, and `combined` = {@link DEFAULT_RECIPE}.
 */
export function ablationVariants(cfg: AblateConfig): AblationVariant[] {
  if (cfg.variants) return cfg.variants;
  const raw: unknown[] = [
    { name: 'no-kd' },
    ...KD_METHODS.map((m) => ({ name: m, methods: { [m]: {} } })),
    { name: 'combined', recipe: 'default' },
  ];
  return raw.map((v) => VariantSchema.parse(v));
}

/** Whether a variant turns any KD method on. */
export function usesKd(v: AblationVariant): boolean {
  return KD_METHODS.some((m) => v.methods?.[m] !== undefined);
}

/** One planned training run. */
export interface PlannedRun {
  name: string;
  variant: string;
  seed: number;
  config: TrainConfig;
}

/** Loads the base train config (file or inline) as raw input, before defaults. */
function baseInput(cfg: AblateConfig): Record<string, unknown> {
  const raw =
    typeof cfg.base === 'string' ? readJsonFile(cfg.base, 'base train config') : structuredClone(cfg.base);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ConfigError('ERR_CONFIG_INVALID', `base: expected a train config object`);
  const base = raw as Record<string, unknown>;
  const where = typeof cfg.base === 'string' ? `base config '${cfg.base}'` : 'base';
  if (base.distill !== undefined)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `${where} has a distill block: put the teachers under the ablation's 'distill' and the methods under 'variants'`,
    );
  if (base.resume !== undefined)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `${where} sets 'resume': every ablation run starts from scratch`,
    );
  return base;
}

/**
 * Expands an ablation config into its runs, seed-major (every variant at the first seed, then
 * the next seed), each a validated train config: the base with name `<name>-<variant>-s<seed>`,
 * that seed, `out` = the ablation folder and `distill` = shared block + the variant's methods
 * (omitted for a variant without KD).
 * @throws {ConfigError} a KD variant without a `distill` block, no held-out set, or an invalid merged config
 */
export function planAblation(cfg: AblateConfig): PlannedRun[] {
  const base = baseInput(cfg);
  const variants = ablationVariants(cfg);
  const plan: PlannedRun[] = [];
  for (const seed of cfg.seeds) {
    for (const v of variants) {
      const name = `${cfg.name}-${v.name}-s${seed}`;
      const input: Record<string, unknown> = { ...base, name, seed, out: cfg.out };
      if (usesKd(v)) {
        if (!cfg.distill)
          throw new ConfigError(
            'ERR_CONFIG_INVALID',
            `variant '${v.name}' uses KD: the ablation config needs a 'distill' block with its teachers`,
          );
        input.distill = { ...cfg.distill, ...v.methods };
      }
      const config = validateConfig(TrainConfigSchema, input, `ablation run '${name}'`);
      if (!config.data.val)
        throw new ConfigError(
          'ERR_CONFIG_INVALID',
          'base: data.val is required: every run is evaluated on the same held-out set',
        );
      plan.push({ name, variant: v.name, seed, config });
    }
  }
  return plan;
}

/** A run record of results.json: the report row plus what it was trained with. */
export interface RunRecord extends AblationRun {
  /** The train config as run (to detect a changed config on resume). */
  config: TrainConfig;
  checkpoint?: string;
  runDir: string;
  epochs: number;
  backend?: string;
}

interface ResultsFile {
  format: 'edgekd-ablation-results';
  version: 1;
  runs: RunRecord[];
}

/** JSON with NaN/±Infinity as null (JSON has no NaN). */
const toJson = (v: unknown) =>
  `${JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x), 2)}\n`;

const nullToNaN = (o: Record<string, number | null>) =>
  Object.fromEntries(Object.entries(o ?? {}).map(([k, v]) => [k, v === null ? NaN : v]));

/** Reads `<out>/results.json` (missing file = no runs yet). @throws {ConfigError} when it is not a results file */
export function readResults(out: string): RunRecord[] {
  const path = join(out, 'results.json');
  if (!existsSync(path)) return [];
  const raw = readJsonFile(path, 'ablation results') as Partial<ResultsFile>;
  if (raw.format !== 'edgekd-ablation-results' || !Array.isArray(raw.runs))
    throw new ConfigError('ERR_CONFIG_INVALID', `'${path}' is not an edgekd ablation results file`);
  return raw.runs.map((r) => ({
    ...r,
    metrics: nullToNaN(r.metrics as Record<string, number | null>),
    finalLosses: nullToNaN(r.finalLosses as Record<string, number | null>),
  }));
}

function writeResults(out: string, runs: RunRecord[]): void {
  const file: ResultsFile = { format: 'edgekd-ablation-results', version: 1, runs };
  writeFileAtomic(join(out, 'results.json'), toJson(file));
}

/** Progress of an ablation; `train` wraps the events of the run in progress. */
export type AblateEvent =
  | { kind: 'ablate-start'; runs: number; toRun: number; out: string }
  | { kind: 'run-start'; name: string; variant: string; seed: number; index: number; total: number }
  | { kind: 'run-skip'; name: string; reason: string }
  | { kind: 'run-done'; record: RunRecord }
  | { kind: 'run-failed'; name: string; error: string }
  | { kind: 'train'; name: string; event: ProgressEvent }
  | { kind: 'report'; markdown: string; chart: string; json: string };

export interface AblationOptions {
  onEvent?: (e: AblateEvent) => void;
  /** Aborting stops the run in progress at its next step (it is not recorded) and writes the report. */
  signal?: AbortSignal;
  /** The command line that started the ablation, recorded in ablation.json. */
  command?: string;
  /** Only (re)write the report from results.json; train nothing. */
  reportOnly?: boolean;
}

export interface AblationResult {
  out: string;
  runs: RunRecord[];
  /** Runs skipped because results.json already had them. */
  reused: number;
  failed: number;
  interrupted: boolean;
  markdown: string;
  chart: string;
  json: string;
}

function describeSource(s: DataSource | DataSource[]): string {
  if (Array.isArray(s)) return s.map(describeSource).join(' + ');
  switch (s.kind) {
    case 'synthetic':
      return `synthetic ${s.count} images (seed ${s.seed}${s.width ? `, ${s.width}x${s.height ?? s.width}` : ''})`;
    case 'coco':
      return `COCO \`${s.annotations}\``;
    case 'yolo':
      return `YOLO \`${s.root}\`${s.split ? ` (${s.split})` : ''}`;
    case 'mot':
      return `MOT \`${s.gt}\``;
  }
}

/**
 * Writes ablation.md, ablation.png and ablation.json from run records.
 * @returns the three paths
 */
export async function writeAblationReport(
  cfg: AblateConfig,
  plan: readonly PlannedRun[],
  records: readonly RunRecord[],
  command?: string,
): Promise<{ markdown: string; chart: string; json: string }> {
  mkdirSync(cfg.out, { recursive: true });
  const variants = ablationVariants(cfg);
  const names = variants.map((v) => v.name);
  const inPlan = new Set(plan.map((p) => p.name));
  const runs = records.filter((r) => inPlan.has(r.name));
  const title = cfg.report.title ?? `KD ablation: ${cfg.name}`;
  const first = plan[0]?.config;
  const notes: string[] = [];
  if (first) {
    notes.push(
      `Budget per run: ${first.train.epochs} epochs, batch ${first.train.batchSize}, ${first.train.optimizer.kind} lr ${first.train.optimizer.lr}, backend ${first.backend}.`,
      `Training set: ${describeSource(first.data.train)}; held-out set (same for every run): ${first.data.val ? describeSource(first.data.val) : 'none'}.`,
    );
    const kd = plan.find((p) => p.config.distill)?.config.distill;
    if (kd)
      notes.push(
        `Teachers: ${kd.teachers.map((t) => `${t.name} (${t.kind})`).join(', ')}; KD warm-up ${kd.warmupEpochs} epochs, off after ${kd.stopFraction * 100}% of training.`,
      );
  }
  notes.push('Train time = seconds in training steps (eval and checkpoints excluded).');
  const meta = {
    title,
    baseline: cfg.report.baseline,
    variants: names,
    seeds: cfg.seeds,
    notes,
    chart: 'ablation.png',
    generatedAt: new Date().toISOString(),
  };
  const md = ablationMarkdown(runs, meta);
  const summaries = summarizeVariants(runs, names, cfg.report.baseline, reportMetrics(runs));
  const png = await svgToPng(
    ablationChartSvg(summaries, { title: `${title}: AP50 per variant`, baseline: cfg.report.baseline }),
  );
  const paths = {
    markdown: join(cfg.out, 'ablation.md'),
    chart: join(cfg.out, 'ablation.png'),
    json: join(cfg.out, 'ablation.json'),
  };
  writeFileAtomic(paths.markdown, md);
  writeFileAtomic(paths.chart, png);
  writeFileAtomic(
    paths.json,
    toJson({
      format: 'edgekd-ablation',
      version: 1,
      title,
      generatedAt: meta.generatedAt,
      metricKeys: reportMetrics(runs).map((m) => m.key),
      baseline: cfg.report.baseline,
      seeds: cfg.seeds,
      variants: variants.map((v) => ({ name: v.name, recipe: v.recipe, methods: v.methods ?? {} })),
      config: cfg,
      commands: {
        ablation: command ?? null,
        runs: Object.fromEntries(
          plan.map((p) => [p.name, `edgekd train --config ${join(cfg.out, p.name, 'config.json')}`]),
        ),
      },
      runs: runs.map(({ config: _config, ...r }) => r),
      summary: summaries,
    }),
  );
  return paths;
}

/**
 * Runs an ablation (see the module comment). A run that diverges (`ERR_TRAIN_DIVERGED`) is
 * recorded as failed and the ablation goes on; any other error is recorded, the report written,
 * and the error re-thrown.
 *
 * @example
 * ```ts
 * const cfg = validateConfig(AblateConfigSchema, readJsonFile('ablate.json'));
 * const r = await runAblation(cfg, { onEvent: (e) => e.kind === 'run-done' && console.log(e.record.metrics.AP50) });
 * r.markdown; // 'runs/ablate/ablation.md'
 * ```
 */
export async function runAblation(cfg: AblateConfig, opts: AblationOptions = {}): Promise<AblationResult> {
  const emit = opts.onEvent ?? (() => {});
  const plan = planAblation(cfg);
  mkdirSync(cfg.out, { recursive: true });
  const records = new Map(readResults(cfg.out).map((r) => [r.name, r]));
  const same = (r: RunRecord | undefined, p: PlannedRun) =>
    r !== undefined && r.status === 'done' && JSON.stringify(r.config) === JSON.stringify(p.config);
  const toRun = opts.reportOnly ? [] : plan.filter((p) => !same(records.get(p.name), p));
  emit({ kind: 'ablate-start', runs: plan.length, toRun: toRun.length, out: cfg.out });
  let reused = 0;
  let failed = 0;
  let interrupted = false;
  const ordered = () => plan.map((p) => records.get(p.name)).filter((r): r is RunRecord => r !== undefined);

  let index = 0;
  for (const p of plan) {
    index++;
    if (opts.reportOnly) break;
    if (same(records.get(p.name), p)) {
      reused++;
      emit({ kind: 'run-skip', name: p.name, reason: 'already in results.json' });
      continue;
    }
    if (records.has(p.name))
      emit({
        kind: 'run-skip',
        name: p.name,
        reason: 'recorded with another config or failed: training again',
      });
    if (opts.signal?.aborted) {
      interrupted = true;
      break;
    }
    emit({ kind: 'run-start', name: p.name, variant: p.variant, seed: p.seed, index, total: plan.length });
    let finalLosses: Record<string, number> = {};
    let trainSeconds = 0;
    let epochStart = 0;
    let lastStep = 0;
    let result: TrainingResult;
    try {
      result = await runTraining(p.config, {
        signal: opts.signal,
        onEvent: (e) => {
          const now = performance.now();
          if (e.kind === 'epoch-start') epochStart = lastStep = now;
          else if (e.kind === 'batch-end') lastStep = now;
          else if (e.kind === 'epoch-end') {
            trainSeconds += (lastStep - epochStart) / 1000;
            finalLosses = { ...e.losses };
          }
          emit({ kind: 'train', name: p.name, event: e });
        },
      });
    } catch (err) {
      failed++;
      const error = err instanceof EdgekdError ? `${err.code}: ${err.message}` : String(err);
      records.set(p.name, {
        name: p.name,
        variant: p.variant,
        seed: p.seed,
        status: 'failed',
        metrics: {},
        trainSeconds,
        seconds: 0,
        finalLosses,
        lossesFinite: false,
        error,
        config: p.config,
        runDir: join(cfg.out, p.name),
        epochs: 0,
      });
      writeResults(cfg.out, ordered());
      emit({ kind: 'run-failed', name: p.name, error });
      if (err instanceof EdgekdError && err.code === 'ERR_TRAIN_DIVERGED') continue;
      await writeAblationReport(cfg, plan, ordered(), opts.command);
      throw err;
    }
    if (result.interrupted) {
      interrupted = true;
      break;
    }
    const lossValues = Object.values(finalLosses);
    const record: RunRecord = {
      name: p.name,
      variant: p.variant,
      seed: p.seed,
      status: 'done',
      metrics: result.metrics ?? {},
      trainSeconds,
      seconds: result.seconds,
      finalLosses,
      lossesFinite: lossValues.length > 0 && lossValues.every(Number.isFinite),
      config: p.config,
      checkpoint: result.checkpoint,
      runDir: result.runDir,
      epochs: result.epochsCompleted,
      backend: result.backend,
    };
    records.set(p.name, record);
    writeResults(cfg.out, ordered());
    emit({ kind: 'run-done', record });
    // A current report after every run: a long ablation can be read while it goes on.
    await writeAblationReport(cfg, plan, ordered(), opts.command);
  }
  if (opts.reportOnly) reused = plan.filter((p) => records.get(p.name)?.status === 'done').length;
  const paths = await writeAblationReport(cfg, plan, ordered(), opts.command);
  emit({ kind: 'report', ...paths });
  return { out: cfg.out, runs: ordered(), reused, failed, interrupted, ...paths };
}
