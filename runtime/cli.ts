/**
 * Runtime commands:
 * - `edgekd detect IMAGE... --model FILE [--out DIR] [--ep tensorrt,cuda,cpu] [--threshold X]
 *   [--batch N]`: one JSON line per image on stdout (boxes in source pixels); with --out also
 *   `<name>.json` and an annotated `<name>.jpg` per image; a summary line (provider, timings) on
 *   stderr.
 * - `edgekd bench MODEL [--batch 1,4,8] [--ep cuda,cpu] [--iterations N] [--warmup N]`: latency
 *   percentiles and throughput per provider and batch size, as a table (or --json).
 * Both take `--profile jetson|nvidia` (runtime/profiles.ts): providers tensorrt,cuda,cpu and
 * thread hints, where --ep / --threads are not given.
 */
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { numberFlag, parseFlagArgs, type FlagValues } from '../models/core/config.js';
import { ConfigError, formatError } from '../models/core/errors.js';
import type { Detection } from '../models/core/detection.js';
import { letterboxTransform } from '../models/core/letterbox.js';
import { createDetector } from './detector.js';
import { modelOrDefault } from './zoo.js';
import { parseProfile, sessionHints } from './profiles.js';
import { parseProviders } from './providers.js';
import type { DetectResult, Detector, DetectorOptions, PreparedFrame, ProviderName } from './types.js';

type Flags = Record<string, { type: 'string' | 'boolean'; short?: string }>;

function parseFlags(argv: string[], options: Flags): { values: FlagValues; positionals: string[] } {
  return parseFlagArgs(argv, { ...options, help: { type: 'boolean', short: 'h' } });
}

const num = numberFlag;

const isInt = (min: number) => (v: number) => Number.isInteger(v) && v >= min;

function intList(
  values: Record<string, string | boolean | undefined>,
  name: string,
  dflt: number[],
): number[] {
  const v = values[name];
  if (v === undefined) return dflt;
  const out = String(v)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (out.length === 0 || !out.every(isInt(1)))
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `--${name} must be a comma-separated list of integers >= 1, got '${String(v)}'`,
    );
  return out;
}

/** Detector options shared by detect and bench flags. */
const DETECTOR_FLAGS: Flags = {
  ep: { type: 'string' },
  spec: { type: 'string' },
  workers: { type: 'string' },
  threads: { type: 'string' },
  'device-id': { type: 'string' },
  profile: { type: 'string' },
};
const DETECTOR_HELP = [
  '  --ep LIST           execution providers in preference order, e.g. tensorrt,cuda,cpu',
  '                      (default: the GPU providers this onnxruntime-node build can load, then cpu)',
  '  --spec FILE         model spec JSON for a plain ONNX model without edgekd metadata',
  '  --workers N         session worker threads (default 1)',
  '  --threads N         ORT intra-op threads per session (default: cores / workers)',
  '  --device-id N       CUDA / TensorRT device (default 0)',
  '  --profile NAME      jetson | nvidia: providers tensorrt,cuda,cpu and thread hints',
  '                      (--ep and --threads win; see docs/jetson.md)',
];

function detectorOptions(values: Record<string, string | boolean | undefined>): DetectorOptions {
  const o: DetectorOptions = {};
  if (typeof values.ep === 'string') o.providers = parseProviders(values.ep);
  if (typeof values.spec === 'string') o.specPath = values.spec;
  o.workers = num(values, 'workers', isInt(1), 'an integer >= 1');
  o.intraOpThreads = num(values, 'threads', isInt(1), 'an integer >= 1');
  o.deviceId = num(values, 'device-id', isInt(0), 'an integer >= 0');
  if (typeof values.profile === 'string') {
    const profile = parseProfile(values.profile);
    const hints = sessionHints(profile, availableParallelism(), o.workers ?? 1);
    o.providers ??= profile.providers.slice();
    o.intraOpThreads ??= hints.intraOpThreads;
    o.allowSpinning = hints.allowSpinning;
  }
  return o;
}

const IMAGE_EXTS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp']);

/** Expands folders (one level, sorted) into image files; files are kept as given. */
function expandImages(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let dir = false;
    try {
      dir = statSync(p).isDirectory();
    } catch {
      // a missing file is reported by the detector with its own error
    }
    if (!dir) out.push(p);
    else
      out.push(
        ...readdirSync(p)
          .filter((n) => IMAGE_EXTS.has(extname(n).toLowerCase()))
          .sort()
          .map((n) => join(p, n)),
      );
  }
  return out;
}

const PALETTE = ['#ff3b30', '#34c759', '#007aff', '#ff9500', '#af52de', '#00c7be', '#ffcc00', '#ff2d55'];

function xmlEscape(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!,
  );
}

/** An SVG overlay of boxes and `class score` labels, the size of the image. */
export function overlaySvg(width: number, height: number, dets: Detection[], classes: string[]): string {
  const stroke = Math.max(2, Math.round(Math.min(width, height) / 300));
  const font = Math.max(10, Math.round(Math.min(width, height) / 40));
  const parts = dets.map((d) => {
    const [x1, y1, x2, y2] = d.box;
    const colour = PALETTE[d.classId % PALETTE.length];
    const label = `${classes[d.classId] ?? d.classId} ${d.score.toFixed(2)}`;
    const lw = Math.ceil(label.length * font * 0.6) + 4;
    const ly = y1 - font - 4 >= 0 ? y1 - font - 4 : y1;
    return (
      `<rect x="${x1.toFixed(1)}" y="${y1.toFixed(1)}" width="${(x2 - x1).toFixed(1)}" height="${(y2 - y1).toFixed(1)}" fill="none" stroke="${colour}" stroke-width="${stroke}"/>` +
      `<rect x="${x1.toFixed(1)}" y="${ly.toFixed(1)}" width="${lw}" height="${font + 4}" fill="${colour}"/>` +
      `<text x="${(x1 + 2).toFixed(1)}" y="${(ly + font).toFixed(1)}" font-family="sans-serif" font-size="${font}" fill="#ffffff">${xmlEscape(label)}</text>`
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
}

/** Writes `image` with its detections drawn on it as a JPEG. */
export async function writeAnnotated(
  image: string | Buffer,
  r: Pick<DetectResult, 'detections' | 'width' | 'height'>,
  classes: string[],
  out: string,
): Promise<void> {
  const svg = overlaySvg(r.width, r.height, r.detections, classes);
  await sharp(image)
    .removeAlpha()
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .jpeg({ quality: 90 })
    .toFile(out);
}

const round = (v: number, d: number) => Number(v.toFixed(d));

function detectionJson(d: Detection, classes: string[]) {
  return {
    box: d.box.map((v) => round(v, 2)),
    score: round(d.score, 4),
    classId: d.classId,
    class: classes[d.classId] ?? String(d.classId),
  };
}

/** `a.jpg` -> `a`, made unique among the names already used (`a-2`). */
function uniqueStem(path: string, used: Set<string>): string {
  const stem = basename(path, extname(path)) || 'image';
  let name = stem;
  for (let k = 2; used.has(name); k++) name = `${stem}-${k}`;
  used.add(name);
  return name;
}

const DETECT_HELP = `usage: edgekd detect IMAGE... [--model FILE] [--out DIR] [--ep tensorrt,cuda,cpu] [--threshold X] [--batch N]

Runs an exported detector on images (files or folders of images) and prints one JSON line per
image: boxes in source pixels, scores, classes and timings. A summary line (provider, timings)
goes to stderr.

Options:
  --model FILE        the .onnx model (edgekd export, or a plain ONNX detector with --spec);
                      default: the shipped models/zoo/ped-pico.onnx
  --out DIR           also write <name>.json and an annotated <name>.jpg per image
  --threshold X       score threshold in [0, 1] (default: the model spec's decode.scoreThreshold)
  --max-detections N  boxes per image at most (default: the spec's decode.topK)
  --classes LIST      keep only these class ids, e.g. 0,2
  --nms-iou X         class-aware NMS IoU threshold (default: none; CenterNet peaks need none)
  --batch N           images per session run (default 1)
${DETECTOR_HELP.join('\n')}`;

/** `edgekd detect ...`; returns the exit code (errors propagate to bin/edgekd.ts). */
export async function detectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    ...DETECTOR_FLAGS,
    model: { type: 'string' },
    out: { type: 'string' },
    threshold: { type: 'string' },
    'max-detections': { type: 'string' },
    classes: { type: 'string' },
    'nms-iou': { type: 'string' },
    batch: { type: 'string' },
  });
  if (values.help) {
    console.log(DETECT_HELP);
    return 0;
  }
  const modelPath = modelOrDefault(typeof values.model === 'string' ? values.model : undefined, 'run');
  const images = expandImages(positionals);
  if (images.length === 0)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `no images given (or the folders hold none)\n\n${DETECT_HELP}`,
    );
  const opts = detectorOptions(values);
  opts.scoreThreshold = num(values, 'threshold', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  opts.maxDetections = num(values, 'max-detections', isInt(1), 'an integer >= 1');
  opts.nmsIouThreshold = num(values, 'nms-iou', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  if (typeof values.classes === 'string') opts.classes = intList(values, 'classes', []).map((c) => c);
  const batch = num(values, 'batch', isInt(1), 'an integer >= 1') ?? 1;
  const out = typeof values.out === 'string' ? values.out : undefined;
  if (out) mkdirSync(out, { recursive: true });

  const det = await createDetector(modelPath, opts);
  try {
    const classes = det.spec.classes;
    const used = new Set<string>();
    const sums = { pre: 0, infer: 0, post: 0, total: 0, calls: 0, boxes: 0 };
    let failed = 0;
    for (let i = 0; i < images.length; i += batch) {
      const chunk = images.slice(i, i + batch);
      let results: (DetectResult | undefined)[];
      try {
        results = await det.detectImages(chunk);
      } catch (e) {
        if (chunk.length === 1) {
          // One bad image does not stop the others; it is reported and the exit code is 1.
          console.error(`${chunk[0]}: ${formatError(e)}`);
          failed++;
          continue;
        }
        // Retry one by one so that a single bad image in a batch is pinned down.
        results = [];
        for (const img of chunk) {
          try {
            results.push(await det.detectImage(img));
          } catch (e2) {
            console.error(`${img}: ${formatError(e2)}`);
            failed++;
            results.push(undefined);
          }
        }
      }
      const t = results.find((r) => r)?.timings;
      if (t) {
        sums.pre += t.preMs;
        sums.infer += t.inferMs;
        sums.post += t.postMs;
        sums.total += t.totalMs;
        sums.calls++;
      }
      for (const [j, r] of results.entries()) {
        if (!r) continue;
        const image = chunk[j];
        sums.boxes += r.detections.length;
        const record = {
          image,
          width: r.width,
          height: r.height,
          detections: r.detections.map((d) => detectionJson(d, classes)),
          timings: {
            preMs: round(r.timings.preMs, 2),
            inferMs: round(r.timings.inferMs, 2),
            postMs: round(r.timings.postMs, 2),
            totalMs: round(r.timings.totalMs, 2),
          },
        };
        console.log(JSON.stringify(record));
        if (out) {
          const stem = uniqueStem(image, used);
          writeFileSync(
            join(out, `${stem}.json`),
            `${JSON.stringify({ model: modelPath, provider: det.provider, ...record }, null, 2)}\n`,
          );
          await writeAnnotated(image, r, classes, join(out, `${stem}.jpg`));
        }
      }
    }
    const n = Math.max(1, sums.calls);
    const fb = det.fallbacks.length ? ` (skipped: ${det.fallbacks.map((f) => f.provider).join(', ')})` : '';
    process.stderr.write(
      `detect: ${images.length - failed}/${images.length} images, ${sums.boxes} detections, model ${det.spec.name} (${det.outputs}, ${det.precision}) on ${det.provider}${fb}, batch ${batch}: ` +
        `pre ${(sums.pre / n).toFixed(1)} ms, infer ${(sums.infer / n).toFixed(1)} ms, post ${(sums.post / n).toFixed(1)} ms, total ${(sums.total / n).toFixed(1)} ms per run` +
        (out ? `; wrote ${out}` : '') +
        '\n',
    );
    return failed ? 1 : 0;
  } finally {
    await det.close();
  }
}

/** Percentile by nearest rank of sorted values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k];
}

/** One row of the bench table. */
export interface BenchRow {
  provider: ProviderName;
  batch: number;
  iterations: number;
  /** Latency of one call (one session.run of `batch` frames), ms. */
  p50: number;
  p90: number;
  p99: number;
  /** Median time inside session.run, ms. */
  inferP50: number;
  /** Median pre + post + thread hop per call, ms. */
  overheadP50: number;
  /** Frames per second over the timed iterations. */
  fps: number;
}

/** Deterministic test frames at the input size (a gradient with noise; content barely matters). */
function benchFrames(det: Detector, n: number): PreparedFrame[] {
  const { width: W, height: H, resize } = det.spec.input;
  const frames: PreparedFrame[] = [];
  let seed = 12345;
  for (let f = 0; f < n; f++) {
    const rgb = new Uint8Array(W * H * 3);
    for (let i = 0; i < rgb.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      rgb[i] = ((i / 3) % W) * (200 / W) + ((seed >>> 24) & 0x37);
    }
    frames.push({ rgb, transform: letterboxTransform(W, H, H, W, resize) });
  }
  return frames;
}

/** Benchmarks one detector over batch sizes: `inFlight` calls run concurrently (one per worker). */
export async function benchDetector(
  det: Detector,
  batches: number[],
  o: { iterations: number; warmup: number; inFlight: number },
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const batch of batches) {
    const frames = benchFrames(det, batch);
    for (let i = 0; i < o.warmup; i++) await det.detectPrepared(frames);
    const lat: number[] = [];
    const inf: number[] = [];
    const over: number[] = [];
    let next = 0;
    const t0 = performance.now();
    const lane = async () => {
      while (next < o.iterations) {
        next++;
        const t = performance.now();
        const [r] = await det.detectPrepared(frames);
        lat.push(performance.now() - t);
        inf.push(r.timings.inferMs);
        over.push(r.timings.preMs + r.timings.postMs + (r.timings.hopMs ?? 0));
      }
    };
    await Promise.all(Array.from({ length: o.inFlight }, lane));
    const seconds = (performance.now() - t0) / 1000;
    const s = (a: number[]) => a.slice().sort((x, y) => x - y);
    const sl = s(lat);
    rows.push({
      provider: det.provider,
      batch,
      iterations: o.iterations,
      p50: percentile(sl, 50),
      p90: percentile(sl, 90),
      p99: percentile(sl, 99),
      inferP50: percentile(s(inf), 50),
      overheadP50: percentile(s(over), 50),
      fps: (o.iterations * batch) / seconds,
    });
  }
  return rows;
}

/** The bench table as text. */
export function formatBenchTable(rows: BenchRow[]): string {
  const head = ['provider', 'batch', 'p50 ms', 'p90 ms', 'p99 ms', 'infer p50', 'overhead p50', 'frames/s'];
  const body = rows.map((r) => [
    r.provider,
    String(r.batch),
    r.p50.toFixed(2),
    r.p90.toFixed(2),
    r.p99.toFixed(2),
    r.inferP50.toFixed(2),
    r.overheadP50.toFixed(2),
    r.fps.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const BENCH_HELP = `usage: edgekd bench MODEL [--batch 1,4,8] [--ep cuda,cpu] [--iterations N] [--warmup N]

Latency percentiles (per session run of a batch) and throughput of a model per execution
provider and batch size, on frames already at the input size (no image decoding): each call
is pre-processing + session.run in a worker + post-processing. With --ep, every listed provider
is measured on its own (one that cannot start is reported and skipped); without it, the default.

Options:
  --batch LIST        batch sizes (default 1,4,8)
  --iterations N      timed calls per batch size (default 50)
  --warmup N          untimed calls first (default 5)
  --json              print the rows as JSON instead of a table
${DETECTOR_HELP.join('\n')}`;

/** `edgekd bench MODEL ...`; returns the exit code. */
export async function benchCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    ...DETECTOR_FLAGS,
    batch: { type: 'string' },
    iterations: { type: 'string' },
    warmup: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(BENCH_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `bench takes one MODEL, got ${positionals.length}\n\n${BENCH_HELP}`,
    );
  const model = positionals[0];
  const batches = intList(values, 'batch', [1, 4, 8]);
  const iterations = num(values, 'iterations', isInt(1), 'an integer >= 1') ?? 50;
  const warmup = num(values, 'warmup', isInt(0), 'an integer >= 0') ?? 5;
  const base = detectorOptions(values);
  const plans: (ProviderName[] | undefined)[] = base.providers ? base.providers.map((p) => [p]) : [undefined];
  const rows: BenchRow[] = [];
  const skipped: string[] = [];
  for (const providers of plans) {
    let det: Detector;
    try {
      det = await createDetector(model, { ...base, providers });
    } catch (e) {
      // Only a provider failure is skipped; a bad model or flag stops the bench.
      if (
        providers &&
        providers[0] !== 'cpu' &&
        (e as { code?: string }).code === 'ERR_PROVIDER_UNAVAILABLE'
      ) {
        skipped.push(`${providers[0]}: ${(e as Error).message}`);
        continue;
      }
      throw e;
    }
    try {
      process.stderr.write(
        `bench: ${det.spec.name} (${det.outputs}, ${det.precision}, ${det.spec.input.width}x${det.spec.input.height}) on ${det.provider}\n`,
      );
      rows.push(...(await benchDetector(det, batches, { iterations, warmup, inFlight: base.workers ?? 1 })));
    } finally {
      await det.close();
    }
  }
  if (values.json) console.log(JSON.stringify({ model, rows, skipped }, null, 2));
  else {
    if (rows.length) console.log(formatBenchTable(rows));
    for (const s of skipped) console.log(`skipped ${s}`);
  }
  return rows.length ? 0 : 1;
}
