/**
 * The bounded queue between pipeline stages. One producer, one consumer. Three ways in:
 * `offer` (never waits, reports "full" so the producer can pause its source: file mode's
 * backpressure), `offerDropOldest` (live mode: a new frame evicts the stalest one) and `put`
 * (waits for room: the hand-over from inference to the sinks).
 */

/** A bounded FIFO with async take and room notifications. */
export class BoundedQueue<T> {
  private items: T[] = [];
  private closed = false;
  private takers: (() => void)[] = [];
  private roomWaiters: (() => void)[] = [];
  private lowWaterHandlers: (() => void)[] = [];
  /** Most items held at once (a gauge for stats). */
  peak = 0;

  /**
   * @param capacity - items held before `offer` reports full and `put` waits (>= 1)
   * @param lowWater - `onLowWater` handlers run when a take leaves at most this many items
   * @throws {RangeError} when `capacity` is not a positive integer
   */
  constructor(
    readonly capacity: number,
    readonly lowWater = Math.floor(capacity / 2),
  ) {
    if (!(Number.isInteger(capacity) && capacity >= 1))
      throw new RangeError(`'capacity' must be an integer >= 1, got ${capacity}`);
  }

  get size(): number {
    return this.items.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private added(): void {
    if (this.items.length > this.peak) this.peak = this.items.length;
    const t = this.takers.shift();
    t?.();
  }

  /**
   * Appends without waiting (the queue may go past capacity by what a producer had in hand).
   * @returns false when the queue is now at or over capacity: the producer should pause
   */
  offer(item: T): boolean {
    if (this.closed) return false;
    this.items.push(item);
    this.added();
    return this.items.length < this.capacity;
  }

  /**
   * Appends; when the queue is full, first evicts the oldest item.
   * @returns the evicted item, if any
   */
  offerDropOldest(item: T): T | undefined {
    if (this.closed) return item;
    let dropped: T | undefined;
    if (this.items.length >= this.capacity) dropped = this.items.shift();
    this.items.push(item);
    this.added();
    return dropped;
  }

  /** Appends once there is room; resolves false if the queue was closed instead. */
  async put(item: T): Promise<boolean> {
    while (!this.closed && this.items.length >= this.capacity)
      await new Promise<void>((r) => this.roomWaiters.push(r));
    if (this.closed) return false;
    this.items.push(item);
    this.added();
    return true;
  }

  /**
   * Takes between 1 and `max` items, waiting while the queue is empty. Takes whatever is there
   * (up to `max`): a batch is never held back to fill up.
   * @returns the items, or [] once the queue is closed and empty
   */
  async take(max = 1): Promise<T[]> {
    while (this.items.length === 0 && !this.closed) await new Promise<void>((r) => this.takers.push(r));
    const out = this.items.splice(0, Math.max(1, max));
    if (out.length) {
      for (const w of this.roomWaiters.splice(0)) w();
      if (this.items.length <= this.lowWater) for (const h of this.lowWaterHandlers) h();
    }
    return out;
  }

  /** Runs `fn` each time a take leaves at most `lowWater` items (resume a paused producer). */
  onLowWater(fn: () => void): void {
    this.lowWaterHandlers.push(fn);
  }

  /** Removes and returns everything queued (e.g. to release frames on shutdown). */
  drain(): T[] {
    const out = this.items;
    this.items = [];
    for (const w of this.roomWaiters.splice(0)) w();
    return out;
  }

  /** No more items will come: takers get what is left, then []. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.takers.splice(0)) t();
    for (const w of this.roomWaiters.splice(0)) w();
  }
}
