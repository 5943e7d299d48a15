import { test } from 'node:test';
import assert from 'node:assert/strict';
import seedrandom from 'seedrandom';
import { FrameAssembler } from '../../../runtime/video/frame-assembler.js';
import { BoundedQueue } from '../../../runtime/video/queue.js';

/** `count` frames of `size` bytes; byte j of frame i is (i * 31 + j) mod 251. */
function frames(count: number, size: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) =>
    Uint8Array.from({ length: size }, (_, j) => (i * 31 + j) % 251),
  );
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Feeds `stream` in chunks of the given sizes (cycled) and takes frames as they complete. */
function reassemble(stream: Uint8Array, frameSize: number, chunkSizes: number[]): Uint8Array[] {
  const a = new FrameAssembler();
  const got: Uint8Array[] = [];
  let pos = 0;
  for (let k = 0; pos < stream.length; k++) {
    const n = chunkSizes[k % chunkSizes.length];
    a.push(stream.subarray(pos, Math.min(stream.length, pos + n)));
    pos += n;
    for (let f = a.take(frameSize); f; f = a.take(frameSize)) got.push(f);
  }
  assert.equal(a.buffered, 0);
  return got;
}

test('reassembles frames from chunks of odd sizes that never align with frames', () => {
  const size = 3 * 7 * 11; // 231 bytes, a 7x11 RGB frame
  const want = frames(23, size);
  const stream = concat(want);
  const rng = seedrandom('chunks');
  const random = Array.from({ length: 500 }, () => 1 + Math.floor(rng() * 700));
  for (const sizes of [[1], [7], [230], [232], [size * 3 + 1], [13, 1, 997, 2], random]) {
    const got = reassemble(stream, size, sizes);
    assert.equal(got.length, want.length, `chunk sizes ${sizes.slice(0, 4).join(',')}`);
    for (let i = 0; i < want.length; i++) assert.deepEqual(got[i], want[i], `frame ${i}`);
  }
});

test('keeps a partial frame until the rest arrives', () => {
  const a = new FrameAssembler();
  a.push(new Uint8Array([1, 2, 3]));
  assert.equal(a.take(4), null);
  assert.equal(a.buffered, 3);
  a.push(new Uint8Array([4, 5]));
  assert.deepEqual(a.take(4), new Uint8Array([1, 2, 3, 4]));
  assert.equal(a.buffered, 1);
  a.clear();
  assert.equal(a.buffered, 0);
});

test('each frame owns an exact-size ArrayBuffer (safe to transfer to a worker)', () => {
  const a = new FrameAssembler();
  const chunk = new Uint8Array(100).fill(7);
  a.push(chunk);
  const f = a.take(40)!;
  assert.equal(f.byteOffset, 0);
  assert.equal(f.buffer.byteLength, 40);
  f.fill(0);
  assert.equal(chunk[0], 7, 'the chunk is not shared');
});

test('rejects a frame size that is not a positive integer', () => {
  const a = new FrameAssembler();
  assert.throws(() => a.take(0), { name: 'RangeError', message: /'n'/ });
  assert.throws(() => a.take(1.5), { name: 'RangeError' });
});

test('queue: offer reports full, take batches what is there, low water resumes', async () => {
  const q = new BoundedQueue<number>(4);
  let resumed = 0;
  q.onLowWater(() => resumed++);
  assert.equal(q.offer(1), true);
  assert.equal(q.offer(2), true);
  assert.equal(q.offer(3), true);
  assert.equal(q.offer(4), false, 'full at capacity');
  assert.deepEqual(await q.take(3), [1, 2, 3]);
  assert.equal(resumed, 1);
  assert.deepEqual(await q.take(3), [4], 'a batch is not held back to fill up');
  assert.equal(q.peak, 4);
});

test('queue: live mode evicts the oldest item', () => {
  const q = new BoundedQueue<number>(2);
  assert.equal(q.offerDropOldest(1), undefined);
  assert.equal(q.offerDropOldest(2), undefined);
  assert.equal(q.offerDropOldest(3), 1);
  assert.deepEqual(q.drain(), [2, 3]);
});

test('queue: put waits for room; take waits for items; close releases both', async () => {
  const q = new BoundedQueue<number>(1);
  await q.put(1);
  let put2 = false;
  const p = q.put(2).then((ok) => (put2 = ok));
  await new Promise((r) => setImmediate(r));
  assert.equal(put2, false, 'waiting for room');
  assert.deepEqual(await q.take(), [1]);
  await p;
  assert.equal(put2, true);
  assert.deepEqual(await q.take(), [2]);
  const waiting = q.take();
  q.close();
  assert.deepEqual(await waiting, []);
  assert.equal(await q.put(3), false);
  assert.throws(() => new BoundedQueue(0), { name: 'RangeError', message: /'capacity'/ });
});
