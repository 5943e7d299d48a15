import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orthonormalProjection } from '../../../train/distill/kd-runtime.js';

test('the frozen teacher projection has orthonormal columns and is the same for the same seed', () => {
  const c = 40;
  const k = 12;
  const p = orthonormalProjection(c, k, 'neck/2');
  for (let a = 0; a < k; a++)
    for (let b = 0; b < k; b++) {
      let d = 0;
      for (let i = 0; i < c; i++) d += p[i * k + a] * p[i * k + b];
      assert.ok(Math.abs(d - (a === b ? 1 : 0)) < 1e-5, `col ${a}.${b} = ${d}`);
    }
  assert.deepEqual(orthonormalProjection(c, k, 'neck/2'), p);
  assert.notDeepEqual(orthonormalProjection(c, k, 'neck/3'), p);
});

test('levels meet by stride; P2 comes from an upsampled stride-8 map; a teacher covering no level is an error', async () => {
  const { planLevels } = await import('../../../train/distill/kd-runtime.js');
  const centerNetLike = new Map([
    [8, 192],
    [16, 256],
  ]);
  const plan = planLevels(centerNetLike, true, 'neck', 't', 64);
  assert.deepEqual(
    plan.map((p) => [p.level, p.channels, p.synthetic]),
    [
      [2, 64, true],
      [3, 64, false],
      [4, 64, false],
    ],
  );
  assert.throws(
    () => planLevels(new Map([[64, 128]]), true, 'neck', 'odd-teacher', 0),
    (e: Error) => /odd-teacher/.test(e.message) && /64/.test(e.message),
  );
});
