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
