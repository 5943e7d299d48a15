/**
 * Building blocks shared by the teacher adapters: tensors to plain {@link FeatureMap}s, NCHW to
 * NHWC, input checks, and the class mapping of a foreign teacher's score map onto the student's
 * classes (docs/distillation-methods.md §2.5: for a sigmoid teacher, p_k = max over m(k) of p_m).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../models/core/errors.js';
import type { ModelSpec } from '../../models/core/spec.js';
import { normalizationCoefficients } from '../data/normalize.js';
import type { FeatureMap } from './types.js';

/** The input conventions a teacher network expects (a model spec's `input`, or an ONNX teacher's). */
export type NetworkInput = Pick<ModelSpec['input'], 'channelOrder' | 'normalization'> & {
  height: number;
  width: number;
};

/**
 * RGB 0..255 NHWC pixels -> a teacher network's input: bilinear resize (half-pixel centres, so
 * cell centres keep their image positions) when the size differs, then channel order and
 * normalisation (mean/std in the network's channel order, 0..255 scale). Call inside `tf.tidy`.
 * @param imagesNhwc - [n, h, w, 3] RGB 0..255
 * @returns [n, input.height, input.width, 3]
 */
export function prepareInput(imagesNhwc: tf.Tensor4D, input: NetworkInput): tf.Tensor4D {
  let x = imagesNhwc;
  if (x.shape[1] !== input.height || x.shape[2] !== input.width)
    x = tf.image.resizeBilinear(x, [input.height, input.width], false, true);
  const { src, scale, shift } = normalizationCoefficients(input);
  if (src[0] !== 0) x = tf.reverse(x, 3);
  if (scale.some((v) => v !== 1) || shift.some((v) => v !== 0))
    x = tf.add(tf.mul(x, tf.tensor1d(scale)), tf.tensor1d(shift));
  return x;
}

/** sha256 of a file's bytes, hex. @throws {ConfigError} `ERR_FILE_NOT_FOUND` naming the path */
export function fileSha256(path: string, what = 'file'): string {
  return createHash('sha256').update(readFileOrThrow(path, what)).digest('hex');
}

/** Reads a file. @throws {ConfigError} `ERR_FILE_NOT_FOUND` naming the path */
export function readFileOrThrow(path: string, what = 'file', hint = ''): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfigError('ERR_FILE_NOT_FOUND', `cannot read ${what} '${path}'${hint ? `: ${hint}` : ''}`, {
      cause: e,
    });
  }
}

/**
 * Copies a 4-D tensor out as a FeatureMap (a copy: the backend may share or reuse its buffer).
 * @param t - NHWC [n, h, w, c]; not disposed here
 */
export async function toFeatureMap(t: tf.Tensor): Promise<FeatureMap> {
  if (t.rank !== 4) throw new RangeError(`'t' must be a 4-D NHWC tensor, got shape [${t.shape.join(', ')}]`);
  const data = new Float32Array((await t.data()) as Float32Array);
  return { shape: t.shape.slice() as FeatureMap['shape'], data };
}

/**
 * Reorders an NCHW map into NHWC.
 * @param nchw - [n, c, h, w] values
 * @returns a new [n, h, w, c] FeatureMap
 */
export function nchwToNhwc(nchw: Float32Array, n: number, c: number, h: number, w: number): FeatureMap {
  if (nchw.length !== n * c * h * w)
    throw new RangeError(`'nchw' must hold ${n * c * h * w} values, got ${nchw.length}`);
  const out = new Float32Array(nchw.length);
  const hw = h * w;
  for (let b = 0; b < n; b++) {
    const base = b * c * hw;
    for (let k = 0; k < c; k++) {
      const src = base + k * hw;
      for (let p = 0; p < hw; p++) out[base + p * c + k] = nchw[src + p];
    }
  }
  return { shape: [n, h, w, c], data: out };
}

/** Concatenates same-shaped single-image maps along the batch axis. */
export function concatBatch(maps: FeatureMap[]): FeatureMap {
  if (maps.length === 0) throw new RangeError("'maps' must hold at least one map");
  const [, h, w, c] = maps[0].shape;
  const n = maps.reduce((a, m) => a + m.shape[0], 0);
  const out = new Float32Array(n * h * w * c);
  let off = 0;
  for (const m of maps) {
    if (m.shape[1] !== h || m.shape[2] !== w || m.shape[3] !== c)
      throw new RangeError(
        `'maps' must share [h, w, c] = [${h}, ${w}, ${c}], got [${m.shape.slice(1).join(', ')}]`,
      );
    out.set(m.data, off);
    off += m.data.length;
  }
  return { shape: [n, h, w, c], data: out };
}

/**
 * Checks the arguments of `Teacher.run` / `detect`.
 * @throws {RangeError} naming the bad argument
 */
export function checkImages(images: Float32Array, batch: number, height: number, width: number): void {
  for (const [k, v] of Object.entries({ batch, height, width }))
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`'${k}' must be an integer >= 1, got ${v}`);
  const n = batch * height * width * 3;
  if (!(images instanceof Float32Array) || images.length !== n)
    throw new RangeError(
      `'images' must be a Float32Array of batch * height * width * 3 = ${n} values, got ${images?.length}`,
    );
}

/** A validated class mapping: for each covered student class, its teacher class indices. */
export interface ResolvedClassMap {
  /** Covered student class names, in the student's order. */
  classes: string[];
  /** Student class index (into the full student class list) per covered class. */
  studentIds: number[];
  /** Teacher class indices per covered class (same order as `classes`). */
  teacherIds: number[][];
}

/**
 * Validates a `{ studentClass: [teacherIndex, ...] }` map against the student's classes and the
 * teacher's class count. Student classes absent from the map are simply not covered (the head
 * map lists the covered ones in `headClasses`); a key that is not a student class is an error,
 * so a typo never silently drops head KD.
 * @param source - config path for messages, e.g. `teacher 'centernet' classes`
 * @throws {ConfigError} `ERR_CONFIG_INVALID` for an unknown key, `ERR_CONFIG_RANGE` for an index
 *   outside the teacher's classes
 */
export function resolveClassMap(
  map: Record<string, number[]>,
  studentClasses: readonly string[],
  teacherClassCount: number,
  source: string,
): ResolvedClassMap {
  for (const [name, ids] of Object.entries(map)) {
    if (!studentClasses.includes(name))
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `${source}: '${name}' is not a student class; the student's classes are: ${studentClasses.join(', ')}`,
      );
    for (const i of ids)
      if (!Number.isInteger(i) || i < 0 || i >= teacherClassCount)
        throw new ConfigError(
          'ERR_CONFIG_RANGE',
          `${source}: teacher class index for '${name}' must be in [0, ${teacherClassCount - 1}], got ${i}`,
        );
  }
  const out: ResolvedClassMap = { classes: [], studentIds: [], teacherIds: [] };
  studentClasses.forEach((name, k) => {
    const ids = map[name];
    if (!ids) return;
    out.classes.push(name);
    out.studentIds.push(k);
    out.teacherIds.push([...ids]);
  });
  return out;
}

/**
 * Maps teacher class probabilities onto the covered student classes: for each cell and covered
 * class k, `max` over the teacher classes of k.
 * @param probNhwc - [n, h, w, K_T] teacher probabilities
 * @returns [n, h, w, K] with K = `cm.classes.length`
 */
export function applyClassMap(probNhwc: FeatureMap, cm: ResolvedClassMap): FeatureMap {
  const [n, h, w, kt] = probNhwc.shape;
  const k = cm.classes.length;
  const cells = n * h * w;
  const out = new Float32Array(cells * k);
  const src = probNhwc.data;
  for (let p = 0; p < cells; p++) {
    const base = p * kt;
    for (let j = 0; j < k; j++) {
      let m = -Infinity;
      for (const t of cm.teacherIds[j]) m = Math.max(m, src[base + t]);
      out[p * k + j] = m;
    }
  }
  return { shape: [n, h, w, k], data: out };
}
