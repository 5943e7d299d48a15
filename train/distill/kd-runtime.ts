/**
 * Distillation inside a replica worker: loads the teachers, plans which student level meets
 * which teacher map (by stride, §2.2), owns the training-only variables (adapters, method
 * modules), turns teacher outputs into constants on the student's grids (through the disk cache
 * when configured) and builds each micro-batch's KdContext for the methods.
 */
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { graphCost } from '../../models/arch/graph.js';
import type { StudentOutput } from '../../models/arch/student.js';
import type { Annotation } from '../../models/core/detection.js';
import { ConfigError } from '../../models/core/errors.js';
import { headStride, LEVEL_STRIDES, type Level, type ModelSpec } from '../../models/core/spec.js';
import { TeacherCache, type CachedMap } from '../teachers/cache.js';
import { createTeacher } from '../teachers/index.js';
import type { FeatureMap, Teacher } from '../teachers/types.js';
import { adversarialParams, adversarialTerms, discriminatorLoss } from './adversarial.js';
import type { DistillConfig } from './config.js';
import { hkdTerms } from './hkd.js';
import { hmkdParams, hmkdTerms } from './hmkd.js';
import { hplTerms } from './hpl.js';
import { kdLayout } from './kd-params.js';
import { rmPfiTerms } from './rm-pfi.js';
import type { KdContext, KdDims, KdLevel, KdParamSpec, KdTeacherView, KdTerms } from './types.js';

const LEVELS: Level[] = [2, 3, 4, 5];

/** Where one student level finds its teacher map. */
interface LevelPlan {
  level: Level;
  stride: number;
  channels: number;
  /** Upsampled from the next coarser level (teacher lacks this stride). */
  synthetic: boolean;
}

interface TeacherPlan {
  teacher: Teacher;
  weight: number;
  cache?: TeacherCache;
  neck: LevelPlan[];
  backbone: LevelPlan[];
  head: boolean;
}

/** One teacher's outputs for a micro-batch, constants on the student's grids. */
export interface AlignedTeacher {
  neck: Map<Level, tf.Tensor4D>;
  backbone: Map<Level, tf.Tensor4D>;
  headProb?: tf.Tensor4D;
}

/**
 * A frozen [c, k] matrix with orthonormal columns (seeded Gaussian, Gram-Schmidt): projecting a
 * wide teacher onto it keeps its geometry (distances, correlations) up to the dropped subspace,
 * and nothing about it is trained, so it cannot collapse (§2.3).
 */
export function orthonormalProjection(c: number, k: number, seed: string): Float32Array {
  const rng = seedrandom(`edgekd-proj-${seed}-${c}x${k}`);
  const cols: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const v = new Float64Array(c);
    for (let i = 0; i < c; i++) {
      const u = Math.max(rng(), 1e-12);
      v[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
    }
    for (const q of cols) {
      let d = 0;
      for (let i = 0; i < c; i++) d += v[i] * q[i];
      for (let i = 0; i < c; i++) v[i] -= d * q[i];
    }
    let n = 0;
    for (let i = 0; i < c; i++) n += v[i] * v[i];
    n = Math.sqrt(n);
    for (let i = 0; i < c; i++) v[i] /= n;
    cols.push(v);
  }
  const out = new Float32Array(c * k);
  for (let i = 0; i < c; i++) for (let j = 0; j < k; j++) out[i * k + j] = cols[j][i];
  return out;
}

/**
 * Which teacher map each student level uses: same stride, or (P2 only) the stride-8 map
 * upsampled; channels after the optional projection.
 * @throws {ConfigError} when the teacher's neck covers none of the student's levels
 */
export function planLevels(
  strides: ReadonlyMap<number, number>,
  allowSynthetic: boolean,
  what: string,
  teacherName: string,
  project: number,
): LevelPlan[] {
  const out: LevelPlan[] = [];
  for (const level of LEVELS) {
    const stride = LEVEL_STRIDES[level];
    const raw = strides.get(stride);
    const c = raw !== undefined && project > 0 ? Math.min(raw, project) : raw;
    if (c !== undefined) out.push({ level, stride, channels: c, synthetic: false });
    else if (allowSynthetic && level === 2 && strides.has(8))
      out.push({
        level,
        stride,
        channels: project > 0 ? Math.min(strides.get(8)!, project) : strides.get(8)!,
        synthetic: true,
      });
  }
  if (what === 'neck' && out.length === 0)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `distill.teachers: teacher '${teacherName}' has neck strides [${[...strides.keys()].join(', ')}], none of the student's levels (strides 4, 8, 16, 32)`,
    );
  return out;
}

/** Student image (normalised per its spec) back to RGB 0..255, which every teacher takes. */
function denormalize(spec: ModelSpec, x: Float32Array): Float32Array {
  const n = spec.input.normalization;
  const out = new Float32Array(x.length);
  if (n.kind === 'unit') for (let i = 0; i < x.length; i++) out[i] = x[i] * 255;
  else if (n.kind === 'raw') out.set(x);
  else for (let i = 0; i < x.length; i++) out[i] = x[i] * n.std[i % 3] + n.mean[i % 3];
  return out;
}

function toTensor(m: FeatureMap): tf.Tensor4D {
  return tf.tensor4d(m.data, m.shape);
}

export class KdRuntime {
  readonly specs: KdParamSpec[];
  private readonly vars = new Map<string, tf.Variable>();
  private readonly headStride: number;
  private readonly studentNeck: Partial<Record<Level, number>> = {};

  private constructor(
    readonly cfg: DistillConfig,
    readonly spec: ModelSpec,
    private readonly plans: TeacherPlan[],
  ) {
    this.headStride = headStride(spec);
    const taps = graphCost(spec).tapShapes;
    for (const l of LEVELS) this.studentNeck[l] = taps[`P${l}`][2];
    const specs: KdParamSpec[] = [];
    const adapter = (k: number, tap: string, cs: number, ct: number) =>
      specs.push({
        name: `kd.adapter.t${k}.${tap}.weight`,
        shape: [1, 1, cs, ct],
        init: cs === ct ? { kind: 'identity' } : { kind: 'he-normal' },
        group: 'student',
      });
    plans.forEach((p, k) => {
      // Teachers beyond the first only feed the adversarial ensemble.
      if (k > 0 && !cfg.adversarial) return;
      for (const lp of p.neck) adapter(k, `P${lp.level}`, this.studentNeck[lp.level]!, lp.channels);
      if (k === 0 && cfg.hkd && cfg.hkd.backbone > 0)
        for (const lp of p.backbone) adapter(k, `C${lp.level}`, taps[`C${lp.level}`][2], lp.channels);
    });
    const dims = this.dims();
    if (cfg.hmkd) specs.push(...hmkdParams(cfg.hmkd, dims));
    if (cfg.adversarial) specs.push(...adversarialParams(cfg.adversarial, dims));
    this.specs = specs;
    for (const s of specs) {
      this.vars.set(
        s.name,
        tf.variable(tf.zeros(s.shape), true, `kd/${s.name}/${Math.random().toString(36).slice(2)}`),
      );
    }
  }

  /**
   * Loads the teachers and plans the levels.
   * @throws {ConfigError} a teacher whose strides cover none of the student's levels, or a
   *   head-based method with no teacher head
   */
  static async create(cfg: DistillConfig, spec: ModelSpec): Promise<KdRuntime> {
    const plans: TeacherPlan[] = [];
    const total = cfg.teachers.reduce((a, t) => a + t.weight, 0);
    try {
      for (const tc of cfg.teachers) {
        const teacher = await createTeacher(tc, { classes: spec.classes });
        plans.push({
          teacher,
          weight: tc.weight / total,
          cache: cfg.cache
            ? new TeacherCache(
                cfg.cache.dir,
                `${teacher.fingerprint}-${spec.input.height}x${spec.input.width}${cfg.projectChannels > 0 ? `-p${cfg.projectChannels}` : ''}`,
              )
            : undefined,
          neck: planLevels(teacher.neckChannels, true, 'neck', tc.name, cfg.projectChannels),
          backbone: planLevels(teacher.backboneChannels, false, 'backbone', tc.name, cfg.projectChannels),
          head: teacher.headClasses.length > 0,
        });
      }
    } catch (e) {
      for (const p of plans) p.teacher.dispose();
      throw e;
    }
    const needsHead = cfg.rmPfi !== undefined;
    if (needsHead && !plans[0].head)
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `distill.rmPfi needs a teacher with a dense class-score head; '${cfg.teachers[0].name}' has none`,
      );
    return new KdRuntime(cfg, spec, plans);
  }

  dims(): KdDims {
    return {
      teacherNeckChannels: this.plans.map((p) =>
        Object.fromEntries(p.neck.map((lp) => [lp.level, lp.channels])),
      ),
      studentNeckChannels: this.studentNeck,
    };
  }

  /** Variables of one group in kdLayout order. */
  variables(group: KdParamSpec['group']): tf.Variable[] {
    return kdLayout(this.specs, group).slots.map((s) => this.vars.get(s.name)!);
  }

  /** Loads a group's flat values (layout from kdLayout(specs, group)). */
  loadFlat(group: KdParamSpec['group'], flat: Float32Array): void {
    for (const slot of kdLayout(this.specs, group).slots) {
      const v = this.vars.get(slot.name)!;
      tf.tidy(() => v.assign(tf.tensor(flat.subarray(slot.offset, slot.offset + slot.length), slot.shape)));
    }
  }

  /** Names of the cached maps this run's methods read (an entry may hold more). */
  private neededMaps(p: TeacherPlan): Set<string> {
    const names = new Set<string>();
    for (const lp of p.neck) if (!lp.synthetic) names.add(`neck/${lp.level}`);
    if (p === this.plans[0] && this.cfg.hkd && this.cfg.hkd.backbone > 0)
      for (const lp of p.backbone) names.add(`backbone/${lp.level}`);
    if (p.head) names.add('head');
    return names;
  }

  /** Cache hit/miss counters summed over teachers. */
  cacheStats(): { hits: number; misses: number } {
    let hits = 0;
    let misses = 0;
    for (const p of this.plans) {
      hits += p.cache?.hits ?? 0;
      misses += p.cache?.misses ?? 0;
    }
    return { hits, misses };
  }

  private grid(stride: number): [number, number] {
    return [Math.ceil(this.spec.input.height / stride), Math.ceil(this.spec.input.width / stride)];
  }

  /** Maps of one teacher for a micro-batch, per image, on the student grids (real levels only). */
  private async runTeacher(p: TeacherPlan, images: Float32Array, batch: number): Promise<CachedMap[][]> {
    const { height, width } = this.spec.input;
    const out = await p.teacher.run(denormalize(this.spec, images), batch, height, width);
    const perImage: CachedMap[][] = Array.from({ length: batch }, () => []);
    const k = this.cfg.projectChannels;
    const add = (name: string, m: FeatureMap, grid: [number, number], feature = true) => {
      const aligned = tf.tidy(() => {
        const t = toTensor(m);
        const a =
          t.shape[1] === grid[0] && t.shape[2] === grid[1]
            ? t
            : tf.image.resizeBilinear(t, grid, false, true);
        const c = a.shape[3];
        if (!feature || k <= 0 || c <= k) return a;
        const proj = tf.tensor2d(orthonormalProjection(c, k, name), [c, k]);
        return a.reshape([-1, c]).matMul(proj).reshape([a.shape[0], grid[0], grid[1], k]) as tf.Tensor4D;
      });
      const data = aligned.dataSync() as Float32Array;
      const c = aligned.shape[3];
      const per = grid[0] * grid[1] * c;
      for (let i = 0; i < batch; i++)
        perImage[i].push({ name, shape: [grid[0], grid[1], c], data: data.slice(i * per, (i + 1) * per) });
      aligned.dispose();
    };
    for (const lp of p.neck)
      if (!lp.synthetic) add(`neck/${lp.level}`, out.neck.get(lp.stride)!, this.grid(lp.stride));
    for (const lp of p.backbone)
      add(`backbone/${lp.level}`, out.backbone.get(lp.stride)!, this.grid(lp.stride));
    if (p.head && out.headProb) add('head', out.headProb.map, this.grid(this.headStride), false);
    return perImage;
  }

  /**
   * Teacher outputs for a micro-batch as constants on the student grids, one entry per teacher.
   * @param cacheKeys - per image, its cache key (image + augmentation variant); used when caching
   */
  async teacherOutputs(images: Float32Array, batch: number, cacheKeys?: string[]): Promise<AlignedTeacher[]> {
    const result: AlignedTeacher[] = [];
    for (const p of this.plans) {
      let perImage: CachedMap[][] | undefined;
      if (p.cache && cacheKeys) {
        const hits = cacheKeys.map((k) => p.cache!.get(k, this.neededMaps(p)));
        if (hits.every((h) => h !== undefined)) perImage = hits as CachedMap[][];
      }
      if (!perImage) {
        perImage = await this.runTeacher(p, images, batch);
        if (p.cache && cacheKeys) perImage.forEach((maps, i) => p.cache!.put(cacheKeys[i], maps));
      }
      const stack = (name: string): tf.Tensor4D => {
        const maps = perImage.map((m) => m.find((x) => x.name === name)!);
        const [h, w, c] = maps[0].shape;
        const data = new Float32Array(batch * h * w * c);
        maps.forEach((m, i) => data.set(m.data, i * h * w * c));
        return tf.tensor4d(data, [batch, h, w, c]);
      };
      const neck = new Map<Level, tf.Tensor4D>();
      for (const lp of p.neck) if (!lp.synthetic) neck.set(lp.level, stack(`neck/${lp.level}`));
      for (const lp of p.neck)
        if (lp.synthetic)
          neck.set(
            lp.level,
            tf.image.resizeBilinear(neck.get((lp.level + 1) as Level)!, this.grid(lp.stride), false, true),
          );
      const backbone = new Map<Level, tf.Tensor4D>();
      const needed = this.neededMaps(p);
      for (const lp of p.backbone)
        if (needed.has(`backbone/${lp.level}`)) backbone.set(lp.level, stack(`backbone/${lp.level}`));
      const headProb = p.head && perImage[0].some((m) => m.name === 'head') ? stack('head') : undefined;
      result.push({ neck, backbone, headProb });
    }
    return result;
  }

  /** Builds the methods' context inside the gradient tape (adapters applied here). */
  context(
    out: StudentOutput,
    aligned: AlignedTeacher[],
    annotations: Annotation[][],
    step: number,
  ): KdContext {
    const adapt = (k: number, tap: string, s: tf.Tensor4D): tf.Tensor4D => {
      const w = this.vars.get(`kd.adapter.t${k}.${tap}.weight`);
      return w ? tf.conv2d(s, w as tf.Tensor4D, 1, 'valid') : s;
    };
    const teachers: KdTeacherView[] = aligned.map((a, k) => {
      const p = this.plans[k];
      const hasAdapters = k === 0 || this.cfg.adversarial !== undefined;
      const neck: KdLevel[] = !hasAdapters
        ? []
        : p.neck.map((lp) => {
            const s = out.features[`P${lp.level}`];
            return {
              level: lp.level,
              stride: lp.stride,
              student: s,
              adapted: adapt(k, `P${lp.level}`, s),
              teacher: a.neck.get(lp.level)!,
              synthetic: lp.synthetic,
            };
          });
      const backbone: KdLevel[] =
        k === 0 && this.cfg.hkd && this.cfg.hkd.backbone > 0
          ? p.backbone.map((lp) => {
              const s = out.features[`C${lp.level}`];
              return {
                level: lp.level,
                stride: lp.stride,
                student: s,
                adapted: adapt(k, `C${lp.level}`, s),
                teacher: a.backbone.get(lp.level)!,
                synthetic: false,
              };
            })
          : [];
      return { name: this.cfg.teachers[k].name, weight: p.weight, neck, backbone, headProb: a.headProb };
    });
    return {
      headLogits: out.heatmap,
      headStride: this.headStride,
      inputHeight: this.spec.input.height,
      inputWidth: this.spec.input.width,
      gts: annotations.map((anns) =>
        anns.map((a) => ({ box: a.box, classId: a.classId, ignore: a.ignore === true })),
      ),
      teachers,
      step,
      param: (name) => {
        const v = this.vars.get(name);
        if (!v) throw new Error(`KD parameter '${name}' was not declared`);
        return v;
      },
    };
  }

  /** Every enabled method's weighted terms. */
  terms(ctx: KdContext): KdTerms {
    const c = this.cfg;
    return {
      ...(c.hpl ? hplTerms(ctx, c.hpl) : {}),
      ...(c.hkd ? hkdTerms(ctx, c.hkd) : {}),
      ...(c.rmPfi ? rmPfiTerms(ctx, c.rmPfi) : {}),
      ...(c.adversarial ? adversarialTerms(ctx, c.adversarial) : {}),
      ...(c.hmkd ? hmkdTerms(ctx, c.hmkd) : {}),
    };
  }

  /** Discriminator loss on constant student features (adversarial only). */
  discriminatorLoss(ctx: KdContext): tf.Scalar | undefined {
    return this.cfg.adversarial ? discriminatorLoss(ctx, this.cfg.adversarial) : undefined;
  }

  dispose(): void {
    for (const p of this.plans) p.teacher.dispose();
    for (const v of this.vars.values()) v.dispose();
  }
}
