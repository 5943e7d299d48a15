/**
 * HTTP server benchmark: what does the server cost on top of the model? In one run, on one model:
 *
 * - raw baseline: `session.run` of the model with onnxruntime-node's CPU provider and the session
 *   options the server's detector uses (same intra-op threads, spinning rule, optimisation level),
 *   at batch 1 and at the server's max batch, in this process, on the benchmark image already
 *   letterboxed and packed (no JPEG decode, no HTTP): images/s;
 * - HTTP: `edgekd serve` started as a child process (so the load generator does not share the
 *   server's event loop), on loopback, driven by autocannon with `POST /v1/detect` and a JPEG
 *   body at each concurrency, with micro-batching on and then off (`--no-batching`). Each row is
 *   measured for `--duration` s after a `--warmup` s run at the same concurrency that is thrown
 *   away. req/s counts 2xx answers only; errors (connection errors and timeouts) and non-2xx
 *   answers are listed beside it. The mean batch size comes from the server's own
 *   `edgekd_batch_size` histogram (sum / count deltas over the measured window);
 * - ratio: req/s over the raw throughput at max batch (one image per request), and the issue's
 *   aim checked explicitly: micro-batching at concurrency 32 >= 80% of it, with zero errors.
 *
 * The raw baseline is measured again after the HTTP rows: on a shared host the gap between the
 * two raw figures says how much the machine drifted while the rows ran.
 *
 *   npm run build && node dist/bench/server.js [--spec train/configs/ped-pico.spec.json |
 *     --checkpoint runs/x/best.safetensors | --model models/zoo/ped-pico.onnx] [--quick]
 *     [--duration 10] [--warmup 2] [--concurrency 1,8,32] [--max-batch 8] [--max-wait-ms 5]
 *     [--raw-seconds 3] [--image photo.jpg]
 *
 * Model: `--model` serves that file; `--checkpoint` / `--spec` export one with the project's
 * exporter (`boxes` outputs, FP32; random-initialised weights for `--spec`: latency does not
 * depend on weight values). With none of them, models/zoo/ped-pico.onnx when it exists, else
 * ped-pico from its spec. Body: `--image`, else a 640x480 synthetic street scene as JPEG q90.
 * `--quick` (a smoke run, not figures to quote) shortens every run.
 *
 * The load generator, the server's JPEG decoding (sharp) and ONNX Runtime all share this
 * machine's cores; on a small or busy machine that, not the batching, is what the ratio shows.
 */
import { writeInitCheckpoint } from './init-checkpoint.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { intFlag } from './int-flag.js';
import { exportOnnx } from '../export/export-model.js';
import { ExportConfigSchema } from '../export/config.js';
import { readModelInfo, type ModelInfo } from '../runtime/model-info.js';
import { InputPacker, letterboxImage } from '../runtime/preprocess.js';
import { sessionOptionsFor } from '../runtime/providers.js';
import { generateSyntheticScene } from '../train/data/synthetic.js';

const DEFAULT_SPEC = 'train/configs/ped-pico.spec.json';
const ZOO_MODEL = 'models/zoo/ped-pico.onnx';
/** The issue's aim: micro-batching at this concurrency reaches this share of raw batch throughput. */
const AIM_CONCURRENCY = 32;
const AIM_RATIO = 0.8;

const { values: args } = parseArgs({
  options: {
    spec: { type: 'string' },
    checkpoint: { type: 'string' },
    model: { type: 'string' },
    image: { type: 'string' },
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'raw-seconds': { type: 'string' },
    concurrency: { type: 'string', default: '1,8,32' },
    'max-batch': { type: 'string', default: '8' },
    'max-wait-ms': { type: 'string', default: '5' },
  },
  strict: true,
});
const quick = args.quick;
const duration = intFlag('duration', args.duration ?? (quick ? '3' : '10'), 1);
const warmupSeconds = intFlag('warmup', args.warmup ?? (quick ? '1' : '2'), 0);
const rawSeconds = Number(args['raw-seconds'] ?? (quick ? '1.5' : '3'));
if (!(rawSeconds > 0))
  throw new RangeError(`'--raw-seconds' must be a number > 0, got ${args['raw-seconds']}`);
const concurrencies = args.concurrency.split(',').map((c) => intFlag('concurrency', c.trim(), 1));
const maxBatch = intFlag('max-batch', args['max-batch'], 1);
const maxWaitMs = Number(args['max-wait-ms']);
if (!(maxWaitMs >= 0))
  throw new RangeError(`'--max-wait-ms' must be a number >= 0, got ${args['max-wait-ms']}`);
if ([args.model, args.checkpoint, args.spec].filter((v) => v !== undefined).length > 1)
  throw new RangeError("give at most one of '--model', '--checkpoint', '--spec'");

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'bin', 'edgekd.js');
const cores = availableParallelism();
// The server runs one session worker; createDetector gives it every core and spins only when a
// core is left over. The raw baseline gets the same settings.
const intraOpThreads = cores;
const allowSpinning = intraOpThreads < cores;

// #region cleanup: the server child is killed (its process group) and the temp folder removed on
// every way out, Ctrl-C included.

const dir = mkdtempSync(join(tmpdir(), 'edgekd-bench-server-'));
const children = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

function cleanupSync(): void {
  for (const c of children) killGroup(c, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    console.error(`\n${sig}: stopping the server and removing ${dir}`);
    cleanupSync();
    process.exit(130);
  });

// #endregion

const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmtLoad = (l: number[]) => l.map((v) => v.toFixed(2)).join(' / ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The model file to serve and a line saying where it came from. */
async function resolveModel(): Promise<{ path: string; origin: string }> {
  if (args.model) return { path: args.model, origin: args.model };
  if (!args.checkpoint && !args.spec && existsSync(ZOO_MODEL)) return { path: ZOO_MODEL, origin: ZOO_MODEL };
  let checkpoint = args.checkpoint;
  let origin = `exported from ${checkpoint}`;
  if (!checkpoint) {
    const specPath = args.spec ?? DEFAULT_SPEC;
    checkpoint = writeInitCheckpoint(specPath, dir);
    origin = `random init from ${specPath}`;
  }
  const exported = await exportOnnx(
    ExportConfigSchema.parse({ checkpoint, out: join(dir, 'model.onnx'), outputs: 'boxes', verify: false }),
  );
  return { path: exported.model, origin };
}

/** The request body: `--image` as given, else a synthetic 640x480 scene encoded as JPEG. */
async function requestBody(): Promise<{ bytes: Buffer; what: string }> {
  if (args.image) {
    const bytes = readFileSync(args.image);
    const m = await sharp(bytes).metadata();
    return {
      bytes,
      what: `${args.image} (${m.format} ${m.width}x${m.height}, ${(bytes.length / 1024).toFixed(0)} KiB)`,
    };
  }
  const { image } = generateSyntheticScene('bench-server', 640, 480);
  const bytes = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
  return { bytes, what: `640x480 synthetic scene, JPEG q90, ${(bytes.length / 1024).toFixed(0)} KiB` };
}

interface RawRow {
  batch: number;
  runs: number;
  msPerRun: number;
  imagesPerSec: number;
}

/**
 * session.run throughput at each batch size: a few untimed runs, then runs back to back for at
 * least `seconds` (and 3 runs), images / elapsed.
 */
async function rawBaseline(
  modelPath: string,
  info: ModelInfo,
  jpeg: Buffer,
  batches: number[],
  seconds: number,
) {
  const session = await ort.InferenceSession.create(
    modelPath,
    sessionOptionsFor('cpu', { deviceId: 0, intraOpThreads, allowSpinning }),
  );
  try {
    const input = session.inputNames.includes('images') ? 'images' : session.inputNames[0];
    const { width: W, height: H } = info.spec.input;
    const frame = await letterboxImage(jpeg, info.spec.input);
    const packer = new InputPacker(info.spec.input);
    const rows: RawRow[] = [];
    for (const n of batches) {
      const data = new Float32Array(n * packer.imageSize);
      for (let i = 0; i < n; i++) packer.pack(frame.rgb, data, i);
      const feeds = { [input]: new ort.Tensor('float32', data, [n, 3, H, W]) };
      const once = async () => {
        const out = await session.run(feeds);
        for (const v of Object.values(out)) v.dispose();
      };
      for (let i = 0; i < 3; i++) await once();
      const times: number[] = [];
      const t0 = performance.now();
      while (times.length < 3 || performance.now() - t0 < seconds * 1000) {
        const t = performance.now();
        await once();
        times.push(performance.now() - t);
      }
      const elapsed = (performance.now() - t0) / 1000;
      rows.push({
        batch: n,
        runs: times.length,
        msPerRun: median(times),
        imagesPerSec: (n * times.length) / elapsed,
      });
    }
    return rows;
  } finally {
    await session.release();
  }
}

interface Server {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

/** Starts `edgekd serve` on a free loopback port and waits for /readyz. */
async function startServer(modelPath: string, batching: boolean): Promise<Server> {
  const argv = [CLI, 'serve', '--model', modelPath, '--port', '0', '--host', '127.0.0.1', '--ep', 'cpu'];
  argv.push('--max-batch', String(maxBatch), '--max-wait-ms', String(maxWaitMs));
  // Enough queue for every connection: a 503 here would measure the queue bound, not throughput.
  argv.push('--queue', String(Math.max(64, 2 * Math.max(...concurrencies))));
  if (!batching) argv.push('--no-batching');
  // detached: the server gets its own process group, killed as a whole.
  const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err = (err + c.toString()).slice(-4000);
  });
  const stderr = () => err.trim();
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`edgekd serve did not start within 60 s:\n${stderr()}`)),
      60_000,
    );
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`edgekd serve exited (${code ?? signal}) before listening:\n${stderr()}`));
    });
  });
  child.stdout!.resume();
  const t0 = performance.now();
  for (;;) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    if (r?.ok) break;
    if (performance.now() - t0 > 60_000) throw new Error(`${url}/readyz not 200 within 60 s:\n${stderr()}`);
    await sleep(100);
  }
  return { child, url, stderr };
}

/** SIGTERM to the server's group (graceful shutdown), SIGKILL after 10 s. */
async function stopServer(s: Server): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
  killGroup(s.child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(s.child, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Sum and count of the server's `edgekd_batch_size` histogram. */
async function batchStats(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (k: string) =>
    Number(new RegExp(`^edgekd_batch_size_${k} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { sum: get('sum'), count: get('count') };
}

interface HttpRow {
  batching: boolean;
  concurrency: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  ok: number;
  errors: number;
  non2xx: number;
  meanBatch: number;
  load1: number;
}

async function load(url: string, jpeg: Buffer, connections: number, seconds: number) {
  return autocannon({
    url: `${url}/v1/detect`,
    method: 'POST',
    headers: { 'content-type': 'image/jpeg' },
    body: jpeg,
    connections,
    duration: seconds,
  });
}

async function httpRows(modelPath: string, jpeg: Buffer, batching: boolean): Promise<HttpRow[]> {
  const server = await startServer(modelPath, batching);
  try {
    // One request by hand first: the rows below count status codes only, so check the answer
    // is a real detection result.
    const r = await fetch(`${server.url}/v1/detect`, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg' },
      body: jpeg,
    });
    const body = (await r.json()) as { detections?: unknown[]; provider?: string; width?: number };
    if (r.status !== 200 || !Array.isArray(body.detections))
      throw new Error(`POST /v1/detect answered ${r.status}: ${JSON.stringify(body).slice(0, 300)}`);
    console.log(
      `server (batching ${batching ? 'on' : 'off'}) at ${server.url}: provider ${body.provider}, ` +
        `a check request got 200 with ${body.detections.length} detections on a ${body.width}px-wide image`,
    );
    const rows: HttpRow[] = [];
    for (const c of concurrencies) {
      if (warmupSeconds > 0) await load(server.url, jpeg, c, warmupSeconds);
      const load1 = loadavg()[0];
      const before = await batchStats(server.url);
      const res = await load(server.url, jpeg, c, duration);
      const after = await batchStats(server.url);
      rows.push({
        batching,
        concurrency: c,
        reqPerSec: res['2xx'] / res.duration,
        p50: res.latency.p50,
        p99: res.latency.p99,
        ok: res['2xx'],
        errors: res.errors,
        non2xx: res.non2xx,
        meanBatch: (after.sum - before.sum) / (after.count - before.count),
        load1,
      });
      if (server.child.exitCode !== null)
        throw new Error(`the server exited during the run:\n${server.stderr()}`);
    }
    return rows;
  } finally {
    await stopServer(server);
  }
}

/** A markdown table with padded columns (readable as plain text too). */
function table(head: string[], body: string[][], leftCols = 1): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < leftCols ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < leftCols ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}

const load0 = loadavg();
const model = await resolveModel();
const info = await readModelInfo(model.path);
const body = await requestBody();
const { width: W, height: H } = info.spec.input;

console.log(
  `server bench: ${info.spec.name} ${W}x${H} (${model.origin}, ${info.precision}, ${info.outputs ?? 'plain'} outputs); ` +
    `body: ${body.what}; onnxruntime-node ${ort.env.versions.node ?? '?'} CPU provider, ` +
    `1 session x ${intraOpThreads} intra-op thread(s), spinning ${allowSpinning ? 'on' : 'off'}; ` +
    `server: max batch ${maxBatch}, max wait ${maxWaitMs} ms; ` +
    `autocannon, loopback, ${duration} s per row after a ${warmupSeconds} s warm-up${quick ? ' (--quick)' : ''}`,
);
console.log(
  `machine: ${cpus()[0]?.model ?? 'cpu'}, ${cores} cores; load average (1 / 5 / 15 min) at start ${fmtLoad(load0)}`,
);

const rawBatches = [...new Set([1, maxBatch])];
const raw = await rawBaseline(model.path, info, body.bytes, rawBatches, rawSeconds);
const rawMax = raw[raw.length - 1];

const rows: HttpRow[] = [];
for (const batching of [true, false]) rows.push(...(await httpRows(model.path, body.bytes, batching)));

const rawAfter = await rawBaseline(model.path, info, body.bytes, [maxBatch], rawSeconds);
const load1 = loadavg();

console.log('');
console.log(
  `Raw session.run (same model and session options, in-process, input already decoded and packed), ` +
    `before the HTTP rows:`,
);
console.log('');
console.log(
  table(
    ['batch', 'runs', 'ms/run (median)', 'images/s'],
    raw.map((r) => [String(r.batch), String(r.runs), r.msPerRun.toFixed(2), r.imagesPerSec.toFixed(1)]),
    0,
  ),
);
console.log('');
console.log(
  `HTTP POST /v1/detect (one JPEG per request; req/s counts 2xx answers; latency in whole ms, as autocannon records it; ratio = req/s / raw images/s at batch ${rawMax.batch}, ${rawMax.imagesPerSec.toFixed(1)}):`,
);
console.log('');
console.log(
  table(
    [
      'batching',
      'concurrency',
      'req/s',
      'p50 ms',
      'p99 ms',
      'requests',
      'errors',
      'non-2xx',
      'mean batch',
      'ratio',
      'load1',
    ],
    rows.map((r) => [
      r.batching ? 'on' : 'off',
      String(r.concurrency),
      r.reqPerSec.toFixed(1),
      r.p50.toFixed(0),
      r.p99.toFixed(0),
      String(r.ok + r.non2xx),
      String(r.errors),
      String(r.non2xx),
      Number.isFinite(r.meanBatch) ? r.meanBatch.toFixed(2) : 'n/a',
      (r.reqPerSec / rawMax.imagesPerSec).toFixed(2),
      r.load1.toFixed(1),
    ]),
  ),
);
console.log('');

const aimRow = rows.find((r) => r.batching && r.concurrency === AIM_CONCURRENCY);
if (aimRow) {
  const ratio = aimRow.reqPerSec / rawMax.imagesPerSec;
  const failures = aimRow.errors + aimRow.non2xx;
  const pass = ratio >= AIM_RATIO && failures === 0;
  console.log(
    `check: batching on, concurrency ${AIM_CONCURRENCY}: ${aimRow.reqPerSec.toFixed(1)} req/s = ` +
      `${(100 * ratio).toFixed(0)}% of raw batch-${rawMax.batch} throughput ${rawMax.imagesPerSec.toFixed(1)} images/s ` +
      `(aim >= ${(100 * AIM_RATIO).toFixed(0)}%), ${aimRow.errors} errors + ${aimRow.non2xx} non-2xx (aim 0): ` +
      `${pass ? 'PASS' : 'MISS'}`,
  );
} else {
  console.log(`check: not run (concurrency ${AIM_CONCURRENCY} is not in --concurrency ${args.concurrency})`);
}
const raw1 = raw[0];
if (raw.length > 1 && raw1.imagesPerSec > rawMax.imagesPerSec)
  console.log(
    `note: raw batch 1 runs ${raw1.imagesPerSec.toFixed(1)} images/s, more than batch ${rawMax.batch}: on this ` +
      `machine a bigger batch does not make session.run cheaper per image, so micro-batching can only save per-run overhead`,
  );
const drift = rawAfter[0].imagesPerSec / rawMax.imagesPerSec - 1;
console.log(
  `raw batch-${maxBatch} throughput measured again after the HTTP rows: ${rawAfter[0].imagesPerSec.toFixed(1)} images/s ` +
    `(${drift >= 0 ? '+' : ''}${(100 * drift).toFixed(0)}% against before: the machine's drift over the run)`,
);
console.log(`machine: load average at end ${fmtLoad(load1)} on ${cores} cores`);
if (Math.max(load0[0], load1[0]) > cores * 0.5)
  console.log(
    `note: the load average exceeds half the cores: other jobs share them, so these figures are noisy. ` +
      `The server (HTTP, JPEG decode, session.run) and autocannon also share the same ${cores} cores here.`,
  );
else
  console.log(
    `note: the server (HTTP, JPEG decode with sharp, session.run) and autocannon share the same ${cores} cores; ` +
      `the raw baseline has them to itself and decodes nothing.`,
  );
