/**
 * COCO detection JSON reader (`images`, `annotations`, `categories`; `bbox` is `[x, y, w, h]`
 * in pixels). Also reads CityPersons-style files whose annotations carry `ignore: 1`.
 */
import { readFile, readdir } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { z } from 'zod';
import type { Annotation } from '../../models/core/detection.js';
import { DataFormatError } from '../../models/core/errors.js';
import { createClassMapper, type ClassMapOptions } from './class-map.js';
import { clipBox } from './clip-box.js';
import { decodeImage } from './image.js';
import { SkipLog } from './skip-log.js';
import type { Dataset, Sample } from './types.js';

const finite = z.number().finite();
const flag = z.union([z.boolean(), z.number()]).optional();

// z.object (not strict): COCO files carry many extra keys (license, coco_url, segmentation, ...).
const CocoSchema = z.object({
  images: z.array(
    z.object({
      id: z.number().int(),
      file_name: z.string().min(1),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
    }),
  ),
  annotations: z
    .array(
      z.object({
        image_id: z.number().int(),
        category_id: z.number().int(),
        bbox: z.tuple([finite, finite, finite, finite]),
        iscrowd: flag,
        ignore: flag,
      }),
    )
    .default([]),
  categories: z.array(z.object({ id: z.number().int(), name: z.string().min(1) })).min(1),
});

/** Options of {@link readCoco}. */
export interface CocoReadOptions extends ClassMapOptions {
  /** Folder that `file_name` is relative to; default: `images/` beside the JSON file. */
  imagesDir?: string;
  /** What to do when an image file listed in `images` does not exist (default `'error'`). */
  missingImages?: 'error' | 'skip';
  /** Keep images that end up with no annotations, as negatives (default true). */
  keepEmpty?: boolean;
}

/** Renders a zod issue path as `annotations[12].bbox`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s || '(root)';
}

async function listDir(dir: string): Promise<Set<string>> {
  try {
    return new Set(await readdir(dir));
  } catch {
    return new Set();
  }
}

/**
 * Reads a COCO detection file into a {@link Dataset}. Boxes become xyxy, clipped to the image;
 * boxes with no area (before or after clipping) and labels of classes outside `classes` are
 * skipped and counted in `skipped`; `iscrowd` / `ignore` boxes become `ignore: true`.
 * Image files are checked for existence here (one directory listing per folder), and decoded
 * only by `Sample.load()`.
 * @param annotationFile - path of the JSON file.
 * @throws {DataFormatError} `ERR_FILE_NOT_FOUND` naming the JSON or a missing image path;
 *   `ERR_DATA_FORMAT` naming the file and the field, e.g. `instances.json: annotations[12].bbox: ...`.
 *
 * @example
 * ```ts
 * const ds = await readCoco('data/annotations.json', { classes: ['person'] });
 * ds.samples[0].annotations; // [{ box: [10, 20, 40, 100], classId: 0 }]
 * ```
 */
export async function readCoco(annotationFile: string, opts: CocoReadOptions): Promise<Dataset> {
  const mapper = createClassMapper(opts);
  const fileLabel = basename(annotationFile);
  let text: string;
  try {
    text = await readFile(annotationFile, 'utf8');
  } catch (e) {
    throw new DataFormatError('ERR_FILE_NOT_FOUND', `cannot read COCO file '${annotationFile}'`, {
      cause: e,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DataFormatError(
      'ERR_DATA_FORMAT',
      `${annotationFile}: not valid JSON (${e instanceof Error ? e.message : String(e)})`,
      { cause: e },
    );
  }
  const parsed = CocoSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${formatPath(i.path)}: ${i.message}`);
    throw new DataFormatError('ERR_DATA_FORMAT', `${annotationFile}: ${issues.join('; ')}`);
  }
  const coco = parsed.data;
  const skips = new SkipLog();
  const fail = (msg: string): never => {
    throw new DataFormatError('ERR_DATA_FORMAT', `${annotationFile}: ${msg}`);
  };

  const catClass = new Map<number, { name: string; classId: number }>();
  coco.categories.forEach((c, i) => {
    if (catClass.has(c.id)) fail(`categories[${i}].id: duplicate category id ${c.id}`);
    catClass.set(c.id, { name: c.name, classId: mapper.idOf(c.name) });
  });

  const imagesDir = opts.imagesDir ?? join(dirname(annotationFile), 'images');
  const listings = new Map<string, Promise<Set<string>>>();
  const byId = new Map<number, { index: number; annotations: Annotation[]; missing: boolean }>();
  const existence = coco.images.map(async (img, i) => {
    if (byId.has(img.id)) fail(`images[${i}].id: duplicate image id ${img.id}`);
    const entry = { index: i, annotations: [] as Annotation[], missing: false };
    byId.set(img.id, entry);
    const rel = img.file_name.split(/[\\/]/).join(posix.sep);
    const dir = posix.dirname(rel);
    let listing = listings.get(dir);
    if (!listing) {
      listing = listDir(join(imagesDir, dir));
      listings.set(dir, listing);
    }
    if (!(await listing).has(posix.basename(rel))) {
      const path = join(imagesDir, rel);
      if (opts.missingImages === 'skip') {
        entry.missing = true;
        skips.add(`${fileLabel}: images[${i}]`, `image file not found under '${imagesDir}'`);
      } else {
        throw new DataFormatError(
          'ERR_FILE_NOT_FOUND',
          `${annotationFile}: images[${i}].file_name: image file not found: '${path}'`,
        );
      }
    }
  });
  // Register every id synchronously before awaiting, so duplicate checks see them all.
  await Promise.all(existence);

  coco.annotations.forEach((a, i) => {
    const where = `${fileLabel}: annotations[${i}]`;
    const img = byId.get(a.image_id);
    if (!img) {
      if (opts.strict) fail(`annotations[${i}].image_id: no image with id ${a.image_id}`);
      skips.add(where, 'image_id not in images');
      return;
    }
    if (img.missing) return;
    const cat = catClass.get(a.category_id);
    if (!cat) {
      if (opts.strict) fail(`annotations[${i}].category_id: no category with id ${a.category_id}`);
      skips.add(where, `category_id ${a.category_id} not in categories`);
      return;
    }
    if (cat.classId < 0) {
      if (opts.strict)
        fail(`annotations[${i}].category_id: class '${cat.name}' is not one of ${opts.classes.join(', ')}`);
      skips.add(where, `unknown class '${cat.name}'`);
      return;
    }
    const meta = coco.images[img.index];
    const [x, y, w, h] = a.bbox;
    const box = clipBox([x, y, x + w, y + h], meta.width, meta.height);
    if (typeof box === 'string') {
      skips.add(where, box);
      return;
    }
    const ann: Annotation = { box, classId: cat.classId };
    if (Boolean(a.iscrowd) || Boolean(a.ignore)) ann.ignore = true;
    img.annotations.push(ann);
  });

  const samples: Sample[] = [];
  for (const img of coco.images) {
    const entry = byId.get(img.id);
    if (!entry || entry.missing) continue;
    if (opts.keepEmpty === false && entry.annotations.length === 0) continue;
    const path = join(imagesDir, img.file_name);
    samples.push({
      id: img.file_name,
      width: img.width,
      height: img.height,
      annotations: entry.annotations,
      load: async () => {
        const im = await decodeImage(path);
        if (im.width !== img.width || im.height !== img.height) {
          throw new DataFormatError(
            'ERR_DATA_FORMAT',
            `image '${path}' is ${im.width}x${im.height} but ${fileLabel} says ${img.width}x${img.height}`,
          );
        }
        return im;
      },
    });
  }
  return {
    name: basename(annotationFile).replace(/\.json$/i, ''),
    classes: [...opts.classes],
    samples,
    skipped: skips.records(),
  };
}
