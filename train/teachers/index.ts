/**
 * Teacher adapters (DESIGN.md "Teachers"): one {@link Teacher} interface over an edgekd
 * checkpoint, the COCO CenterNet-MobileNetV3 of `@vladmandic/human`, and any ONNX model.
 */
import { ConfigError } from '../../models/core/errors.js';
import type { TeacherConfig } from '../distill/config.js';
import { createCenterNetTeacher } from './centernet.js';
import { createEdgekdTeacher } from './edgekd.js';
import { createOnnxTeacher } from './onnx.js';
import type { Teacher } from './types.js';

export type { FeatureMap, Teacher, TeacherDetectOptions, TeacherOutput } from './types.js';
export { createEdgekdTeacher, EdgekdTeacher, type EdgekdTeacherConfig } from './edgekd.js';
export {
  CENTERNET_NODES,
  CenterNetTeacher,
  createCenterNetTeacher,
  humanModelsDir,
  type CenterNetNodes,
  type CenterNetTeacherConfig,
} from './centernet.js';
export { createOnnxTeacher, OnnxTeacher, type OnnxTeacherConfig } from './onnx.js';

/**
 * Creates the teacher a config block describes. Every file is read and checked here (missing
 * files, node names, class names, input sizes), so a bad teacher fails before training starts.
 * @param cfg - a parsed teacher config (`TeacherConfigSchema`)
 * @param opts - `classes`: the student's class names, which the teacher's classes are mapped to
 * @throws {ConfigError} `ERR_FILE_NOT_FOUND` naming a missing file; `ERR_CONFIG_INVALID` /
 *   `ERR_CONFIG_RANGE` for names or sizes that do not fit the model
 * @throws {ModelFormatError} when a model file is malformed
 * @throws {RangeError} when `opts.classes` is empty
 *
 * @example
 * ```ts
 * const t = await createTeacher(TeacherConfigSchema.parse({ kind: 'centernet' }), { classes: ['person'] });
 * const out = await t.run(letterboxed, 1, 512, 512);
 * // [...out.neck.keys()] = [4, 8, 16]; out.headProb.map.shape = [1, 128, 128, 1]
 * t.dispose();
 * ```
 */
export async function createTeacher(cfg: TeacherConfig, opts: { classes: string[] }): Promise<Teacher> {
  if (!Array.isArray(opts.classes) || opts.classes.length === 0)
    throw new RangeError(`'opts.classes' must list the student's class names, got ${String(opts.classes)}`);
  switch (cfg.kind) {
    case 'edgekd':
      return createEdgekdTeacher(cfg, opts);
    case 'centernet':
      return createCenterNetTeacher(cfg, opts);
    case 'onnx':
      return createOnnxTeacher(cfg, opts);
    default: {
      const kind: never = cfg;
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `teacher kind must be one of edgekd, centernet, onnx, got ${String((kind as { kind?: unknown }).kind)}`,
      );
    }
  }
}

/**
 * The strides a teacher provides feature maps at, ascending (its head map carries its own stride
 * in `TeacherOutput.headProb`).
 * @returns e.g. `{ neck: [4, 8, 16], backbone: [4, 8, 16, 32] }` for the CenterNet teacher
 */
export function teacherStrides(t: Teacher): { neck: number[]; backbone: number[] } {
  const sorted = (m: ReadonlyMap<number, number>): number[] => [...m.keys()].sort((a, b) => a - b);
  return { neck: sorted(t.neckChannels), backbone: sorted(t.backboneChannels) };
}
