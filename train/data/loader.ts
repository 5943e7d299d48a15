/**
 * Batches for training and evaluation, prefetched.
 *
 * Samples are processed in a bounded, ordered window: while the consumer works on batch k, the
 * samples of batches k+1..k+prefetch are loading (sharp decodes on its own threads, ffmpeg in its
 * process) and being augmented (sync JS, one sample per macrotask, so the event loop stays
 * responsive). Everything random is seeded from (seed, epoch, sample index), so a batch is the
 * same whatever order the loads finish in. A sample that fails to load is skipped, reported via
 * `onSkip`, and replaced by the next one; it never ends the epoch.
 */
import type { Annotation } from '../../models/core/detection.js';
import { DataFormatError } from '../../models/core/errors.js';
import type { ModelSpec } from '../../models/core/spec.js';
import { augmentSample, type AugmentOptions } from './augment.js';
import { boxToNetwork, letterbox } from './image.js';
import { normalizeInto } from './normalize.js';
import { createRng } from './rng.js';
import type { Dataset, EvalBatch, LetterboxTransform, SkipRecord, TrainBatch } from './types.js';

/** Options of {@link createLoader}. */
export interface LoaderOptions {
  /** Model spec: input size, resize mode, channel order and normalisation are read from it. */
  spec: Pick<ModelSpec, 'input'>;
  /** Images per batch. */
  batchSize: number;
  /** Shuffle each epoch (default true); the order depends only on (seed, epoch). */
  shuffle?: boolean;
  /** Seed of shuffling and augmentation (default 0). */
  seed?: number;
  /** Epoch number, mixed into the seed (default 0). */
  epoch?: number;
  /**
   * Seeds the augmentation with this instead of `epoch` (the order still follows `epoch`): with
   * `augmentEpoch = epoch % V` every image gets one of V fixed augmentations, so teacher outputs
   * can be cached per (image, variant).
   */
  augmentEpoch?: number;
  /** `true` for default augmentation, an options object, or false (default) for plain letterbox. */
  augment?: boolean | AugmentOptions;
  /** Batches prepared ahead while the consumer works (default 2; 0 = load only on demand). */
  prefetch?: number;
  /** Drop a last batch smaller than `batchSize` (default false). */
  dropLast?: boolean;
  /** Called for each sample skipped because it failed to load or augment. */
  onSkip?: (what: string, reason: string) => void;
}

/** An async iterator of batches, with its skip log and planned length. */
export interface BatchLoader<B extends TrainBatch = TrainBatch> extends AsyncIterableIterator<B> {
  /** Batches this epoch yields when no sample is skipped. */
  readonly steps: number;
  /** Samples skipped so far in this epoch, one record each. */
  readonly skipped: readonly SkipRecord[];
}

/** Batches per epoch for `n` samples. */
export function stepsPerEpoch(n: number, batchSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** Deterministic permutation of 0..n-1 for (seed, epoch) (Fisher-Yates). */
export function epochOrder(n: number, seed: number, epoch: number, shuffle: boolean): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (!shuffle) return order;
  const rng = createRng(`order:${seed}:${epoch}`);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

interface Processed {
  ok: true;
  id: string;
  pixels: Float32Array;
  annotations: Annotation[];
  sourceAnnotations: Annotation[];
  transform?: LetterboxTransform;
}
interface Failed {
  ok: false;
  id: string;
  error: unknown;
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function letterboxAnnotations(annotations: Annotation[], t: LetterboxTransform): Annotation[] {
  const out: Annotation[] = [];
  for (const a of annotations) {
    const b = boxToNetwork(a.box, t);
    const box: typeof b = [
      Math.max(0, b[0]),
      Math.max(0, b[1]),
      Math.min(t.width, b[2]),
      Math.min(t.height, b[3]),
    ];
    if (box[2] > box[0] && box[3] > box[1]) out.push({ ...a, box });
  }
  return out;
}

function validate(ds: Dataset, opts: LoaderOptions): void {
  if (!ds || !Array.isArray(ds.samples))
    throw new TypeError(`'dataset' must be a Dataset with a 'samples' array`);
  if (!(Number.isInteger(opts.batchSize) && opts.batchSize >= 1))
    throw new RangeError(`'batchSize' must be an integer >= 1, got ${opts.batchSize}`);
  const p = opts.prefetch ?? 2;
  if (!(Number.isInteger(p) && p >= 0)) throw new RangeError(`'prefetch' must be an integer >= 0, got ${p}`);
  const { height, width } = opts.spec?.input ?? {};
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0))
    throw new RangeError(
      `'spec.input' must give a positive integer height and width, got ${height}x${width}`,
    );
}

class Loader<B extends TrainBatch> implements BatchLoader<B> {
  readonly steps: number;
  readonly skipped: SkipRecord[] = [];
  private readonly order: number[];
  private readonly queue: Promise<Processed | Failed>[] = [];
  private started = 0;
  private succeeded = 0;
  private firstError: unknown;
  private closed = false;
  private readonly H: number;
  private readonly W: number;
  private readonly prefetch: number;
  private readonly augment: AugmentOptions | undefined;

  constructor(
    private readonly ds: Dataset,
    private readonly opts: LoaderOptions,
    private readonly forEval: boolean,
  ) {
    validate(ds, opts);
    this.H = opts.spec.input.height;
    this.W = opts.spec.input.width;
    this.prefetch = opts.prefetch ?? 2;
    this.augment = opts.augment
      ? { resize: opts.spec.input.resize, ...(opts.augment === true ? {} : opts.augment) }
      : undefined;
    this.order = epochOrder(ds.samples.length, opts.seed ?? 0, opts.epoch ?? 0, opts.shuffle ?? true);
    this.steps = stepsPerEpoch(ds.samples.length, opts.batchSize, opts.dropLast ?? false);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private fill(limit: number): void {
    while (!this.closed && this.queue.length < limit && this.started < this.order.length) {
      this.queue.push(this.process(this.order[this.started++]));
    }
  }

  /** Loads and prepares one sample; never rejects. */
  private async process(index: number): Promise<Processed | Failed> {
    const s = this.ds.samples[index];
    try {
      const img = await s.load();
      await yieldToLoop();
      if (img.width !== s.width || img.height !== s.height) {
        throw new DataFormatError(
          'ERR_DATA_FORMAT',
          `decoded size ${img.width}x${img.height} differs from the labelled size ${s.width}x${s.height}`,
        );
      }
      const sourceAnnotations = s.annotations;
      let image;
      let annotations: Annotation[];
      let transform: LetterboxTransform | undefined;
      if (this.augment) {
        const rng = createRng(
          `augment:${this.opts.seed ?? 0}:${this.opts.augmentEpoch ?? this.opts.epoch ?? 0}:${index}`,
        );
        ({ image, annotations } = augmentSample(img, sourceAnnotations, this.H, this.W, rng, this.augment));
      } else {
        ({ image, transform } = letterbox(img, this.H, this.W, { mode: this.opts.spec.input.resize }));
        annotations = letterboxAnnotations(sourceAnnotations, transform);
      }
      const pixels = new Float32Array(this.H * this.W * 3);
      normalizeInto(image, this.opts.spec.input, pixels);
      return { ok: true, id: s.id, pixels, annotations, sourceAnnotations, transform };
    } catch (error) {
      return { ok: false, id: s.id, error };
    }
  }

  async next(): Promise<IteratorResult<B>> {
    if (this.closed) return { done: true, value: undefined };
    const bs = this.opts.batchSize;
    const items: Processed[] = [];
    while (items.length < bs) {
      this.fill((this.prefetch + 1) * bs);
      const head = this.queue.shift();
      if (!head) break;
      const r = await head;
      if (this.closed) return { done: true, value: undefined };
      if (r.ok) {
        items.push(r);
        this.succeeded++;
      } else {
        const reason = r.error instanceof Error ? r.error.message : String(r.error);
        this.firstError ??= r.error;
        this.skipped.push({ what: `sample '${r.id}'`, reason });
        this.opts.onSkip?.(`sample '${r.id}'`, reason);
      }
    }
    // Keep the next batches loading while the consumer works on this one.
    this.fill(this.prefetch * bs);
    if (items.length === 0 || (items.length < bs && (this.opts.dropLast ?? false))) {
      this.closed = true;
      if (this.succeeded === 0 && this.skipped.length > 0) {
        const why = this.firstError instanceof Error ? this.firstError.message : String(this.firstError);
        throw new DataFormatError(
          'ERR_DATA_FORMAT',
          `every sample of '${this.ds.name}' failed to load (${this.skipped.length} skipped); first: ${why}`,
          { cause: this.firstError },
        );
      }
      return { done: true, value: undefined };
    }
    return { done: false, value: this.assemble(items) };
  }

  private assemble(items: Processed[]): B {
    const n = items.length;
    const per = this.H * this.W * 3;
    const imagesNhwc = new Float32Array(n * per);
    items.forEach((it, i) => imagesNhwc.set(it.pixels, i * per));
    const batch: TrainBatch = {
      size: n,
      height: this.H,
      width: this.W,
      imagesNhwc,
      annotations: items.map((it) => it.annotations),
      ids: items.map((it) => it.id),
    };
    if (!this.forEval) return batch as B;
    const evalBatch: EvalBatch = {
      ...batch,
      transforms: items.map((it) => it.transform!),
      sourceAnnotations: items.map((it) => it.sourceAnnotations),
    };
    return evalBatch as unknown as B;
  }

  async return(): Promise<IteratorResult<B>> {
    // In-flight loads settle on their own (they never reject); nothing new starts.
    this.closed = true;
    this.queue.length = 0;
    return { done: true, value: undefined };
  }
}

/**
 * Iterates one epoch of training batches.
 * @returns an async iterator of {@link TrainBatch}: `imagesNhwc` is `[size, H, W, 3]` float32
 *   normalised as the spec says; annotations are in network-input pixels.
 * @throws {RangeError} for a bad `batchSize`, `prefetch` or spec input size.
 * @throws {DataFormatError} from `next()` only when every sample of the epoch failed to load.
 *
 * @example
 * ```ts
 * const loader = createLoader(dataset, { spec, batchSize: 16, seed: 0, epoch, augment: true });
 * for await (const batch of loader) trainStep(batch.imagesNhwc, batch.annotations);
 * ```
 */
export function createLoader(dataset: Dataset, opts: LoaderOptions): BatchLoader {
  return new Loader<TrainBatch>(dataset, opts, false);
}

/** Options of {@link evalBatches}. */
export interface EvalLoaderOptions {
  spec: Pick<ModelSpec, 'input'>;
  batchSize: number;
  /** Default 2. */
  prefetch?: number;
  onSkip?: (what: string, reason: string) => void;
}

/**
 * Iterates a dataset once, in order, letterboxed without augmentation. Each batch also carries
 * the per-image {@link LetterboxTransform} (map detections back with `boxToSource`) and the
 * annotations in source pixels, so metrics are computed in the source image's coordinates.
 */
export function evalBatches(dataset: Dataset, opts: EvalLoaderOptions): BatchLoader<EvalBatch> {
  return new Loader<EvalBatch>(
    dataset,
    {
      spec: opts.spec,
      batchSize: opts.batchSize,
      prefetch: opts.prefetch,
      onSkip: opts.onSkip,
      shuffle: false,
      augment: false,
    },
    true,
  );
}
