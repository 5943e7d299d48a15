/**
 * The stream routes of the real server (server/app.ts createServer) over real HTTP on loopback:
 * a real detector (ONNX Runtime on a model written by the project's exporter), real ffmpeg on
 * clips made here, SSE and MJPEG read with fetch. Checks what a client relies on (events, frames,
 * status codes, error bodies) and that no ffmpeg child outlives a stream that ends, fails, is
 * deleted or is stopped by a graceful shutdown.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import sharp from 'sharp';
import { liveFfmpegPids } from '../../runtime/video/ffmpeg.js';
import type { FrameRecord } from '../../runtime/video/sinks.js';
import { createServer, type EdgekdServer, type ServerOptions } from '../../server/app.js';
import { errorBody, HttpError, toHttpError } from '../../server/http-error.js';
import { StreamManager, streamsRouter, type StreamInfo } from '../../server/streams.js';
import { writeTestModels } from '../runtime/fixtures.js';
import { delay, makeClip, pidAlive, pidsWithArg, SKIP, tmp } from '../runtime/video/helpers.js';

const dir = SKIP ? '' : tmp('edgekd-streams-');
let modelPath: string;
/** 2 s, 320x240, 25 fps: 50 frames. */
let shortClip: string;
/** 60 s, 160x120, 10 fps: long enough to still be running when a test stops it. */
let longClip: string;
let main: TestServer;

interface TestServer {
  base: string;
  server: EdgekdServer;
  manager: StreamManager;
}

/** The real server on 127.0.0.1, any free port. */
async function serve(opts: Partial<ServerOptions> = {}): Promise<TestServer> {
  const server = await createServer({ modelPath, workers: 1, ...opts });
  await server.ready;
  const { url } = await server.listen(0, '127.0.0.1');
  return { base: url, server, manager: server.streams };
}

before(async () => {
  if (SKIP) return;
  modelPath = writeTestModels(dir).boxes;
  shortClip = makeClip(join(dir, 'short.mp4'), { seconds: 2 });
  longClip = makeClip(join(dir, 'long.mp4'), { size: '160x120', rate: 10, seconds: 60 });
  main = await serve();
});

after(async () => {
  await main?.server.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// #region client helpers

async function post(base: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/v1/streams`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { res, json: (await res.json()) as StreamInfo & { error: { code: string; message: string } } };
}

async function getJson<T>(url: string, init?: RequestInit): Promise<{ status: number; json: T }> {
  const res = await fetch(url, init);
  return { status: res.status, json: (await res.json()) as T };
}

interface SseMessage {
  event: string;
  data: unknown;
}

/** Reads server-sent events; comment lines come as event ':'. Ends when the server closes. */
async function* sse(url: string, signal?: AbortSignal): AsyncGenerator<SseMessage> {
  const res = await fetch(url, { signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = res.body!.getReader();
  const text = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += text.decode(value, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const lines = block.split('\n');
        if (lines.every((l) => l.startsWith(':'))) {
          yield { event: ':', data: block };
          continue;
        }
        const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message';
        const data = lines
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        yield { event, data: data ? (JSON.parse(data) as unknown) : null };
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await delay(20);
  }
}

const indexOf = (buf: Buffer, s: string, from = 0) => buf.indexOf(Buffer.from(s, 'latin1'), from);

// #endregion

test(
  'streams detections over SSE, then an end event; the ended stream stays listed',
  { skip: SKIP },
  async () => {
    const { res, json: started } = await post(main.base, { source: shortClip, live: true });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), `/v1/streams/${started.id}`);
    assert.equal(started.live, true);
    assert.equal(started.state, 'running', 'a local file is opened before POST answers');
    assert.equal(started.source, shortClip);

    const kinds = new Set<string>();
    const frames: FrameRecord[] = [];
    let end: StreamInfo | null = null;
    for await (const m of sse(`${main.base}/v1/streams/${started.id}/events`)) {
      kinds.add(m.event);
      if (m.event === 'detections') frames.push(m.data as FrameRecord);
      if (m.event === 'end') end = m.data as StreamInfo;
      assert.notEqual(m.event, 'error');
    }
    assert.ok(end, 'an end event before the server closes the connection');
    assert.equal(end.state, 'ended');
    assert.equal(end.frames + end.droppedFrames, 50);
    assert.ok(kinds.has('stats'), `a stats event first (${[...kinds].join(', ')})`);
    // Played at its native rate (live), so a subscriber that connects right after POST sees nearly every frame.
    assert.ok(frames.length >= 40, `${frames.length} detection events`);
    assert.ok(frames.every((f, i) => i === 0 || f.frame > frames[i - 1].frame));
    for (const f of frames) {
      assert.deepEqual([f.width, f.height], [320, 240]);
      assert.equal(f.scores.length, f.boxes.length);
      assert.equal(f.classes.length, f.boxes.length);
      assert.equal(f.trackIds.length, f.boxes.length);
    }
    assert.ok(
      frames.some((f) => f.trackIds.some((t) => t !== null)),
      'track ids (tracking is on by default)',
    );

    const one = await getJson<StreamInfo>(`${main.base}/v1/streams/${started.id}`);
    assert.equal(one.status, 200);
    assert.deepEqual(one.json, end);
    const all = await getJson<{ streams: StreamInfo[] }>(`${main.base}/v1/streams`);
    assert.ok(all.json.streams.some((s) => s.id === started.id && s.state === 'ended'));

    // A late subscriber gets the final state at once, then the connection closes.
    const late: string[] = [];
    for await (const m of sse(`${main.base}/v1/streams/${started.id}/events`)) late.push(m.event);
    assert.deepEqual(late, ['stats', 'end']);
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test('serves annotated frames as MJPEG: multipart parts that are whole JPEGs', { skip: SKIP }, async () => {
  const { json: started } = await post(main.base, { source: shortClip, live: true });
  const ac = new AbortController();
  const res = await fetch(`${main.base}/v1/streams/${started.id}/mjpeg`, { signal: ac.signal });
  assert.equal(res.status, 200);
  const boundary = /^multipart\/x-mixed-replace; boundary=(\S+)$/.exec(
    res.headers.get('content-type') ?? '',
  )?.[1];
  assert.ok(boundary, res.headers.get('content-type') ?? '');
  const reader = res.body!.getReader();
  let buf = Buffer.alloc(0);
  const jpegs: Buffer[] = [];
  try {
    while (jpegs.length < 2) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the stream closed after ${jpegs.length} part(s)`);
      buf = Buffer.concat([buf, value]);
      for (;;) {
        const start = indexOf(buf, `--${boundary}\r\n`);
        const headEnd = indexOf(buf, '\r\n\r\n', start);
        if (start < 0 || headEnd < 0) break;
        const head = buf.subarray(start, headEnd).toString('latin1');
        assert.match(head, /Content-Type: image\/jpeg/);
        const length = Number(/Content-Length: (\d+)/.exec(head)?.[1]);
        if (buf.length < headEnd + 4 + length + 2) break;
        jpegs.push(buf.subarray(headEnd + 4, headEnd + 4 + length));
        buf = buf.subarray(headEnd + 4 + length + 2);
      }
    }
  } finally {
    ac.abort();
    await reader.cancel().catch(() => undefined);
  }
  for (const j of jpegs) {
    assert.deepEqual([j[0], j[1]], [0xff, 0xd8], 'SOI');
    assert.deepEqual([j.at(-2), j.at(-1)], [0xff, 0xd9], 'EOI');
    const meta = await sharp(j).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 320, 240]);
  }
  const del = await getJson<StreamInfo>(`${main.base}/v1/streams/${started.id}`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  await waitFor(() => main.manager.stats().clients === 0, 'the MJPEG client to be let go');
});

test('DELETE stops a live stream after its ffmpeg child is gone', { skip: SKIP }, async () => {
  const before = main.manager.stats();
  const { res, json: started } = await post(main.base, { source: longClip, live: true });
  assert.equal(res.status, 201);
  await waitFor(() => pidsWithArg(longClip).length > 0, 'the decoder to start');
  const pids = pidsWithArg(longClip);
  assert.equal(main.manager.stats().active, before.active + 1);
  assert.equal(main.manager.stats().started, before.started + 1);

  const del = await getJson<StreamInfo>(`${main.base}/v1/streams/${started.id}`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  assert.equal(del.json.id, started.id);
  assert.equal(del.json.state, 'stopped');
  assert.equal(del.json.error, undefined);
  for (const pid of pids) assert.equal(pidAlive(pid), false, `ffmpeg ${pid} is gone when DELETE answers`);
  assert.deepEqual(liveFfmpegPids(), []);
  assert.equal(main.manager.stats().active, before.active);

  const again = await getJson<StreamInfo>(`${main.base}/v1/streams/${started.id}`, { method: 'DELETE' });
  assert.deepEqual([again.status, again.json.state], [200, 'stopped'], 'DELETE is idempotent');
});

test('rejects a start beyond maxStreams with 429 too_many_streams', { skip: SKIP }, async () => {
  const capped = await serve({ maxStreams: 1 });
  try {
    const first = await post(capped.base, { source: longClip, live: true });
    assert.equal(first.res.status, 201);
    const second = await post(capped.base, { source: shortClip });
    assert.equal(second.res.status, 429);
    assert.equal(second.json.error.code, 'too_many_streams');
    assert.match(second.json.error.message, /at most 1 stream/);
    const list = await getJson<{ streams: StreamInfo[] }>(`${capped.base}/v1/streams`);
    assert.deepEqual(
      list.json.streams.map((s) => s.id),
      [first.json.id],
    );

    await fetch(`${capped.base}/v1/streams/${first.json.id}`, { method: 'DELETE' });
    const third = await post(capped.base, { source: shortClip, maxFrames: 5 });
    assert.equal(third.res.status, 201, 'a stopped stream frees its slot');
  } finally {
    await capped.server.close();
  }
});

test(
  'graceful shutdown (stopAll) ends every stream and its subscribers and leaves no ffmpeg child',
  { skip: SKIP },
  async () => {
    const s = await serve();
    try {
      const a = await post(s.base, { source: longClip, live: true });
      const b = await post(s.base, { source: longClip, live: true, countLine: [0, 60, 160, 60] });
      assert.deepEqual([a.res.status, b.res.status], [201, 201]);
      await waitFor(() => pidsWithArg(longClip).length >= 2, 'both decoders to start');
      const pids = pidsWithArg(longClip);

      const seen: string[] = [];
      let last: StreamInfo | null = null;
      const watcher = (async () => {
        for await (const m of sse(`${s.base}/v1/streams/${b.json.id}/events`)) {
          seen.push(m.event);
          if (m.event === 'detections') assert.ok((m.data as FrameRecord).counts, 'counts with a count line');
          if (m.event === 'end') last = m.data as StreamInfo;
        }
      })();
      await waitFor(() => seen.includes('detections'), 'a detections event');

      // The server's shutdown stops the streams through StreamManager.stopAll().
      await s.server.close();
      for (const pid of pids) assert.equal(pidAlive(pid), false);
      assert.deepEqual(liveFfmpegPids(), []);
      assert.deepEqual(
        s.manager.list().map((i) => i.state),
        ['stopped', 'stopped'],
      );
      await watcher;
      assert.equal((last as StreamInfo | null)?.state, 'stopped', 'subscribers get the end and are let go');
      assert.equal(s.manager.stats().active, 0);

      assert.throws(
        () => s.manager.start({ source: shortClip }),
        (e: unknown) => {
          assert.ok(e instanceof HttpError);
          assert.deepEqual([e.status, e.code], [503, 'shutting_down']);
          return true;
        },
      );
      await assert.rejects(fetch(`${s.base}/healthz`), 'the server no longer listens');
    } finally {
      await s.server.close();
    }
  },
);

test(
  'rejects a local source that does not exist or is not a video with 422 stream_source',
  { skip: SKIP },
  async () => {
    const missing = await post(main.base, { source: join(dir, 'nope.mp4') });
    assert.equal(missing.res.status, 422);
    assert.equal(missing.json.error.code, 'stream_source');
    assert.match(missing.json.error.message, /not found: '.*nope\.mp4'/);

    const text = join(dir, 'notes.mp4');
    writeFileSync(text, 'this is not a video\n'.repeat(50));
    const bad = await post(main.base, { source: text });
    assert.equal(bad.res.status, 422);
    assert.equal(bad.json.error.code, 'stream_source');
    assert.match(bad.json.error.message, /cannot open video source '.*notes\.mp4': .*Invalid data/i);

    const list = await getJson<{ streams: StreamInfo[] }>(`${main.base}/v1/streams`);
    assert.ok(!list.json.streams.some((s) => s.source.includes('nope') || s.source.includes('notes')));
    assert.equal(main.manager.stats().active, 0);
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test(
  'reports a URL that cannot be opened as a failed stream and an SSE error event',
  { skip: SKIP },
  async () => {
    // A port nobody listens on: the connection is refused at once.
    const port = await new Promise<number>((resolve) => {
      const probe = createNetServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const url = `http://user:secret@127.0.0.1:${port}/clip.mp4`;
    const { res, json: started } = await post(main.base, { source: url });
    assert.equal(res.status, 201, 'a URL is not waited for');
    assert.equal(started.source, `http://user:***@127.0.0.1:${port}/clip.mp4`, 'passwords are masked');

    const events: SseMessage[] = [];
    for await (const m of sse(`${main.base}/v1/streams/${started.id}/events`)) events.push(m);
    const last = events.at(-1)!;
    assert.equal(last.event, 'error');
    const info = last.data as StreamInfo;
    assert.equal(info.state, 'failed');
    assert.equal(info.error?.code, 'stream_source');
    assert.match(info.error?.message ?? '', /cannot open video source .*refused/i);
    assert.ok(!info.error?.message.includes('secret'), 'no password in the error');
    const got = await getJson<StreamInfo>(`${main.base}/v1/streams/${started.id}`);
    assert.deepEqual(got.json, info);
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test('rejects bad bodies with a 4xx JSON error that names the field', { skip: SKIP }, async () => {
  const cases: [unknown, number, string, RegExp][] = [
    [{}, 400, 'invalid_parameter', /'source' is required/],
    [{ source: '' }, 400, 'invalid_parameter', /'source' must be a non-empty/],
    [{ source: 42 }, 400, 'invalid_parameter', /'source' expected string/],
    [
      { source: shortClip, countLine: [0, 1, 2] },
      400,
      'invalid_parameter',
      /'countLine' must be \[x1, y1, x2, y2\]/,
    ],
    [
      { source: shortClip, countLine: [0, 1, 2, 3], track: false },
      400,
      'invalid_parameter',
      /'countLine'.*'track'/,
    ],
    [{ source: shortClip, maxFrames: 0 }, 400, 'invalid_parameter', /'maxFrames' must be >= 1/],
    [{ source: shortClip, live: 'yes' }, 400, 'invalid_parameter', /'live' expected boolean/],
    [{ sorce: shortClip }, 400, 'invalid_parameter', /unknown field 'sorce'; did you mean 'source'/],
    [{ source: 'ftp://example.com/a.mp4' }, 400, 'invalid_parameter', /unsupported source URL scheme 'ftp'/],
    [{ source: '-' }, 400, 'invalid_parameter', /stdin/],
    [[shortClip], 400, 'invalid_parameter', /JSON object/],
    ['{"source":', 400, 'bad_request', /not valid JSON/],
  ];
  for (const [body, status, code, message] of cases) {
    const { res, json } = await post(main.base, body);
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(json.error.code, code, JSON.stringify(body));
    assert.match(json.error.message, message, JSON.stringify(body));
  }
  const wrongType = await post(main.base, `source=${shortClip}`, {
    'content-type': 'application/x-www-form-urlencoded',
  });
  assert.deepEqual([wrongType.res.status, wrongType.json.error.code], [415, 'unsupported_media_type']);
  const empty = await fetch(`${main.base}/v1/streams`, { method: 'POST' });
  assert.equal(empty.status, 400);
  assert.equal(((await empty.json()) as { error: { code: string } }).error.code, 'invalid_parameter');
  assert.equal(main.manager.stats().active, 0);
});

test('answers 404 not_found for an unknown stream id on every route', { skip: SKIP }, async () => {
  for (const [method, path] of [
    ['GET', ''],
    ['GET', '/events'],
    ['GET', '/mjpeg'],
    ['DELETE', ''],
  ]) {
    const r = await getJson<{ error: { code: string; message: string } }>(
      `${main.base}/v1/streams/nope${path}`,
      {
        method,
      },
    );
    assert.equal(r.status, 404, `${method} ${path}`);
    assert.equal(r.json.error.code, 'not_found');
    assert.match(r.json.error.message, /'nope'/);
  }
});

test(
  'a client leaving an SSE stream mid-way is let go and the stream keeps serving',
  { skip: SKIP },
  async () => {
    const { json: started } = await post(main.base, { source: longClip, live: true });
    const ac = new AbortController();
    let firstFrame = -1;
    await assert.rejects(
      (async () => {
        for await (const m of sse(`${main.base}/v1/streams/${started.id}/events`, ac.signal))
          if (m.event === 'detections') {
            firstFrame = (m.data as FrameRecord).frame;
            ac.abort();
          }
      })(),
      { name: 'AbortError' },
    );
    await waitFor(() => main.manager.stats().clients === 0, 'the server to drop the SSE client');

    // The stream runs on and a new subscriber gets newer frames.
    const ac2 = new AbortController();
    let next = -1;
    await assert.rejects(
      (async () => {
        for await (const m of sse(`${main.base}/v1/streams/${started.id}/events`, ac2.signal))
          if (m.event === 'detections') {
            next = (m.data as FrameRecord).frame;
            ac2.abort();
          }
      })(),
      { name: 'AbortError' },
    );
    assert.ok(next > firstFrame, `frame ${next} after ${firstFrame}`);
    const info = await getJson<StreamInfo>(`${main.base}/v1/streams/${started.id}`);
    assert.equal(info.json.state, 'running');
    await fetch(`${main.base}/v1/streams/${started.id}`, { method: 'DELETE' });
    await waitFor(() => main.manager.stats().clients === 0, 'no client left');
    assert.deepEqual(liveFfmpegPids(), []);
  },
);

test('sends heartbeat comments and periodic stats while a stream runs', { skip: SKIP }, async () => {
  // The stream router alone, with short periods, in an app with the API's error shape.
  const manager = new StreamManager({
    detector: main.server.detector,
    maxStreams: 1,
    heartbeatMs: 150,
    statsIntervalMs: 200,
  });
  const app = express();
  app.use(streamsRouter(manager));
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const h = toHttpError(err);
    res.status(h.status).set(h.headers).json(errorBody(h));
  });
  const http: Server = await new Promise((resolve) => {
    const srv = app.listen(0, '127.0.0.1', () => resolve(srv));
  });
  try {
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const { json: started } = await post(base, { source: longClip, live: true });
    const seen: SseMessage[] = [];
    const ac = new AbortController();
    const deadline = setTimeout(() => ac.abort(), 10_000);
    const moving = (e: SseMessage) => e.event === 'stats' && (e.data as StreamInfo).fps > 0;
    await assert.rejects(
      (async () => {
        for await (const m of sse(`${base}/v1/streams/${started.id}/events`, ac.signal)) {
          seen.push(m);
          if (seen.some(moving) && seen.some((e) => e.event === ':')) ac.abort();
        }
      })(),
      { name: 'AbortError' },
    );
    clearTimeout(deadline);
    const stats = seen
      .filter((e) => e.event === 'stats')
      .map((e) => e.data as StreamInfo & { pipeline: unknown });
    assert.ok(stats.length >= 2, `${stats.length} stats events`);
    assert.equal(stats.at(-1)?.state, 'running');
    assert.ok(stats.at(-1)!.frames > 0 && stats.at(-1)!.fps > 0, JSON.stringify(stats.at(-1)));
    assert.ok(stats.at(-1)!.pipeline, 'pipeline stats (queues, stage times) ride along');
    assert.ok(seen.some((e) => e.event === ':' && /^: heartbeat$/.test(e.data as string)));
  } finally {
    await manager.stopAll();
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  }
  assert.deepEqual(liveFfmpegPids(), []);
});
