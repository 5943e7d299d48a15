/**
 * `edgekd demo [--out DIR] [--model FILE.onnx] [--source FILE|synthetic] [--frames N]
 * [--skip-distill]`: a new user's first ten minutes in one command, on CPU, offline.
 *
 * 1. Video: the shipped pedestrian model (models/zoo/ped-pico.onnx) on vtest.avi where Debian's
 *    opencv-doc installed it, else on a clip rendered from the synthetic-scene generator (a camera
 *    pan over a generated street): annotated MP4, one JSON line per frame, tracks, fps.
 * 2. Distil, export, verify: a short KD run of a tiny student from the CenterNet teacher on
 *    synthetic scenes (`edgekd train`), export to ONNX with decoded boxes and the tfjs-vs-ORT
 *    parity check (`edgekd export`), then the exported model on two new synthetic images
 *    (`edgekd detect`), scored against the generator's labels.
 *
 * Each step prints the `edgekd ...` command that does the same and then runs that command's own
 * function in this process, so what the user sees is what they would get typing it. A part that
 * cannot run (no ffmpeg, no shipped model) says why and how to fix it; the other part still runs
 * and the exit code is then 1. Ctrl-C stops the current step (ffmpeg children stopped, training
 * saves its checkpoint), removes unfinished video outputs and exits 130.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { parseFlagArgs } from '../models/core/config.js';
import type { BoxXyxy } from '../models/core/detection.js';
import { ConfigError, EdgekdError, formatError } from '../models/core/errors.js';
import { writeFileAtomic } from '../models/core/safetensors.js';
import { createDetector } from '../runtime/detector.js';
import type { Detector } from '../runtime/types.js';
import { findFfmpeg } from '../runtime/video/ffmpeg.js';
import {
  runVideoPipeline,
  type FrameResult,
  type VideoSink,
  type VideoSummary,
} from '../runtime/video/pipeline.js';
import { writeRgbClip } from '../runtime/video/sample-clip.js';
import { AnnotatedVideoSink, JsonlSink, StatsSink } from '../runtime/video/sinks.js';
import { generateSyntheticScene } from '../train/data/synthetic.js';
import { DEFAULT_RECIPE } from '../train/distill/config.js';

/** Where Debian's opencv-doc puts the sample pedestrian clip (768x576, 795 frames, 10 fps). */
export const VTEST_PATH = '/usr/share/doc/opencv-doc/examples/data/vtest.avi';
/** Written into the output folder, so a re-run may replace what an earlier demo wrote there. */
const MARKER = '.edgekd-demo';
/** Length of the generated clip when --frames is not given: 10 s at 10 fps. */
const SYNTHETIC_FRAMES = 100;
const INSTALL_DOC = 'docs/install.md';

const USAGE = `usage: edgekd demo [--out DIR] [--model FILE.onnx] [--source FILE|synthetic] [--frames N] [--skip-distill]

Shows edgekd end to end on this machine (CPU only, no network), in a few minutes:
  1. detects and tracks people in a video with the shipped model: annotated MP4, JSON lines, fps
  2. distils a tiny student from the CenterNet teacher on synthetic scenes, exports it to ONNX,
     checks the ONNX model against TensorFlow.js and runs it on two new images
Every step prints the edgekd command that does the same on its own.

options:
  --out DIR          output folder (default runs/demo; a re-run replaces the demo's earlier outputs)
  --model FILE.onnx  detector for the video part (default: the shipped models/zoo/ped-pico.onnx)
  --source SRC       video for part 1: a file, or 'synthetic' for a clip rendered by the scene
                     generator (default: ${VTEST_PATH} when installed, else synthetic)
  --frames N         process at most N frames of the video (default: all; 100 for a generated clip)
  --skip-distill     run the video part only
  --ffmpeg PATH      ffmpeg binary (default: ffmpeg on PATH)
  --quick            smallest distillation settings, for tests (the student learns nothing useful)`;

const FLAGS = {
  out: { type: 'string' },
  model: { type: 'string' },
  source: { type: 'string' },
  frames: { type: 'string' },
  'skip-distill': { type: 'boolean' },
  ffmpeg: { type: 'string' },
  quick: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parsed `edgekd demo` flags. */
export interface DemoOptions {
  out: string;
  model: string;
  /** The model is the shipped default (not `--model`): a missing file gets the how-to-get-it hint. */
  shippedModel: boolean;
  source?: string;
  frames?: number;
  skipDistill: boolean;
  quick: boolean;
  ffmpeg?: string;
}

// #region paths and printing

/**
 * The installed package's root (the folder whose package.json names edgekd), found upwards from
 * this module: dist/bin/demo.js in a package, or any other outDir of a source checkout.
 * @throws {ConfigError} `ERR_FILE_NOT_FOUND` when no such folder exists above it
 */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'edgekd') return dir;
      } catch {
        // Not a readable package.json: keep walking up.
      }
    }
    if (dirname(dir) === dir)
      throw new ConfigError('ERR_FILE_NOT_FOUND', `cannot find the edgekd package folder above '${from}'`);
  }
}

/** A path relative to the working folder when it lies inside it, else absolute. */
function rel(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
}

/** A path as the user would type it in a shell: {@link rel}, quoted when it needs quotes. */
function show(p: string): string {
  const s = rel(p);
  return /[\s'"$`\\]/.test(s) ? `'${s.replace(/'/g, `'\\''`)}'` : s;
}

const say = (line = '') => process.stdout.write(line + '\n');
const command = (args: string[]) => say(`\n$ edgekd ${args.join(' ')}`);
const secs = (s: number) =>
  s >= 90 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${s.toFixed(1)} s`;

function section(n: number, total: number, title: string): void {
  say(`\n== ${n}/${total} ${title} ${'='.repeat(Math.max(3, 72 - title.length))}`);
}

// #endregion

// #region flags

/**
 * Parses `edgekd demo` flags; `help` is set for `--help`.
 * @throws {ConfigError} for unknown flags (with a did-you-mean hint) and bad values
 */
export function parseDemoArgs(argv: string[], root: string): DemoOptions & { help: boolean } {
  const { values: v, positionals } = parseFlagArgs(argv, FLAGS);
  if (positionals.length)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `unexpected argument '${positionals[0]}' (edgekd demo takes only flags)`,
    );
  let frames: number | undefined;
  if (v.frames !== undefined) {
    frames = Number(v.frames);
    if (!Number.isInteger(frames) || frames < 1)
      throw new ConfigError(
        'ERR_CONFIG_RANGE',
        `--frames must be an integer >= 1, got '${String(v.frames)}'`,
      );
  }
  const model = typeof v.model === 'string' ? resolve(v.model) : join(root, 'models', 'zoo', 'ped-pico.onnx');
  if (typeof v.model === 'string' && !existsSync(model))
    throw new ConfigError('ERR_FILE_NOT_FOUND', `--model '${v.model}' does not exist`);
  const source = typeof v.source === 'string' ? v.source : undefined;
  if (source !== undefined && source !== 'synthetic' && !existsSync(source))
    throw new ConfigError(
      'ERR_FILE_NOT_FOUND',
      `--source '${source}' does not exist (a video file, or 'synthetic')`,
    );
  return {
    out: resolve(typeof v.out === 'string' ? v.out : join('runs', 'demo')),
    model,
    shippedModel: typeof v.model !== 'string',
    source,
    frames,
    skipDistill: v['skip-distill'] === true,
    quick: v.quick === true,
    ffmpeg: typeof v.ffmpeg === 'string' ? v.ffmpeg : undefined,
    help: v.help === true,
  };
}

/**
 * Creates the output folder, or checks that an existing one is empty or an earlier demo's.
 * @throws {ConfigError} when `out` holds files the demo did not write
 */
function prepareOutDir(out: string): void {
  if (existsSync(out)) {
    if (!statSync(out).isDirectory())
      throw new ConfigError('ERR_FILE_WRITE', `--out '${show(out)}' is a file, not a folder`);
    const entries = readdirSync(out);
    if (entries.length > 0 && !entries.includes(MARKER))
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `--out '${show(out)}' already holds files that edgekd demo did not write: choose another folder`,
      );
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, MARKER), 'written by `edgekd demo`; a re-run replaces video/ and distill/\n');
}

// #endregion

// #region part 1: video

/** Per-track lifetimes, collected from the processed frames. */
interface TrackInfo {
  id: number;
  firstFrame: number;
  lastFrame: number;
  frames: number;
  meanScore: number;
  firstBox: BoxXyxy;
  lastBox: BoxXyxy;
}

/** A sink that keeps one {@link TrackInfo} per track id and counts the detections. */
class TrackSummarySink implements VideoSink {
  readonly name = 'track-summary';
  readonly tracks = new Map<number, TrackInfo>();
  detections = 0;
  frames = 0;

  write(r: FrameResult): void {
    this.frames++;
    this.detections += r.objects.length;
    for (const o of r.objects) {
      if (o.trackId === null) continue;
      const t = this.tracks.get(o.trackId);
      if (!t)
        this.tracks.set(o.trackId, {
          id: o.trackId,
          firstFrame: r.index,
          lastFrame: r.index,
          frames: 1,
          meanScore: o.score,
          firstBox: o.box,
          lastBox: o.box,
        });
      else {
        t.meanScore = (t.meanScore * t.frames + o.score) / (t.frames + 1);
        t.frames++;
        t.lastFrame = r.index;
        t.lastBox = o.box;
      }
    }
  }

  async close(): Promise<void> {}

  list(): TrackInfo[] {
    return [...this.tracks.values()]
      .sort((a, b) => a.id - b.id)
      .map((t) => ({
        ...t,
        meanScore: Number(t.meanScore.toFixed(4)),
        // Source pixels to 0.01 px, as in the JSONL.
        firstBox: t.firstBox.map((v) => Math.round(v * 100) / 100) as BoxXyxy,
        lastBox: t.lastBox.map((v) => Math.round(v * 100) / 100) as BoxXyxy,
      }));
  }
}

/**
 * Frames of a camera panning across one wide generated street scene: the people move coherently
 * from frame to frame, so the tracker has something to follow (independent scenes per frame
 * would not).
 */
function* panningScene(width: number, height: number, frames: number): Generator<Uint8Array> {
  const wide = Math.round(width * 1.6);
  const scene = generateSyntheticScene('edgekd-demo-street', wide, height, {
    minPeople: 10,
    maxPeople: 24,
    minHeight: Math.round(height / 12),
    maxHeight: Math.round(height / 2.2),
  }).image;
  const row = width * 3;
  for (let i = 0; i < frames; i++) {
    const x0 = Math.round(((wide - width) * i) / Math.max(1, frames - 1));
    const f = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++)
      f.set(scene.data.subarray((y * wide + x0) * 3, (y * wide + x0) * 3 + row), y * row);
    yield f;
  }
}

interface PartOutcome {
  ok: boolean;
  seconds: number;
  /** Why the part did not run or failed (with the fix). */
  problem?: string;
  interrupted?: boolean;
}

interface VideoOutcome extends PartOutcome {
  files?: { annotated: string; jsonl: string; tracks: string; summary: string; clip?: string };
  source?: string;
  summary?: VideoSummary;
  trackCount?: number;
  meanPeople?: number;
}

function missingModelHint(o: DemoOptions, root: string): string {
  const lines = [`the shipped model '${show(o.model)}' is missing from this install.`];
  lines.push(
    '  It is part of the edgekd package: reinstall edgekd, or pass --model FILE.onnx (any edgekd export).',
    `  To build it from a source checkout (${show(root)}): edgekd train --config train/configs/zoo-ped-pico.json,`,
    '  then edgekd export --checkpoint runs/zoo/ped-pico/best.safetensors --out models/zoo/ped-pico.onnx',
    '  (docs/distillation.md explains the teacher labels that config trains on).',
  );
  return lines.join('\n');
}

async function videoPart(o: DemoOptions, root: string, signal: AbortSignal): Promise<VideoOutcome> {
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  if (!existsSync(o.model)) return { ok: false, seconds: elapsed(), problem: missingModelHint(o, root) };
  try {
    const bin = await findFfmpeg(o.ffmpeg);
    say(`ffmpeg: ${bin.versionLine || bin.ffmpeg}`);
  } catch (e) {
    return {
      ok: false,
      seconds: elapsed(),
      problem:
        `${formatError(e)}\n  The video part needs ffmpeg: Debian/Ubuntu 'sudo apt-get install ffmpeg', macOS 'brew install ffmpeg'` +
        ` (see ${INSTALL_DOC}). The distillation part does not need it.`,
    };
  }

  const finalDir = join(o.out, 'video');
  const stage = join(o.out, `.video.partial-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  const files = {
    annotated: join(finalDir, 'annotated.mp4'),
    jsonl: join(finalDir, 'detections.jsonl'),
    tracks: join(finalDir, 'tracks.json'),
    summary: join(finalDir, 'summary.json'),
  };
  const staged = (p: string) => join(stage, basename(p));
  let detector: Detector | undefined;
  try {
    let source = o.source ?? (existsSync(VTEST_PATH) ? VTEST_PATH : 'synthetic');
    let clip: string | undefined;
    if (source === 'synthetic') {
      const n = o.frames ?? SYNTHETIC_FRAMES;
      if (o.source === undefined)
        say(`(${VTEST_PATH} is not installed: 'apt-get install opencv-doc' provides it)`);
      say(
        `rendering a ${n}-frame clip (640x480, 10 fps) of a camera panning over a generated street scene...`,
      );
      clip = join(finalDir, 'sample-clip.mp4');
      await writeRgbClip(staged(clip), panningScene(640, 480, n), {
        width: 640,
        height: 480,
        fps: 10,
        ffmpegPath: o.ffmpeg,
        signal,
      });
      source = staged(clip);
    }
    const shownSource = clip ? show(clip) : show(resolve(source));
    command([
      'video',
      shownSource,
      '--model',
      show(o.model),
      '--out',
      show(files.annotated),
      '--jsonl',
      show(files.jsonl),
      ...(o.frames !== undefined && !clip ? ['--max-frames', String(o.frames)] : []),
      ...(o.ffmpeg ? ['--ffmpeg', show(o.ffmpeg)] : []),
    ]);
    detector = await createDetector(o.model, { workers: 1 });
    say(
      `model '${detector.spec.name}' (${detector.spec.input.width}x${detector.spec.input.height}, ${detector.precision}) on ${detector.provider}` +
        (detector.fallbacks.length
          ? ` (skipped: ${detector.fallbacks.map((f) => f.provider).join(', ')})`
          : ''),
    );
    const tracks = new TrackSummarySink();
    const tty = process.stdout.isTTY === true;
    const summary = await runVideoPipeline({
      source,
      detector,
      sinks: [
        new JsonlSink(staged(files.jsonl)),
        new AnnotatedVideoSink(staged(files.annotated)),
        tracks,
        new StatsSink(
          (_s, line) => (tty ? process.stdout.write(`\r\x1b[K${line}`) : say(line)),
          tty ? 500 : 5000,
        ),
      ],
      maxFrames: o.frames,
      ffmpegPath: o.ffmpeg,
      signal,
      statsIntervalMs: 0,
    });
    if (tty) say();
    // The clip was rendered into the staging folder: name it where it ends up.
    if (clip) summary.source.location = clip;
    const trackList = tracks.list();
    writeFileAtomic(staged(files.tracks), JSON.stringify(trackList, null, 2) + '\n');
    writeFileAtomic(staged(files.summary), JSON.stringify(summary, null, 2) + '\n');
    rmSync(finalDir, { recursive: true, force: true });
    renameSync(stage, finalDir);
    return {
      ok: true,
      seconds: elapsed(),
      files: { ...files, ...(clip ? { clip } : {}) },
      source: clip ?? resolve(source),
      summary,
      trackCount: trackList.length,
      meanPeople: tracks.frames ? tracks.detections / tracks.frames : 0,
    };
  } catch (e) {
    if (e instanceof EdgekdError && e.code === 'ERR_INTERRUPTED')
      return { ok: false, seconds: elapsed(), interrupted: true };
    return { ok: false, seconds: elapsed(), problem: formatError(e) };
  } finally {
    await detector?.close();
    rmSync(stage, { recursive: true, force: true });
  }
}

function reportVideo(v: VideoOutcome): void {
  const s = v.summary!;
  const inferFps = s.meanMs.infer > 0 ? 1000 / s.meanMs.infer : 0;
  say(
    `\nprocessed ${s.processed} frames of ${show(v.source!)} (${s.source.width}x${s.source.height}) in ${secs(s.seconds)}:`,
  );
  say(
    `  ${s.fps.toFixed(1)} fps end to end (decode, inference, tracking, drawing and encoding the annotated video)`,
  );
  say(
    `  inference alone ${s.meanMs.infer.toFixed(1)} ms per frame (${inferFps.toFixed(0)} fps) on ${s.provider}; ` +
      `${v.meanPeople!.toFixed(1)} people per frame, ${v.trackCount} tracks`,
  );
}

// #endregion

// #region part 2: distil, export, verify

interface DistillOutcome extends PartOutcome {
  files?: {
    config: string;
    runDir: string;
    checkpoint: string;
    onnx: string;
    card: string;
    samples: string;
    detected: string;
  };
  steps?: { train: number; export: number; detect: number };
  /** AP50 of the student on the held-out synthetic scenes (the trainer's final eval). */
  ap50?: number;
  parityOk?: boolean;
  found?: { people: number; detections: number; matched: number };
}

/**
 * Settings of the KD round, sized for about 2 minutes on 2 free cores (AP50 about 0.1 on held-out
 * scenes, measured 0.07 after 16 epochs and 0.11 after 24: the student has started to find
 * people, no more), or seconds with --quick. Batch 8 rather than 16: in so short a run, more
 * updates beat larger batches.
 */
function distillSettings(quick: boolean): {
  input: number;
  trainCount: number;
  valCount: number;
  epochs: number;
  batch: number;
} {
  return quick
    ? { input: 64, trainCount: 8, valCount: 8, epochs: 1, batch: 4 }
    : { input: 128, trainCount: 192, valCount: 64, epochs: 24, batch: 8 };
}

/** The train config the demo writes and runs: a tiny student, the CenterNet teacher, the default KD recipe. */
function demoTrainConfig(o: DemoOptions, root: string, distillDir: string): Record<string, unknown> {
  const s = distillSettings(o.quick);
  const specFile = join(root, 'train', 'configs', 'ped-tiny.spec.json');
  if (!existsSync(specFile))
    throw new ConfigError(
      'ERR_FILE_NOT_FOUND',
      `the student spec '${specFile}' is missing from this install`,
    );
  // Inline, so the written config runs from any folder (it does not point into the package).
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as { input: Record<string, unknown> };
  spec.input = { ...spec.input, height: s.input, width: s.input };
  return {
    name: 'student',
    out: rel(distillDir),
    model: spec,
    seed: 0,
    data: {
      train: { kind: 'synthetic', count: s.trainCount, seed: 1 },
      val: { kind: 'synthetic', count: s.valCount, seed: 9001 },
    },
    train: {
      epochs: s.epochs,
      batchSize: s.batch,
      microBatch: Math.min(8, s.batch),
      optimizer: { kind: 'adamw', lr: 0.02, weightDecay: 0.0005 },
      warmupEpochs: o.quick ? 0.5 : 1,
      ema: 0.99,
      emaRampSteps: 20,
    },
    eval: { every: 0 },
    distill: {
      teachers: [{ kind: 'centernet' }],
      projectChannels: 32,
      // --quick runs two steps: the KD terms must be on from the first one.
      warmupEpochs: o.quick ? 0 : 1,
      // One fixed augmentation per image: the teacher runs once per image, in the first epoch;
      // the cache lives beside distill/ so a second demo run skips the teacher altogether.
      cache: { dir: rel(join(o.out, 'kd-cache')), variants: 1 },
      ...DEFAULT_RECIPE,
    },
  };
}

/** AP50 of the last evaluated epoch in a run's metrics.jsonl, if any. */
function lastEvalAp50(metricsFile: string): number | undefined {
  if (!existsSync(metricsFile)) return undefined;
  const lines = readFileSync(metricsFile, 'utf8').trim().split('\n').reverse();
  for (const l of lines) {
    const ap50 = (JSON.parse(l) as { eval?: { AP50?: number } }).eval?.AP50;
    if (typeof ap50 === 'number') return ap50;
  }
  return undefined;
}

/** Greedy one-to-one matching at IoU >= 0.5, best score first; ignored people match without counting. */
function matchPeople(
  dets: { box: BoxXyxy; score: number }[],
  people: { box: BoxXyxy; ignore?: boolean }[],
): number {
  const iou = (a: BoxXyxy, b: BoxXyxy) => {
    const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
    const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    const inter = w * h;
    const u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return u > 0 ? inter / u : 0;
  };
  const used = new Set<number>();
  let matched = 0;
  for (const d of [...dets].sort((a, b) => b.score - a.score)) {
    let best = -1;
    let bestIou = 0.5;
    for (const [i, p] of people.entries()) {
      if (used.has(i)) continue;
      const v = iou(d.box, p.box);
      if (v >= bestIou) {
        bestIou = v;
        best = i;
      }
    }
    if (best < 0) continue;
    used.add(best);
    if (!people[best].ignore) matched++;
  }
  return matched;
}

async function distillPart(o: DemoOptions, root: string, signal: AbortSignal): Promise<DistillOutcome> {
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const dir = join(o.out, 'distill');
  const files = {
    config: join(dir, 'kd-demo.json'),
    runDir: join(dir, 'student'),
    checkpoint: '',
    onnx: join(dir, 'student.onnx'),
    card: join(dir, 'student.json'),
    samples: join(dir, 'samples'),
    detected: join(dir, 'samples', 'detected'),
  };
  const steps = { train: 0, export: 0, detect: 0 };
  const interrupted = (): DistillOutcome => ({ ok: false, seconds: elapsed(), interrupted: true, steps });
  try {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const config = demoTrainConfig(o, root, dir);
    writeFileAtomic(files.config, JSON.stringify(config, null, 2) + '\n');
    const s = distillSettings(o.quick);
    say(
      `student: ped-tiny at ${s.input}x${s.input} (about 49 k parameters); teacher: CenterNet-MobileNetV3 (COCO, 1.3 GMAC,` +
        ' from the @vladmandic/human package, loaded from its files: no network)',
    );
    say(
      `data: ${s.trainCount} synthetic scenes with exact labels, ${s.epochs} epoch(s) of batch ${s.batch}; KD recipe: rank` +
        ' mimicking + prediction-guided feature imitation, hierarchical matching, pyramid relations.',
    );
    say(
      'The teacher runs once per image in epoch 1 (the slow epoch) and is read from its cache after that.' +
        (o.quick ? '' : ' About 2 minutes on 2 free cores.'),
    );

    // Imported here so `edgekd demo --skip-distill` never loads TensorFlow.js.
    const { trainCommand } = await import('../train/cli.js');
    const { exportCommand } = await import('../export/cli.js');
    const { detectCommand } = await import('../runtime/cli.js');

    let t = performance.now();
    command(['train', '--config', show(files.config)]);
    const trainRc = await trainCommand(['--config', files.config]);
    steps.train = (performance.now() - t) / 1000;
    if (trainRc === 130 || signal.aborted) return interrupted();
    if (trainRc !== 0)
      return { ok: false, seconds: elapsed(), steps, problem: `edgekd train exited with ${trainRc}` };
    const best = join(files.runDir, 'best.safetensors');
    files.checkpoint = existsSync(best) ? best : join(files.runDir, 'last.safetensors');
    const ap50 = lastEvalAp50(join(files.runDir, 'metrics.jsonl'));

    t = performance.now();
    command([
      'export',
      '--checkpoint',
      show(files.checkpoint),
      '--out',
      show(files.onnx),
      '--outputs',
      'boxes',
      '--verify',
    ]);
    const exportRc = await exportCommand([
      '--checkpoint',
      files.checkpoint,
      '--out',
      files.onnx,
      '--outputs',
      'boxes',
      '--verify',
    ]);
    steps.export = (performance.now() - t) / 1000;
    if (signal.aborted) return interrupted();
    if (exportRc !== 0)
      return { ok: false, seconds: elapsed(), steps, problem: `edgekd export exited with ${exportRc}` };
    const card = JSON.parse(readFileSync(files.card, 'utf8')) as {
      sizeBytes: number;
      params: number;
      macs: number;
      parity?: {
        ok: boolean;
        tolerance: { heads: number };
        maxAbsDiff: Record<string, number>;
        boxes?: { reference: number; matched: number; maxCoordDiff: number };
      };
    };
    const p = card.parity;
    say(
      `\nexported ${show(files.onnx)}: ${(card.sizeBytes / 1024).toFixed(0)} KB, ${card.params.toLocaleString('en-US')} parameters, ` +
        `${(card.macs / 1e6).toFixed(1)} M MACs per image; model card ${show(files.card)}`,
    );
    if (p) {
      const d = p.maxAbsDiff;
      say(
        `parity, ONNX Runtime vs TensorFlow.js on the same inputs: max |diff| heatmap ${d.heatmap.toExponential(1)}, ` +
          `size ${d.size.toExponential(1)}, offset ${d.offset.toExponential(1)} (bound ${p.tolerance.heads.toExponential(0)} x scale)` +
          (p.boxes
            ? `; boxes ${p.boxes.matched}/${p.boxes.reference} identical (max ${p.boxes.maxCoordDiff.toExponential(1)} px)`
            : '') +
          ` -> ${p.ok ? 'ok' : 'FAILED'}`,
      );
    }

    // Two scenes the student never saw, at twice its input size, with the generator's labels.
    t = performance.now();
    mkdirSync(files.samples, { recursive: true });
    const side = s.input * 2;
    const images: string[] = [];
    const truth: Record<string, { box: BoxXyxy; ignore?: boolean }[]> = {};
    for (let i = 0; i < 2; i++) {
      const scene = generateSyntheticScene(`edgekd-demo-sample-${i}`, side, side);
      const path = join(files.samples, `sample-${i}.png`);
      const png = await sharp(Buffer.from(scene.image.data), {
        raw: { width: side, height: side, channels: 3 },
      })
        .png()
        .toBuffer();
      writeFileAtomic(path, png);
      images.push(path);
      truth[basename(path, '.png')] = scene.annotations.map((a) => ({
        box: a.box,
        ...(a.ignore ? { ignore: true } : {}),
      }));
    }
    writeFileAtomic(join(files.samples, 'ground-truth.json'), JSON.stringify(truth, null, 2) + '\n');
    command(['detect', ...images.map(show), '--model', show(files.onnx), '--out', show(files.detected)]);
    const detectRc = await detectCommand([...images, '--model', files.onnx, '--out', files.detected]);
    steps.detect = (performance.now() - t) / 1000;
    if (signal.aborted) return interrupted();
    if (detectRc !== 0)
      return { ok: false, seconds: elapsed(), steps, problem: `edgekd detect exited with ${detectRc}` };
    const found = { people: 0, detections: 0, matched: 0 };
    say('');
    for (const img of images) {
      const stem = basename(img, '.png');
      const r = JSON.parse(readFileSync(join(files.detected, `${stem}.json`), 'utf8')) as {
        detections: { box: BoxXyxy; score: number }[];
      };
      const people = truth[stem];
      const counted = people.filter((q) => !q.ignore).length;
      const matched = matchPeople(r.detections, people);
      found.people += counted;
      found.detections += r.detections.length;
      found.matched += matched;
      say(
        `${stem}.png: ${counted} people drawn by the generator; the student reports ${r.detections.length} ` +
          `(score >= its threshold), ${matched} of them on a person (IoU >= 0.5); annotated: ${show(join(files.detected, `${stem}.jpg`))}`,
      );
    }
    return { ok: true, seconds: elapsed(), files, steps, ap50, parityOk: p?.ok, found };
  } catch (e) {
    if (signal.aborted) return interrupted();
    return { ok: false, seconds: elapsed(), steps, problem: formatError(e) };
  }
}

// #endregion

/**
 * `edgekd demo ...`; returns the exit code: 0 when every part ran, 1 when a part could not run
 * or failed (the summary says why), 2 for bad flags, 130 on Ctrl-C.
 */
export async function demoCommand(argv: string[]): Promise<number> {
  const root = packageRoot();
  const o = parseDemoArgs(argv, root);
  if (o.help) {
    say(USAGE);
    return 0;
  }
  prepareOutDir(o.out);
  const t0 = performance.now();
  const parts = o.skipDistill ? 1 : 2;
  const cpu = cpus()[0]?.model?.trim() ?? 'unknown CPU';
  say('edgekd demo: the whole product in a few minutes, on this machine, offline.');
  say(
    `  1. detect and track people in a video with ${o.shippedModel ? 'the shipped model' : 'your model'} ${show(o.model)}`,
  );
  if (!o.skipDistill)
    say(
      '  2. distil a tiny student from the CenterNet teacher on synthetic scenes, export it to ONNX, verify it',
    );
  say(`outputs: ${show(o.out)}/   machine: ${availableParallelism()} cores, ${cpu}, no GPU needed`);
  say('Each step prints the edgekd command that does the same on its own. Ctrl-C stops.');

  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`\n${sig}: stopping the demo (again to exit at once)\n`);
      stop.abort(sig);
      return;
    }
    // The ffmpeg module's exit hook kills any child still running on the way out.
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    section(1, parts, 'Detect people in a video');
    const video = await videoPart(o, root, stop.signal);
    if (video.ok) reportVideo(video);
    else if (video.problem) say(`\nvideo part did not run: ${video.problem}`);
    if (stop.signal.aborted || video.interrupted) return interrupted(o);

    let distill: DistillOutcome | undefined;
    if (!o.skipDistill) {
      section(2, parts, 'Distil, export and verify a student');
      distill = await distillPart(o, root, stop.signal);
      if (stop.signal.aborted || distill.interrupted) return interrupted(o);
      if (distill.problem) say(`\ndistillation part failed: ${distill.problem}`);
    }
    const total = (performance.now() - t0) / 1000;
    printSummary(o, video, distill, total);
    return video.ok && (distill?.ok ?? true) ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function interrupted(o: DemoOptions): number {
  say(`\ninterrupted: finished outputs stay in ${show(o.out)}/ (unfinished video outputs were removed)`);
  return 130;
}

function printSummary(o: DemoOptions, v: VideoOutcome, d: DistillOutcome | undefined, total: number): void {
  say(`\n== Summary (${secs(total)} in all) ${'='.repeat(50)}`);
  const row = (what: string, path: string, note = '') =>
    say(`  ${what.padEnd(18)} ${show(path)}${note ? `  ${note}` : ''}`);
  if (v.ok && v.files && v.summary) {
    const s = v.summary;
    say(
      `video (${secs(v.seconds)}): ${s.processed} frames, ${s.fps.toFixed(1)} fps end to end, inference ${s.meanMs.infer.toFixed(1)} ms/frame on ${s.provider}`,
    );
    if (v.files.clip) row('generated clip', v.files.clip);
    row('annotated video', v.files.annotated);
    row('detections', v.files.jsonl, '(one JSON line per frame)');
    row('tracks', v.files.tracks, `(${v.trackCount} tracks)`);
    row('run summary', v.files.summary, '(fps, per-stage ms)');
  } else say(`video: did not run (${v.problem?.split('\n')[0] ?? 'see above'})`);
  if (d) {
    if (d.ok && d.files && d.steps) {
      say(
        `distillation (${secs(d.seconds)}): train ${secs(d.steps.train)}, export + parity ${secs(d.steps.export)}, detect ${secs(d.steps.detect)}` +
          (d.ap50 !== undefined ? `; student AP50 ${d.ap50.toFixed(3)} on held-out scenes` : '') +
          (d.found ? `; ${d.found.matched} of ${d.found.people} people found in 2 new scenes` : ''),
      );
      row('train config', d.files.config);
      row(
        'checkpoint',
        d.files.checkpoint,
        `(losses per epoch: ${show(join(d.files.runDir, 'metrics.jsonl'))})`,
      );
      row('ONNX model', d.files.onnx);
      row(
        'model card',
        d.files.card,
        d.parityOk === undefined ? '' : `(parity ${d.parityOk ? 'ok' : 'FAILED'})`,
      );
      row('sample detections', d.files.detected);
    } else say(`distillation: did not finish (${d.problem?.split('\n')[0] ?? 'see above'})`);
  }
  const summaryPath = join(o.out, 'summary.json');
  writeFileAtomic(
    summaryPath,
    JSON.stringify(
      {
        seconds: Number(total.toFixed(1)),
        video: {
          ok: v.ok,
          seconds: Number(v.seconds.toFixed(1)),
          problem: v.problem,
          files: v.files,
          summary: v.summary,
        },
        distill: d && {
          ok: d.ok,
          seconds: Number(d.seconds.toFixed(1)),
          steps: d.steps,
          problem: d.problem,
          files: d.files,
          ap50: d.ap50,
          parityOk: d.parityOk,
          found: d.found,
        },
      },
      null,
      2,
    ) + '\n',
  );
  row('this summary', summaryPath);

  const model = v.ok ? show(o.model) : 'MODEL.onnx';
  say('\nWhat to try next:');
  say(`  edgekd video /dev/video0 --model ${model} --out webcam.mp4    # your webcam, live (Ctrl-C stops)`);
  say(`  edgekd serve --model ${model}    # HTTP API + a web page that runs the model in your browser`);
  say('  edgekd train --config train/configs/zoo-ped-pico.json    # how the shipped model was trained');
  say(
    '  docs: docs/cli.md (every command), docs/runtime.md (video, tracker), docs/distillation.md, docs/deploy.md',
  );
}
