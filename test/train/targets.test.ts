import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTargets, gaussianRadii } from '../../train/targets.js';

test('gaussianRadii follow the box shape (TTFNet, alpha 0.54)', () => {
  assert.deepEqual(gaussianRadii(2, 5), { rx: 0, ry: 1 }); // floor(0.54), floor(1.35)
  assert.deepEqual(gaussianRadii(4, 10), { rx: 1, ry: 2 }); // floor(1.08), floor(2.7)
  assert.deepEqual(gaussianRadii(0.5, 0.5), { rx: 0, ry: 0 });
});

test('puts a 1 at the centre cell with size and offset there', () => {
  // Box 16..80 x 8..72 in a 128x128 input, stride 4: centre (48, 40) px = cell (12, 10) exactly;
  // 16x16 cells gives radii floor(0.54 * 8) = 4, sigma = 9 / 6 = 1.5.
  const t = buildTargets([[{ box: [16, 8, 80, 72], classId: 0 }]], 128, 128, 4, 1);
  assert.equal(t.h, 32);
  assert.equal(t.numPos, 1);
  const cell = 10 * 32 + 12;
  assert.equal(t.heatmap[cell], 1);
  assert.equal(t.centerMask[cell], 1);
  assert.ok(Math.abs(t.size[cell * 2] - Math.log(16)) < 1e-6); // 64 px / 4
  assert.ok(Math.abs(t.offset[cell * 2]) < 1e-6);
  // Neighbours get exp(-d^2 / (2 sigma^2)): d = 1 -> exp(-1 / 4.5); the Gaussian ends at r = 4.
  assert.ok(Math.abs(t.heatmap[cell + 1] - Math.exp(-1 / 4.5)) < 1e-6);
  assert.ok(Math.abs(t.heatmap[cell + 4] - Math.exp(-16 / 4.5)) < 1e-6);
  assert.equal(t.heatmap[cell + 5], 0);
  // Centre mask is 1 at exactly one cell.
  assert.equal(
    t.centerMask.reduce((a, b) => a + b, 0),
    1,
  );
});

test('sub-cell offsets are the fractional centre', () => {
  const t = buildTargets([[{ box: [10, 10, 20, 30], classId: 0 }]], 64, 64, 4, 1);
  // centre (15, 20)/4 = (3.75, 5)
  const cell = 5 * 16 + 3;
  assert.equal(t.centerMask[cell], 1);
  assert.ok(Math.abs(t.offset[cell * 2] - 0.75) < 1e-6);
  assert.ok(Math.abs(t.offset[cell * 2 + 1] - 0) < 1e-6);
});

test('ignore regions zero the heatmap weight but not labelled centres', () => {
  const t = buildTargets(
    [
      [
        { box: [0, 0, 32, 32], classId: 0, ignore: true },
        { box: [8, 8, 16, 24], classId: 0 },
      ],
    ],
    64,
    64,
    4,
    1,
  );
  assert.equal(t.heatmapWeight[0], 0); // cell (0,0) inside the ignore box
  assert.equal(t.heatmapWeight[15 * 16 + 15], 1); // far corner
  const c = 4 * 16 + 3; // centre (12, 16)/4 = (3, 4)
  assert.equal(t.centerMask[c], 1);
  assert.equal(t.heatmapWeight[c], 1);
  assert.equal(t.numPos, 1);
});

test('rejects a class id outside the heatmap, naming it', () => {
  assert.throws(() => buildTargets([[{ box: [0, 0, 8, 8], classId: 3 }]], 64, 64, 4, 2), {
    name: 'RangeError',
    message: /'classId'/,
  });
});

test('GIoU regression targets cover the Gaussian area with weights summing to log(area)', () => {
  const box: [number, number, number, number] = [16, 8, 80, 72];
  const t = buildTargets([[{ box, classId: 0 }]], 128, 128, 4, 1);
  let sum = 0;
  let cells = 0;
  for (let i = 0; i < t.regWeight.length; i++) {
    if (t.regWeight[i] > 0) {
      cells++;
      sum += t.regWeight[i];
      assert.deepEqual(Array.from(t.boxTarget.subarray(i * 4, i * 4 + 4)), [4, 2, 20, 18]);
    }
  }
  assert.equal(cells, 9 * 9); // radii 4 in both axes
  assert.ok(Math.abs(sum - Math.log(64 * 64)) < 1e-4);
  assert.ok(Math.abs(t.regWeightSum - sum) < 1e-4);
  // Cells outside any object keep a valid dummy box (GIoU stays finite) with weight 0.
  assert.deepEqual(Array.from(t.boxTarget.subarray(0, 4)), [0, 0, 1, 1]);
});

test('a smaller object takes over the regression cells it shares with a larger one', () => {
  const big: [number, number, number, number] = [0, 0, 64, 64];
  const small: [number, number, number, number] = [24, 24, 40, 40];
  const t = buildTargets(
    [
      [
        { box: small, classId: 0 },
        { box: big, classId: 0 },
      ],
    ],
    64,
    64,
    4,
    1,
  );
  const c = 8 * 16 + 8; // both centres are cell (8, 8)
  assert.deepEqual(Array.from(t.boxTarget.subarray(c * 4, c * 4 + 4)), [6, 6, 10, 10]);
});
