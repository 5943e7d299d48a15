import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readYolo } from '../../../train/data/yolo.js';
import { tempDir, writeRectImage } from '../../fixtures/make-data-fixtures.js';

describe('readYolo', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    await mkdir(join(dir, 'images', 'train'), { recursive: true });
    await mkdir(join(dir, 'labels', 'train'), { recursive: true });
    await writeRectImage(join(dir, 'images', 'train', 'x.png'), 100, 50);
    await writeRectImage(join(dir, 'images', 'train', 'y.png'), 40, 40);
    await writeFile(join(dir, 'images', 'train', 'notes.txt'), 'not an image');
    // person at centre (0.5, 0.5) size (0.2, 0.4); a car; a box sticking out on the right.
    await writeFile(
      join(dir, 'labels', 'train', 'x.txt'),
      '0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.1 0.1\n\n0 0.95 0.5 0.2 0.2\n',
    );
    // y.png has no label file: a negative.
  });
  after(() => cleanup());

  test('reads normalised cx,cy,w,h as pixel xyxy using the image header size', async () => {
    const ds = await readYolo(dir, { names: ['person', 'car'], classes: ['person'], split: 'train' });
    assert.deepEqual(
      ds.samples.map((s) => [s.id, s.width, s.height]),
      [
        [join('images', 'train', 'x.png'), 100, 50],
        [join('images', 'train', 'y.png'), 40, 40],
      ],
    );
    const boxes = ds.samples[0].annotations.map((a) => a.box.map((v) => Math.round(v * 1e6) / 1e6));
    assert.deepEqual(boxes, [
      [40, 15, 60, 35],
      [85, 20, 100, 30],
    ]);
    assert.deepEqual(ds.samples[1].annotations, []);
    assert.equal(ds.skipped.length, 1);
    assert.equal(ds.skipped[0].reason, "unknown class 'car'");
    assert.match(ds.skipped[0].what, /x\.txt:2/);
  });

  test('rejects a malformed line naming file and line', async () => {
    const root = join(dir, 'bad');
    await mkdir(join(root, 'images'), { recursive: true });
    await mkdir(join(root, 'labels'), { recursive: true });
    await writeRectImage(join(root, 'images', 'z.png'), 8, 8);
    await writeFile(join(root, 'labels', 'z.txt'), '0 0.5 0.5 0.2\n');
    await assert.rejects(readYolo(root, { names: ['person'], classes: ['person'] }), {
      name: 'DataFormatError',
      code: 'ERR_DATA_FORMAT',
      message: /z\.txt:1: expected 'class cx cy w h'/,
    });
    await writeFile(join(root, 'labels', 'z.txt'), '3 0.5 0.5 0.2 0.2\n');
    await assert.rejects(readYolo(root, { names: ['person'], classes: ['person'] }), {
      name: 'DataFormatError',
      message: /z\.txt:1: class id must be an integer in \[0, 0\]/,
    });
  });

  test('rejects a missing images folder', async () => {
    await assert.rejects(readYolo(join(dir, 'nope'), { names: ['person'], classes: ['person'] }), {
      name: 'DataFormatError',
      code: 'ERR_FILE_NOT_FOUND',
    });
  });
});
