/**
 * The web demo in a real headless browser (Debian's chromium driven by playwright-core) against
 * the real server: the page loads the server's model into onnxruntime-web, runs it on an image
 * chosen through the file input, draws the boxes, and matches what `POST /v1/detect` returns for
 * the same image; the server-side toggle draws the server's boxes too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import sharp from 'sharp';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createServer, type EdgekdServer } from '../../server/app.js';
import { errorBody, toHttpError } from '../../server/http-error.js';
import { webDemoRouter } from '../../server/web-demo.js';
import { writeTestModels, type TestModels } from '../runtime/fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Colours of web/src/draw.ts. */
const BROWSER_COLOR = [0, 230, 118];
const SERVER_COLOR = [255, 64, 160];

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'web'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root above the compiled test');
    dir = up;
  }
  return dir;
}

/** Where server/web-demo.ts (compiled next to this test) looks for the built page. */
const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

/** Builds the page unless the build is newer than every source it was made from. */
function ensureBuilt(): void {
  const root = repoRoot();
  const main = join(WEB_DIR, 'main.js');
  const info = join(WEB_DIR, 'build-inputs.json');
  if (existsSync(main) && existsSync(info)) {
    const built = statSync(main).mtimeMs;
    const { inputs } = JSON.parse(readFileSync(info, 'utf8')) as { inputs: string[] };
    const fresh = inputs.every((p) => existsSync(join(root, p)) && statSync(join(root, p)).mtimeMs <= built);
    if (fresh) return;
  }
  execFileSync(process.execPath, [join(root, 'scripts/build-web.mjs'), '--out', WEB_DIR], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** A smooth synthetic frame (no pixel near either box colour: green stays below 160). */
async function testImage(width: number, height: number): Promise<Buffer> {
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const u = x / width;
      const v = y / height;
      // Two dark upright blobs on a gradient, roughly person-shaped.
      const blob = (cx: number, cy: number, rx: number, ry: number) =>
        Math.exp(-(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2));
      const b = Math.max(blob(0.3, 0.55, 0.08, 0.3), blob(0.72, 0.5, 0.07, 0.28));
      const i = (y * width + x) * 3;
      px[i] = Math.round((60 + 140 * u) * (1 - 0.8 * b));
      px[i + 1] = Math.round((90 + 60 * v) * (1 - 0.8 * b));
      px[i + 2] = Math.round((120 + 80 * (1 - u)) * (1 - 0.7 * b));
    }
  return sharp(px, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

interface FrameView {
  width: number;
  height: number;
  detections: { box: number[]; score: number; classId: number; trackId?: number }[];
  serverDetections?: { box: number[]; score: number; classId: number }[];
  browserMs: { preMs: number; inferMs: number; postMs: number; totalMs: number };
  serverMs?: { roundTripMs: number; inferMs?: number };
  boxesDrawn: number;
}

/** What the test reads of `window.edgekdDemo` (web/src/main.ts). */
interface DemoGlobal {
  edgekdDemo: {
    ready: Promise<void>;
    backend?: string;
    fallbacks: { backend: string; reason: string }[];
    threads?: number;
    warmupMs?: number;
    lastFrame?: FrameView;
    framesDrawn: number;
    errors: string[];
    runImage(url: string): Promise<FrameView>;
  };
}

interface CanvasLike {
  width: number;
  height: number;
  getContext(kind: '2d'): {
    getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> };
  };
}

/** Which canvas pixels have `color` (within 2 levels), read back from the page's canvas. */
async function colorMask(p: Page, color: number[]): Promise<{ width: number; height: number; mask: string }> {
  return p.evaluate((c) => {
    const doc = (globalThis as unknown as { document: { getElementById(id: string): CanvasLike | null } })
      .document;
    const canvas = doc.getElementById('view')!;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let mask = '';
    for (let i = 0; i < d.length; i += 4) {
      const hit =
        Math.abs(d[i] - c[0]) <= 2 && Math.abs(d[i + 1] - c[1]) <= 2 && Math.abs(d[i + 2] - c[2]) <= 2;
      mask += hit ? '1' : '0';
    }
    return { width: canvas.width, height: canvas.height, mask };
  }, color);
}

/**
 * Checks the canvas really shows the boxes: pixels of the box colour exist, and nearly every
 * box has an outline pixel of that colour on one of its four edges (a neighbour's label text
 * may hide a few).
 */
async function assertBoxesDrawn(p: Page, boxes: number[][], color: number[]): Promise<void> {
  const { width, height, mask } = await colorMask(p, color);
  assert.ok(mask.includes('1'), `no pixel of the box colour ${color.join(',')} on the canvas`);
  const at = (x: number, y: number) => {
    const xi = Math.min(width - 1, Math.max(0, Math.round(x)));
    const yi = Math.min(height - 1, Math.max(0, Math.round(y)));
    return mask[yi * width + xi] === '1';
  };
  const missing = boxes.filter(([x1, y1, x2, y2]) => {
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2;
    return ![at(x1, my), at(x2 - 1, my), at(mx, y1), at(mx, y2 - 1)].some(Boolean);
  });
  assert.ok(
    missing.length <= boxes.length * 0.1,
    `${missing.length} of ${boxes.length} boxes have no outline pixel: ${JSON.stringify(missing.slice(0, 3))}`,
  );
}

type Det = { box: number[]; score: number };

/**
 * Pairs browser and server boxes, closest first; a pair counts when every corner is within
 * `tolPx`. Returns the pairs' count and their worst corner / score differences.
 */
function matchBoxes(a: Det[], b: Det[], tolPx: number) {
  const cand: { i: number; j: number; err: number }[] = [];
  for (let i = 0; i < a.length; i++)
    for (let j = 0; j < b.length; j++) {
      const err = Math.max(...a[i].box.map((v, k) => Math.abs(v - b[j].box[k])));
      if (err <= tolPx) cand.push({ i, j, err });
    }
  cand.sort((x, y) => x.err - y.err);
  const usedA = new Set<number>();
  const usedB = new Set<number>();
  let worstPx = 0;
  let worstScore = 0;
  for (const { i, j, err } of cand) {
    if (usedA.has(i) || usedB.has(j)) continue;
    usedA.add(i);
    usedB.add(j);
    worstPx = Math.max(worstPx, err);
    worstScore = Math.max(worstScore, Math.abs(a[i].score - b[j].score));
  }
  return { matched: usedA.size, worstPx, worstScore };
}

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium)`;
if (skip) console.log(`# skipping the web demo tests: ${skip}`);

let dir: string;
let models: TestModels;
const servers: EdgekdServer[] = [];
let base: string;
let browser: Browser | undefined;
let page: Page;
/** Console errors, page errors and failed requests of every page, with the page's URL. */
const pageErrors: string[] = [];

const urls: string[] = [];

async function startServer(modelPath: string, token?: string): Promise<string> {
  const s = await createServer({ modelPath, token });
  servers.push(s);
  const { url } = await s.listen(0, '127.0.0.1');
  await s.ready;
  urls.push(url);
  return url;
}

/** Opens the demo and waits until its model runs; every error the page shows is collected. */
async function openDemo(url: string, b = browser!): Promise<{ page: Page; loadMs: number }> {
  const p = await b.newPage({ viewport: { width: 1280, height: 900 } });
  p.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
  });
  p.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  p.on('response', (r) => {
    if (r.status() >= 400) pageErrors.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  p.on('requestfailed', (r) => pageErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  const t0 = performance.now();
  await p.goto(url);
  await p.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.ready);
  return { page: p, loadMs: performance.now() - t0 };
}

/** Picks `png` in the file input and returns the frame the page drew for it. */
async function detectViaFileInput(p: Page, png: Buffer): Promise<FrameView> {
  const before = await p.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.framesDrawn);
  await p.setInputFiles('#file', { name: 'street.png', mimeType: 'image/png', buffer: png });
  await p.waitForFunction((n) => (globalThis as unknown as DemoGlobal).edgekdDemo.framesDrawn > n, before);
  return (await p.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.lastFrame))!;
}

async function serverDetect(url: string, png: Buffer, threshold: number) {
  const res = await fetch(`${url}/v1/detect?threshold=${threshold}&maxDetections=100`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: png,
  });
  assert.equal(res.status, 200);
  return (await res.json()) as { detections: Det[]; timings: { inferMs?: number } };
}

before(async () => {
  if (skip) return;
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'edgekd-web-'));
  models = writeTestModels(dir);
  base = await startServer(models.boxes);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--disable-gpu', ...ARGS],
  });
});

after(async () => {
  try {
    await browser?.close();
  } finally {
    await Promise.all(servers.map((s) => s.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

test('serves the built page with module, wasm and isolation headers', { skip }, async () => {
  const res = await fetch(`${base}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  // Cross-origin isolation lets onnxruntime-web run WebAssembly on several threads.
  assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin');
  assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp');
  assert.match(await res.text(), /<script type="module" src="main\.js">/);
  const js = await fetch(`${base}/main.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
  assert.equal(js.headers.get('cache-control'), 'no-cache');
  await js.arrayBuffer();
  const { ortVersion } = JSON.parse(readFileSync(join(WEB_DIR, 'build-inputs.json'), 'utf8')) as {
    ortVersion: string;
  };
  const wasm = await fetch(`${base}/ort/${ortVersion}/ort-wasm-simd-threaded.jsep.wasm`, { method: 'HEAD' });
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  assert.match(wasm.headers.get('cache-control') ?? '', /immutable/);
  const mjs = await fetch(`${base}/ort/${ortVersion}/ort-wasm-simd-threaded.jsep.mjs`, { method: 'HEAD' });
  assert.match(mjs.headers.get('content-type') ?? '', /^text\/javascript/);
});

test('answers 503 not_ready at / when the page is not built', { skip }, async () => {
  const app = express();
  app.use(webDemoRouter({ dir: join(tmpdir(), 'edgekd-no-such-web-build') }));
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const h = toHttpError(err);
    res.status(h.status).json(errorBody(h));
  });
  const s = app.listen(0, '127.0.0.1');
  await new Promise<void>((r) => s.once('listening', () => r()));
  try {
    const { port } = s.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), {
      error: { code: 'not_ready', message: 'web demo not built: run npm run build' },
    });
  } finally {
    await new Promise<void>((r) => s.close(() => r()));
  }
});

test(
  'runs the model in the browser on a chosen image and draws the boxes the server finds',
  { skip },
  async () => {
    const opened = await openDemo(`${base}/`);
    page = opened.page;
    // Headless chromium with --disable-gpu has no WebGPU adapter: the page falls back to wasm
    // and says so.
    assert.equal(await page.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.backend), 'wasm');
    assert.match((await page.textContent('#stat-backend')) ?? '', /^wasm \(\d+ threads?\)$/);
    assert.equal(await page.getAttribute('#view', 'data-backend'), 'wasm');

    // 64 x 40 into the 64 x 64 input: scale 1 and 12 px of letterbox padding above and below,
    // so browser and server see identical pixels and must agree to rounding.
    const png = await testImage(64, 40);
    const frame = await detectViaFileInput(page, png);
    const threshold = Number(await page.inputValue('#threshold'));
    assert.equal(frame.width, 64);
    assert.equal(frame.height, 40);
    assert.ok(frame.detections.length > 0, 'the heatmap-bias-0 test model finds boxes everywhere');
    for (const d of frame.detections) {
      assert.ok(d.score >= threshold);
      assert.ok(
        d.box[0] >= 0 && d.box[1] >= 0 && d.box[2] <= 64 && d.box[3] <= 40,
        `box in source px: ${d.box}`,
      );
    }
    assert.equal(await page.getAttribute('#view', 'data-detections'), String(frame.detections.length));
    assert.equal(frame.boxesDrawn, frame.detections.length);

    const srv = await serverDetect(base, png, threshold);
    assert.equal(frame.detections.length, srv.detections.length, 'as many boxes as POST /v1/detect');
    const m = matchBoxes(frame.detections, srv.detections, 1);
    assert.equal(m.matched, srv.detections.length, 'every box within 1 px of a server box');
    // The server rounds scores to 4 decimals.
    assert.ok(m.worstScore <= 1e-3, `scores equal to the server's, worst difference ${m.worstScore}`);

    await assertBoxesDrawn(
      page,
      frame.detections.map((d) => d.box),
      BROWSER_COLOR,
    );
    const info = await page.evaluate(() => {
      const g = globalThis as unknown as DemoGlobal & { crossOriginIsolated: boolean };
      return {
        isolated: g.crossOriginIsolated,
        threads: g.edgekdDemo.threads,
        warmupMs: g.edgekdDemo.warmupMs,
      };
    });
    console.log(
      `# web demo: page ready in ${opened.loadMs.toFixed(0)} ms (warm-up run ${info.warmupMs?.toFixed(0)} ms, ` +
        `${info.threads} wasm threads, isolated ${info.isolated}); ${frame.detections.length} boxes; ` +
        `browser session.run ${frame.browserMs.inferMs.toFixed(2)} ms (pre ${frame.browserMs.preMs.toFixed(2)}, ` +
        `total ${frame.browserMs.totalMs.toFixed(2)}); server inferMs ${srv.timings.inferMs ?? '?'}`,
    );
  },
);

test('letterboxes a larger frame in the canvas within a pixel of the server', { skip }, async () => {
  // 640 x 400 shrinks 10x into the input: the canvas filter differs from sharp's, so a score
  // near a tie can flip a peak; most boxes still must coincide.
  const png = await testImage(640, 400);
  const frame = await page.evaluate(
    (u) => (globalThis as unknown as DemoGlobal).edgekdDemo.runImage(u),
    `data:image/png;base64,${png.toString('base64')}`,
  );
  const threshold = Number(await page.inputValue('#threshold'));
  const srv = await serverDetect(base, png, threshold);
  const m = matchBoxes(frame.detections, srv.detections, 1);
  const most = Math.max(frame.detections.length, srv.detections.length);
  assert.ok(
    m.matched >= 0.75 * most,
    `${m.matched} of ${frame.detections.length} browser / ${srv.detections.length} server boxes within 1 px`,
  );
  assert.ok(m.worstScore <= 0.02, `matched scores within 0.02, worst ${m.worstScore}`);
  await assertBoxesDrawn(
    page,
    frame.detections.map((d) => d.box),
    BROWSER_COLOR,
  );
});

test('server-side toggle draws the server boxes too and shows both timings', { skip }, async () => {
  const before = await page.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.framesDrawn);
  await page.check('#server');
  await page.waitForFunction((n) => (globalThis as unknown as DemoGlobal).edgekdDemo.framesDrawn > n, before);
  const frame = (await page.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.lastFrame))!;
  assert.ok(frame.serverDetections && frame.serverDetections.length > 0, 'the server found boxes');
  assert.ok(frame.serverMs && frame.serverMs.roundTripMs > 0);
  assert.equal(
    await page.getAttribute('#view', 'data-server-detections'),
    String(frame.serverDetections.length),
  );
  // The page sends the frame as JPEG, so the server's boxes are close to, not equal to, the page's.
  const m = matchBoxes(frame.detections, frame.serverDetections, 2);
  assert.ok(m.matched >= 0.5 * frame.detections.length, `${m.matched} boxes agree`);
  assert.equal(frame.boxesDrawn, frame.detections.length + frame.serverDetections.length);
  assert.match((await page.textContent('#stat-server-ms')) ?? '', /ms/);
  assert.match((await page.textContent('#stat-browser-ms')) ?? '', /ms/);
  await assertBoxesDrawn(
    page,
    frame.serverDetections.map((d) => d.box),
    SERVER_COLOR,
  );
  console.log(
    `# web demo, same frame: browser session.run ${frame.browserMs.inferMs.toFixed(2)} ms; ` +
      `server inferMs ${frame.serverMs.inferMs?.toFixed(2) ?? '?'}, round trip ${frame.serverMs.roundTripMs.toFixed(1)} ms`,
  );
  await page.uncheck('#server');
});

test('decodes a heads model in the page with the shared decoder, like the server', { skip }, async () => {
  const url = await startServer(models.heads);
  const { page: p } = await openDemo(`${url}/?backend=wasm`);
  try {
    const png = await testImage(64, 40);
    const frame = await detectViaFileInput(p, png);
    const srv = await serverDetect(url, png, Number(await p.inputValue('#threshold')));
    assert.ok(frame.detections.length > 0);
    assert.equal(frame.detections.length, srv.detections.length);
    assert.equal(matchBoxes(frame.detections, srv.detections, 1).matched, srv.detections.length);
  } finally {
    await p.close();
  }
});

test('asks for the token when the server needs one, keeps it and sends it', { skip }, async () => {
  const url = await startServer(models.boxes, 's3cret');
  // Not through openDemo: the 401s before the token is entered are expected here.
  const p = await browser!.newPage();
  try {
    await p.goto(`${url}/`);
    await p.waitForSelector('#message:not([hidden])');
    assert.match((await p.textContent('#message')) ?? '', /Authorization: Bearer.*enter the server's token/);
    await p.fill('#token', 's3cret');
    await p.press('#token', 'Enter');
    await p.waitForFunction(() => (globalThis as unknown as DemoGlobal).edgekdDemo.backend !== undefined);
    assert.equal(
      await p.evaluate(() =>
        (
          globalThis as unknown as { localStorage: { getItem(k: string): string | null } }
        ).localStorage.getItem('edgekd.token'),
      ),
      's3cret',
    );
    await p.check('#server');
    const frame = await detectViaFileInput(p, await testImage(64, 40));
    assert.ok(
      frame.serverDetections && frame.serverDetections.length > 0,
      'POST /v1/detect accepted the token',
    );
    // A reload finds the token in localStorage and needs no typing.
    await p.reload();
    await p.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.ready);
    assert.equal(await p.inputValue('#token'), 's3cret');
  } finally {
    await p.close();
  }
});

test('plays a chosen video file, detecting and tracking frame after frame', { skip }, async (t) => {
  const clip = join(dir, 'clip.webm');
  try {
    execFileSync('ffmpeg', [
      ...['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x100:rate=10:duration=2'],
      ...['-c:v', 'libvpx', '-b:v', '300k', '-pix_fmt', 'yuv420p', clip],
    ]);
  } catch (e) {
    t.skip(`ffmpeg cannot write a VP8 clip: ${(e as Error).message}`);
    return;
  }
  const before = await page.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.framesDrawn);
  await page.setInputFiles('#file', {
    name: 'clip.webm',
    mimeType: 'video/webm',
    buffer: readFileSync(clip),
  });
  await page.waitForFunction(
    (n) => (globalThis as unknown as DemoGlobal).edgekdDemo.framesDrawn >= n + 5,
    before,
  );
  const frame = (await page.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.lastFrame))!;
  assert.equal(frame.width, 160);
  assert.equal(frame.height, 100);
  assert.ok(frame.detections.length > 0);
  assert.ok(
    frame.detections.some((d) => Number.isInteger(d.trackId)),
    'video detections carry track ids',
  );
  assert.match((await page.textContent('#stat-fps')) ?? '', /^\d+(\.\d)?$/);
  // Back to a still image: the video loop stops.
  await detectViaFileInput(page, await testImage(64, 40));
});

const slow =
  skip || (process.env.EDGEKD_SLOW === '1' ? false : 'about a minute of software WebGPU: set EDGEKD_SLOW=1');

test(
  'on a WebGPU adapter (SwiftShader) boxes and heads models run on WebGPU and match the server',
  { skip: slow, timeout: 300_000 },
  async () => {
    const gpu = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        ...ARGS,
        '--enable-unsafe-webgpu',
        '--enable-unsafe-swiftshader',
        '--use-webgpu-adapter=swiftshader',
      ],
    });
    try {
      for (const url of [base, urls[1] ?? (await startServer(models.heads))]) {
        const { page: p, loadMs } = await openDemo(`${url}/`, gpu);
        const png = await testImage(64, 40);
        const frame = await detectViaFileInput(p, png);
        const state = await p.evaluate(() => {
          const d = (globalThis as unknown as DemoGlobal).edgekdDemo;
          return { backend: d.backend, fallbacks: d.fallbacks };
        });
        const srv = await serverDetect(url, png, Number(await p.inputValue('#threshold')));
        console.log(`# ${url}: ${JSON.stringify(state)} ready in ${loadMs.toFixed(0)} ms`);
        // The page's probe-frame check against wasm passed: the in-graph decode of the boxes
        // model avoids the pattern onnxruntime-web's WebGPU EP got wrong (export/onnx-graph.ts).
        assert.deepEqual(state, { backend: 'webgpu', fallbacks: [] });
        assert.equal(await p.getAttribute('#view', 'data-backend'), 'webgpu');
        assert.ok(frame.detections.length > 0);
        assert.equal(frame.detections.length, srv.detections.length);
        assert.equal(matchBoxes(frame.detections, srv.detections, 1).matched, srv.detections.length);
        await p.close();
      }
    } finally {
      await gpu.close();
    }
  },
);

test('the pages showed and logged no error', { skip }, async () => {
  // `page` is unset when a name pattern ran only some tests.
  if (page)
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as DemoGlobal).edgekdDemo.errors), []);
  assert.deepEqual(pageErrors, []);
});
