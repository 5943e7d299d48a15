/**
 * Bad input to POST /v1/detect: each case gets the right 4xx with a JSON error and the server
 * then answers a good request correctly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type EdgekdServer } from '../../server/app.js';
import { writeTestModels } from '../runtime/fixtures.js';
import { bombPng, call, errorOf, postImage, rawPost, testImage, type Reply } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'edgekd-server-limits-'));
const models = writeTestModels(dir);
const MAX_BODY = 100_000;

describe('bad input to /v1/detect', () => {
  let server: EdgekdServer;
  let base: string;
  let good: Buffer;
  let expected: unknown;

  before(async () => {
    server = await createServer({ modelPath: models.boxes, maxBodyBytes: MAX_BODY, maxPixels: 4_000_000 });
    base = (await server.listen()).url;
    await server.ready;
    good = await testImage(160, 120, 'jpeg', 7);
    expected = ((await postImage(base, good)).json as { detections: unknown }).detections;
  });
  after(() => server.close());

  /** Asserts the error, then that a good request still gets the same answer as before. */
  async function expectError(r: Reply | Promise<Reply>, status: number, code: string, message?: RegExp) {
    const reply = await r;
    assert.equal(reply.status, status, reply.body.toString().slice(0, 300));
    assert.match(reply.headers.get('content-type') ?? '', /application\/json/);
    const e = errorOf(reply);
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    assert.doesNotMatch(reply.body.toString(), /at .*\.js:\d+/, 'no stack trace');
    const next = await postImage(base, good);
    assert.equal(next.status, 200);
    assert.deepEqual((next.json as { detections: unknown }).detections, expected);
  }

  test('rejects an empty body with 400 empty_body', async () => {
    await expectError(postImage(base, Buffer.alloc(0)), 400, 'empty_body');
    await expectError(call(`${base}/v1/detect`, { method: 'POST' }), 400, 'empty_body');
  });

  test('rejects another content type with 415 unsupported_media_type', async () => {
    await expectError(
      postImage(base, good, { type: 'text/plain' }),
      415,
      'unsupported_media_type',
      /image\/jpeg/,
    );
    await expectError(postImage(base, good, { type: 'application/json' }), 415, 'unsupported_media_type');
    await expectError(postImage(base, good, { type: 'image/gif' }), 415, 'unsupported_media_type');
  });

  test('rejects a truncated JPEG with 400 invalid_image', async () => {
    // The header survives, the scan data does not: only decoding can tell.
    await expectError(postImage(base, good.subarray(0, Math.floor(good.length * 0.6))), 400, 'invalid_image');
    await expectError(postImage(base, good.subarray(0, 40)), 400, 'invalid_image');
  });

  test('rejects a PNG declaring 50000x50000 pixels with 413 image_too_large, without decoding it', async () => {
    const bomb = bombPng(50_000, 50_000);
    assert.ok(bomb.length < 1000);
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    const r = await postImage(base, bomb, { type: 'image/png' });
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
    assert.ok(process.memoryUsage().rss - rss0 < 200 * 1024 * 1024, 'no pixel buffer was allocated');
    await expectError(r, 413, 'image_too_large', /50000x50000/);
    // Under the cap but declaring more pixels than it holds: a decode error, not a crash.
    await expectError(postImage(base, bombPng(1000, 1000), { type: 'image/png' }), 400, 'invalid_image');
  });

  test('rejects bytes that are not an image, whatever the declared type, with 400 invalid_image', async () => {
    const text = Buffer.from('this is not an image at all, just some text '.repeat(20));
    await expectError(postImage(base, text), 400, 'invalid_image', /not a JPEG, PNG or WebP/);
    await expectError(postImage(base, text, { type: 'image/webp' }), 400, 'invalid_image');
  });

  test('sniffs the format from the bytes: a PNG sent as image/jpeg is accepted', async () => {
    const png = await testImage(160, 120, 'png', 7);
    const r = await postImage(base, png, { type: 'image/jpeg' });
    assert.equal(r.status, 200);
  });

  test('rejects bad parameters with 400 invalid_parameter naming the parameter', async () => {
    for (const q of [
      'threshold=-0.1',
      'threshold=NaN',
      'threshold=1.5',
      'threshold=',
      'threshold=abc',
      'threshold=Infinity',
    ])
      await expectError(postImage(base, good, { query: q }), 400, 'invalid_parameter', /'threshold'/);
    for (const q of ['maxDetections=0', 'maxDetections=1.5', 'maxDetections=1001', 'maxDetections=-3'])
      await expectError(postImage(base, good, { query: q }), 400, 'invalid_parameter', /'maxDetections'/);
    await expectError(
      postImage(base, good, { query: 'annotate=maybe' }),
      400,
      'invalid_parameter',
      /'annotate'/,
    );
    await expectError(
      postImage(base, good, { query: 'threshold=0.1&threshold=0.2' }),
      400,
      'invalid_parameter',
      /once/,
    );
    await expectError(
      postImage(base, good, { query: 'treshold=0.5' }),
      400,
      'invalid_parameter',
      /did you mean 'threshold'/,
    );
    const form = new FormData();
    form.append('image', new Blob([good]));
    form.append('maxDetections', 'many');
    await expectError(
      call(`${base}/v1/detect`, { method: 'POST', body: form }),
      400,
      'invalid_parameter',
      /'maxDetections'/,
    );
  });

  test('rejects a body over the cap with 413 payload_too_large, declared or chunked', async () => {
    const big = Buffer.alloc(MAX_BODY + 50_000, 1);
    big.set(good.subarray(0, 3));
    await expectError(postImage(base, big), 413, 'payload_too_large');
    // No Content-Length: the cap is enforced while reading.
    const chunked = await rawPost(`${base}/v1/detect`, { 'content-type': 'image/jpeg' }, (req) => {
      for (let i = 0; i < 15; i++) req.write(Buffer.alloc(10_000, 2));
      req.end();
    });
    await expectError(chunked, 413, 'payload_too_large');
    const form = new FormData();
    form.append('image', new Blob([big]));
    await expectError(call(`${base}/v1/detect`, { method: 'POST', body: form }), 413, 'payload_too_large');
  });

  test('rejects more than 16 images in one multipart request with 413', async () => {
    const form = new FormData();
    const small = await testImage(32, 32);
    for (let i = 0; i < 17; i++) form.append(`f${i}`, new Blob([small]));
    await expectError(
      call(`${base}/v1/detect`, { method: 'POST', body: form }),
      413,
      'payload_too_large',
      /16/,
    );
  });

  test('a corrupt part of a multipart request is named, and the request fails as a whole', async () => {
    const form = new FormData();
    form.append('a', new Blob([good]));
    form.append('b', new Blob([good.subarray(0, Math.floor(good.length / 2))]));
    await expectError(
      call(`${base}/v1/detect`, { method: 'POST', body: form }),
      400,
      'invalid_image',
      /image 2/,
    );
  });

  test('rejects a multipart body without Content-Length with 411', async () => {
    const reply = await rawPost(
      `${base}/v1/detect`,
      { 'content-type': 'multipart/form-data; boundary=x' },
      (req) => {
        req.write('--x\r\nContent-Disposition: form-data; name="a"; filename="a.jpg"\r\n\r\n');
        req.write(good);
        req.end('\r\n--x--\r\n');
      },
    );
    await expectError(reply, 411, 'bad_request', /Content-Length/);
  });

  test('rejects a malformed multipart body with 400', async () => {
    await expectError(
      postImage(base, Buffer.from('--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nabc'), {
        type: 'multipart/form-data; boundary=x',
      }),
      400,
      'bad_request',
    );
    await expectError(
      postImage(base, Buffer.from('abc'), { type: 'multipart/form-data' }),
      400,
      'bad_request',
    );
  });
});
