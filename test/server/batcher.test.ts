/**
 * MicroBatcher with a fake run function: batch sizes, the wait window, splitting results back,
 * isolation of a bad item, the queue bound, aborts and close.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroBatcher, type BatcherOptions } from '../../server/batcher.js';
import { HttpError } from '../../server/http-error.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A run function that records its batches, doubles numbers, and can be held until released. */
function fakeRun(opts: { delayMs?: number; failOn?: (x: number) => boolean } = {}) {
  const batches: number[][] = [];
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => {};
  return {
    batches,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      open();
    },
    run: async (items: number[]) => {
      batches.push(items.slice());
      await gate;
      if (opts.delayMs) await sleep(opts.delayMs);
      if (opts.failOn && items.some(opts.failOn)) throw new Error(`bad item in [${items.join(',')}]`);
      return items.map((x) => x * 2);
    },
  };
}

function batcher(
  run: BatcherOptions<number, number>['run'],
  o: Partial<BatcherOptions<number, number>> = {},
) {
  return new MicroBatcher<number, number>({
    run,
    maxBatch: 4,
    maxWaitMs: 5,
    queueSize: 64,
    concurrency: 1,
    ...o,
  });
}

describe('MicroBatcher', () => {
  test('gathers concurrent submissions into batches of at most maxBatch and splits results back in order', async () => {
    const f = fakeRun();
    const sizes: number[] = [];
    const b = batcher(f.run, { maxBatch: 4, onBatch: (n) => sizes.push(n) });
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(() => i)));
    assert.deepEqual(
      out.map((o) => o.value),
      Array.from({ length: 10 }, (_, i) => i * 2),
    );
    assert.deepEqual(
      f.batches.map((x) => x.length),
      [4, 4, 2],
    );
    assert.deepEqual(sizes, [4, 4, 2]);
    assert.deepEqual(f.batches.flat(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(
      out.map((o) => o.batchSize),
      [4, 4, 4, 4, 4, 4, 4, 4, 2, 2],
    );
  });

  test('a partial batch waits for items still being prepared, at most maxWaitMs', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 8, maxWaitMs: 200 });
    const t0 = performance.now();
    // Item 2 is still decoding (20 ms) when item 1 is ready: item 1 waits for it.
    const p1 = b.submit(() => 1);
    const p2 = b.submit(() => sleep(20).then(() => 2));
    const [o1, o2] = await Promise.all([p1, p2]);
    const waited = performance.now() - t0;
    assert.deepEqual(f.batches, [[1, 2]], 'the item in preparation joined the waiting one');
    assert.ok(waited >= 18, `ran after ${waited.toFixed(1)} ms, before item 2 was ready`);
    assert.ok(o1.queueMs >= o2.queueMs, 'the first item waited longer');
  });

  test('the wait window caps how long a ready item waits for one in preparation', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 8, maxWaitMs: 60 });
    const t0 = performance.now();
    const p1 = b.submit(() => 1).then((o) => ({ ...o, at: performance.now() - t0 }));
    const p2 = b.submit(() => sleep(400).then(() => 2));
    const o1 = await p1;
    assert.ok(o1.at >= 55 && o1.at < 350, `item 1 ran after ${o1.at.toFixed(1)} ms (window 60 ms)`);
    await p2;
    assert.deepEqual(f.batches, [[1], [2]]);
  });

  test('a lone request runs at once: nothing in preparation, no wait window paid', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 8, maxWaitMs: 500 });
    const t0 = performance.now();
    const o = await b.submit(() => 1);
    const took = performance.now() - t0;
    assert.ok(took < 250, `took ${took.toFixed(1)} ms with a 500 ms window`);
    assert.equal(o.batchSize, 1);
  });

  test('runs a full batch at once, without waiting for the window', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 3, maxWaitMs: 10_000 });
    const t0 = performance.now();
    await Promise.all([1, 2, 3].map((x) => b.submit(() => x)));
    assert.ok(performance.now() - t0 < 2000);
    assert.deepEqual(f.batches, [[1, 2, 3]]);
  });

  test('maxBatch 1 runs every item alone (batching off)', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 1, maxWaitMs: 0 });
    await Promise.all([1, 2, 3].map((x) => b.submit(() => x)));
    assert.deepEqual(f.batches, [[1], [2], [3]]);
  });

  test('items accumulate while every slot is busy and leave as one batch when one frees', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 8, maxWaitMs: 0 });
    f.hold();
    const first = b.submit(() => 0);
    await sleep(5);
    const rest = [1, 2, 3, 4, 5].map((x) => b.submit(() => x));
    await sleep(5);
    assert.equal(b.depth, 5);
    f.release();
    await Promise.all([first, ...rest]);
    assert.deepEqual(f.batches, [[0], [1, 2, 3, 4, 5]]);
  });

  test('concurrency 2 runs two batches at once', async () => {
    let running = 0;
    let peak = 0;
    const b = batcher(
      async (items) => {
        running++;
        peak = Math.max(peak, running);
        await sleep(30);
        running--;
        return items;
      },
      { maxBatch: 2, maxWaitMs: 0, concurrency: 2 },
    );
    await Promise.all([1, 2, 3, 4, 5, 6].map((x) => b.submit(() => x)));
    assert.equal(peak, 2);
  });

  test('a failing item fails alone: its batch is retried item by item', async () => {
    const f = fakeRun({ failOn: (x) => x === 13 });
    const b = batcher(f.run, { maxBatch: 4, maxWaitMs: 20 });
    const results = await Promise.allSettled([10, 11, 13, 12].map((x) => b.submit(() => x)));
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value.value : null)),
      [20, 22, null, 24],
    );
    assert.match(String((results[2] as PromiseRejectedResult).reason), /bad item in \[13\]/);
    assert.deepEqual(f.batches, [[10, 11, 13, 12], [10], [11], [13], [12]]);
    assert.equal((results[0] as PromiseFulfilledResult<{ batchSize: number }>).value.batchSize, 1);
  });

  test('a failing prepare rejects only its own submission and never reaches a batch', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 4, maxWaitMs: 10 });
    const bad = b.submit(() => Promise.reject(new RangeError('corrupt')));
    const good = b.submit(() => 5);
    await assert.rejects(bad, { name: 'RangeError', message: 'corrupt' });
    assert.equal((await good).value, 10);
    assert.deepEqual(f.batches, [[5]]);
    assert.equal(b.depth, 0);
  });

  test('rejects beyond queueSize with 503 overloaded and Retry-After, and admits again once drained', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 1, maxWaitMs: 0, queueSize: 3 });
    f.hold();
    const running = b.submit(() => 0);
    await sleep(5);
    const queued = [1, 2, 3].map((x) => b.submit(() => x));
    await sleep(5);
    assert.equal(b.depth, 3);
    await assert.rejects(
      b.submit(() => 4),
      (e: unknown) => {
        assert.ok(e instanceof HttpError);
        assert.equal(e.status, 503);
        assert.equal(e.code, 'overloaded');
        assert.equal(e.headers['Retry-After'], '1');
        return true;
      },
    );
    f.release();
    await Promise.all([running, ...queued]);
    assert.equal((await b.submit(() => 5)).value, 10);
  });

  test('an aborted waiting item is dropped from the queue and rejects with the abort reason', async () => {
    const f = fakeRun();
    const b = batcher(f.run, { maxBatch: 1, maxWaitMs: 0 });
    f.hold();
    const running = b.submit(() => 0);
    await sleep(5);
    const ac = new AbortController();
    const dropped = b.submit(() => 1, ac.signal);
    const kept = b.submit(() => 2);
    await sleep(5);
    ac.abort(new HttpError(504, 'timeout', 'too slow'));
    await assert.rejects(dropped, { name: 'HttpError', code: 'timeout' });
    assert.equal(b.depth, 1);
    f.release();
    await Promise.all([running, kept]);
    assert.deepEqual(f.batches, [[0], [2]], 'item 1 never ran');
  });

  test('close() refuses new work with 503 shutting_down and waits for admitted work', async () => {
    const f = fakeRun({ delayMs: 20 });
    const b = batcher(f.run, { maxBatch: 2, maxWaitMs: 10_000 });
    const p = b.submit(() => 1);
    await sleep(5);
    let closed = false;
    const c = b.close().then(() => (closed = true));
    await assert.rejects(
      b.submit(() => 2),
      { name: 'HttpError', code: 'shutting_down' },
    );
    assert.equal((await p).value, 2, 'the waiting partial batch ran without its window');
    await c;
    assert.ok(closed);
    await b.close();
  });

  test('rejects bad options naming them', () => {
    assert.throws(() => batcher(async (x) => x, { maxBatch: 0 }), {
      name: 'RangeError',
      message: /'maxBatch'/,
    });
    assert.throws(() => batcher(async (x) => x, { maxWaitMs: -1 }), {
      name: 'RangeError',
      message: /'maxWaitMs'/,
    });
    assert.throws(() => batcher(async (x) => x, { queueSize: 1.5 }), {
      name: 'RangeError',
      message: /'queueSize'/,
    });
  });
});
