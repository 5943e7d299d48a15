import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readCoco } from '../../../train/data/coco.js';
import { decodeImage } from '../../../train/data/image.js';
import {
  generateSyntheticScene,
  syntheticDataset,
  syntheticSceneAnnotations,
  writeSyntheticCoco,
} from '../../../train/data/synthetic.js';
import { tempDir } from '../../fixtures/make-data-fixtures.js';

describe('generateSyntheticScene', () => {
  test('is deterministic for a seed and differs across seeds', () => {
    const a = generateSyntheticScene(42, 160, 128);
    const b = generateSyntheticScene(42, 160, 128);
    const c = generateSyntheticScene(43, 160, 128);
    assert.deepEqual([a.image.width, a.image.height, a.image.data.length], [160, 128, 160 * 128 * 3]);
    assert.ok(Buffer.from(a.image.data).equals(Buffer.from(b.image.data)));
    assert.deepEqual(a.annotations, b.annotations);
    assert.ok(!Buffer.from(a.image.data).equals(Buffer.from(c.image.data)));
    assert.notDeepEqual(a.annotations, c.annotations);
  });

  test('boxes lie inside the image with pedestrian heights and aspect ratios', () => {
    const W = 320;
    const H = 320;
    let n = 0;
    let small = 0;
    let ignored = 0;
    for (let i = 0; i < 40; i++) {
      const { annotations } = generateSyntheticScene(`box-${i}`, W, H);
      assert.ok(annotations.length >= 1 && annotations.length <= 40, `${annotations.length} people`);
      for (const { box, classId, ignore } of annotations) {
        n++;
        if (ignore) ignored++;
        assert.equal(classId, 0);
        assert.ok(
          box[0] >= 0 && box[1] >= 0 && box[2] <= W && box[3] <= H && box[2] > box[0] && box[3] > box[1],
          `box ${box}`,
        );
        const truncated = box[0] === 0 || box[1] === 0 || box[2] === W || box[3] === H;
        if (truncated) continue;
        const h = box[3] - box[1];
        const aspect = (box[2] - box[0]) / h;
        assert.ok(h >= 8 - 1e-6 && h <= H / 2 + 1e-6, `height ${h}`);
        assert.ok(aspect >= 0.25 && aspect <= 0.6, `aspect ${aspect}`);
        if (h < 32) small++;
      }
    }
    assert.ok(small / n > 0.4, `small share ${small / n}`);
    assert.ok(ignored / n > 0.02 && ignored / n < 0.3, `ignored share ${ignored / n}`);
  });

  test('people are drawn where their boxes are', () => {
    // A visible person puts edges and colours inside its box: the box is never flat.
    for (let i = 0; i < 5; i++) {
      const { image, annotations } = generateSyntheticScene(`draw-${i}`, 160, 160, {
        minHeight: 40,
        maxPeople: 3,
      });
      for (const a of annotations.filter((x) => !x.ignore)) {
        const [x1, y1, x2, y2] = a.box.map(Math.round);
        let sum = 0;
        let sum2 = 0;
        let k = 0;
        for (let y = y1; y < y2; y++) {
          for (let x = x1; x < x2; x++) {
            const v = image.data[(y * 160 + x) * 3 + 1];
            sum += v;
            sum2 += v * v;
            k++;
          }
        }
        const std = Math.sqrt(sum2 / k - (sum / k) ** 2);
        assert.ok(std > 5, `flat box ${a.box} std ${std}`);
      }
    }
  });

  test('the label-only pass gives the same annotations as the full render', () => {
    for (let i = 0; i < 10; i++)
      assert.deepEqual(
        syntheticSceneAnnotations(`lbl-${i}`, 200, 150),
        generateSyntheticScene(`lbl-${i}`, 200, 150).annotations,
      );
  });

  test('renders a 320x320 scene in well under 20 ms', (t) => {
    for (let i = 0; i < 5; i++) generateSyntheticScene(`warm-${i}`, 320, 320);
    const n = 30;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) generateSyntheticScene(`speed-${i}`, 320, 320);
    const ms = (performance.now() - t0) / n;
    t.diagnostic(`synthetic 320x320: ${ms.toFixed(2)} ms/image`);
    assert.ok(ms < 40, `${ms} ms per image`); // generous bound: shared CI machines
  });

  test('rejects bad options naming them', () => {
    assert.throws(() => generateSyntheticScene(1, 8, 100), { name: 'RangeError', message: /'width'/ });
    assert.throws(() => generateSyntheticScene(1, 64, 64, { minPeople: 5, maxPeople: 2 }), {
      name: 'RangeError',
      message: /'minPeople'/,
    });
  });
});

describe('syntheticDataset', () => {
  test('renders lazily and matches generateSyntheticScene per sample seed', async () => {
    const ds = syntheticDataset({ count: 3, width: 96, height: 64, seed: 5, classes: ['bg', 'person'] });
    assert.equal(ds.samples.length, 3);
    assert.deepEqual(ds.classes, ['bg', 'person']);
    const ref = generateSyntheticScene('5/1', 96, 64, { classId: 1 });
    assert.deepEqual(ds.samples[1].annotations, ref.annotations);
    const img = await ds.samples[1].load();
    assert.ok(Buffer.from(img.data).equals(Buffer.from(ref.image.data)));
    assert.ok(ds.samples[1].annotations.every((a) => a.classId === 1));
  });

  test('rejects a class list without the person class', () => {
    assert.throws(() => syntheticDataset({ count: 1, width: 64, height: 64, classes: ['car', 'bike'] }), {
      name: 'RangeError',
      message: /'classes' must contain 'person'/,
    });
  });
});

describe('writeSyntheticCoco', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(() => cleanup());

  test('writes images and COCO JSON that readCoco reads back', async () => {
    const out = join(dir, 'synth');
    const r = await writeSyntheticCoco(out, { count: 4, width: 96, height: 80, seed: 3, format: 'png' });
    assert.equal(r.images, 4);
    assert.deepEqual((await readdir(dir)).sort(), ['synth']); // no temp folder left behind
    assert.deepEqual((await readdir(join(out, 'images'))).sort(), [
      '000000.png',
      '000001.png',
      '000002.png',
      '000003.png',
    ]);
    const ds = await readCoco(join(out, 'annotations.json'), { classes: ['person'] });
    assert.equal(ds.samples.length, 4);
    let total = 0;
    for (let i = 0; i < 4; i++) {
      const ref = generateSyntheticScene(`3/${i}`, 96, 80);
      const got = ds.samples[i].annotations;
      assert.equal(got.length, ref.annotations.length);
      total += got.length;
      got.forEach((a, k) => {
        assert.equal(a.ignore === true, ref.annotations[k].ignore === true);
        a.box.forEach((v, j) => assert.ok(Math.abs(v - ref.annotations[k].box[j]) < 0.02));
      });
      const img = await decodeImage(join(out, 'images', `00000${i}.png`));
      assert.ok(Buffer.from(img.data).equals(Buffer.from(ref.image.data)));
    }
    assert.equal(r.annotations, total);
  });

  test('refuses to replace an existing folder unless asked', async () => {
    const out = join(dir, 'twice');
    await writeSyntheticCoco(out, { count: 1, width: 64, height: 64 });
    await assert.rejects(writeSyntheticCoco(out, { count: 1, width: 64, height: 64 }), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /already exists/,
    });
    await writeSyntheticCoco(out, { count: 2, width: 64, height: 64, overwrite: true });
    assert.equal((await readdir(join(out, 'images'))).length, 2);
  });
});
