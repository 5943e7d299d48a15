import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Annotation } from '../../../models/core/detection.js';
import { augmentSample, transformAnnotations } from '../../../train/data/augment.js';
import { createRng } from '../../../train/data/rng.js';
import type { RgbImage } from '../../../train/data/types.js';
import { brightBounds } from '../../fixtures/make-data-fixtures.js';

function whiteRectOnBlack(w: number, h: number, r: [number, number, number, number]): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = r[1]; y < r[3]; y++)
    for (let x = r[0]; x < r[2]; x++) data.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return { data, width: w, height: h };
}

describe('augmentSample', () => {
  test('keeps the box on the object through zoom, crop, pad and flip', () => {
    const rect: [number, number, number, number] = [40, 20, 70, 80];
    const img = whiteRectOnBlack(120, 90, rect);
    const anns: Annotation[] = [{ box: rect, classId: 0, trackId: 9 }];
    let flips = 0;
    let kept = 0;
    for (let seed = 0; seed < 60; seed++) {
      const r = augmentSample(img, anns, 64, 96, createRng(seed), { scale: [0.5, 2.5] });
      assert.deepEqual([r.image.width, r.image.height], [96, 64]);
      if (r.transform.flipX) flips++;
      const bright = brightBounds(r.image, 130); // above the 114 padding, below jittered white (>= ~150)
      if (r.annotations.length === 0) {
        // Dropped only when (almost) nothing of it is left in view.
        if (bright) {
          const area = (bright[2] - bright[0]) * (bright[3] - bright[1]);
          const full = (rect[2] - rect[0]) * (rect[3] - rect[1]) * r.transform.scaleX * r.transform.scaleY;
          assert.ok(
            area / full < 0.32 || bright[2] - bright[0] < 3 || bright[3] - bright[1] < 3,
            `seed ${seed}: dropped a box with ${area / full} visible`,
          );
        }
        continue;
      }
      kept++;
      assert.equal(r.annotations.length, 1);
      assert.equal(r.annotations[0].trackId, 9);
      assert.ok(bright, `seed ${seed}: box kept but object not visible`);
      const box = r.annotations[0].box;
      for (let i = 0; i < 4; i++)
        assert.ok(
          Math.abs(box[i] - bright[i]) <= 1.5,
          `seed ${seed} flip=${r.transform.flipX}: box ${box.map((v) => v.toFixed(2))} vs pixels ${bright}`,
        );
    }
    assert.ok(flips > 10 && flips < 50, `${flips} flips`);
    assert.ok(kept > 30, `${kept} kept`);
  });

  test('is deterministic for a given rng seed', () => {
    const img = whiteRectOnBlack(50, 40, [10, 10, 20, 30]);
    const a = augmentSample(img, [{ box: [10, 10, 20, 30], classId: 0 }], 32, 32, createRng('s'));
    const b = augmentSample(img, [{ box: [10, 10, 20, 30], classId: 0 }], 32, 32, createRng('s'));
    assert.ok(Buffer.from(a.image.data).equals(Buffer.from(b.image.data)));
    assert.deepEqual(a.annotations, b.annotations);
  });

  test('leaves padding at 114 and jitters only the image area', () => {
    const img = { data: new Uint8Array(40 * 40 * 3).fill(100), width: 40, height: 40 };
    const r = augmentSample(img, [], 80, 80, createRng(1), {
      scale: [0.5, 0.5],
      flipProb: 0,
      brightness: 0.5,
      contrast: 0,
      saturation: 0,
      hue: 0,
    });
    const { offsetX, offsetY } = r.transform;
    assert.deepEqual(
      [...r.image.data.subarray(0, 3)],
      offsetX > 0 || offsetY > 0 ? [114, 114, 114] : [...r.image.data.subarray(0, 3)],
    );
    const inside = r.image.data[((offsetY + 20) * 80 + offsetX + 20) * 3];
    assert.ok(inside >= 50 && inside <= 150 && inside !== 100, `jittered value ${inside}`);
    let pad = 0;
    for (let q = 0; q < r.image.data.length; q += 3) if (r.image.data[q] === 114) pad++;
    assert.equal(pad, 80 * 80 - 40 * 40);
  });

  test('colour jitter keeps a grey image grey without saturation and hue changes', () => {
    const img = { data: new Uint8Array(16 * 16 * 3).fill(90), width: 16, height: 16 };
    const r = augmentSample(img, [], 16, 16, createRng(3), { scale: [1, 1], saturation: 0, hue: 0 });
    for (let q = 0; q < r.image.data.length; q += 3)
      assert.ok(r.image.data[q] === r.image.data[q + 1] && r.image.data[q + 1] === r.image.data[q + 2]);
  });
});

describe('transformAnnotations', () => {
  const t = { scaleX: 1, scaleY: 1, offsetX: -50, offsetY: 0, flipX: false, width: 100, height: 100 };
  test('drops boxes below the visible share or size, keeps partly visible ignore regions', () => {
    const anns: Annotation[] = [
      { box: [40, 10, 60, 50], classId: 0 }, // half visible (x 50..60 -> 0..10)
      { box: [30, 10, 60, 50], classId: 0 }, // a third visible
      { box: [25, 10, 60, 50], classId: 0, ignore: true }, // 10/35 visible, ignore region
      { box: [48, 10, 51.5, 50], classId: 0 }, // 1.5 px wide once clipped
      { box: [120, 10, 130, 50], classId: 0 }, // fully inside
    ];
    assert.deepEqual(transformAnnotations(anns, t), [
      { box: [0, 10, 10, 50], classId: 0 },
      { box: [0, 10, 10, 50], classId: 0 },
      { box: [0, 10, 10, 50], classId: 0, ignore: true },
      { box: [70, 10, 80, 50], classId: 0 },
    ]);
    const lenient = transformAnnotations([{ box: [20, 10, 60, 50], classId: 0 }], t, {
      partialAsIgnore: true,
    });
    assert.deepEqual(lenient, [{ box: [0, 10, 10, 50], classId: 0, ignore: true }]);
  });

  test('mirrors boxes when flipped', () => {
    assert.deepEqual(
      transformAnnotations([{ box: [10, 10, 30, 50], classId: 0 }], { ...t, offsetX: 0, flipX: true }),
      [{ box: [70, 10, 90, 50], classId: 0 }],
    );
  });
});
