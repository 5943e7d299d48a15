import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrainConfigSchema } from '../../train/config.js';
import { openTrainingSet } from '../../train/datasets.js';
import { parseModelSpec } from '../../models/core/spec.js';
import { microSpec } from '../helpers/specs.js';

const spec = parseModelSpec(microSpec());
const mapping = { aliases: {} };

test('a list of training sources is one set: samples concatenated in order, ids kept unique', async () => {
  const a = { kind: 'synthetic' as const, count: 3, seed: 1 };
  const b = { kind: 'synthetic' as const, count: 2, seed: 1, width: 96, height: 64 };
  const set = await openTrainingSet([a, b], spec, mapping);
  assert.equal(set.samples.length, 5);
  // Same generator seed in both sources: the raw ids collide, the prefixed ones must not.
  assert.equal(new Set(set.samples.map((s) => s.id)).size, 5);
  assert.deepEqual(
    set.samples.map((s) => [s.width, s.height]),
    [
      [spec.input.width, spec.input.height],
      [spec.input.width, spec.input.height],
      [spec.input.width, spec.input.height],
      [96, 64],
      [96, 64],
    ],
  );
  const img = await set.samples[3].load();
  assert.equal(img.data.length, 96 * 64 * 3);
  const single = await openTrainingSet(a, spec, mapping);
  assert.deepEqual(
    single.samples.map((s) => s.annotations),
    set.samples.slice(0, 3).map((s) => s.annotations),
  );
});

test('the config accepts one source or a non-empty list of them', () => {
  const base = { model: 'm.json' };
  const one = TrainConfigSchema.parse({ ...base, data: { train: { kind: 'synthetic', count: 4 } } });
  assert.ok(!Array.isArray(one.data.train));
  const two = TrainConfigSchema.parse({
    ...base,
    data: {
      train: [
        { kind: 'synthetic', count: 4 },
        { kind: 'coco', annotations: 'x.json' },
      ],
    },
  });
  assert.ok(Array.isArray(two.data.train) && two.data.train.length === 2);
  assert.throws(() => TrainConfigSchema.parse({ ...base, data: { train: [] } }));
});
