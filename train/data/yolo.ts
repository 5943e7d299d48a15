/**
 * YOLO txt reader: `images/[split/]name.jpg` beside `labels/[split/]name.txt`, one object per
 * line `class cx cy w h`, all normalised to 0..1 by the image size. An image without a label
 * file is a negative (no objects), as in ultralytics.
 */
import { readFile, readdir } from 'node:fs/promises';
import { basename, extname, join, relative } from 'node:path';
import type { Annotation } from '../../models/core/detection.js';
import { DataFormatError } from '../../models/core/errors.js';
import { createClassMapper, type ClassMapOptions } from './class-map.js';
import { clipBox } from './clip-box.js';
import { decodeImage, readImageSize } from './image.js';
import { SkipLog } from './skip-log.js';
import type { Dataset, Sample } from './types.js';

/** File extensions treated as images. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'] as const;

/** Options of {@link readYolo}. */
export interface YoloReadOptions extends ClassMapOptions {
  /** Source class names by YOLO class id (the `names` list of a data.yaml). */
  names: string[];
  /** Sub-folder under `images/` and `labels/` (e.g. `'train'`); default none. */
  split?: string;
  /** How many image headers are read at once (default 16). */
  concurrency?: number;
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Reads a YOLO-format folder into a {@link Dataset}. Image sizes come from the image headers
 * (sharp metadata, no decode). Lines of classes that do not map onto `classes` are counted in
 * `skipped` (or rejected in `strict` mode).
 * @param root - folder holding `images/` and `labels/`.
 * @throws {DataFormatError} `ERR_FILE_NOT_FOUND` when `images/` is missing;
 *   `ERR_DATA_FORMAT` naming `file:line` for a malformed line or an out-of-range class id.
 */
export async function readYolo(root: string, opts: YoloReadOptions): Promise<Dataset> {
  const mapper = createClassMapper(opts);
  if (!Array.isArray(opts.names) || opts.names.length === 0)
    throw new RangeError(
      `'names' must be a non-empty array of class names, got ${JSON.stringify(opts.names)}`,
    );
  const toTarget = opts.names.map((n) => mapper.idOf(n));
  const imagesDir = join(root, 'images', opts.split ?? '');
  const labelsDir = join(root, 'labels', opts.split ?? '');
  let files: string[];
  try {
    files = (await readdir(imagesDir))
      .filter((f) => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(f).toLowerCase()))
      .sort();
  } catch (e) {
    throw new DataFormatError('ERR_FILE_NOT_FOUND', `YOLO images folder not found: '${imagesDir}'`, {
      cause: e,
    });
  }
  const skips = new SkipLog();

  const samples = await mapLimit(files, opts.concurrency ?? 16, async (file): Promise<Sample> => {
    const imagePath = join(imagesDir, file);
    const labelPath = join(labelsDir, file.slice(0, file.length - extname(file).length) + '.txt');
    const { width, height } = await readImageSize(imagePath);
    let text = '';
    try {
      text = await readFile(labelPath, 'utf8');
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'ENOENT')
        throw new DataFormatError('ERR_DATA_FORMAT', `cannot read label file '${labelPath}'`, { cause: e });
    }
    const labelName = relative(root, labelPath);
    const annotations: Annotation[] = [];
    text.split(/\r?\n/).forEach((line, li) => {
      const fields = line.trim().split(/\s+/).filter(Boolean);
      if (fields.length === 0) return;
      const where = `${labelName}:${li + 1}`;
      const v = fields.map(Number);
      if (fields.length !== 5 || !v.every(Number.isFinite)) {
        throw new DataFormatError(
          'ERR_DATA_FORMAT',
          `${where}: expected 'class cx cy w h' (5 numbers), got '${line.trim()}'`,
        );
      }
      const [cls, cx, cy, w, h] = v;
      if (!Number.isInteger(cls) || cls < 0 || cls >= opts.names.length) {
        throw new DataFormatError(
          'ERR_DATA_FORMAT',
          `${where}: class id must be an integer in [0, ${opts.names.length - 1}] (names has ${opts.names.length} entries), got ${fields[0]}`,
        );
      }
      const classId = toTarget[cls];
      if (classId < 0) {
        if (opts.strict)
          throw new DataFormatError(
            'ERR_DATA_FORMAT',
            `${where}: class '${opts.names[cls]}' is not one of ${opts.classes.join(', ')}`,
          );
        skips.add(where, `unknown class '${opts.names[cls]}'`);
        return;
      }
      const box = clipBox(
        [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height],
        width,
        height,
      );
      if (typeof box === 'string') {
        skips.add(where, box);
        return;
      }
      annotations.push({ box, classId });
    });
    return { id: relative(root, imagePath), width, height, annotations, load: () => decodeImage(imagePath) };
  });
  return {
    name: opts.split ? `${basename(root)}/${opts.split}` : basename(root),
    classes: [...opts.classes],
    samples,
    skipped: skips.records(),
  };
}
