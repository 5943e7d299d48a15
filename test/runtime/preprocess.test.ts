/** Pre-processing: normalisation + NCHW packing, sharp letterbox geometry and padding, buffer reuse. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { letterboxTransform } from '../../models/core/letterbox.js';
import { InputBufferPool, InputPacker, letterboxImage } from '../../runtime/preprocess.js';

test('packs RGB HWC into NCHW with unit normalisation', () => {
  const p = new InputPacker({ height: 1, width: 2, channelOrder: 'rgb', normalization: { kind: 'unit' } });
  const dst = new Float32Array(2 * 3 * 2).fill(-1);
  p.pack(Uint8Array.from([255, 0, 51, 0, 255, 102]), dst, 1);
  // slot 0 untouched; slot 1 planes R, G, B of 2 pixels each
  assert.deepEqual([...dst.subarray(0, 6)], [-1, -1, -1, -1, -1, -1]);
  const got = [...dst.subarray(6)].map((v) => Number(v.toFixed(6)));
  assert.deepEqual(got, [1, 0, 0, 1, 0.2, 0.4]);
});

test('bgr + mean/std use the network channel order', () => {
  const p = new InputPacker({
    height: 1,
    width: 1,
    channelOrder: 'bgr',
    normalization: { kind: 'meanstd', mean: [10, 20, 30], std: [2, 4, 5] },
  });
  const dst = new Float32Array(3);
  p.pack(Uint8Array.from([100, 60, 40]), dst, 0); // r=100 g=60 b=40 -> network (b, g, r)
  assert.deepEqual([...dst], [(40 - 10) / 2, (60 - 20) / 4, (100 - 30) / 5]);
  const raw = new InputPacker({ height: 1, width: 1, channelOrder: 'rgb', normalization: { kind: 'raw' } });
  raw.pack(Uint8Array.from([7, 8, 9]), dst, 0);
  assert.deepEqual([...dst], [7, 8, 9]);
});

test('rejects a frame of the wrong size', () => {
  const p = new InputPacker({ height: 2, width: 2, channelOrder: 'rgb', normalization: { kind: 'unit' } });
  assert.throws(() => p.pack(new Uint8Array(11), new Float32Array(12), 0), {
    name: 'RangeError',
    message: /'rgb' must hold 2x2x3 = 12 bytes/,
  });
  assert.throws(() => p.pack(new Uint8Array(12), new Float32Array(12), 1), { name: 'RangeError' });
});

test('letterboxes a 200x100 image into 64x64: centred, grey 114 padding, transform as models/core says', async () => {
  const png = await sharp({
    create: { width: 200, height: 100, channels: 3, background: { r: 250, g: 10, b: 20 } },
  })
    .png()
    .toBuffer();
  const { rgb, transform } = await letterboxImage(png, { height: 64, width: 64, resize: 'letterbox' });
  assert.deepEqual(transform, letterboxTransform(200, 100, 64, 64));
  assert.equal(rgb.length, 64 * 64 * 3);
  const px = (x: number, y: number) => [...rgb.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)];
  assert.deepEqual(px(0, 0), [114, 114, 114]);
  assert.deepEqual(px(63, 15), [114, 114, 114]);
  assert.deepEqual(px(10, 48), [114, 114, 114]);
  for (const [x, y] of [
    [0, 16],
    [32, 32],
    [63, 47],
  ]) {
    const [r, g, b] = px(x, y);
    assert.ok(
      Math.abs(r - 250) <= 2 && Math.abs(g - 10) <= 2 && Math.abs(b - 20) <= 2,
      `pixel ${x},${y}: ${r},${g},${b}`,
    );
  }
  const stretched = await letterboxImage(png, { height: 64, width: 64, resize: 'stretch' });
  assert.deepEqual(stretched.transform, letterboxTransform(200, 100, 64, 64, 'stretch'));
  assert.ok(Math.abs(stretched.rgb[0] - 250) <= 2);
});

test('rejects a missing file and bytes that are not an image', async () => {
  const input = { height: 64, width: 64, resize: 'letterbox' as const };
  await assert.rejects(letterboxImage('/nonexistent/x.jpg', input), {
    name: 'DataFormatError',
    code: 'ERR_FILE_NOT_FOUND',
  });
  await assert.rejects(letterboxImage(Buffer.from('definitely not an image'), input), {
    name: 'DataFormatError',
    code: 'ERR_IMAGE_DECODE',
  });
});

test('input buffers are reused per batch size', () => {
  const pool = new InputBufferPool(12);
  const a = pool.acquire(2);
  assert.equal(a.length, 24);
  pool.release(a.buffer as ArrayBuffer);
  const b = pool.acquire(2);
  assert.equal(b.buffer, a.buffer);
  assert.equal(pool.allocations, 1);
  pool.acquire(3);
  assert.equal(pool.allocations, 2);
  const detached = new ArrayBuffer(0);
  pool.release(detached); // ignored
  pool.release(new ArrayBuffer(7 * 4)); // not a whole number of images: ignored
  pool.acquire(1);
  assert.equal(pool.allocations, 3);
});
