import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import type { Annotation } from '../../../models/core/detection.js';
import type { ModelSpec } from '../../../models/core/spec.js';
import { boxToSource } from '../../../train/data/image.js';
import { createLoader, evalBatches } from '../../../train/data/loader.js';
import { syntheticDataset } from '../../../train/data/synthetic.js';
import type { Dataset, RgbImage, Sample, TrainBatch } from '../../../train/data/types.js';

type Input = ModelSpec['input'];
const input = (over: Partial<Input> = {}): Pick<ModelSpec, 'input'> => ({
  input: {
    height: 32,
    width: 32,
    channelOrder: 'rgb',
    normalization: { kind: 'unit' },
    resize: 'letterbox',
    ...over,
  },
});

function solid(width: number, height: number, rgb: [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let q = 0; q < data.length; q += 3) data.set(rgb, q);
  return { data, width, height };
}

/** n samples of solid colours; `fail` ids throw on load; `delayMs` makes loads slow. */
function fakeDataset(
  n: number,
  opts: {
    width?: number;
    height?: number;
    fail?: number[];
    delayMs?: number;
    annotations?: Annotation[];
    onLoad?: (delta: number) => void;
  } = {},
): Dataset {
  const w = opts.width ?? 32;
  const h = opts.height ?? 32;
  const samples: Sample[] = Array.from({ length: n }, (_, i) => ({
    id: `s${i}`,
    width: w,
    height: h,
    annotations: opts.annotations ?? [{ box: [4, 4, 12, 28], classId: 0 }],
    load: async () => {
      opts.onLoad?.(1);
      try {
        if (opts.delayMs) await sleep(opts.delayMs);
        if (opts.fail?.includes(i)) throw new Error(`cannot decode s${i}`);
        return solid(w, h, [i, 2 * i, 3 * i]);
      } finally {
        opts.onLoad?.(-1);
      }
    },
  }));
  return { name: 'fake', classes: ['person'], samples, skipped: [] };
}

async function collect<B extends TrainBatch>(it: AsyncIterable<B>): Promise<B[]> {
  const out: B[] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('createLoader', () => {
  test('yields NHWC float batches of the right shape, last batch kept or dropped', async () => {
    const ds = fakeDataset(5);
    const loader = createLoader(ds, { spec: input(), batchSize: 2, shuffle: false });
    assert.equal(loader.steps, 3);
    const batches = await collect(loader);
    assert.deepEqual(
      batches.map((b) => b.size),
      [2, 2, 1],
    );
    for (const b of batches) {
      assert.equal(b.imagesNhwc.length, b.size * 32 * 32 * 3);
      assert.deepEqual([b.height, b.width, b.ids.length, b.annotations.length], [32, 32, b.size, b.size]);
    }
    assert.deepEqual(
      batches.flatMap((b) => b.ids),
      ['s0', 's1', 's2', 's3', 's4'],
    );
    const dropped = await collect(
      createLoader(ds, { spec: input(), batchSize: 2, shuffle: false, dropLast: true }),
    );
    assert.deepEqual(
      dropped.map((b) => b.size),
      [2, 2],
    );
  });

  test('normalises and orders channels as the spec says', async () => {
    const ds = fakeDataset(4);
    const px = (b: TrainBatch, i: number) => [...b.imagesNhwc.subarray(i * 32 * 32 * 3, i * 32 * 32 * 3 + 3)];
    const [unit] = await collect(createLoader(ds, { spec: input(), batchSize: 4, shuffle: false }));
    assert.deepEqual(px(unit, 3), [3 / 255, 6 / 255, 9 / 255].map(Math.fround));
    const [bgr] = await collect(
      createLoader(ds, {
        spec: input({ channelOrder: 'bgr', normalization: { kind: 'raw' } }),
        batchSize: 4,
        shuffle: false,
      }),
    );
    assert.deepEqual(px(bgr, 3), [9, 6, 3]);
    const ms = input({ normalization: { kind: 'meanstd', mean: [1, 2, 3], std: [2, 4, 8] } });
    const [mstd] = await collect(createLoader(ds, { spec: ms, batchSize: 4, shuffle: false }));
    assert.deepEqual(px(mstd, 3), [(3 - 1) / 2, (6 - 2) / 4, (9 - 3) / 8]);
  });

  test('letterboxes boxes into network pixels when not augmenting', async () => {
    const ds = fakeDataset(1, {
      width: 64,
      height: 32,
      annotations: [{ box: [8, 4, 24, 28], classId: 0, ignore: true }],
    });
    const [b] = await collect(createLoader(ds, { spec: input(), batchSize: 1 }));
    // 64x32 -> 32x16, padded 8 px top.
    assert.deepEqual(b.annotations[0], [{ box: [4, 10, 12, 22], classId: 0, ignore: true }]);
    assert.equal(b.imagesNhwc[0], Math.fround(114 / 255));
  });

  test('is deterministic for (seed, epoch) with augmentation, and reshuffles per epoch', async () => {
    const ds = syntheticDataset({ count: 12, width: 64, height: 48, seed: 1 });
    const run = (epoch: number) =>
      collect(createLoader(ds, { spec: input(), batchSize: 4, seed: 7, epoch, augment: true }));
    const [a, b, c] = await Promise.all([run(0), run(0), run(1)]);
    assert.deepEqual(
      a.map((x) => x.ids),
      b.map((x) => x.ids),
    );
    a.forEach((x, i) => {
      assert.deepEqual(x.annotations, b[i].annotations);
      assert.ok(Buffer.from(x.imagesNhwc.buffer).equals(Buffer.from(b[i].imagesNhwc.buffer)));
    });
    assert.notDeepEqual(
      a.map((x) => x.ids),
      c.map((x) => x.ids),
    );
    assert.deepEqual(a.flatMap((x) => x.ids).sort(), ds.samples.map((s) => s.id).sort());
  });

  test('skips a sample that fails to load, reports it and refills the batch', async () => {
    const skipped: [string, string][] = [];
    const ds = fakeDataset(5, { fail: [1] });
    const loader = createLoader(ds, {
      spec: input(),
      batchSize: 2,
      shuffle: false,
      onSkip: (what, reason) => skipped.push([what, reason]),
    });
    const batches = await collect(loader);
    assert.deepEqual(
      batches.map((b) => b.ids),
      [
        ['s0', 's2'],
        ['s3', 's4'],
      ],
    );
    assert.deepEqual(skipped, [["sample 's1'", 'cannot decode s1']]);
    assert.equal(loader.skipped.length, 1);
  });

  test('rejects when every sample fails, with the first error', async () => {
    const ds = fakeDataset(3, { fail: [0, 1, 2] });
    await assert.rejects(collect(createLoader(ds, { spec: input(), batchSize: 2, onSkip: () => {} })), {
      name: 'DataFormatError',
      code: 'ERR_DATA_FORMAT',
      message: /every sample of 'fake' failed to load \(3 skipped\); first: cannot decode/,
    });
  });

  test('rejects bad options naming them', () => {
    assert.throws(() => createLoader(fakeDataset(1), { spec: input(), batchSize: 0 }), {
      name: 'RangeError',
      message: /'batchSize'/,
    });
    assert.throws(() => createLoader(fakeDataset(1), { spec: input(), batchSize: 1, prefetch: -1 }), {
      name: 'RangeError',
      message: /'prefetch'/,
    });
  });

  test('prefetches: loading overlaps the consumer, within a bounded window', async () => {
    const delay = 40;
    let inFlight = 0;
    let maxInFlight = 0;
    const onLoad = (d: number) => {
      inFlight += d;
      maxInFlight = Math.max(maxInFlight, inFlight);
    };
    const time = async (prefetch: number) => {
      const ds = fakeDataset(12, { delayMs: delay, onLoad });
      const t0 = performance.now();
      for await (const _ of createLoader(ds, { spec: input(), batchSize: 2, shuffle: false, prefetch }))
        await sleep(delay); // the "training step"
      return performance.now() - t0;
    };
    const serial = 12 * delay + 6 * delay;
    const none = await time(0);
    maxInFlight = 0;
    const two = await time(2);
    assert.ok(maxInFlight <= 3 * 2, `${maxInFlight} loads in flight`);
    assert.ok(two < 0.6 * serial, `prefetch 2 took ${two.toFixed(0)} ms; serial would be ${serial} ms`);
    assert.ok(two < none, `prefetch 2: ${two.toFixed(0)} ms, prefetch 0: ${none.toFixed(0)} ms`);
  });

  test('stops cleanly when the consumer breaks out', async () => {
    const ds = fakeDataset(10, { delayMs: 5 });
    let n = 0;
    for await (const _ of createLoader(ds, { spec: input(), batchSize: 2 })) if (++n === 2) break;
    assert.equal(n, 2);
  });

  test('throughput on synthetic 320x320 with augmentation', async (t) => {
    const ds = syntheticDataset({ count: 48, width: 320, height: 320, seed: 2 });
    const t0 = performance.now();
    let images = 0;
    for await (const b of createLoader(ds, {
      spec: input({ height: 320, width: 320 }),
      batchSize: 16,
      augment: true,
      seed: 1,
    }))
      images += b.size;
    const s = (performance.now() - t0) / 1000;
    t.diagnostic(
      `loader: ${(images / s).toFixed(0)} images/s (synthetic render + augment + normalise, 320x320)`,
    );
    assert.equal(images, 48);
  });
});

describe('evalBatches', () => {
  test('returns transforms that map network boxes back to source pixels', async () => {
    const anns: Annotation[] = [{ box: [10, 6, 30, 26], classId: 0 }];
    const ds = fakeDataset(3, { width: 64, height: 40, annotations: anns });
    const batches = await collect(evalBatches(ds, { spec: input(), batchSize: 2 }));
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['s0', 's1'], ['s2']],
    );
    const b = batches[0];
    assert.equal(b.transforms.length, 2);
    assert.deepEqual(b.sourceAnnotations[0], anns);
    const back = boxToSource(b.annotations[0][0].box, b.transforms[0]);
    back.forEach((v, i) => assert.ok(Math.abs(v - anns[0].box[i]) < 1e-9));
  });
});
