/**
 * The HTTP server end to end on loopback with a real model written by the exporter: the routes'
 * contracts, per-request filters, multipart, annotation, micro-batching, metrics, the OpenAPI
 * document against the mounted routes, auth and CORS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Express } from 'express';
import sharp from 'sharp';
import { createServer, type EdgekdServer } from '../../server/app.js';
import { writeTestModels } from '../runtime/fixtures.js';
import { call, errorOf, postImage, testImage } from './helpers.js';

interface DetectBody {
  model: string;
  provider: string;
  width: number;
  height: number;
  detections: { box: number[]; score: number; class: number; label: string }[];
  timings: Record<string, number>;
}

const dir = mkdtempSync(join(tmpdir(), 'edgekd-server-app-'));
const models = writeTestModels(dir);

describe('server with default options', () => {
  let server: EdgekdServer;
  let base: string;
  let jpeg: Buffer;

  before(async () => {
    server = await createServer({ modelPath: models.boxes, maxWaitMs: 20 });
    base = (await server.listen()).url;
    await server.ready;
    jpeg = await testImage(160, 120, 'jpeg', 3);
  });
  after(() => server.close());

  test('GET /healthz and /readyz answer ok once warmed up', async () => {
    const h = await call(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: 'ok' });
    const r = await call(`${base}/readyz`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: 'ready' });
  });

  test('GET /v1/models describes the model and links to its ONNX bytes', async () => {
    const r = await call(`${base}/v1/models`);
    assert.equal(r.status, 200);
    const { models: list } = r.json as { models: Record<string, unknown>[] };
    assert.equal(list.length, 1);
    const mdl = list[0];
    assert.equal(mdl.name, 'rt-micro');
    assert.equal(mdl.provider, 'cpu');
    assert.equal(mdl.outputs, 'boxes');
    assert.equal(mdl.precision, 'fp32');
    assert.deepEqual(mdl.classes, ['person']);
    assert.deepEqual(mdl.input, {
      width: 64,
      height: 64,
      channelOrder: 'rgb',
      normalization: { kind: 'unit' },
      resize: 'letterbox',
    });
    assert.equal((mdl.spec as { name: string }).name, 'rt-micro');
    assert.equal(mdl.url, '/v1/models/rt-micro/model.onnx');
    const onnx = await call(`${base}${mdl.url as string}`);
    assert.equal(onnx.status, 200);
    assert.equal(onnx.headers.get('content-type'), 'application/octet-stream');
    assert.ok(onnx.body.equals(readFileSync(models.boxes)), 'the served bytes are the model file');
  });

  test('an unknown model name is 404 not_found', async () => {
    const r = await call(`${base}/v1/models/nope/model.onnx`);
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).code, 'not_found');
    assert.match(errorOf(r).message, /nope/);
  });

  test('POST /v1/detect with a raw JPEG, PNG and WebP answers detections in source pixels', async () => {
    for (const format of ['jpeg', 'png', 'webp'] as const) {
      const img = await testImage(200, 100, format, 5);
      const r = await postImage(base, img, { type: `image/${format}` });
      assert.equal(r.status, 200, `${format}: ${r.body.toString().slice(0, 200)}`);
      const b = r.json as DetectBody;
      assert.equal(b.model, 'rt-micro');
      assert.equal(b.provider, 'cpu');
      assert.equal(b.width, 200);
      assert.equal(b.height, 100);
      assert.ok(b.detections.length > 0, `${format}: the zero-bias test model finds peaks`);
      for (const d of b.detections) {
        assert.equal(d.box.length, 4);
        assert.ok(
          d.box[0] >= -1 && d.box[2] <= 201 && d.box[0] < d.box[2] && d.box[1] < d.box[3],
          `${d.box}`,
        );
        assert.ok(d.score >= 0.3, 'default threshold = the spec decode.scoreThreshold');
        assert.equal(d.class, 0);
        assert.equal(d.label, 'person');
      }
      const scores = b.detections.map((d) => d.score);
      assert.deepEqual(
        scores,
        scores.slice().sort((x, y) => y - x),
        'best first',
      );
      for (const k of ['queueMs', 'preMs', 'inferMs', 'postMs', 'totalMs', 'batchSize'])
        assert.equal(typeof b.timings[k], 'number', k);
      assert.ok(b.timings.batchSize >= 1);
    }
  });

  test('threshold, maxDetections and classes filter per request', async () => {
    const all = (await postImage(base, jpeg, { query: 'threshold=0' })).json as DetectBody;
    const high = (await postImage(base, jpeg, { query: 'threshold=0.55' })).json as DetectBody;
    assert.ok(all.detections.length > high.detections.length);
    assert.ok(high.detections.every((d) => d.score >= 0.55));
    assert.deepEqual(
      high.detections,
      all.detections.filter((d) => d.score >= 0.55),
      'a higher threshold keeps a subset of the same boxes',
    );
    const two = (await postImage(base, jpeg, { query: 'threshold=0&maxDetections=2' })).json as DetectBody;
    assert.deepEqual(two.detections, all.detections.slice(0, 2));
    const byName = (await postImage(base, jpeg, { query: 'threshold=0&classes=person' })).json as DetectBody;
    const byId = (await postImage(base, jpeg, { query: 'threshold=0&classes=0' })).json as DetectBody;
    assert.deepEqual(byName.detections, all.detections);
    assert.deepEqual(byId.detections, all.detections);
    const bad = await postImage(base, jpeg, { query: 'classes=car' });
    assert.equal(bad.status, 400);
    assert.equal(errorOf(bad).code, 'invalid_parameter');
    assert.match(errorOf(bad).message, /'classes'.*0=person/);
  });

  test('multipart with several images answers one result per image, fields as parameters', async () => {
    const imgs = [await testImage(100, 80, 'jpeg', 1), await testImage(64, 128, 'png', 2), jpeg];
    const form = new FormData();
    imgs.forEach((b, i) => form.append(`image${i}`, new Blob([b]), `i${i}`));
    form.append('threshold', '0.5');
    const r = await call(`${base}/v1/detect?maxDetections=3`, { method: 'POST', body: form });
    assert.equal(r.status, 200, r.body.toString());
    const b = r.json as { model: string; provider: string; results: DetectBody[] };
    assert.equal(b.model, 'rt-micro');
    assert.deepEqual(
      b.results.map((x) => [x.width, x.height]),
      [
        [100, 80],
        [64, 128],
        [160, 120],
      ],
    );
    for (const x of b.results) {
      assert.ok(x.detections.length <= 3);
      assert.ok(x.detections.every((d) => d.score >= 0.5));
    }
    const single = (await postImage(base, jpeg, { query: 'threshold=0.5&maxDetections=3' }))
      .json as DetectBody;
    assert.deepEqual(b.results[2].detections, single.detections, 'same answer as the raw body');

    const one = new FormData();
    one.append('file', new Blob([jpeg]), 'a.jpg');
    const r1 = await call(`${base}/v1/detect`, { method: 'POST', body: one });
    assert.equal(r1.status, 200);
    assert.equal((r1.json as DetectBody).width, 160, 'one part answers the single-image shape');

    const none = new FormData();
    none.append('threshold', '0.5');
    const r0 = await call(`${base}/v1/detect`, { method: 'POST', body: none });
    assert.equal(r0.status, 400);
    assert.equal(errorOf(r0).code, 'empty_body');
  });

  test('annotate=1 answers the image as JPEG with the boxes drawn', async () => {
    const r = await postImage(base, jpeg, { query: 'annotate=1&threshold=0.5' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'image/jpeg');
    const n = Number(r.headers.get('x-detections'));
    assert.ok(n > 0);
    const meta = await sharp(r.body).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 160, 120]);
    const plain = await sharp(jpeg).raw().toBuffer();
    const drawn = await sharp(r.body).raw().toBuffer();
    let changed = 0;
    for (let i = 0; i < plain.length; i++) if (Math.abs(plain[i] - drawn[i]) > 60) changed++;
    assert.ok(changed > 100, `${changed} bytes changed by the drawing`);

    const form = new FormData();
    form.append('a', new Blob([jpeg]));
    form.append('b', new Blob([jpeg]));
    const two = await call(`${base}/v1/detect?annotate=1`, { method: 'POST', body: form });
    assert.equal(two.status, 400);
    assert.match(errorOf(two).message, /'annotate'/);
  });

  test('concurrent requests are micro-batched into runs of more than one image', async () => {
    const replies = await Promise.all(Array.from({ length: 12 }, () => postImage(base, jpeg)));
    assert.ok(replies.every((r) => r.status === 200));
    const sizes = replies.map((r) => (r.json as DetectBody).timings.batchSize);
    assert.ok(Math.max(...sizes) > 1, `batch sizes ${sizes.join(',')}`);
    const metrics = (await call(`${base}/metrics`)).body.toString();
    const count = Number(/^edgekd_batch_size_count (\d+)/m.exec(metrics)?.[1]);
    const sum = Number(/^edgekd_batch_size_sum (\d+)/m.exec(metrics)?.[1]);
    assert.ok(sum / count > 1, `mean batch ${sum}/${count}`);
    // The same boxes come out of a batch as out of a run of one image.
    const alone = (await postImage(base, jpeg)).json as DetectBody;
    for (const r of replies) assert.deepEqual((r.json as DetectBody).detections, alone.detections);
  });

  test('GET /metrics exposes requests, latency, batch sizes, queue depth, streams and process metrics', async () => {
    await call(`${base}/v1/nothing-here`);
    const r = await call(`${base}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    const text = r.body.toString();
    assert.match(text, /^edgekd_http_requests_total\{route="\/v1\/detect",method="POST",status="200"\} \d+/m);
    assert.match(text, /^edgekd_http_requests_total\{route="unmatched",method="GET",status="404"\} 1/m);
    assert.match(text, /^edgekd_http_request_duration_seconds_bucket\{le="0\.1",route="\/v1\/detect"\} \d+/m);
    assert.match(text, /^edgekd_batch_size_bucket\{le="2"\} \d+/m);
    assert.match(text, /^edgekd_queue_depth 0$/m);
    assert.match(text, /^edgekd_active_streams 0$/m);
    assert.match(text, /^edgekd_stream_dropped_frames_total 0$/m);
    assert.match(text, /^edgekd_process_cpu_seconds_total /m);
  });

  test('unknown routes and methods answer JSON errors, never HTML', async () => {
    const r = await call(`${base}/v2/whatever`);
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).code, 'not_found');
    const m = await call(`${base}/v1/detect`);
    assert.equal(m.status, 405);
    assert.equal(errorOf(m).code, 'method_not_allowed');
    assert.equal(m.headers.get('allow'), 'POST');
    const bad = await call(`${base}/v1/models/%E0%A4%A/model.onnx`);
    assert.ok(bad.status === 400 || bad.status === 404, `${bad.status}`);
    assert.ok(errorOf(bad).code);
    assert.equal(r.headers.get('access-control-allow-origin'), null, 'CORS is off by default');
  });

  test('/openapi.json lists exactly the routes mounted on the app, with their methods', async () => {
    const r = await call(`${base}/openapi.json`);
    assert.equal(r.status, 200);
    const doc = r.json as {
      openapi: string;
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      components: { schemas: Record<string, unknown> };
    };
    assert.equal(doc.openapi, '3.1.0');
    const documented = new Set<string>();
    for (const [p, ops] of Object.entries(doc.paths))
      for (const method of Object.keys(ops)) documented.add(`${method} ${p.replace(/\{(\w+)\}/g, ':$1')}`);
    const mounted = mountedRoutes(server.app);
    assert.deepEqual([...mounted].sort(), [...documented].sort());
    // Every $ref points at a schema that exists.
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/\w+/g) ?? [];
    for (const ref of refs) assert.ok(doc.components.schemas[ref.split('/').pop()!], ref);
    assert.ok(doc.paths['/v1/detect'].post.responses['413']);
  });
});

/** `method path` of every route in the app's router, nested routers included (mounted at /). */
function mountedRoutes(app: Express): Set<string> {
  interface Layer {
    route?: { path: string | string[]; methods: Record<string, boolean> };
    handle?: { stack?: Layer[] };
  }
  const out = new Set<string>();
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const [method, on] of Object.entries(layer.route.methods))
          if (on && method !== '_all') for (const p of paths) out.add(`${method} ${p}`);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out;
}

describe('server with a token and CORS', () => {
  let server: EdgekdServer;
  let base: string;
  const token = 'test-token-123';

  before(async () => {
    server = await createServer({ modelPath: models.boxes, token, cors: 'https://example.org' });
    base = (await server.listen()).url;
    await server.ready;
  });
  after(() => server.close());

  test('API routes need the bearer token: 401 unauthorized with WWW-Authenticate otherwise', async () => {
    const jpeg = await testImage(64, 64);
    for (const [path, init] of [
      ['/v1/models', {}],
      ['/readyz', {}],
      ['/metrics', {}],
      ['/openapi.json', {}],
      ['/v1/streams', {}],
      ['/v1/detect', { method: 'POST', body: jpeg, headers: { 'content-type': 'image/jpeg' } }],
    ] as [string, RequestInit][]) {
      const none = await call(`${base}${path}`, init);
      assert.equal(none.status, 401, path);
      assert.equal(errorOf(none).code, 'unauthorized');
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      const wrong = await call(`${base}${path}`, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: 'Bearer test-token-124' },
      });
      assert.equal(wrong.status, 401, `${path} with a wrong token`);
      const ok = await call(`${base}${path}`, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` },
      });
      assert.equal(ok.status, 200, `${path} with the token: ${ok.body.toString().slice(0, 200)}`);
    }
  });

  test('/healthz and the web page need no token', async () => {
    assert.equal((await call(`${base}/healthz`)).status, 200);
    const page = await call(`${base}/`);
    assert.notEqual(page.status, 401);
  });

  test('--cors adds the CORS headers and answers preflights before auth', async () => {
    const r = await call(`${base}/healthz`, { headers: { origin: 'https://example.org' } });
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://example.org');
    const pre = await call(`${base}/v1/detect`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://example.org',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /Authorization/);
  });

  test('the OpenAPI document declares the bearer scheme', async () => {
    const r = await call(`${base}/openapi.json`, { headers: { authorization: `Bearer ${token}` } });
    const doc = r.json as {
      components: { securitySchemes: Record<string, unknown> };
      paths: Record<string, Record<string, { security: unknown[] }>>;
    };
    assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' });
    assert.deepEqual(doc.paths['/healthz'].get.security, []);
    assert.deepEqual(doc.paths['/v1/detect'].post.security, [{ bearer: [] }]);
  });
});
