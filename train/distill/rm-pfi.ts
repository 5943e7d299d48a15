/**
 * Rank mimicking (RM) and prediction-guided feature imitation (PFI) (Li et al., AAAI 2022), as
 * specified in docs/distillation-methods.md §4 for a CenterNet-style student: RM on the 3×3
 * neighbourhood of each GT centre on the head grid, PFI on the neck levels weighted by the
 * teacher–student prediction gap. Uses the primary teacher only; both need its head map.
 */
import * as tf from '@tensorflow/tfjs';
import type { RmPfiConfig } from './config.js';
import type { KdBox, KdContext, KdLevel, KdTerms } from './types.js';
import { featureGap, gatherRows, klRows, safeLogit, sg } from './common.js';

/** Feature-KD weight of a synthetic level (§2.2). */
const SYNTHETIC_WEIGHT = 0.5;

/**
 * Rank-mimic loss of candidate rows: `Σ_g w_g · T² · KL(softmax(s^T_g/T) ‖ softmax(s^S_g/T))`.
 * @param studentScores - student logits of each GT's candidates [G, M]
 * @param teacherScores - teacher logits at the same candidates [G, M] (gradient stopped)
 * @param temperature - T > 0
 * @param rowWeights - w_g per row (default 1/G: the mean over rows)
 * @returns scalar loss
 */
export function rankMimicLoss(
  studentScores: tf.Tensor2D,
  teacherScores: tf.Tensor2D,
  temperature: number,
  rowWeights?: ArrayLike<number>,
): tf.Scalar {
  const g = studentScores.shape[0];
  if (rowWeights !== undefined && rowWeights.length !== g)
    throw new RangeError(`'rowWeights' must have ${g} entries, got ${rowWeights.length}`);
  return tf.tidy(() => {
    const kl = klRows(sg(teacherScores), studentScores, temperature);
    if (rowWeights === undefined) return tf.mean(kl) as tf.Scalar;
    return tf.sum(kl.mul(tf.tensor1d(Array.from(rowWeights)))) as tf.Scalar;
  });
}

/** The candidate cells of one GT on the head grid. */
export interface RmCandidates {
  /** Image index in the batch. */
  batch: number;
  classId: number;
  /** Flat cell indices n·H·W + y·W + x, row-major. */
  cells: number[];
}

/**
 * RM candidate sets (§4e, CenterNet student): for each non-ignored GT, the 3×3 neighbourhood of
 * its centre cell ⌊c/stride⌋ (the student's assigner convention), clipped at the borders. GTs with
 * no area or a centre outside the grid are skipped, like the student's targets do.
 * @param gts - boxes per image, input pixels
 * @param stride - head stride, pixels
 * @param height - head grid height
 * @param width - head grid width
 * @param classes - number of classes K (classId is checked against it)
 */
export function rmCandidates(
  gts: readonly KdBox[][],
  stride: number,
  height: number,
  width: number,
  classes: number,
): RmCandidates[] {
  const out: RmCandidates[] = [];
  gts.forEach((boxes, batch) => {
    for (const g of boxes) {
      if (g.ignore) continue;
      const [x1, y1, x2, y2] = g.box;
      if (!(x2 > x1 && y2 > y1)) continue;
      if (!Number.isInteger(g.classId) || g.classId < 0 || g.classId >= classes)
        throw new RangeError(`'classId' must be an integer in [0, ${classes - 1}], got ${g.classId}`);
      const ix = Math.floor((x1 + x2) / 2 / stride);
      const iy = Math.floor((y1 + y2) / 2 / stride);
      if (ix < 0 || iy < 0 || ix >= width || iy >= height) continue;
      const cells: number[] = [];
      for (let y = Math.max(0, iy - 1); y <= Math.min(height - 1, iy + 1); y++)
        for (let x = Math.max(0, ix - 1); x <= Math.min(width - 1, ix + 1); x++)
          cells.push((batch * height + y) * width + x);
      out.push({ batch, classId: g.classId, cells });
    }
  });
  return out;
}

/**
 * RM over candidate sets (§4b, classification term):
 * `(1/N) Σ_n (1/max(1,G_n)) Σ_{g: M_g≥2} T² KL(p_g ‖ q_g)`, where G_n counts the GTs of image n
 * with at least two candidates (a single candidate carries no rank information).
 * @param studentLogits - student head logits [N, H, W, K]
 * @param teacherLogits - teacher logits on the same grid [N, H, W, K] (gradient stopped)
 * @param sets - from `rmCandidates`
 * @param temperature - T > 0
 * @returns scalar loss (0 when no GT has two candidates)
 */
export function rankMimicFromSets(
  studentLogits: tf.Tensor4D,
  teacherLogits: tf.Tensor4D,
  sets: readonly RmCandidates[],
  temperature: number,
): tf.Scalar {
  const [n, , , k] = studentLogits.shape;
  const used = sets.filter((s) => s.cells.length >= 2);
  const perImage = new Array<number>(n).fill(0);
  for (const s of used) perImage[s.batch]++;
  return tf.tidy(() => {
    if (used.length === 0) return tf.scalar(0);
    const sFlat = studentLogits.reshape([-1, 1]) as tf.Tensor2D;
    const tFlat = sg(teacherLogits).reshape([-1, 1]) as tf.Tensor2D;
    // Group by candidate count (4, 6 or 9 on the 3×3 rule) so each group is one [G_m, M] gather.
    const bySize = new Map<number, RmCandidates[]>();
    for (const s of used) bySize.set(s.cells.length, [...(bySize.get(s.cells.length) ?? []), s]);
    const parts: tf.Scalar[] = [];
    for (const [m, group] of bySize) {
      const idx = new Int32Array(group.length * m);
      group.forEach((s, r) => s.cells.forEach((c, j) => (idx[r * m + j] = c * k + s.classId)));
      const weights = group.map((s) => 1 / (n * Math.max(1, perImage[s.batch])));
      parts.push(
        rankMimicLoss(
          gatherRows(sFlat, idx).reshape([group.length, m]) as tf.Tensor2D,
          gatherRows(tFlat, idx).reshape([group.length, m]) as tf.Tensor2D,
          temperature,
          weights,
        ),
      );
    }
    return tf.addN(parts) as tf.Scalar;
  });
}

/** PFI options (the fields of RmPfiConfig it reads). */
export type PfiOptions = Pick<RmPfiConfig, 'variant' | 'normalizeWeights' | 'stopGradient' | 'norm'>;

/**
 * PFI prediction-gap weight on the head grid: `mean_k (Y^T − Y^S)²`, with Y = σ(Z) for variant
 * 'prob' (the teacher's probabilities as given) or Y = Z for 'logit' (teacher Z = safeLogit(P^T)).
 * @param studentLogits - Z^S [N, H_h, W_h, K]
 * @param teacherProb - P^T [N, H_h, W_h, K] (a constant)
 * @returns weight [N, H_h, W_h, 1] (not yet stop-gradient'ed or normalised)
 */
export function predictionGap(
  studentLogits: tf.Tensor4D,
  teacherProb: tf.Tensor4D,
  variant: 'prob' | 'logit',
): tf.Tensor4D {
  if (studentLogits.shape.join() !== teacherProb.shape.join())
    throw new RangeError(
      `'teacherProb' must match the student head [${studentLogits.shape.join(', ')}], got [${teacherProb.shape.join(', ')}]`,
    );
  return tf.tidy(() => {
    const pt = sg(teacherProb);
    const [yt, ys] = variant === 'prob' ? [pt, tf.sigmoid(studentLogits)] : [safeLogit(pt), studentLogits];
    return tf.mean(tf.squaredDifference(yt, ys), -1, true) as tf.Tensor4D;
  });
}

/**
 * Resamples a head-grid weight map to a level grid. Coarser level with an integer ratio r:
 * r×r average pooling (a feature cell gets the mean gap of the head cells it covers, whose
 * centres are symmetric about its own with half-pixel centres); otherwise (finer level or a
 * non-integer ratio) half-pixel bilinear resampling. Both are differentiable.
 */
function resampleWeight(w: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  const [, h, wd] = w.shape;
  if (h === height && wd === width) return w;
  if (h % height === 0 && wd % width === 0 && h / height === wd / width) {
    const r = h / height;
    return tf.avgPool(w, r, r, 'valid');
  }
  return tf.image.resizeBilinear(w, [height, width], false, true);
}

/**
 * PFI loss (§4b): `(1/|L|) Σ_l ω_l mean_{n,h,w}(w_l ⊙ f_l)`, with f_l = mean_c (Ŝ_l − T_l)² after
 * the configured normalisation, w_l the prediction gap resampled to the level grid, optionally
 * divided by its mean over all cells of all levels (+1e-6), optionally with stopped gradient.
 * ω_l = 0.5 on a synthetic level (§2.2).
 * @param levels - neck levels (adapted student and teacher maps)
 * @param studentLogits - Z^S [N, H_h, W_h, K]
 * @param teacherProb - P^T [N, H_h, W_h, K] (a constant)
 * @param opts - variant, normalizeWeights, stopGradient, norm
 * @returns scalar loss (0 without levels)
 */
export function pfiLoss(
  levels: readonly Pick<KdLevel, 'adapted' | 'teacher' | 'synthetic'>[],
  studentLogits: tf.Tensor4D,
  teacherProb: tf.Tensor4D,
  opts: PfiOptions,
): tf.Scalar {
  return tf.tidy(() => {
    if (levels.length === 0) return tf.scalar(0);
    let gap = predictionGap(studentLogits, teacherProb, opts.variant);
    if (opts.stopGradient) gap = sg(gap);
    let weights = levels.map((l) => resampleWeight(gap, l.adapted.shape[1], l.adapted.shape[2]));
    if (opts.normalizeWeights) {
      const cells = weights.reduce((a, w) => a + w.size, 0);
      const mean = tf.addN(weights.map((w) => tf.sum(w))).div(cells);
      weights = weights.map((w) => w.div(mean.add(1e-6)));
    }
    const parts = levels.map((l, i) => {
      const f = featureGap(l.adapted, l.teacher, opts.norm).expandDims(-1);
      return tf.mean(f.mul(weights[i])).mul(l.synthetic ? SYNTHETIC_WEIGHT : 1) as tf.Scalar;
    });
    return tf.addN(parts).div(levels.length) as tf.Scalar;
  });
}

/**
 * RM + PFI terms of the primary teacher, each already multiplied by its lambda; both are
 * omitted without a teacher head map, and a term with weight 0 is not computed:
 * - `rmPfi.rm`: `λ_RM · rankMimicFromSets` on the head logits of class c_g vs the teacher's
 *   safeLogit(P^T) at the same cells (3×3 candidates around each GT centre);
 * - `rmPfi.pfi`: `λ_PFI · pfiLoss` over `cfg.levels` ∩ the teacher's neck levels (omitted if
 *   none). The weight lives on the head grid and is resampled to each level (see resampleWeight).
 * @returns the weighted terms (possibly empty)
 */
export function rmPfiTerms(ctx: KdContext, cfg: RmPfiConfig): KdTerms {
  const teacher = ctx.teachers[0];
  const terms: KdTerms = {};
  const prob = teacher?.headProb;
  if (teacher === undefined || prob === undefined) return terms;
  const [, h, w, k] = ctx.headLogits.shape;
  if (prob.shape.join() !== ctx.headLogits.shape.join())
    throw new RangeError(
      `'headProb' must match the student head [${ctx.headLogits.shape.join(', ')}], got [${prob.shape.join(', ')}]`,
    );
  if (cfg.rm > 0) {
    const sets = rmCandidates(ctx.gts, ctx.headStride, h, w, k);
    terms['rmPfi.rm'] = tf.tidy(
      () =>
        rankMimicFromSets(ctx.headLogits, safeLogit(prob), sets, cfg.temperature).mul(cfg.rm) as tf.Scalar,
    );
  }
  const levels = teacher.neck.filter((l) => cfg.levels.includes(l.level));
  if (cfg.pfi > 0 && levels.length > 0) {
    terms['rmPfi.pfi'] = tf.tidy(() => pfiLoss(levels, ctx.headLogits, prob, cfg).mul(cfg.pfi) as tf.Scalar);
  }
  return terms;
}
