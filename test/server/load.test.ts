/**
 * The server under load with a model slow enough to keep requests in flight: the event loop stays
 * free while sessions run, a full queue answers 503 + Retry-After, the per-request timeout, a
 * client that disconnects, and graceful shutdown.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type EdgekdServer } from '../../server/app.js';
import { call, errorOf, postImage, sleep, testImage, writeSlowModels } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'edgekd-server-load-'));
const models = writeSlowModels(dir);

/** edgekd_batch_size_sum: images run through the model so far. */
async function imagesRun(base: string): Promise<number> {
  const text = (await call(`${base}/metrics`)).body.toString();
  return Number(/^edgekd_batch_size_sum (\d+)/m.exec(text)?.[1] ?? NaN);
}

/** GET over a given agent (keep-alive socket reuse), answering status and parsed JSON. */
function getVia(agent: Agent, url: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** A chunked JPEG upload over an agent, started with `first`; `finish` sends the rest. */
function startUpload(agent: Agent, url: string, first: Buffer) {
  let finish!: (rest: Buffer) => void;
  const reply = new Promise<{ status: number; json: unknown }>((resolve, reject) => {
    const req = request(url, { agent, method: 'POST', headers: { 'content-type': 'image/jpeg' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }),
      );
    });
    req.on('error', reject);
    req.write(first);
    finish = (rest) => req.end(rest);
  });
  return { reply, finish: (rest: Buffer) => finish(rest) };
}

/** Waits until the server is handling at least `n` requests (the /metrics scrape included). */
async function waitInFlight(base: string, n: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const text = (await call(`${base}/metrics`)).body.toString();
    const now = Number(/^edgekd_http_requests_in_flight (\d+)/m.exec(text)?.[1]);
    if (now >= n) return;
    if (performance.now() > deadline) throw new Error(`only ${now} requests in flight, waited for ${n}`);
    await sleep(5);
  }
}

describe('responsiveness', () => {
  let server: EdgekdServer;
  let base: string;
  let jpeg: Buffer;

  before(async () => {
    // A wide window: the 32 requests gather into one or two long runs, whatever the machine's speed.
    server = await createServer({ modelPath: models.boxes, maxBatch: 32, maxWaitMs: 100 });
    base = (await server.listen()).url;
    await server.ready;
    jpeg = await testImage(96, 72);
  });
  after(() => server.close());

  test('/healthz answers while 32 slow detect requests are in flight, before the first completes', async () => {
    let firstDone = Infinity;
    const detects = Array.from({ length: 32 }, () =>
      postImage(base, jpeg).then((r) => {
        firstDone = Math.min(firstDone, performance.now());
        return r;
      }),
    );
    await sleep(20);
    const t0 = performance.now();
    const h = await call(`${base}/healthz`);
    const healthAt = performance.now();
    assert.equal(h.status, 200);
    assert.ok(
      healthAt < firstDone,
      `healthz answered ${(healthAt - t0).toFixed(1)} ms after asking, after a detect completed`,
    );
    const m = await call(`${base}/metrics`);
    assert.equal(m.status, 200);
    const replies = await Promise.all(detects);
    assert.deepEqual(
      replies.map((r) => r.status),
      Array(32).fill(200),
    );
    const sizes = replies.map((r) => (r.json as { timings: { batchSize: number } }).timings.batchSize);
    assert.ok(Math.max(...sizes) > 1, `batch sizes ${sizes.join(',')}`);
  });
});

describe('under load (batching on)', () => {
  let server: EdgekdServer;
  let base: string;
  let jpeg: Buffer;

  before(async () => {
    server = await createServer({ modelPath: models.boxes, maxBatch: 8, maxWaitMs: 10 });
    base = (await server.listen()).url;
    await server.ready;
    jpeg = await testImage(96, 72);
  });
  after(() => server.close());

  test('a client that disconnects while queued is dropped before its run, and the server stays up', async () => {
    const before = await imagesRun(base);
    const load = Array.from({ length: 24 }, () => postImage(base, jpeg));
    await sleep(30);
    // A raw request whose socket is destroyed once the body is sent: the server has it queued.
    const gone = new Promise<void>((resolve) => {
      const req = request(`${base}/v1/detect`, { method: 'POST', headers: { 'content-type': 'image/jpeg' } });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.end(jpeg, () => setTimeout(() => req.destroy(), 40));
    });
    await gone;
    const replies = await Promise.all(load);
    assert.ok(replies.every((r) => r.status === 200));
    assert.equal(await imagesRun(base), before + 24, 'the disconnected request never ran');
    const text = (await call(`${base}/metrics`)).body.toString();
    assert.match(text, /^edgekd_http_requests_total\{route="\/v1\/detect",method="POST",status="499"\} 1$/m);
    assert.equal((await postImage(base, jpeg)).status, 200);
  });

  test('close() finishes in-flight requests, turns /readyz to 503, stops streams, and is idempotent', async () => {
    // Two uploads held open by the client are in flight for as long as the test wants; each runs
    // over its own kept-alive socket, which close() leaves open while a request is on it.
    const a = new Agent({ keepAlive: true, maxSockets: 1 });
    const b = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const half = Math.floor(jpeg.length / 2);
      const upA = startUpload(a, `${base}/v1/detect`, jpeg.subarray(0, half));
      const upB = startUpload(b, `${base}/v1/detect`, jpeg.subarray(0, half));
      await waitInFlight(base, 2 + 1);
      const closing = server.close();
      await assert.rejects(fetch(`${base}/healthz`), 'no longer accepting connections');
      upB.finish(jpeg.subarray(half));
      assert.equal((await upB.reply).status, 200, 'the in-flight request finished');
      // A load balancer polling over a kept-alive connection sees the server go unready.
      const ready = await getVia(b, `${base}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal((ready.json as { error: { code: string } }).error.code, 'not_ready');
      upA.finish(jpeg.subarray(half));
      const r = await upA.reply;
      assert.equal(r.status, 200);
      assert.ok((r.json as { detections: unknown[] }).detections.length > 0);
      await closing;
      await server.close();
      await assert.rejects(server.detector.detectImage(jpeg), /closed/);
      assert.throws(() => server.streams.start({ source: 'rtsp://127.0.0.1:1/x' }), {
        code: 'shutting_down',
      });
    } finally {
      a.destroy();
      b.destroy();
    }
  });
});

describe('under load (small queue, no batching)', () => {
  let server: EdgekdServer;
  let base: string;
  let jpeg: Buffer;

  before(async () => {
    server = await createServer({ modelPath: models.boxes, batching: false, queueSize: 4 });
    base = (await server.listen()).url;
    await server.ready;
    jpeg = await testImage(96, 72);
  });
  after(() => server.close());

  test('200 concurrent requests beyond the queue: the excess gets 503 overloaded + Retry-After, nothing else fails', async () => {
    const replies = await Promise.all(Array.from({ length: 200 }, () => postImage(base, jpeg)));
    const byStatus = new Map<number, number>();
    for (const r of replies) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    assert.deepEqual([...byStatus.keys()].sort(), [200, 503], JSON.stringify([...byStatus]));
    for (const r of replies.filter((x) => x.status === 503)) {
      assert.equal(errorOf(r).code, 'overloaded');
      assert.equal(r.headers.get('retry-after'), '1');
    }
    const ok = await postImage(base, jpeg);
    assert.equal(ok.status, 200);
    assert.equal((ok.json as { timings: { batchSize: number } }).timings.batchSize, 1);
    assert.equal((await call(`${base}/healthz`)).status, 200);
  });
});

describe('with a per-request timeout shorter than a model run', () => {
  let server: EdgekdServer;
  let base: string;

  before(async () => {
    server = await createServer({ modelPath: models.boxes, timeoutMs: 3 });
    base = (await server.listen()).url;
    await server.ready;
  });
  after(() => server.close());

  test('answers 504 timeout and keeps serving', async () => {
    const jpeg = await testImage(96, 72);
    const replies = await Promise.all(Array.from({ length: 4 }, () => postImage(base, jpeg)));
    for (const r of replies) {
      assert.equal(r.status, 504);
      assert.equal(errorOf(r).code, 'timeout');
    }
    assert.equal((await call(`${base}/healthz`)).status, 200);
    assert.equal((await call(`${base}/v1/models`)).status, 200);
  });
});
