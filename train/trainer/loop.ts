/**
 * The training loop: data-parallel replicas compute gradients, the main thread owns the
 * weights (flat arrays), the optimiser, EMA, BN statistics, eval and checkpoints, and
 * loads/augments the next batches while the replicas compute.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { buildGraph, initialWeights } from '../../models/arch/graph.js';
import {
  loadCheckpoint,
  saveCheckpoint,
  type Checkpoint,
  type TrainerState,
} from '../../models/core/checkpoint.js';
import { ConfigError, EdgekdError, ModelFormatError } from '../../models/core/errors.js';
import type { ProgressEvent } from '../../models/core/events.js';
import { headStride, parseModelSpec, readModelSpec, type ModelSpec } from '../../models/core/spec.js';
import type { NamedTensor } from '../../models/core/safetensors.js';
import type { TrainConfig } from '../config.js';
import { openDataset, openTrainingSet } from '../datasets.js';
import { createLoader } from '../data/loader.js';
import type { Dataset, TrainBatch } from '../data/types.js';
import { buildTargets } from '../targets.js';
import { batchNormalizers, type LossWeights, type MicroBatch } from '../step.js';
import { evaluateModel } from './evaluate.js';
import {
  clipGradNorm,
  createOptimizerState,
  decayMask,
  optimizerStep,
  type OptimizerConfig,
} from './optimizer.js';
import { statsLayout, trainableLayout, type ParamLayout } from './param-layout.js';
import { ReplicaPool } from './replica-pool.js';
import { learningRate } from './schedule.js';
import { createEma, emaUpdate, type EmaState } from './ema.js';
import { KD_CHECKPOINT_PREFIX, kdInitialFlat, kdLayout } from '../distill/kd-params.js';
import type { StepKd } from './replica-protocol.js';
import { createHash } from 'node:crypto';

export interface RunTrainingOptions {
  onEvent?: (e: ProgressEvent) => void;
  /** Aborting saves a checkpoint after the current step and returns with `interrupted: true`. */
  signal?: AbortSignal;
}

export interface TrainingResult {
  runDir: string;
  /** Path of the last checkpoint written. */
  checkpoint: string;
  /** Final eval metrics (EMA weights) when a val set was given. */
  metrics?: Record<string, number>;
  epochsCompleted: number;
  interrupted: boolean;
  seconds: number;
  backend: string;
  workers: number;
}

/** Resolves the model spec of a train config (path or inline). */
export function resolveSpec(cfg: TrainConfig): ModelSpec {
  return typeof cfg.model === 'string' ? readModelSpec(cfg.model) : parseModelSpec(cfg.model, 'config.model');
}

function toFlat(
  layout: ParamLayout,
  values: (name: string) => Float32Array | undefined,
  source: string,
): Float32Array {
  const flat = new Float32Array(layout.total);
  for (const s of layout.slots) {
    const v = values(s.name);
    if (!v || v.length !== s.length)
      throw new ModelFormatError(
        'ERR_CHECKPOINT',
        `${source}: parameter '${s.name}' is missing or has ${v?.length ?? 0} values, the spec needs ${s.length}`,
      );
    flat.set(v, s.offset);
  }
  return flat;
}

function fromFlat(layout: ParamLayout, flat: Float32Array, into: Map<string, NamedTensor>): void {
  for (const s of layout.slots)
    into.set(s.name, { shape: s.shape, data: flat.slice(s.offset, s.offset + s.length) });
}

/** Splits a batch over replicas, then each share into micro-batches of at most `micro` images. */
export function shardBatch(
  batch: TrainBatch,
  replicas: number,
  micro: number,
  stride: number,
  numClasses: number,
  cacheKeys?: string[],
): MicroBatch[][] {
  const shards: MicroBatch[][] = Array.from({ length: replicas }, () => []);
  const per = Math.ceil(batch.size / replicas);
  const imgLen = batch.height * batch.width * 3;
  for (let r = 0; r < replicas; r++) {
    const start = r * per;
    const end = Math.min(batch.size, start + per);
    for (let s = start; s < end; s += micro) {
      const e = Math.min(end, s + micro);
      shards[r].push({
        batch: e - s,
        height: batch.height,
        width: batch.width,
        imagesNhwc: batch.imagesNhwc.slice(s * imgLen, e * imgLen),
        targets: buildTargets(batch.annotations.slice(s, e), batch.height, batch.width, stride, numClasses),
        annotations: batch.annotations.slice(s, e),
        cacheKeys: cacheKeys?.slice(s, e),
      });
    }
  }
  return shards;
}

/**
 * Trains a student from a validated config.
 * @example
 * ```ts
 * const cfg = validateConfig(TrainConfigSchema, JSON.parse(readFileSync('train/configs/tiny.json', 'utf8')));
 * const r = await runTraining(cfg, { onEvent: (e) => e.kind === 'epoch-end' && console.log(e) });
 * console.log(r.metrics?.AP50); // e.g. 0.62
 * ```
 * @throws {ConfigError} bad paths or resume mismatch; {ProviderUnavailableError} backend
 */
export async function runTraining(cfg: TrainConfig, opts: RunTrainingOptions = {}): Promise<TrainingResult> {
  const t0 = performance.now();
  const emit = opts.onEvent ?? (() => {});
  const spec = resolveSpec(cfg);
  const graph = buildGraph(spec);
  const tLayout = trainableLayout(graph);
  const sLayout = statsLayout(graph);
  const stride = headStride(spec);
  const C = spec.classes.length;
  const runDir = join(cfg.out, cfg.name);
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'config.json'), JSON.stringify({ ...cfg, model: spec }, null, 2));
  const metricsPath = join(runDir, 'metrics.jsonl');
  const lastPath = join(runDir, 'last.safetensors');
  const bestPath = join(runDir, 'best.safetensors');

  const trainSet = await openTrainingSet(cfg.data.train, spec, cfg.data);
  const valSet: Dataset | undefined = cfg.data.val
    ? await openDataset(cfg.data.val, spec, cfg.data)
    : undefined;
  for (const s of [...trainSet.skipped, ...(valSet?.skipped ?? [])])
    emit({
      kind: 'skip',
      what: s.what,
      reason: `${s.reason}${s.count && s.count > 1 ? ` (x${s.count})` : ''}`,
    });
  if (trainSet.samples.length === 0)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `data.train: the training set '${trainSet.name}' has no usable images`,
    );

  // Weights: fresh from the seed, or restored from a checkpoint.
  let params: Float32Array;
  let stats: Float32Array;
  const optCfg = cfg.train.optimizer as OptimizerConfig;
  let opt = createOptimizerState(optCfg, tLayout.total);
  let ema: EmaState | undefined;
  let startEpoch = 0;
  let globalStep = 0;
  if (cfg.resume) {
    const ck = loadCheckpoint(cfg.resume);
    if (JSON.stringify(ck.spec) !== JSON.stringify(spec)) {
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `resume: checkpoint '${cfg.resume}' was trained with a different model spec than this config`,
      );
    }
    params = toFlat(tLayout, (n) => ck.params.get(n)?.data, cfg.resume);
    stats = toFlat(sLayout, (n) => ck.params.get(n)?.data, cfg.resume);
    if (ck.state) {
      startEpoch = ck.state.epoch;
      globalStep = ck.state.globalStep;
      if (ck.optimizer && ck.state.optimizerKind === optCfg.kind && ck.optimizer.m.length === tLayout.total) {
        opt = { kind: optCfg.kind, step: ck.state.optimizerStep, m: ck.optimizer.m, v: ck.optimizer.v };
      }
    }
    if (cfg.train.ema > 0 && ck.ema.size)
      ema = {
        updates: ck.state?.emaUpdates ?? 0,
        shadow: toFlat(tLayout, (n) => ck.ema.get(n)?.data, cfg.resume),
      };
  } else {
    const init = initialWeights(graph, cfg.seed);
    params = toFlat(tLayout, (n) => init.get(n), 'init');
    stats = toFlat(sLayout, (n) => init.get(n), 'init');
  }
  if (cfg.train.ema > 0 && !ema) ema = createEma(params);
  const decay = decayMask(tLayout);

  const workers = cfg.workers || Math.max(1, availableParallelism());
  const lossWeights: LossWeights = cfg.loss;
  const distill = cfg.distill;
  const pool = await ReplicaPool.start(spec, workers, cfg.backend, lossWeights, distill);
  // Distillation: adapters and method modules train with the student (appended to its flat
  // parameters, same optimiser); discriminators have their own Adam. Neither is exported.
  const kdSpecs = pool.info.kdSpecs ?? [];
  const kdStudent = kdLayout(kdSpecs, 'student', tLayout.total);
  const kdDisc = kdLayout(kdSpecs, 'discriminator');
  const fullLayout: ParamLayout = {
    slots: [...tLayout.slots, ...kdStudent.slots],
    total: tLayout.total + kdStudent.total,
  };
  let disc: Float32Array = new Float32Array(0);
  let discOpt: ReturnType<typeof createOptimizerState> | undefined;
  const discCfg: OptimizerConfig | undefined = distill?.adversarial
    ? {
        kind: 'adamw',
        lr: distill.adversarial.lr,
        beta1: distill.adversarial.beta1,
        beta2: distill.adversarial.beta2,
        epsilon: 1e-8,
        weightDecay: 0,
      }
    : undefined;
  if (kdSpecs.length) {
    const fromCk = cfg.resume ? loadCheckpoint(cfg.resume) : undefined;
    const restore = (layout: ParamLayout, init: Float32Array): Float32Array => {
      if (!fromCk) return init;
      const shift = layout.slots[0]?.offset ?? 0;
      const out = new Float32Array(layout.total);
      for (const sl of layout.slots) {
        const t = fromCk.params.get(KD_CHECKPOINT_PREFIX + sl.name);
        const src =
          t && t.data.length === sl.length
            ? t.data
            : init.subarray(sl.offset - shift, sl.offset - shift + sl.length);
        out.set(src, sl.offset - shift);
      }
      return out;
    };
    const kdInit: Float32Array = restore(kdStudent, kdInitialFlat(kdSpecs, 'student', cfg.seed));
    const joined = new Float32Array(fullLayout.total);
    joined.set(params);
    joined.set(kdInit, tLayout.total);
    params = joined as Float32Array;
    disc = restore(kdDisc, kdInitialFlat(kdSpecs, 'discriminator', cfg.seed));
    if (discCfg) discOpt = createOptimizerState(discCfg, disc.length);
    if (opt.m.length !== fullLayout.total) {
      // A resumed student-only optimiser state: keep it for the student, start the KD part fresh.
      const fresh = createOptimizerState(optCfg, fullLayout.total);
      fresh.m.set(opt.m.subarray(0, Math.min(opt.m.length, fresh.m.length)));
      if (opt.v && fresh.v) fresh.v.set(opt.v.subarray(0, Math.min(opt.v.length, fresh.v.length)));
      opt = { ...fresh, step: opt.step };
    }
    if (ema) {
      const shadow = new Float32Array(fullLayout.total);
      shadow.set(ema.shadow.subarray(0, Math.min(ema.shadow.length, tLayout.total)));
      shadow.set(kdInit, tLayout.total);
      ema = { ...ema, shadow };
    }
  }
  const fullDecay = kdSpecs.length ? decayMask(fullLayout) : decay;
  // Cache keys: the training source, the sample, the seed and the augmentation variant.
  const dataKey = createHash('sha1')
    .update(JSON.stringify({ data: cfg.data.train, aug: cfg.train.augment, seed: cfg.seed }))
    .digest('hex')
    .slice(0, 16);
  const stepsPerEpoch =
    cfg.train.batchSize > trainSet.samples.length
      ? 1
      : Math.floor(trainSet.samples.length / cfg.train.batchSize);
  const totalSteps = stepsPerEpoch * cfg.train.epochs;
  const schedule = {
    baseLr: optCfg.lr,
    warmupSteps: Math.min(Math.round(cfg.train.warmupEpochs * stepsPerEpoch), Math.max(0, totalSteps - 1)),
    totalSteps,
    minLrRatio: cfg.train.minLrRatio,
  };
  // `--backend auto` tried faster backends first (tfjs-node); say why each was passed over.
  for (const f of pool.info.fallbacks)
    emit({ kind: 'skip', what: `training backend '${f.name}'`, reason: f.reason });
  emit({
    kind: 'train-start',
    backend: `${pool.info.backend} (${pool.info.detail})`,
    workers,
    epochs: cfg.train.epochs,
    stepsPerEpoch,
    params: tLayout.total,
  });

  const snapshot = (epoch: number, metrics?: Record<string, number>): Checkpoint => {
    const p = new Map<string, NamedTensor>();
    fromFlat(tLayout, params, p);
    fromFlat(sLayout, stats, p);
    for (const sl of kdStudent.slots)
      p.set(KD_CHECKPOINT_PREFIX + sl.name, {
        shape: sl.shape,
        data: params.slice(sl.offset, sl.offset + sl.length),
      });
    for (const sl of kdDisc.slots)
      p.set(KD_CHECKPOINT_PREFIX + sl.name, {
        shape: sl.shape,
        data: disc.slice(sl.offset, sl.offset + sl.length),
      });
    const e = new Map<string, NamedTensor>();
    if (ema) fromFlat(tLayout, ema.shadow, e);
    const state: TrainerState = {
      epoch,
      globalStep,
      optimizerKind: opt.kind,
      optimizerStep: opt.step,
      emaUpdates: ema?.updates ?? 0,
      config: { ...cfg, model: spec },
      metrics,
    };
    return { spec, params: p, ema: e, optimizer: { m: opt.m, v: opt.v }, state };
  };
  const evalWeights = () => ema?.shadow ?? params;
  const kdWarmSteps = distill ? Math.min(Math.round(distill.warmupEpochs * stepsPerEpoch), 2000) : 0;
  const kdStopStep = distill
    ? distill.stopFraction >= 1
      ? Infinity
      : Math.floor(distill.stopFraction * totalSteps)
    : 0;
  const kdStep = (): StepKd | undefined =>
    distill
      ? {
          step: globalStep,
          ramp: globalStep >= kdStopStep ? 0 : kdWarmSteps > 0 ? Math.min(1, globalStep / kdWarmSteps) : 1,
          active: globalStep < kdStopStep,
          disc,
        }
      : undefined;
  let teacherMsSum: number;
  let cacheStats: { hits: number; misses: number } | undefined;

  let metrics: Record<string, number> | undefined;
  let bestScore = -Infinity;
  let epoch = startEpoch;
  let interrupted = false;
  try {
    for (; epoch < cfg.train.epochs && !interrupted; epoch++) {
      const tEpoch = performance.now();
      emit({ kind: 'epoch-start', epoch: epoch + 1, epochs: cfg.train.epochs, steps: stepsPerEpoch });
      const sums: Record<string, number> = {};
      let steps = 0;
      teacherMsSum = 0;
      const loader = createLoader(trainSet, {
        spec,
        batchSize: cfg.train.batchSize,
        shuffle: true,
        seed: cfg.seed,
        epoch,
        augmentEpoch: distill?.cache ? epoch % distill.cache.variants : epoch,
        // Boxes cut below 30% visible become ignore regions: the pixels of a half-visible person must
        // not be taught as background.
        augment: cfg.train.augment ? { partialAsIgnore: true } : false,
        prefetch: cfg.train.prefetch,
        dropLast: trainSet.samples.length >= cfg.train.batchSize,
        onSkip: (what, reason) => emit({ kind: 'skip', what, reason }),
      });
      for await (const batch of loader) {
        const tStep = performance.now();
        const variant = distill?.cache ? epoch % distill.cache.variants : epoch;
        const keys = distill?.cache
          ? batch.ids.map((id) => `${dataKey}|${id}|v${variant}|${spec.input.height}x${spec.input.width}`)
          : undefined;
        const shards = shardBatch(batch, pool.size, cfg.train.microBatch, stride, C, keys);
        const kd = kdStep();
        const r = await pool.step(params, shards, batchNormalizers(shards.flat()), kd);
        teacherMsSum += r.teacherMs;
        if (r.cache) cacheStats = r.cache;
        if (!Number.isFinite(r.losses.total)) {
          throw new EdgekdError(
            'ERR_TRAIN_DIVERGED',
            `loss became ${r.losses.total} at step ${globalStep}; lower train.optimizer.lr or set train.gradClip (last checkpoint: ${lastPath})`,
          );
        }
        const gradNorm = clipGradNorm(r.grads, cfg.train.gradClip);
        const lr = learningRate(schedule, globalStep);
        optimizerStep(optCfg, opt, params, r.grads, fullDecay, lr);
        if (discCfg && discOpt && r.discGrads && kd?.active)
          optimizerStep(discCfg, discOpt, disc, r.discGrads, new Uint8Array(disc.length), discCfg.lr);
        if (ema) emaUpdate(ema, params, cfg.train.ema, cfg.train.emaRampSteps);
        const m = cfg.train.bnMomentum;
        for (let i = 0; i < stats.length; i++) stats[i] = m * stats[i] + (1 - m) * r.batchStats[i];
        globalStep++;
        steps++;
        for (const [k, v] of Object.entries(r.losses)) sums[k] = (sums[k] ?? 0) + v;
        const ms = performance.now() - tStep;
        emit({
          kind: 'batch-end',
          epoch: epoch + 1,
          step: steps,
          steps: stepsPerEpoch,
          globalStep,
          lr,
          losses: { ...r.losses, gradNorm },
          imagesPerSec: (batch.size * 1000) / ms,
        });
        if (opts.signal?.aborted) {
          interrupted = true;
          break;
        }
        if (steps >= stepsPerEpoch) break;
      }
      const avg: Record<string, number> = {};
      for (const [k, v] of Object.entries(sums)) avg[k] = v / Math.max(1, steps);
      const completed = interrupted ? epoch : epoch + 1;
      const last = completed === cfg.train.epochs;
      let epochMetrics: Record<string, number> | undefined;
      if (!interrupted && valSet && (last || (cfg.eval.every > 0 && completed % cfg.eval.every === 0))) {
        epochMetrics = metrics = await evaluateModel(pool, spec, valSet, evalWeights(), stats, cfg.eval);
        emit({ kind: 'eval-end', epoch: completed, metrics: epochMetrics });
      }
      const seconds = (performance.now() - tEpoch) / 1000;
      appendFileSync(
        metricsPath,
        JSON.stringify({
          epoch: completed,
          step: globalStep,
          seconds,
          lr: learningRate(schedule, Math.max(0, globalStep - 1)),
          losses: avg,
          ...(distill
            ? { kd: { teacherMsPerStep: teacherMsSum / Math.max(1, steps), cache: cacheStats } }
            : {}),
          ...(epochMetrics ? { eval: epochMetrics } : {}),
        }) + '\n',
      );
      if (interrupted || last || completed % cfg.checkpointEvery === 0) {
        saveCheckpoint(lastPath, snapshot(completed, metrics));
        emit({
          kind: 'checkpoint',
          path: lastPath,
          epoch: completed,
          reason: interrupted ? 'interrupt' : last ? 'final' : 'periodic',
        });
      }
      if (epochMetrics) {
        const score = epochMetrics.AP50;
        if (Number.isFinite(score) && score > bestScore) {
          bestScore = score;
          saveCheckpoint(bestPath, snapshot(completed, epochMetrics));
        }
      }
      emit({
        kind: 'epoch-end',
        epoch: completed,
        epochs: cfg.train.epochs,
        losses: avg,
        seconds,
        eval: epochMetrics,
      });
    }
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  emit({ kind: 'train-done', seconds, checkpoint: lastPath });
  return {
    runDir,
    checkpoint: lastPath,
    metrics,
    epochsCompleted: interrupted ? epoch - 1 : epoch,
    interrupted,
    seconds,
    backend: pool.info.backend,
    workers,
  };
}
