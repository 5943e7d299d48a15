import assert from 'node:assert/strict';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readCoco } from '../../../train/data/coco.js';
import { makeCocoFixture, tempDir, type CocoFixture } from '../../fixtures/make-data-fixtures.js';

describe('readCoco', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let fx: CocoFixture;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    fx = await makeCocoFixture(dir);
  });
  after(() => cleanup());

  test('converts xywh to xyxy, marks crowd as ignore and clips to the image', async () => {
    const ds = await readCoco(fx.annotationFile, { classes: ['person'] });
    assert.deepEqual(
      ds.samples.map((s) => [s.id, s.width, s.height]),
      [
        ['a.png', 64, 48],
        ['sub/b.png', 32, 32],
      ],
    );
    assert.deepEqual(ds.samples[0].annotations, [
      { box: [10, 5, 20, 35], classId: 0 },
      { box: [30, 10, 38, 30], classId: 0, ignore: true },
    ]);
    // [24, 20, 16, 20] reaches x=40, y=40 in a 32x32 image.
    assert.deepEqual(ds.samples[1].annotations, [{ box: [24, 20, 32, 32], classId: 0 }]);
    assert.deepEqual(ds.classes, ['person']);
  });

  test('counts unknown-class and zero-area labels in skipped', async () => {
    const ds = await readCoco(fx.annotationFile, { classes: ['person'] });
    const byReason = Object.fromEntries(ds.skipped.map((s) => [s.reason, s]));
    assert.equal(byReason["unknown class 'car'"]?.count, 1);
    assert.match(byReason["unknown class 'car'"].what, /annotations\[2\]/);
    assert.equal(byReason['zero-area box']?.count, 1);
    assert.match(byReason['zero-area box'].what, /annotations\[3\]/);
  });

  test('maps every class onto one with mapAllTo', async () => {
    const ds = await readCoco(fx.annotationFile, { classes: ['bg', 'person'], mapAllTo: 'person' });
    assert.deepEqual(
      ds.samples[1].annotations.map((a) => [a.box, a.classId]),
      [
        [[1, 1, 6, 6], 1],
        [[24, 20, 32, 32], 1],
      ],
    );
  });

  test('rejects an unknown class in strict mode naming the annotation', async () => {
    await assert.rejects(readCoco(fx.annotationFile, { classes: ['person'], strict: true }), {
      name: 'DataFormatError',
      code: 'ERR_DATA_FORMAT',
      message: /annotations\[2\]\.category_id: class 'car'/,
    });
  });

  test('rejects a malformed field naming the file and the field path', async () => {
    const bad = structuredClone(fx.json);
    bad.annotations[1] = { ...bad.annotations[1], bbox: [1, 2, 'x', 4] };
    const path = join(dir, 'bad.json');
    await writeFile(path, JSON.stringify(bad));
    await assert.rejects(
      readCoco(path, { classes: ['person'], imagesDir: fx.imagesDir }),
      (e: Error & { code?: string }) => {
        assert.equal(e.name, 'DataFormatError');
        assert.equal(e.code, 'ERR_DATA_FORMAT');
        assert.ok(e.message.includes(path), e.message);
        assert.match(e.message, /annotations\[1\]\.bbox\[2\]/);
        return true;
      },
    );
  });

  test('rejects a missing image naming its path, or skips it when asked', async () => {
    const moved = join(fx.imagesDir, 'sub', 'b.moved');
    await rename(join(fx.imagesDir, 'sub', 'b.png'), moved);
    try {
      await assert.rejects(readCoco(fx.annotationFile, { classes: ['person'] }), {
        name: 'DataFormatError',
        code: 'ERR_FILE_NOT_FOUND',
        message: new RegExp(
          `images\\[1\\]\\.file_name: image file not found: '${join(fx.imagesDir, 'sub', 'b.png').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`,
        ),
      });
      const ds = await readCoco(fx.annotationFile, { classes: ['person'], missingImages: 'skip' });
      assert.deepEqual(
        ds.samples.map((s) => s.id),
        ['a.png'],
      );
      assert.ok(ds.skipped.some((s) => /image file not found/.test(s.reason)));
    } finally {
      await rename(moved, join(fx.imagesDir, 'sub', 'b.png'));
    }
  });

  test('rejects a file that is not JSON', async () => {
    const path = join(dir, 'broken.json');
    await writeFile(path, '{"images": [');
    await assert.rejects(readCoco(path, { classes: ['person'] }), {
      name: 'DataFormatError',
      code: 'ERR_DATA_FORMAT',
      message: /broken\.json: not valid JSON/,
    });
  });

  test('load() decodes the listed image', async () => {
    const ds = await readCoco(fx.annotationFile, { classes: ['person'] });
    const img = await ds.samples[0].load();
    assert.equal(img.width, 64);
    assert.equal(img.height, 48);
    assert.equal(img.data.length, 64 * 48 * 3);
    assert.equal(img.data[(6 * 64 + 11) * 3], 255); // inside the white rectangle
    assert.equal(img.data[0], 40);
  });
});
