/**
 * HPL, hint pyramid learning via salient semantic mining (Wang et al., IJCNN 2021), as
 * reconstructed in docs/distillation-methods.md §3: a saliency-masked FitNets hint per pyramid
 * level plus an inter-level relation term. Uses the primary teacher only.
 */
import * as tf from '@tensorflow/tfjs';
import type { HplConfig } from './config.js';
import type { KdContext, KdLevel, KdTerms } from './types.js';
import { featureNorm, levelRelation, sg, spatialSaliency } from './common.js';

/** Hint weight of a synthetic level (teacher map upsampled from the next stride, §2.2). */
const SYNTHETIC_WEIGHT = 0.5;

/**
 * Saliency-masked hint of one level (§3b steps 1–5):
 * `mean_{n,h,w,c} M ⊙ (Ŝ − T)²` with `M = sg(½(A^T + A^S))`.
 *
 * The saliency maps use the un-adapted student `s` and the teacher `t`. With `norm = 'none'`
 * they are computed on the raw maps, as the spec says; with `norm = 'pkd'` on the
 * pkd-normalised maps (a deviation: a foreign teacher's raw magnitude would otherwise set the
 * sharpness of the softmax, and the term would not be invariant to T → aT + b).
 * @param s - raw student map S [N, H, W, C_s]
 * @param t - teacher map T [N, H, W, C_t] (a constant)
 * @param adapted - adapted student map φ(S) [N, H, W, C_t]
 * @param tau - saliency temperature τ_s
 * @param norm - feature normalisation of Ŝ and T
 * @returns scalar loss
 */
export function hintLoss(
  s: tf.Tensor4D,
  t: tf.Tensor4D,
  adapted: tf.Tensor4D,
  tau: number,
  norm: 'pkd' | 'none',
): tf.Scalar {
  return tf.tidy(() => {
    const tc = sg(t);
    const tn = featureNorm(tc, norm);
    const mask = sg(
      spatialSaliency(tn, tau)
        .add(spatialSaliency(featureNorm(s, norm), tau))
        .mul(0.5),
    );
    const diff = tf.squaredDifference(featureNorm(adapted, norm), tn);
    return tf.mean(diff.mul(mask.expandDims(-1))) as tf.Scalar;
  });
}

/**
 * Level descriptors in a common space for one network: the levels themselves when they share a
 * width (levelRelation takes the global average), else (e.g. a YOLO neck with 64/128/256
 * channels, where a cosine across levels is undefined) the channel-agnostic saliency logits
 * `mean_c |X|` average-pooled to the coarsest grid, as [N, 1, 1, H_c·W_c] vectors.
 */
function relationInputs(feats: readonly tf.Tensor4D[], spatial: boolean): tf.Tensor4D[] {
  if (!spatial) return [...feats];
  const coarse = feats.reduce((a, f) => (f.shape[1] * f.shape[2] < a.shape[1] * a.shape[2] ? f : a));
  const [, hc, wc] = coarse.shape;
  return feats.map((f) => {
    const [n, h, w] = f.shape;
    const a = tf.mean(tf.abs(f), -1, true) as tf.Tensor4D;
    let pooled: tf.Tensor4D;
    if (h === hc && w === wc) pooled = a;
    else if (h % hc === 0 && w % wc === 0 && h / hc === w / wc)
      pooled = tf.avgPool(a, h / hc, h / hc, 'valid');
    else pooled = tf.image.resizeBilinear(a, [hc, wc], false, true);
    return pooled.reshape([n, 1, 1, hc * wc]) as tf.Tensor4D;
  });
}

function widthsDiffer(feats: readonly tf.Tensor4D[]): boolean {
  return feats.some((f) => f.shape[3] !== feats[0].shape[3]);
}

/**
 * Pyramid relation loss (§3b step 6): `mean (R^S − R^T)²` over [N, L, L], where R is the
 * cosine similarity of the levels' global-average-pooled descriptors. Each network is compared
 * with itself, so no adapter is needed. If either network's levels differ in width, both sides
 * fall back to pooled saliency descriptors (see `relationInputs`) so that they stay comparable.
 * @param studentFeats - raw student maps S_l, one per level, ascending stride
 * @param teacherFeats - teacher maps T_l of the same levels (constants)
 * @returns scalar loss
 */
export function relationLoss(
  studentFeats: readonly tf.Tensor4D[],
  teacherFeats: readonly tf.Tensor4D[],
): tf.Scalar {
  if (studentFeats.length !== teacherFeats.length)
    throw new RangeError(
      `'teacherFeats' must have one map per student level (${studentFeats.length}), got ${teacherFeats.length}`,
    );
  return tf.tidy(() => {
    const spatial = widthsDiffer(studentFeats) || widthsDiffer(teacherFeats);
    const rs = levelRelation(relationInputs(studentFeats, spatial));
    const rt = levelRelation(
      relationInputs(
        teacherFeats.map((t) => sg(t)),
        spatial,
      ),
    );
    return tf.mean(tf.squaredDifference(rs, rt)) as tf.Scalar;
  });
}

/**
 * HPL terms of the primary teacher, each already multiplied by its lambda:
 * - `hpl.hint`: `λ_hint · (1/|L|) Σ_l ω_l L_hint,l` with ω = 0.5 on synthetic levels;
 * - `hpl.relation`: `λ_rel · L_rel` over the non-synthetic levels (a synthetic P2, upsampled
 *   from P3, would fake R^T[2,3] ≈ 1); omitted when fewer than two such levels remain.
 * Levels are `cfg.levels` ∩ the teacher's neck levels; a term with weight 0 is not computed.
 * @returns the weighted terms (possibly empty)
 */
export function hplTerms(ctx: KdContext, cfg: HplConfig): KdTerms {
  const teacher = ctx.teachers[0];
  const terms: KdTerms = {};
  if (teacher === undefined) return terms;
  const levels: KdLevel[] = teacher.neck.filter((l) => cfg.levels.includes(l.level));
  if (levels.length === 0) return terms;
  if (cfg.hint > 0) {
    terms['hpl.hint'] = tf.tidy(() => {
      const parts = levels.map((l) =>
        hintLoss(l.student, l.teacher, l.adapted, cfg.tau, cfg.norm).mul(l.synthetic ? SYNTHETIC_WEIGHT : 1),
      );
      return tf.addN(parts).mul(cfg.hint / levels.length) as tf.Scalar;
    });
  }
  const real = levels.filter((l) => !l.synthetic);
  if (cfg.relation > 0 && real.length >= 2) {
    terms['hpl.relation'] = tf.tidy(
      () =>
        relationLoss(
          real.map((l) => l.student),
          real.map((l) => l.teacher),
        ).mul(cfg.relation) as tf.Scalar,
    );
  }
  return terms;
}
