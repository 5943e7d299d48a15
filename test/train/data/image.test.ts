import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import {
  boxToNetwork,
  boxToSource,
  decodeImage,
  letterbox,
  letterboxTransform,
  readImageSize,
} from '../../../train/data/image.js';
import { brightBounds, tempDir, writeRectImage } from '../../fixtures/make-data-fixtures.js';

describe('decodeImage', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(() => cleanup());

  test('decodes PNG with alpha and grey PNG to 3-channel RGB', async () => {
    const rgba = join(dir, 'rgba.png');
    await sharp({
      create: { width: 5, height: 3, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0.5 } },
    })
      .png()
      .toFile(rgba);
    const a = await decodeImage(rgba);
    assert.deepEqual([a.width, a.height, a.data.length], [5, 3, 45]);
    assert.deepEqual([...a.data.subarray(0, 3)], [10, 20, 30]);
    const grey = join(dir, 'grey.png');
    await sharp(Buffer.alloc(12, 77), { raw: { width: 4, height: 3, channels: 1 } })
      .png()
      .toFile(grey);
    const g = await decodeImage(grey);
    assert.equal(g.data.length, 36);
    assert.deepEqual([...g.data.subarray(0, 3)], [77, 77, 77]);
    const deep = join(dir, 'deep.png');
    await sharp(Buffer.alloc(2 * 2 * 3 * 2, 0xff), { raw: { width: 2, height: 2, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toFile(deep);
    const d = await decodeImage(deep);
    assert.equal(d.data.length, 12);
  });

  test('rejects a corrupt image with ERR_IMAGE_DECODE naming the file', async () => {
    const bad = join(dir, 'corrupt.jpg');
    await writeFile(bad, Buffer.from('\xff\xd8\xff\xe0 this is not really a jpeg', 'latin1'));
    await assert.rejects(decodeImage(bad), {
      name: 'DataFormatError',
      code: 'ERR_IMAGE_DECODE',
      message: /corrupt\.jpg/,
    });
    // A truncated but real JPEG.
    const good = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } })
      .jpeg()
      .toBuffer();
    const cut = join(dir, 'truncated.jpg');
    await writeFile(cut, good.subarray(0, good.length >> 1));
    await assert.rejects(decodeImage(cut), {
      name: 'DataFormatError',
      code: 'ERR_IMAGE_DECODE',
      message: /truncated\.jpg/,
    });
    await assert.rejects(readImageSize(bad), { name: 'DataFormatError', message: /corrupt\.jpg/ });
  });

  test('rejects a missing file with ERR_FILE_NOT_FOUND naming the path', async () => {
    const path = join(dir, 'nope.png');
    await assert.rejects(decodeImage(path), {
      name: 'DataFormatError',
      code: 'ERR_FILE_NOT_FOUND',
      message: /nope\.png/,
    });
    await assert.rejects(readImageSize(path), {
      name: 'DataFormatError',
      code: 'ERR_FILE_NOT_FOUND',
      message: /nope\.png/,
    });
  });

  test('readImageSize reads the header', async () => {
    const p = join(dir, 'size.png');
    await writeRectImage(p, 33, 17);
    assert.deepEqual(await readImageSize(p), { width: 33, height: 17 });
  });
});

describe('letterbox', () => {
  test('computes scale and centred padding', () => {
    const t = letterboxTransform(768, 576, 320, 320);
    assert.equal(t.scaleX, 320 / 768);
    assert.equal(t.scaleY, 240 / 576);
    assert.deepEqual([t.padX, t.padY], [0, 40]);
    const s = letterboxTransform(100, 50, 64, 96, 'stretch');
    assert.deepEqual([s.scaleX, s.scaleY, s.padX, s.padY], [0.96, 1.28, 0, 0]);
  });

  test('places the pixels where the box transform says, pads with 114', () => {
    const w = 120;
    const h = 80;
    const data = new Uint8Array(w * h * 3);
    const rect: [number, number, number, number] = [30, 20, 60, 70];
    for (let y = rect[1]; y < rect[3]; y++)
      for (let x = rect[0]; x < rect[2]; x++) data.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const { image, transform } = letterbox({ data, width: w, height: h }, 64, 64);
    assert.deepEqual([image.width, image.height], [64, 64]);
    assert.deepEqual([...image.data.subarray(0, 3)], [114, 114, 114]); // top padding
    const expected = boxToNetwork(rect, transform);
    const found = brightBounds(image)!;
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(found[i] - expected[i]) <= 1, `${found} vs ${expected}`);
    const back = boxToSource(expected, transform);
    back.forEach((v, i) => assert.ok(Math.abs(v - rect[i]) < 1e-9));
  });

  test('antialiases when shrinking: a 1-px checkerboard becomes mid grey', () => {
    const w = 64;
    const data = new Uint8Array(w * w * 3);
    for (let y = 0; y < w; y++)
      for (let x = 0; x < w; x++) if ((x + y) % 2) data.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const { image } = letterbox({ data, width: w, height: w }, 16, 16);
    for (const v of image.data) assert.ok(Math.abs(v - 127.5) < 3, String(v));
  });
});
