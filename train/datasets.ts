/** Opens the dataset a config's data source names, mapped onto the model's classes. */
import { dirname, join } from 'node:path';
import type { ModelSpec } from '../models/core/spec.js';
import type { DataSource } from './config.js';
import { readCoco } from './data/coco.js';
import { readYolo } from './data/yolo.js';
import { readMot } from './data/mot.js';
import { syntheticDataset } from './data/synthetic.js';
import type { Dataset } from './data/types.js';

export interface ClassMapping {
  aliases: Record<string, string>;
  mapAllTo?: string;
}

/**
 * Opens one source, or several concatenated into one set (sample ids get a `<index>:` prefix so
 * they stay unique: teacher-cache keys and skip records use them).
 * @throws {DataFormatError} / {ConfigError} from the readers, naming the file and field
 */
export async function openTrainingSet(
  src: DataSource | DataSource[],
  spec: ModelSpec,
  mapping: ClassMapping,
): Promise<Dataset> {
  if (!Array.isArray(src)) return openDataset(src, spec, mapping);
  if (src.length === 1) return openDataset(src[0], spec, mapping);
  const parts = await Promise.all(src.map((s) => openDataset(s, spec, mapping)));
  return {
    name: parts.map((p) => p.name).join(' + '),
    classes: spec.classes,
    samples: parts.flatMap((p, i) =>
      p.samples.map((s) => ({
        id: `${i}:${s.id}`,
        width: s.width,
        height: s.height,
        annotations: s.annotations,
        load: () => s.load(),
      })),
    ),
    skipped: parts.flatMap((p, i) => p.skipped.map((r) => ({ ...r, what: `[${i}] ${r.what}` }))),
  };
}

/**
 * @throws {DataFormatError} / {ConfigError} from the readers, naming the file and field
 */
export async function openDataset(src: DataSource, spec: ModelSpec, mapping: ClassMapping): Promise<Dataset> {
  const classMap = { classes: spec.classes, aliases: mapping.aliases, mapAllTo: mapping.mapAllTo };
  switch (src.kind) {
    case 'synthetic':
      return syntheticDataset({
        count: src.count,
        seed: src.seed,
        width: src.width ?? spec.input.width,
        height: src.height ?? spec.input.height,
        classes: spec.classes,
      });
    case 'coco':
      return readCoco(src.annotations, {
        ...classMap,
        imagesDir: src.images ?? join(dirname(src.annotations), 'images'),
      });
    case 'yolo':
      return readYolo(src.root, { ...classMap, names: src.names, split: src.split });
    case 'mot':
      return readMot(src.gt, { ...classMap, frames: src.frames, video: src.video });
  }
}
