import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Float16Array } from '@petamoriken/float16';
import {
  decodeCacheEntry,
  encodeCacheEntry,
  TeacherCache,
  toHalfBits,
} from '../../../train/teachers/cache.js';

test('float16 conversion matches the reference implementation bit for bit (rounding, subnormals, overflow)', () => {
  const values = new Float32Array([
    0,
    -0,
    1,
    -1,
    0.1,
    1 / 3,
    65504,
    65520,
    1e6,
    -1e6,
    6.1e-5,
    5.96e-8,
    2.98e-8,
    1e-9,
    2049,
    2051,
    NaN,
    Infinity,
  ]);
  const rnd = new Float32Array(2000).map((_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 12) - 6));
  for (const src of [values, rnd]) {
    const got = new Uint16Array(src.length);
    toHalfBits(src, got);
    const ref = new Uint16Array(new Float16Array(src).buffer);
    for (let i = 0; i < src.length; i++) {
      if (Number.isNaN(src[i])) assert.equal(got[i] & 0x7c00, 0x7c00);
      else
        assert.equal(got[i], ref[i], `value ${src[i]}: 0x${got[i].toString(16)} vs 0x${ref[i].toString(16)}`);
    }
  }
});

test('an entry round-trips within float16 precision, and decodes only the requested maps', () => {
  const a = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => (i - 10) * 0.37);
  const b = Float32Array.from({ length: 5 }, (_, i) => i / 7);
  const buf = encodeCacheEntry([
    { name: 'neck/2', shape: [2, 3, 4], data: a },
    { name: 'head', shape: [1, 5, 1], data: b },
  ]);
  const maps = decodeCacheEntry(buf, 'mem');
  assert.deepEqual(
    maps.map((m) => [m.name, m.shape]),
    [
      ['neck/2', [2, 3, 4]],
      ['head', [1, 5, 1]],
    ],
  );
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(maps[0].data[i] - a[i]) <= Math.abs(a[i]) * 1e-3);
  assert.deepEqual(
    decodeCacheEntry(buf, 'mem', new Set(['head'])).map((m) => m.name),
    ['head'],
  );
});

test('the cache misses on absent, corrupt or incomplete entries and hits otherwise', () => {
  const c = new TeacherCache(mkdtempSync(join(tmpdir(), 'edgekd-cache-')), 'edgekd:abc/def');
  assert.equal(c.get('k1'), undefined);
  c.put('k1', [{ name: 'head', shape: [1, 1, 1], data: new Float32Array([0.5]) }]);
  assert.equal(c.get('k1')?.[0].data[0], 0.5);
  assert.equal(c.get('k1', new Set(['head', 'neck/2'])), undefined, 'missing map -> miss');
  const file = readdirSync(c.dir)[0];
  writeFileSync(join(c.dir, file), 'garbage');
  assert.equal(c.get('k1'), undefined);
  assert.deepEqual([c.hits, c.misses], [1, 3]);
});
