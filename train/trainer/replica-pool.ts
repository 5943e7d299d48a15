/**
 * Main-thread side of data-parallel training: N replica workers, each with its own tfjs
 * backend. A batch is split across replicas (and into micro-batches inside each, to bound
 * wasm memory); their gradient sums are added, which is exact because every loss term is
 * already divided by the whole batch's normaliser.
 */
import { Worker } from 'node:worker_threads';
import type { ModelSpec } from '../../models/core/spec.js';
import { EdgekdError, ProviderUnavailableError, ConfigError } from '../../models/core/errors.js';
import type { LossNormalizers, LossWeights, MicroBatch } from '../step.js';
import type { DistillConfig } from '../distill/config.js';
import type { KdParamSpec } from '../distill/types.js';
import type { BackendPref, ReplicaRequest, ReplicaResponse, StepKd } from './replica-protocol.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type StepDone = Extract<ReplicaResponse, { type: 'step-done' }>;
type PredictDone = Extract<ReplicaResponse, { type: 'predict-done' }>;

/** Re-creates an error raised inside a worker, keeping its class and code where it is ours. */
function reviveError(r: Extract<ReplicaResponse, { type: 'error' }>): Error {
  if (r.name === 'ProviderUnavailableError')
    return new ProviderUnavailableError('ERR_BACKEND_UNAVAILABLE', r.message);
  if (r.name === 'ConfigError')
    return new ConfigError((r.code as 'ERR_CONFIG_INVALID') ?? 'ERR_CONFIG_INVALID', r.message);
  const e = new Error(`replica worker: ${r.name}: ${r.message}`);
  e.stack = r.stack;
  return e;
}

class Replica {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (r: ReplicaResponse) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private initWaiter?: { resolve: (r: ReplicaResponse) => void; reject: (e: Error) => void };
  private dead?: Error;

  constructor() {
    this.worker = new Worker(new URL('./replica-worker.js', import.meta.url));
    this.worker.on('message', (r: ReplicaResponse) => {
      if (r.type === 'ready') return this.initWaiter?.resolve(r);
      if (r.type === 'error' && r.id === undefined) return this.initWaiter?.reject(reviveError(r));
      const p = this.pending.get((r as { id: number }).id);
      if (!p) return;
      this.pending.delete((r as { id: number }).id);
      if (r.type === 'error') p.reject(reviveError(r));
      else p.resolve(r);
    });
    const fail = (e: Error) => {
      this.dead = e;
      this.initWaiter?.reject(e);
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      if (code !== 0) fail(new EdgekdError('ERR_INTERRUPTED', `replica worker exited with code ${code}`));
    });
  }

  init(
    spec: ModelSpec,
    backend: BackendPref,
    lossWeights: LossWeights,
    distill?: DistillConfig,
  ): Promise<Extract<ReplicaResponse, { type: 'ready' }>> {
    return new Promise((resolve, reject) => {
      this.initWaiter = { resolve: resolve as (r: ReplicaResponse) => void, reject };
      this.worker.postMessage({ type: 'init', spec, backend, lossWeights, distill } satisfies ReplicaRequest);
    });
  }

  request<T extends ReplicaResponse>(
    msg: DistributiveOmit<Extract<ReplicaRequest, { type: 'step' | 'predict' }>, 'id'>,
    transfer: ArrayBuffer[] = [],
  ): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (r: ReplicaResponse) => void, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export interface ReplicaPoolInfo {
  backend: string;
  detail: string;
  fallbacks: { name: string; reason: string }[];
  replicas: number;
  /** Training-only KD parameters declared by the workers (distillation only). */
  kdSpecs?: KdParamSpec[];
}

export interface PoolStepResult {
  grads: Float32Array;
  /** Loss terms of the whole batch (already normalised). */
  losses: Record<string, number>;
  /** Batch-size-weighted mean of BN batch statistics, stats-layout order. */
  batchStats: Float32Array;
  /** Slowest replica's compute time, ms. */
  computeMs: number;
  /** Discriminator gradients (adversarial KD). */
  discGrads?: Float32Array;
  /** Slowest replica's time producing teacher outputs, ms. */
  teacherMs: number;
  /** Teacher-cache hits and misses so far, summed over replicas. */
  cache?: { hits: number; misses: number };
}

export class ReplicaPool {
  private constructor(
    private readonly replicas: Replica[],
    readonly info: ReplicaPoolInfo,
  ) {}

  /**
   * Starts `count` replicas and waits until each has its backend and model.
   * @throws {ProviderUnavailableError} when the requested backend cannot load
   */
  static async start(
    spec: ModelSpec,
    count: number,
    backend: BackendPref,
    lossWeights: LossWeights,
    distill?: DistillConfig,
  ): Promise<ReplicaPool> {
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`'workers' must be an integer >= 1, got ${count}`);
    const replicas = Array.from({ length: count }, () => new Replica());
    try {
      // Start one replica first: its teacher load (model parse, cache folder) then warms the OS
      // file cache for the others, and a bad teacher config fails once, not N times.
      const first = await replicas[0].init(spec, backend, lossWeights, distill);
      const rest = await Promise.all(
        replicas.slice(1).map((r) => r.init(spec, backend, lossWeights, distill)),
      );
      const ready = [first, ...rest];
      const r0 = ready[0];
      return new ReplicaPool(replicas, {
        backend: r0.backend,
        detail: r0.detail,
        fallbacks: r0.fallbacks,
        replicas: count,
        kdSpecs: r0.kdSpecs,
      });
    } catch (e) {
      await Promise.all(replicas.map((r) => r.terminate()));
      throw e;
    }
  }

  get size(): number {
    return this.replicas.length;
  }

  /**
   * One data-parallel gradient computation.
   * @param shards - per replica, its micro-batches (a replica with no shard sits idle)
   */
  async step(
    trainable: Float32Array,
    shards: MicroBatch[][],
    norm: LossNormalizers,
    kd?: StepKd,
  ): Promise<PoolStepResult> {
    const work = shards
      .map((mbs, i) => ({ mbs, r: this.replicas[i] }))
      .filter((x) => x.mbs.length > 0)
      .map(({ mbs, r }) => r.request<StepDone>({ type: 'step', trainable, microBatches: mbs, norm, kd }));
    const done = await Promise.all(work);
    const grads = done[0].grads;
    const losses: Record<string, number> = { ...done[0].losses };
    const batchStats = done[0].statsWeighted;
    let images = done[0].images;
    const discGrads = done[0].discGrads;
    let cache = done[0].cache ? { ...done[0].cache } : undefined;
    for (const d of done.slice(1)) {
      if (discGrads && d.discGrads) for (let i = 0; i < discGrads.length; i++) discGrads[i] += d.discGrads[i];
      if (cache && d.cache)
        cache = { hits: cache.hits + d.cache.hits, misses: cache.misses + d.cache.misses };
      for (let i = 0; i < grads.length; i++) grads[i] += d.grads[i];
      for (let i = 0; i < batchStats.length; i++) batchStats[i] += d.statsWeighted[i];
      for (const [k, v] of Object.entries(d.losses)) losses[k] = (losses[k] ?? 0) + v;
      images += d.images;
    }
    for (let i = 0; i < batchStats.length; i++) batchStats[i] /= images;
    return {
      grads,
      losses,
      batchStats,
      computeMs: Math.max(...done.map((d) => d.ms)),
      discGrads,
      teacherMs: Math.max(...done.map((d) => d.teacherMs)),
      cache,
    };
  }

  /** Inference-mode forward of a batch on one replica (round-robin), heatmap after sigmoid. */
  async predict(
    trainable: Float32Array,
    stats: Float32Array,
    batch: number,
    imagesNhwc: Float32Array,
    replica = 0,
  ): Promise<PredictDone> {
    return this.replicas[replica % this.replicas.length].request<PredictDone>({
      type: 'predict',
      trainable,
      stats,
      batch,
      imagesNhwc,
    });
  }

  /** Stops every worker. Safe to call twice. */
  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.terminate()));
  }
}
