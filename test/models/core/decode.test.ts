import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCenterNet } from '../../../models/core/decode.js';

function maps(h: number, w: number, C: number) {
  return {
    heatmap: new Float32Array(h * w * C),
    size: new Float32Array(h * w * 2),
    offset: new Float32Array(h * w * 2),
    h,
    w,
    numClasses: C,
  };
}

test('decodes a peak into a box in input pixels', () => {
  const m = maps(4, 4, 1);
  const idx = 1 * 4 + 2; // y=1, x=2
  m.heatmap[idx] = 0.9;
  m.offset[idx * 2] = 0.5; // cx = (2 + 0.5) * 4 = 10
  m.offset[idx * 2 + 1] = 0.25; // cy = (1 + 0.25) * 4 = 5
  m.size[idx * 2] = Math.log(2); // w = 2 * 4 = 8
  m.size[idx * 2 + 1] = Math.log(4); // h = 16
  const d = decodeCenterNet(m, { stride: 4, topK: 10, scoreThreshold: 0.1, poolSize: 3 });
  assert.equal(d.length, 1);
  assert.equal(d[0].classId, 0);
  assert.ok(Math.abs(d[0].score - 0.9) < 1e-6);
  const expected = [6, -3, 14, 13];
  d[0].box.forEach((v, i) =>
    assert.ok(Math.abs(v - expected[i]) < 1e-5, `box[${i}] = ${v}, want ${expected[i]}`),
  );
});

test('suppresses non-maximum neighbours and keeps separated peaks, best first', () => {
  const m = maps(5, 5, 2);
  m.heatmap[(0 * 5 + 0) * 2 + 0] = 0.5;
  m.heatmap[(0 * 5 + 1) * 2 + 0] = 0.8; // neighbour of (0,0): (0,0) is suppressed
  m.heatmap[(4 * 5 + 4) * 2 + 1] = 0.6; // class 1, far away
  m.heatmap[(0 * 5 + 0) * 2 + 1] = 0.7; // class 1 at (0,0): its own channel, kept
  const d = decodeCenterNet(m, { stride: 4, topK: 10, scoreThreshold: 0.1, poolSize: 3 });
  assert.deepEqual(
    d.map((x) => [x.score.toFixed(1), x.classId]),
    [
      ['0.8', 0],
      ['0.7', 1],
      ['0.6', 1],
    ],
  );
});

test('applies scoreThreshold and topK', () => {
  const m = maps(1, 9, 1);
  [0.2, 0, 0.9, 0, 0.5, 0, 0.35, 0, 0.05].forEach((v, i) => (m.heatmap[i] = v));
  const d = decodeCenterNet(m, { stride: 4, topK: 2, scoreThreshold: 0.1, poolSize: 1 });
  assert.deepEqual(
    d.map((x) => Number(x.score.toFixed(2))),
    [0.9, 0.5],
  );
  const all = decodeCenterNet(m, { stride: 4, topK: 100, scoreThreshold: 0.3, poolSize: 1 });
  assert.equal(all.length, 3);
});

test('rejects mis-sized inputs naming the parameter', () => {
  const m = maps(2, 2, 1);
  assert.throws(
    () =>
      decodeCenterNet(
        { ...m, heatmap: new Float32Array(3) },
        { stride: 4, topK: 1, scoreThreshold: 0, poolSize: 3 },
      ),
    {
      name: 'RangeError',
      message: /'heatmap'/,
    },
  );
  assert.throws(() => decodeCenterNet(m, { stride: 4, topK: 1, scoreThreshold: 0, poolSize: 2 }), {
    name: 'RangeError',
    message: /'poolSize'/,
  });
});

test('nhwcToNchw moves channels in front of the spatial axes', async () => {
  const { nhwcToNchw } = await import('../../../models/core/layout.js');
  // n=1, h=1, w=2, c=3: pixels (1,2,3) and (4,5,6) -> channel planes [1,4], [2,5], [3,6]
  assert.deepEqual(
    Array.from(nhwcToNchw(Float32Array.from([1, 2, 3, 4, 5, 6]), 1, 1, 2)),
    [1, 4, 2, 5, 3, 6],
  );
  assert.throws(() => nhwcToNchw(new Float32Array(5), 1, 1, 2), { name: 'RangeError', message: /'nhwc'/ });
});
