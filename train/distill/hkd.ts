/**
 * HKD, hierarchical KD for a lightweight pedestrian detector (Chen et al., ICIP 2019), adapted
 * to a single-stage anchor-free student as in docs/distillation-methods.md §6: MSE at the
 * backbone and neck stages, on RoIAlign-pooled GT regions, and on the dense head logits of
 * active cells. Uses the primary teacher only.
 *
 * There is no box term: a COCO teacher predicts visible-extent boxes while pedestrian labels are
 * full-body boxes (§2.5), so its box regression is not a valid target.
 */
import * as tf from '@tensorflow/tfjs';
import type { Level } from '../../models/core/spec.js';
import type { HkdConfig } from './config.js';
import type { KdBox, KdContext, KdLevel, KdTerms } from './types.js';
import { featureNorm, roiAlign, safeLogit, sg, type Roi } from './common.js';

/** Feature-KD weight of a synthetic level (§2.2). */
const SYNTHETIC_WEIGHT = 0.5;
/** Cells where neither network's probability exceeds this are left out of the logit term. */
const ACTIVE_PROB = 0.05;
/** Logits are clipped to ±this before the logit MSE. */
const LOGIT_CLIP = 8;

/**
 * Deterministic RoI jitter pattern (no RNG, so runs stay bit-reproducible): centre shifts in
 * units of the box size (±10 %) and a scale factor (0.9 or 1.1). Copy k uses entry k mod 8.
 */
const JITTER: readonly (readonly [number, number, number])[] = [
  [0.1, 0.1, 1.1],
  [-0.1, -0.1, 0.9],
  [0.1, -0.1, 0.9],
  [-0.1, 0.1, 1.1],
  [0.1, 0.1, 0.9],
  [-0.1, -0.1, 1.1],
  [0.1, -0.1, 1.1],
  [-0.1, 0.1, 0.9],
];

/** A level with both sides already normalised (so feature and region terms share the work). */
interface NormLevel {
  level: KdLevel;
  /** featureNorm(Ŝ) [N, H, W, C_t]. */
  s: tf.Tensor4D;
  /** featureNorm(sg(T)) [N, H, W, C_t]. */
  t: tf.Tensor4D;
}

function normalise(levels: readonly KdLevel[], norm: 'pkd' | 'none'): NormLevel[] {
  return levels.map((level) => ({
    level,
    s: featureNorm(level.adapted, norm),
    t: featureNorm(sg(level.teacher), norm),
  }));
}

function mseOf(x: NormLevel, norm: 'pkd' | 'none'): tf.Scalar {
  const scale = (x.level.synthetic ? SYNTHETIC_WEIGHT : 1) * (norm === 'pkd' ? 0.5 : 1);
  return tf.mean(tf.squaredDifference(x.s, x.t)).mul(scale) as tf.Scalar;
}

/**
 * Mean squared error of one level after the configured normalisation, times ω_l (0.5 on a
 * synthetic level) and c (½ under pkd, so the term ≈ 1 − Pearson correlation, §6b).
 * @returns scalar `ω · c · mean_{n,h,w,c}(Ŝ − T)²`
 */
export function featureMse(level: KdLevel, norm: 'pkd' | 'none'): tf.Scalar {
  return tf.tidy(() => mseOf(normalise([level], norm)[0], norm));
}

/**
 * FPN RoI level rule `l = clip(⌊4 + log2(√(w·h)/224)⌋, min, max)`, then the nearest level in
 * `levels` (ties go to the finer one).
 * @param w - RoI width, input pixels
 * @param h - RoI height, input pixels
 * @param levels - available levels (non-empty)
 */
export function roiLevel(w: number, h: number, levels: readonly Level[] = [2, 3, 4, 5]): Level {
  if (levels.length === 0) throw new RangeError(`'levels' must not be empty`);
  const lo = Math.min(...levels);
  const hi = Math.max(...levels);
  const raw = Math.floor(4 + Math.log2(Math.sqrt(Math.max(w * h, 1e-12)) / 224));
  const l = Math.min(Math.max(raw, lo), hi);
  let best = levels[0];
  for (const c of levels)
    if (Math.abs(c - l) < Math.abs(best - l) || (Math.abs(c - l) === Math.abs(best - l) && c < best))
      best = c;
  return best;
}

/**
 * RoIs of a batch: each non-ignored GT plus `jitter` deterministic jittered copies, clipped to
 * the image; boxes with no area after clipping are dropped.
 * @param gts - boxes per image, input pixels
 * @param jitter - jittered copies per GT
 * @param inputWidth - image width, pixels
 * @param inputHeight - image height, pixels
 */
export function regionRois(
  gts: readonly KdBox[][],
  jitter: number,
  inputWidth: number,
  inputHeight: number,
): Roi[] {
  const rois: Roi[] = [];
  const push = (batch: number, cx: number, cy: number, w: number, h: number) => {
    const x1 = Math.max(0, cx - w / 2);
    const y1 = Math.max(0, cy - h / 2);
    const x2 = Math.min(inputWidth, cx + w / 2);
    const y2 = Math.min(inputHeight, cy + h / 2);
    if (x2 > x1 && y2 > y1) rois.push({ batch, box: [x1, y1, x2, y2] });
  };
  gts.forEach((boxes, batch) => {
    for (const g of boxes) {
      if (g.ignore) continue;
      const [x1, y1, x2, y2] = g.box;
      const w = x2 - x1;
      const h = y2 - y1;
      if (!(w > 0 && h > 0)) continue;
      const cx = (x1 + x2) / 2;
      const cy = (y1 + y2) / 2;
      push(batch, cx, cy, w, h);
      for (let k = 0; k < jitter; k++) {
        const [dx, dy, s] = JITTER[k % JITTER.length];
        push(batch, cx + dx * w, cy + dy * h, w * s, h * s);
      }
    }
  });
  return rois;
}

/**
 * Region term (§6b): `(1/|ℛ|) Σ_r ω_{l(r)} mean_{bins,c}(RoIAlign(Ŝ)_r − RoIAlign(T)_r)²`, each
 * RoI pooled (7×7 bins, 2×2 samples) on the level of the FPN rule. With pkd the full maps are
 * normalised before pooling. Returns 0 when there are no RoIs.
 * @param levels - neck levels (student grid)
 * @param rois - RoIs in input pixels
 * @param norm - feature normalisation
 */
export function regionLoss(
  levels: readonly KdLevel[],
  rois: readonly Roi[],
  norm: 'pkd' | 'none',
): tf.Scalar {
  return tf.tidy(() => regionOf(normalise(levels, norm), rois));
}

function regionOf(levels: readonly NormLevel[], rois: readonly Roi[]): tf.Scalar {
  if (levels.length === 0 || rois.length === 0) return tf.scalar(0);
  const available = levels.map((l) => l.level.level);
  const parts: tf.Scalar[] = [];
  for (const { level: lv, s, t } of levels) {
    const mine = rois.filter(
      (r) => roiLevel(r.box[2] - r.box[0], r.box[3] - r.box[1], available) === lv.level,
    );
    if (mine.length === 0) continue;
    const [n, h, w, c] = s.shape;
    const sFlat = s.reshape([n * h * w, c]) as tf.Tensor2D;
    const tFlat = t.reshape([n * h * w, c]) as tf.Tensor2D;
    const diff = tf.squaredDifference(
      roiAlign(sFlat, mine, lv.stride, h, w),
      roiAlign(tFlat, mine, lv.stride, h, w),
    );
    // Σ over this level's RoIs of the per-RoI mean: sum / (bins·bins·C).
    parts.push(
      tf.sum(diff).mul((lv.synthetic ? SYNTHETIC_WEIGHT : 1) / (diff.size / mine.length)) as tf.Scalar,
    );
  }
  return tf.addN(parts).div(rois.length) as tf.Scalar;
}

/**
 * Dense head ("logit") term (§6b): `mean_{𝒟,k}(clip(Z^S,±8) − clip(Z^T,±8))²` over the active
 * cells 𝒟 where some class has max(P^T, P^S) > 0.05, with Z^T = safeLogit(P^T). 0 when 𝒟 is
 * empty.
 * @param studentLogits - Z^S [N, H, W, K]
 * @param teacherProb - P^T [N, H, W, K] (a constant)
 */
export function logitLoss(studentLogits: tf.Tensor4D, teacherProb: tf.Tensor4D): tf.Scalar {
  if (studentLogits.shape.join() !== teacherProb.shape.join())
    throw new RangeError(
      `'teacherProb' must match the student head [${studentLogits.shape.join(', ')}], got [${teacherProb.shape.join(', ')}]`,
    );
  return tf.tidy(() => {
    const pt = sg(teacherProb);
    const ps = tf.sigmoid(sg(studentLogits));
    // tf.step, not greater(): it has a (zero) gradient, and the tape walks through this path.
    const active = tf.step(tf.max(tf.maximum(pt, ps), -1, true).sub(ACTIVE_PROB)); // [N,H,W,1]
    const zs = tf.clipByValue(studentLogits, -LOGIT_CLIP, LOGIT_CLIP);
    const zt = tf.clipByValue(safeLogit(pt), -LOGIT_CLIP, LOGIT_CLIP);
    const k = studentLogits.shape[3];
    const count = tf.sum(active).mul(k).maximum(1);
    return tf.sum(tf.squaredDifference(zs, zt).mul(active)).div(count) as tf.Scalar;
  });
}

/**
 * HKD terms of the primary teacher, each already multiplied by its weight from `cfg`:
 * - `hkd.backbone`: mean over teacher backbone levels of `featureMse` (omitted if none);
 * - `hkd.feature`: mean over neck levels of `featureMse`;
 * - `hkd.region`: `regionLoss` on GT RoIs plus `cfg.jitter` deterministic jittered copies each,
 *   on the neck levels present;
 * - `hkd.logit`: `logitLoss` against the teacher head map (omitted without `headProb`).
 * A term with weight 0 is not computed.
 * @returns the weighted terms (possibly empty)
 */
export function hkdTerms(ctx: KdContext, cfg: HkdConfig): KdTerms {
  const teacher = ctx.teachers[0];
  if (teacher === undefined) return {};
  // One tidy for all terms: the normalised neck maps are shared by the feature and region terms.
  return tf.tidy(() => {
    const terms: KdTerms = {};
    const meanMse = (levels: readonly NormLevel[], weight: number): tf.Scalar =>
      tf.addN(levels.map((l) => mseOf(l, cfg.norm))).mul(weight / levels.length) as tf.Scalar;
    if (cfg.backbone > 0 && teacher.backbone.length > 0)
      terms['hkd.backbone'] = meanMse(normalise(teacher.backbone, cfg.norm), cfg.backbone);
    const neck = cfg.feature > 0 || cfg.region > 0 ? normalise(teacher.neck, cfg.norm) : [];
    if (cfg.feature > 0 && neck.length > 0) terms['hkd.feature'] = meanMse(neck, cfg.feature);
    if (cfg.region > 0 && neck.length > 0) {
      const rois = regionRois(ctx.gts, cfg.jitter, ctx.inputWidth, ctx.inputHeight);
      terms['hkd.region'] = regionOf(neck, rois).mul(cfg.region) as tf.Scalar;
    }
    if (cfg.logit > 0 && teacher.headProb !== undefined)
      terms['hkd.logit'] = logitLoss(ctx.headLogits, teacher.headProb).mul(cfg.logit) as tf.Scalar;
    return terms;
  });
}
