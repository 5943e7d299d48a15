/**
 * Teacher pseudo-labels (`edgekd label`): run a teacher over video frames or an image folder and
 * write a COCO detection file of its boxes above a score threshold, with the images beside it, so
 * the file is a `{ kind: 'coco', annotations: FILE }` training source as it stands (unlabelled
 * footage -> distillation data). Frames are letterboxed to a square for the teacher and its boxes
 * are mapped back to source pixels.
 *
 * Layout written (`out` = `DIR/labels.json`):
 * ```
 * DIR/labels.json          COCO: info, images, annotations (bbox [x, y, w, h] source px, score), categories
 * DIR/images/frame_000123.jpg   video frames (JPEG), or copies of the input image files
 * ```
 * `file_name` is relative to `DIR/images/`, which is where the COCO reader looks by default.
 */
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import type { BoxXyxy, Detection } from '../models/core/detection.js';
import { ConfigError, DataFormatError, ModelFormatError, PipelineError } from '../models/core/errors.js';
import { writeFileAtomic } from '../models/core/safetensors.js';
import { decodeImage, LETTERBOX_PAD, letterbox, boxToSource } from './data/image.js';
import type { LetterboxTransform, RgbImage } from './data/types.js';
import { probeVideo, readVideoFrames, type VideoInfo } from './data/video-frames.js';
import type { Teacher } from './teachers/types.js';

/** `edgekd label` options; defaults live here only. Paths are relative to the working directory. */
export const LabelConfigSchema = z.strictObject({
  teacher: z
    .string()
    .min(1)
    .describe(
      '(centernet|FILE.json|FILE.safetensors) built-in CenterNet, a TeacherConfig JSON, or an edgekd checkpoint',
    ),
  video: z.string().optional().describe('(path) video file to label (decoded with ffmpeg)'),
  frames: z
    .string()
    .regex(/^\d+(-\d+)?$/, "expected 'FIRST-LAST' (inclusive, 0-based) or 'FIRST'")
    .optional()
    .describe('(FIRST-LAST) inclusive 0-based frame range of --video, e.g. 0-499 (default: every frame)'),
  step: z.number().int().min(1).default(1).describe('(int) label every step-th frame of the range'),
  images: z.string().optional().describe('(path) folder of images to label instead of --video'),
  out: z
    .string()
    .regex(/\.json$/i, 'must end in .json')
    .describe('(path) COCO JSON to write; images go to images/ beside it'),
  threshold: z.number().min(0).max(1).default(0.4).describe('(number) keep detections scoring at least this'),
  classes: z
    .union([z.array(z.string().min(1)).min(1), z.string().min(1)])
    .default(['person'])
    .describe('(a,b,...) classes to label (the teacher maps its own classes onto these)'),
  size: z
    .number()
    .int()
    .min(32)
    .max(4096)
    .default(512)
    .describe('(int) side of the square letterbox fed to the teacher, pixels'),
  batch: z.number().int().min(1).max(256).default(4).describe('(int) images per teacher call'),
  maxDetections: z.number().int().min(1).default(100).describe('(int) detections kept per image'),
  minBoxSize: z
    .number()
    .min(0)
    .default(2)
    .describe('(number) drop boxes narrower or shorter than this after clipping, source pixels'),
  backend: z
    .enum(['auto', 'tensorflow', 'wasm', 'cpu'])
    .default('auto')
    .describe('(auto|tensorflow|wasm|cpu) tfjs backend the teacher runs on (tfjs teachers)'),
  quality: z.number().int().min(1).max(100).default(95).describe('(int) JPEG quality of written frames'),
  progressEvery: z.number().int().min(1).default(50).describe('(int) print a progress line every N images'),
});
export type LabelConfig = z.output<typeof LabelConfigSchema>;

/** Class names of a `classes` field (array, or one comma-separated string). */
export function labelClasses(classes: LabelConfig['classes']): string[] {
  const list = typeof classes === 'string' ? classes.split(',').map((s) => s.trim()) : classes;
  if (list.length === 0 || list.some((c) => c.length === 0))
    throw new ConfigError('ERR_CONFIG_INVALID', `'classes' must list class names, got '${String(classes)}'`);
  if (new Set(list).size !== list.length)
    throw new ConfigError('ERR_CONFIG_INVALID', `'classes' has a duplicate name: ${list.join(', ')}`);
  return list;
}

/** A 0-based frame range: frames `start, start + step, ...` while `< start + count` (count absent: to the end). */
export interface FrameRange {
  start: number;
  count?: number;
  step?: number;
}

/**
 * Parses `FIRST-LAST` (inclusive) or `FIRST` (to the end).
 * @throws {ConfigError} `ERR_CONFIG_RANGE` for an empty or malformed range
 */
export function parseFrameRange(text: string): FrameRange {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  if (!m)
    throw new ConfigError(
      'ERR_CONFIG_RANGE',
      `--frames must be FIRST-LAST (inclusive, 0-based) or FIRST, got '${text}'`,
    );
  const start = Number(m[1]);
  if (m[2] === undefined) return { start };
  const last = Number(m[2]);
  if (last < start)
    throw new ConfigError('ERR_CONFIG_RANGE', `--frames '${text}' is empty (last frame before the first)`);
  return { start, count: last - start + 1 };
}

/** First frame of `vtest.avi` in the evaluation split (DESIGN.md: frames 500-794 stay out of training). */
export const VTEST_EVAL_FIRST = 500;

/**
 * A warning when a frame range of `vtest.avi` reaches into its evaluation split (frames >= 500),
 * whose pseudo-labels must not be trained on; undefined otherwise (any other file name).
 */
export function evaluationSplitWarning(video: string, range: FrameRange): string | undefined {
  if (basename(video).toLowerCase() !== 'vtest.avi') return undefined;
  const last = range.count === undefined ? Infinity : range.start + range.count - 1;
  if (last < VTEST_EVAL_FIRST) return undefined;
  return (
    `frames ${range.start}-${Number.isFinite(last) ? last : 'end'} of vtest.avi include frames >= ${VTEST_EVAL_FIRST}, ` +
    `the evaluation split: keep them out of training (use --frames 0-${VTEST_EVAL_FIRST - 1})`
  );
}

/** Settings of {@link labelFrames} / {@link labelImages} (the numeric part of {@link LabelConfig}). */
export interface LabelSettings {
  /** Category names; a detection's `classId` indexes this list. */
  classes: string[];
  threshold: number;
  /** Letterbox side fed to the teacher. */
  size: number;
  batch: number;
  maxDetections: number;
  minBoxSize: number;
  /** JPEG quality for video frames. */
  quality: number;
}

/** Progress of a labelling job, for the CLI to draw. */
export type LabelEvent =
  | { kind: 'label-start'; source: string; total?: number; teacher: string }
  | {
      kind: 'label-progress';
      done: number;
      total?: number;
      detections: number;
      imagesPerSec: number;
    }
  | { kind: 'label-done'; images: number; detections: number; seconds: number; annotationFile: string };

export interface LabelRunOptions {
  onEvent?: (e: LabelEvent) => void;
  /** Aborting stops after the current batch; what was labelled so far is written. */
  signal?: AbortSignal;
  /** ffmpeg binary (video sources). */
  ffmpegPath?: string;
}

/** The COCO file {@link labelFrames} writes. Extra keys (`score`, `frame_index`) are ignored by COCO readers. */
export interface CocoLabels {
  info: {
    description: string;
    date_created: string;
    teacher: { name: string; fingerprint: string };
    threshold: number;
    classes: string[];
    letterbox: number;
    source: string;
    /** Inclusive 0-based range actually labelled (video sources). */
    frames?: { first: number; last: number; step: number; count: number };
    interrupted?: boolean;
  };
  images: { id: number; file_name: string; width: number; height: number; frame_index?: number }[];
  annotations: {
    id: number;
    image_id: number;
    category_id: number;
    /** `[x, y, w, h]` in source pixels. */
    bbox: [number, number, number, number];
    area: number;
    iscrowd: 0;
    score: number;
  }[];
  categories: { id: number; name: string; supercategory: string }[];
}

export interface LabelResult {
  coco: CocoLabels;
  annotationFile: string;
  imagesDir: string;
  seconds: number;
  interrupted: boolean;
}

/** One labelled image: what goes into `images[]` plus its source-pixel detections. */
export interface LabelledImage {
  fileName: string;
  width: number;
  height: number;
  frameIndex?: number;
  detections: Detection[];
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/**
 * Maps teacher detections from letterboxed input pixels back to source pixels: clipped to the
 * image, filtered by score and class, boxes under `minBoxSize` on either side dropped.
 * @param t - the source -> letterbox transform the teacher's input was made with
 */
export function detectionsToSource(
  dets: readonly Detection[],
  t: LetterboxTransform,
  opts: { threshold: number; numClasses: number; minBoxSize: number },
): Detection[] {
  const out: Detection[] = [];
  for (const d of dets) {
    if (!(d.score >= opts.threshold)) continue;
    if (!Number.isInteger(d.classId) || d.classId < 0 || d.classId >= opts.numClasses) continue;
    if (!d.box.every(Number.isFinite)) continue;
    const box: BoxXyxy = boxToSource(d.box, t);
    if (box[2] - box[0] < opts.minBoxSize || box[3] - box[1] < opts.minBoxSize) continue;
    out.push({ box, score: d.score, classId: d.classId });
  }
  return out;
}

/**
 * Assembles the COCO object: image ids 1.., annotation ids 1.., category id = class index + 1,
 * bbox `[x, y, w, h]` and area rounded to 0.01 px.
 */
export function buildCocoLabels(images: readonly LabelledImage[], info: CocoLabels['info']): CocoLabels {
  const coco: CocoLabels = {
    info,
    images: [],
    annotations: [],
    categories: info.classes.map((name, i) => ({ id: i + 1, name, supercategory: 'object' })),
  };
  images.forEach((img, i) => {
    const id = i + 1;
    coco.images.push({
      id,
      file_name: img.fileName,
      width: img.width,
      height: img.height,
      ...(img.frameIndex !== undefined ? { frame_index: img.frameIndex } : {}),
    });
    for (const d of img.detections) {
      const x = round2(d.box[0]);
      const y = round2(d.box[1]);
      const w = round2(d.box[2] - d.box[0]);
      const h = round2(d.box[3] - d.box[1]);
      coco.annotations.push({
        id: coco.annotations.length + 1,
        image_id: id,
        category_id: d.classId + 1,
        bbox: [x, y, w, h],
        area: round2(w * h),
        iscrowd: 0,
        score: Math.round(d.score * 1e4) / 1e4,
      });
    }
  });
  return coco;
}

/** An image on its way through the labeller. */
interface PendingImage {
  fileName: string;
  image: RgbImage;
  frameIndex?: number;
  /** Writes the image to `dest` (JPEG encode, or a copy of the source file). */
  save(dest: string): Promise<void>;
}

function checkSettings(s: LabelSettings): void {
  if (!(s.threshold >= 0 && s.threshold <= 1))
    throw new RangeError(`'threshold' must be in [0, 1], got ${s.threshold}`);
  if (!(Number.isInteger(s.size) && s.size >= 1))
    throw new RangeError(`'size' must be an integer >= 1, got ${s.size}`);
  if (!(Number.isInteger(s.batch) && s.batch >= 1))
    throw new RangeError(`'batch' must be an integer >= 1, got ${s.batch}`);
  if (s.classes.length === 0) throw new RangeError(`'classes' must name at least one class`);
}

async function labelSource(
  teacher: Teacher,
  items: AsyncIterable<PendingImage>,
  out: string,
  settings: LabelSettings,
  source: { name: string; frameStep?: number; empty: string },
  opts: LabelRunOptions & { total?: number },
): Promise<LabelResult> {
  checkSettings(settings);
  const t0 = performance.now();
  const emit = opts.onEvent ?? (() => {});
  const imagesDir = join(dirname(out), 'images');
  let madeDir = false;
  emit({ kind: 'label-start', source: source.name, total: opts.total, teacher: teacher.name });

  const { size } = settings;
  const labelled: LabelledImage[] = [];
  const writes = new Set<Promise<void>>();
  let detections = 0;
  let interrupted = false;
  let batch: PendingImage[] = [];

  const flush = async () => {
    if (batch.length === 0) return;
    const plane = size * size * 3;
    const input = new Float32Array(batch.length * plane);
    const transforms: LetterboxTransform[] = [];
    batch.forEach((b, i) => {
      const lb = letterbox(b.image, size, size, { pad: LETTERBOX_PAD });
      input.set(lb.image.data, i * plane);
      transforms.push(lb.transform);
    });
    const dets = await teacher.detect(input, batch.length, size, size, {
      scoreThreshold: settings.threshold,
      maxDetections: settings.maxDetections,
    });
    if (!Array.isArray(dets) || dets.length !== batch.length)
      throw new ModelFormatError(
        'ERR_MODEL_FORMAT',
        `teacher '${teacher.name}' returned ${Array.isArray(dets) ? dets.length : typeof dets} detection lists for a batch of ${batch.length}`,
      );
    if (!madeDir) {
      await mkdir(imagesDir, { recursive: true });
      madeDir = true;
    }
    batch.forEach((b, i) => {
      const kept = detectionsToSource(dets[i], transforms[i], {
        threshold: settings.threshold,
        numClasses: settings.classes.length,
        minBoxSize: settings.minBoxSize,
      }).slice(0, settings.maxDetections);
      detections += kept.length;
      labelled.push({
        fileName: b.fileName,
        width: b.image.width,
        height: b.image.height,
        frameIndex: b.frameIndex,
        detections: kept,
      });
      const w = b.save(join(imagesDir, b.fileName)).finally(() => writes.delete(w));
      writes.add(w);
    });
    batch = [];
    const secs = (performance.now() - t0) / 1000;
    emit({
      kind: 'label-progress',
      done: labelled.length,
      total: opts.total,
      detections,
      imagesPerSec: labelled.length / Math.max(secs, 1e-9),
    });
    // Bounded memory: at most a few batches of encodes in flight.
    while (writes.size > settings.batch * 4) await Promise.race(writes);
  };

  try {
    for await (const item of items) {
      batch.push(item);
      if (batch.length >= settings.batch) await flush();
      if (opts.signal?.aborted) {
        interrupted = true;
        break;
      }
    }
    if (!interrupted) await flush();
  } finally {
    await Promise.allSettled(writes);
  }
  // Surface a failed write (allSettled above only waits).
  await Promise.all(writes);
  if (labelled.length === 0 && !interrupted) throw new ConfigError('ERR_CONFIG_RANGE', source.empty);

  const frameIdx = labelled.map((l) => l.frameIndex).filter((f): f is number => f !== undefined);
  const coco = buildCocoLabels(labelled, {
    description: `edgekd pseudo-labels by teacher '${teacher.name}'`,
    date_created: new Date().toISOString(),
    teacher: { name: teacher.name, fingerprint: teacher.fingerprint },
    threshold: settings.threshold,
    classes: [...settings.classes],
    letterbox: size,
    source: source.name,
    ...(source.frameStep !== undefined && frameIdx.length
      ? {
          frames: {
            first: frameIdx[0],
            last: frameIdx[frameIdx.length - 1],
            step: source.frameStep,
            count: frameIdx.length,
          },
        }
      : {}),
    ...(interrupted ? { interrupted: true } : {}),
  });
  writeFileAtomic(out, `${JSON.stringify(coco)}\n`);
  const seconds = (performance.now() - t0) / 1000;
  emit({ kind: 'label-done', images: labelled.length, detections, seconds, annotationFile: out });
  return { coco, annotationFile: out, imagesDir, seconds, interrupted };
}

/**
 * Labels a frame range of a video: frames decoded at source resolution by ffmpeg, written as
 * `images/frame_NNNNNN.jpg` (NNNNNN = 0-based frame index) beside `out`.
 * @param out - path of the COCO JSON to write (atomically)
 * @throws {ConfigError} missing file or empty range; {DataFormatError} not a readable video;
 *   {PipelineError} ffmpeg absent or failing mid-stream
 *
 * @example
 * ```ts
 * const teacher = await createTeacher({ kind: 'centernet', ... }, { classes: ['person'] });
 * const r = await labelFrames(teacher, 'vtest.avi', { start: 0, count: 500 }, 'data/vtest/labels.json',
 *   { classes: ['person'], threshold: 0.4, size: 512, batch: 4, maxDetections: 100, minBoxSize: 2, quality: 95 });
 * r.coco.images.length; // 500
 * ```
 */
export async function labelFrames(
  teacher: Teacher,
  video: string,
  range: FrameRange,
  out: string,
  settings: LabelSettings,
  opts: LabelRunOptions = {},
): Promise<LabelResult> {
  const step = range.step ?? 1;
  if (range.count !== undefined && range.count < 1)
    throw new ConfigError('ERR_CONFIG_RANGE', `frame range of '${video}' is empty (count ${range.count})`);
  const st = await stat(video).catch(() => undefined);
  if (!st || !st.isFile())
    throw new ConfigError('ERR_FILE_NOT_FOUND', `--video '${video}' is not a readable file`);
  let info: VideoInfo;
  try {
    info = await probeVideo(video, { ffmpegPath: opts.ffmpegPath });
  } catch (e) {
    // A PipelineError without a cause means ffmpeg ran and found no video stream.
    if (e instanceof PipelineError && e.cause === undefined)
      throw new DataFormatError('ERR_DATA_FORMAT', `'${video}' is not a video ffmpeg can read`, { cause: e });
    throw e;
  }
  let total: number | undefined;
  if (info.frameCountEstimate !== undefined) {
    const avail = Math.max(0, Math.ceil((info.frameCountEstimate - range.start) / step));
    total = range.count === undefined ? avail : Math.min(Math.ceil(range.count / step), avail);
  } else if (range.count !== undefined) total = Math.ceil(range.count / step);
  const quality = settings.quality;
  async function* frames(): AsyncGenerator<PendingImage> {
    for await (const f of readVideoFrames(video, {
      ffmpegPath: opts.ffmpegPath,
      size: info,
      start: range.start,
      // readVideoFrames counts delivered frames; the range counts source frames.
      count: range.count === undefined ? undefined : Math.ceil(range.count / step),
      step,
    })) {
      const image = f.image;
      yield {
        fileName: `frame_${String(f.index).padStart(6, '0')}.jpg`,
        image,
        frameIndex: f.index,
        save: async (dest) => {
          await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
            .jpeg({ quality })
            .toFile(dest);
        },
      };
    }
  }
  return labelSource(
    teacher,
    frames(),
    out,
    settings,
    {
      name: basename(video),
      frameStep: step,
      empty: `no frames of '${video}' in the requested range (starting at frame ${range.start})`,
    },
    { ...opts, total },
  );
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff']);

/**
 * Labels every image file (jpg, png, webp, tiff) directly in `dir`, in name order. The files are
 * copied unchanged into `images/` beside `out` (skipped when that is `dir` itself).
 * @throws {ConfigError} missing folder or no images in it; {DataFormatError} an undecodable image
 */
export async function labelImages(
  teacher: Teacher,
  dir: string,
  out: string,
  settings: LabelSettings,
  opts: LabelRunOptions = {},
): Promise<LabelResult> {
  let names: string[];
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    names = entries
      .filter((e) => e.isFile() && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase()))
      .map((e) => e.name)
      .sort();
  } catch (e) {
    throw new ConfigError('ERR_FILE_NOT_FOUND', `--images '${dir}' is not a readable folder`, { cause: e });
  }
  if (names.length === 0)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `--images '${dir}' holds no image files (${[...IMAGE_EXTENSIONS].join(', ')})`,
    );
  const destDir = resolve(dirname(out), 'images');
  async function* images(): AsyncGenerator<PendingImage> {
    for (const name of names) {
      const src = join(dir, name);
      yield {
        fileName: name,
        image: await decodeImage(src),
        save: async (dest) => {
          if (resolve(src) !== resolve(destDir, name)) await copyFile(src, dest);
        },
      };
    }
  }
  return labelSource(
    teacher,
    images(),
    out,
    settings,
    { name: dir, empty: `no images in '${dir}'` },
    { ...opts, total: names.length },
  );
}
