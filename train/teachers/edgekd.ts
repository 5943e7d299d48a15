/**
 * Teacher adapter for an edgekd checkpoint (a bigger member of the student's own family): the
 * tfjs {@link Student} executor in inference mode with the deploy weights (EMA + BN statistics).
 * Neck = P2..P5, backbone = C2..C5 (strides 4..32 in the teacher's input), head = sigmoid of the
 * heatmap for the student's classes, matched by name.
 */
import * as tf from '@tensorflow/tfjs';
import type { TapName } from '../../models/arch/graph.js';
import { Student, type WeightMap } from '../../models/arch/student.js';
import { deployWeights, loadCheckpoint } from '../../models/core/checkpoint.js';
import { decodeCenterNet } from '../../models/core/decode.js';
import type { Detection } from '../../models/core/detection.js';
import { ConfigError } from '../../models/core/errors.js';
import { headStride, LEVEL_STRIDES, type Level, type ModelSpec } from '../../models/core/spec.js';
import type { TeacherConfig } from '../distill/config.js';
import { checkImages, fileSha256, prepareInput, toFeatureMap } from './maps.js';
import type { FeatureMap, Teacher, TeacherDetectOptions, TeacherOutput } from './types.js';

export type EdgekdTeacherConfig = Extract<TeacherConfig, { kind: 'edgekd' }>;

const LEVELS: Level[] = [2, 3, 4, 5];

/** An edgekd checkpoint run as a teacher. Create with {@link createEdgekdTeacher}. */
export class EdgekdTeacher implements Teacher {
  readonly name: string;
  readonly fingerprint: string;
  readonly neckChannels: ReadonlyMap<number, number>;
  readonly backboneChannels: ReadonlyMap<number, number>;
  readonly headClasses: readonly string[];
  /** The teacher's model spec (input size, classes, normalisation, decode settings). */
  readonly spec: ModelSpec;
  private readonly model: Student;
  /** Teacher heatmap channel per student class (student order). */
  private readonly classIdx: number[];

  /** @internal use {@link createEdgekdTeacher} */
  constructor(name: string, fingerprint: string, model: Student, studentClasses: readonly string[]) {
    this.name = name;
    this.fingerprint = fingerprint;
    this.model = model;
    this.spec = model.spec;
    const spec = model.spec;
    this.neckChannels = new Map(LEVELS.map((l) => [LEVEL_STRIDES[l], spec.neck.channels]));
    this.backboneChannels = new Map(
      LEVELS.map((l) => [LEVEL_STRIDES[l], spec.backbone.stages[l - 2].channels]),
    );
    this.classIdx = studentClasses.map((c) => spec.classes.indexOf(c));
    this.headClasses = [...studentClasses];
  }

  /** Validates the batch size against the teacher's input (same aspect ratio required). */
  private checkSize(height: number, width: number): void {
    const { height: H, width: W } = this.spec.input;
    if (height === H && width === W) return;
    if (Math.abs(height / width - H / W) > 1e-3 * (H / W))
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `teacher '${this.name}': images of ${width}x${height} do not have the aspect ratio of the teacher's input ${W}x${H}; letterbox them to that aspect first`,
      );
  }

  /** Runs the network; the caller disposes the returned tensors. */
  private forward(images: Float32Array, batch: number, height: number, width: number) {
    checkImages(images, batch, height, width);
    this.checkSize(height, width);
    return tf.tidy(() => {
      const x = prepareInput(tf.tensor4d(images, [batch, height, width, 3]), this.spec.input);
      const out = this.model.apply(x, { training: false });
      return { ...out.features, heatmap: out.heatmap, size: out.size, offset: out.offset };
    });
  }

  async run(images: Float32Array, batch: number, height: number, width: number): Promise<TeacherOutput> {
    const t = this.forward(images, batch, height, width);
    const prob = tf.tidy(() => tf.gather(tf.sigmoid(t.heatmap), this.classIdx, 3));
    try {
      const neck = new Map<number, FeatureMap>();
      const backbone = new Map<number, FeatureMap>();
      for (const l of LEVELS) {
        neck.set(LEVEL_STRIDES[l], await toFeatureMap(t[`P${l}` as TapName]));
        backbone.set(LEVEL_STRIDES[l], await toFeatureMap(t[`C${l}` as TapName]));
      }
      return { neck, backbone, headProb: { stride: headStride(this.spec), map: await toFeatureMap(prob) } };
    } finally {
      prob.dispose();
      tf.dispose(Object.values(t));
    }
  }

  async detect(
    images: Float32Array,
    batch: number,
    height: number,
    width: number,
    opts: TeacherDetectOptions,
  ): Promise<Detection[][]> {
    const t = this.forward(images, batch, height, width);
    const prob = tf.sigmoid(t.heatmap);
    let heat: Float32Array, size: Float32Array, offset: Float32Array;
    try {
      [heat, size, offset] = (await Promise.all([
        prob.data(),
        t.size.data(),
        t.offset.data(),
      ])) as Float32Array[];
    } finally {
      prob.dispose();
      tf.dispose(Object.values(t));
    }
    const { height: H, width: W } = this.spec.input;
    const stride = headStride(this.spec);
    const h = H / stride;
    const w = W / stride;
    const C = this.spec.classes.length;
    const sx = width / W;
    const sy = height / H;
    const toStudent = new Map(this.classIdx.map((teacherId, studentId) => [teacherId, studentId]));
    const max = opts.maxDetections ?? this.spec.decode.topK;
    const out: Detection[][] = [];
    for (let b = 0; b < batch; b++) {
      const cells = h * w;
      const dets = decodeCenterNet(
        {
          heatmap: heat.subarray(b * cells * C, (b + 1) * cells * C),
          size: size.subarray(b * cells * 2, (b + 1) * cells * 2),
          offset: offset.subarray(b * cells * 2, (b + 1) * cells * 2),
          h,
          w,
          numClasses: C,
        },
        {
          stride,
          topK: this.spec.decode.topK,
          scoreThreshold: opts.scoreThreshold,
          poolSize: this.spec.decode.poolSize,
        },
      );
      const mapped: Detection[] = [];
      for (const d of dets) {
        const k = toStudent.get(d.classId);
        if (k === undefined) continue; // a teacher class the student does not have
        mapped.push({
          box: [d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy],
          score: d.score,
          classId: k,
        });
      }
      out.push(mapped.slice(0, max));
    }
    return out;
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * Loads an edgekd checkpoint as a teacher.
 * @param cfg - the teacher's config block (`kind: 'edgekd'`)
 * @param opts - `classes`: the student's class names; each must be one of the teacher's
 * @throws {ConfigError} `ERR_FILE_NOT_FOUND` when the checkpoint is missing;
 *   `ERR_CONFIG_INVALID` naming a student class the teacher does not have
 * @throws {ModelFormatError} when the file is not a valid edgekd checkpoint
 *
 * @example
 * ```ts
 * const t = await createEdgekdTeacher(cfg, { classes: ['person'] });
 * const out = await t.run(pixels, 1, 320, 320); // out.neck: strides 4, 8, 16, 32
 * ```
 */
export async function createEdgekdTeacher(
  cfg: EdgekdTeacherConfig,
  opts: { classes: readonly string[] },
): Promise<EdgekdTeacher> {
  const hash = fileSha256(cfg.checkpoint, `teacher '${cfg.name}' checkpoint`);
  const ckpt = loadCheckpoint(cfg.checkpoint);
  const missing = opts.classes.filter((c) => !ckpt.spec.classes.includes(c));
  if (missing.length)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `teacher '${cfg.name}' ('${cfg.checkpoint}') has no class ${missing.map((c) => `'${c}'`).join(', ')}; its classes are: ${ckpt.spec.classes.join(', ')}`,
    );
  const weights: WeightMap = Object.fromEntries(deployWeights(ckpt));
  const model = new Student(ckpt.spec);
  try {
    model.setWeights(weights, `teacher checkpoint '${cfg.checkpoint}'`);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return new EdgekdTeacher(cfg.name, `edgekd:${hash.slice(0, 16)}`, model, opts.classes);
}
