/**
 * Micro-batching of concurrent requests into one model run.
 *
 * A submission is first *prepared* (for images: decode + letterbox, which runs on sharp's thread
 * pool and fails per request, so a corrupt image never reaches a batch), then waits in a FIFO
 * until a run slot is free. A free slot takes up to `maxBatch` waiting items at once; a partial
 * batch is held back for at most `maxWaitMs` after its oldest item became ready, in case more
 * arrive — only while other items are still being prepared, so a lone request runs at once. While every slot is busy items simply accumulate, so under load batches fill up on their
 * own and the wait window costs nothing.
 *
 * Admission is bounded: items being prepared or waiting count against `queueSize`; one more is
 * refused with 503 `overloaded` (Retry-After) instead of growing memory and latency without
 * limit. Items already in a running batch do not count.
 */
import { HttpError } from './http-error.js';

export interface BatcherOptions<I, O> {
  /** Runs one batch; must return one output per item, in order. */
  run: (items: I[]) => Promise<O[]>;
  /** Items per run at most (1 = no batching). */
  maxBatch: number;
  /** How long a partial batch may wait for more items once a slot is free, ms (0: never waits). */
  maxWaitMs: number;
  /** Items being prepared or waiting at most; the next one is refused (503 overloaded). */
  queueSize: number;
  /** Batches running at once (one per session worker). */
  concurrency: number;
  /** Called with the size of each batch handed to `run` (metrics). */
  onBatch?: (size: number) => void;
}

/** What a submission resolves to. */
export interface BatchOutcome<O> {
  value: O;
  /** Items in the run that produced `value` (1 after an isolating retry). */
  batchSize: number;
  /** Time from ready (prepared) to the start of its run, ms. */
  queueMs: number;
}

interface Waiting<I, O> {
  item: I;
  readyAt: number;
  resolve: (o: BatchOutcome<O>) => void;
  reject: (e: unknown) => void;
  detach: () => void;
}

// The caller aborts with its own reason (an HttpError for a timeout); a bare abort() gives
// the platform's AbortError.
const abortReason = (signal: AbortSignal): unknown => signal.reason;

/** See the file comment. `close()` refuses new work and waits for admitted work to finish. */
export class MicroBatcher<I, O> {
  private readonly waiting: Waiting<I, O>[] = [];
  private preparing = 0;
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: BatcherOptions<I, O>) {
    for (const k of ['maxBatch', 'queueSize', 'concurrency'] as const)
      if (!(Number.isInteger(opts[k]) && opts[k] >= 1))
        throw new RangeError(`'${k}' must be an integer >= 1, got ${opts[k]}`);
    if (!(Number.isFinite(opts.maxWaitMs) && opts.maxWaitMs >= 0))
      throw new RangeError(`'maxWaitMs' must be a number >= 0, got ${opts.maxWaitMs}`);
  }

  /** Items being prepared or waiting for a run (the queue-depth gauge). */
  get depth(): number {
    return this.preparing + this.waiting.length;
  }

  /** Batches running now. */
  get inFlight(): number {
    return this.running;
  }

  /**
   * Admits one item: `prepare` runs now, then the item joins the next batch.
   * @param prepare - produces the item (its rejection rejects only this submission)
   * @param signal - aborting drops the item if it has not started running (client gone,
   *   timeout); the promise then rejects with the signal's reason
   * @returns the item's output, with the batch size and time spent waiting
   * @throws {HttpError} 503 `overloaded` (Retry-After) when `queueSize` items are admitted,
   *   503 `shutting_down` after {@link close}
   */
  async submit(prepare: () => I | Promise<I>, signal?: AbortSignal): Promise<BatchOutcome<O>> {
    if (this.closed)
      throw new HttpError(503, 'shutting_down', 'the server is shutting down', {
        headers: { 'Retry-After': '1' },
      });
    if (this.depth >= this.opts.queueSize)
      throw new HttpError(
        503,
        'overloaded',
        `the server is busy (${this.depth} requests queued, limit ${this.opts.queueSize}); retry later`,
        { headers: { 'Retry-After': '1' } },
      );
    if (signal?.aborted) throw abortReason(signal);
    this.preparing++;
    let item: I;
    try {
      item = await prepare();
    } finally {
      this.preparing--;
    }
    // Leaving `preparing` may have made the batcher idle (a failed prepare) or let a waiting
    // partial batch go; either way re-evaluate.
    if (signal?.aborted) {
      this.pump();
      throw abortReason(signal);
    }
    return new Promise<BatchOutcome<O>>((resolve, reject) => {
      const w: Waiting<I, O> = { item, readyAt: performance.now(), resolve, reject, detach: () => {} };
      if (signal) {
        const onAbort = () => {
          const i = this.waiting.indexOf(w);
          if (i >= 0) {
            this.waiting.splice(i, 1);
            reject(abortReason(signal));
            this.pump();
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        w.detach = () => signal.removeEventListener('abort', onAbort);
      }
      this.waiting.push(w);
      this.pump();
    }).finally(() => this.pump());
  }

  /** Starts as many batches as slots and the wait window allow. */
  private pump(): void {
    while (this.running < this.opts.concurrency && this.waiting.length > 0) {
      const full = this.waiting.length >= this.opts.maxBatch;
      const waited = performance.now() - this.waiting[0].readyAt;
      // Wait only for items already on their way (being decoded now): with nothing in preparation
      // a lone request would just pay the whole window (+5 ms at concurrency 1, measured), and under
      // load the items that fill a batch are exactly the ones being prepared.
      const moreComing = this.preparing > 0;
      if (!full && waited < this.opts.maxWaitMs && moreComing) {
        if (!this.timer)
          this.timer = setTimeout(
            () => {
              this.timer = undefined;
              this.pump();
            },
            Math.max(0, this.opts.maxWaitMs - waited),
          );
        return;
      }
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      const batch = this.waiting.splice(0, this.opts.maxBatch);
      this.running++;
      void this.runBatch(batch).finally(() => {
        this.running--;
        this.pump();
        this.notifyIdle();
      });
    }
    this.notifyIdle();
  }

  private async runBatch(batch: Waiting<I, O>[]): Promise<void> {
    const start = performance.now();
    for (const w of batch) w.detach();
    const settle = (w: Waiting<I, O>, value: O, size: number) =>
      w.resolve({ value, batchSize: size, queueMs: start - w.readyAt });
    try {
      const out = await this.call(batch.map((w) => w.item));
      batch.forEach((w, i) => settle(w, out[i], batch.length));
    } catch (e) {
      if (batch.length === 1) {
        batch[0].reject(e);
        return;
      }
      // One bad item must not fail its neighbours: run each alone so only it gets the error.
      for (const w of batch) {
        try {
          const [o] = await this.call([w.item]);
          settle(w, o, 1);
        } catch (e1) {
          w.reject(e1);
        }
      }
    }
  }

  private async call(items: I[]): Promise<O[]> {
    this.opts.onBatch?.(items.length);
    const out = await this.opts.run(items);
    if (!Array.isArray(out) || out.length !== items.length)
      throw new Error(
        `batch run returned ${Array.isArray(out) ? out.length : typeof out} outputs for ${items.length} items`,
      );
    return out;
  }

  private notifyIdle(): void {
    if (this.running === 0 && this.depth === 0 && this.idleWaiters.length) {
      for (const f of this.idleWaiters.splice(0)) f();
    }
  }

  /** Resolves once nothing is being prepared, waiting or running. */
  idle(): Promise<void> {
    if (this.running === 0 && this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Refuses new submissions (503 `shutting_down`), flushes waiting items without the wait window
   * and resolves when all admitted work has finished. Safe to call twice.
   */
  close(): Promise<void> {
    this.closed = true;
    this.pump();
    return this.idle();
  }
}
