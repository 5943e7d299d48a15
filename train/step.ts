/**
 * One training micro-step on the current tfjs backend: forward, CenterNet losses, backward.
 * Runs inside a replica worker; everything crossing the thread boundary is a flat array.
 */
import * as tf from '@tensorflow/tfjs';
import type { Student } from '../models/arch/student.js';
import type { Annotation } from '../models/core/detection.js';
import type { AlignedTeacher, KdRuntime } from './distill/kd-runtime.js';
import type { KdContext } from './distill/types.js';
import { withFeatureGapMemo } from './distill/common.js';
import type { HeadTargets } from './targets.js';
import type { ParamLayout } from './trainer/param-layout.js';
import { focalLossSum } from './losses/focal.js';
import { maskedL1Sum } from './losses/masked-l1.js';
import { decodeCellBoxes, giouLossSum } from './losses/giou.js';

export interface LossWeights {
  heatmap: number;
  size: number;
  offset: number;
  /** Dense GIoU on boxes decoded over each object's Gaussian area (0 = off). */
  giou: number;
  focalAlpha: number;
  focalBeta: number;
}

/**
 * Loss normalisers of the WHOLE batch (all micro-batches on all replicas): summing micro-step
 * results then gives exactly the full-batch gradient.
 */
export interface LossNormalizers {
  /** Number of positive (centre) cells: focal and L1 terms. */
  pos: number;
  /** Sum of GIoU regression weights. */
  reg: number;
  /** Images in the whole batch: KD terms are per-image means, weighted by micro-batch share. */
  images: number;
}

/** Sums the normalisers over micro-batches (each at least 1, so an empty batch stays finite). */
export function batchNormalizers(mbs: MicroBatch[]): LossNormalizers {
  let pos = 0;
  let reg = 0;
  let images = 0;
  for (const mb of mbs) {
    pos += mb.targets.numPos;
    reg += mb.targets.regWeightSum;
    images += mb.batch;
  }
  return { pos: Math.max(1, pos), reg: Math.max(1e-6, reg), images: Math.max(1, images) };
}

/** Input of one micro-step: images already normalised, targets at head resolution. */
export interface MicroBatch {
  batch: number;
  height: number;
  width: number;
  imagesNhwc: Float32Array;
  targets: HeadTargets;
  /** Boxes per image in input pixels (the KD methods' ground truth). */
  annotations: Annotation[][];
  /** Per image, the teacher-cache key (image + augmentation variant), when caching. */
  cacheKeys?: string[];
}

/** Distillation inputs of one micro-step. */
export interface MicroStepKd {
  runtime: KdRuntime;
  /** Teacher outputs on the student grids (constants; the caller disposes them). */
  teachers: AlignedTeacher[];
  /** Optimiser steps so far. */
  step: number;
  /** lambda(t) factor of the schedule: warm-up ramp, 0 after the KD-off point. */
  ramp: number;
}

export interface MicroStepResult {
  /** Gradient of (loss sums / batch normalisers) w.r.t. the trainable params, flat in layout order. */
  grads: Float32Array;
  /** Each loss term divided by its batch normaliser; `total` is the weighted sum. */
  losses: Record<string, number>;
  /** BN batch statistics, per BN node: mean and biased variance (flat: all means, then all variances). */
  bnStats: Map<string, { mean: Float32Array; variance: Float32Array }>;
  /** Discriminator gradients (adversarial KD only), flat in its layout order. */
  discGrads?: Float32Array;
}

/**
 * Computes gradients for one micro-batch. Losses are sums divided by the normalisers of the
 * WHOLE batch, so summing results over micro-batches and
 * replicas gives exactly the full-batch gradient.
 */
export function microStep(
  student: Student,
  layout: ParamLayout,
  mb: MicroBatch,
  norm: LossNormalizers,
  w: LossWeights,
  kd?: MicroStepKd,
): MicroStepResult {
  const { targets: t } = mb;
  const bnStats = new Map<string, { mean: Float32Array; variance: Float32Array }>();
  const kept: tf.Tensor[] = [];
  const vars = [...student.trainableVariables(), ...(kd ? kd.runtime.variables('student') : [])];
  // KD terms are per-image means of this micro-batch: weighting by its share of the batch makes
  // the sum over micro-batches and replicas the batch mean.
  const share = mb.batch / norm.images;
  let discCtx: KdContext | undefined;
  const terms: Record<string, tf.Scalar> = {};
  const { value, grads } = withFeatureGapMemo(() =>
    tf.variableGrads(() => {
      const x = tf.tensor4d(mb.imagesNhwc, [mb.batch, mb.height, mb.width, 3]);
      const out = student.apply(x, {
        training: true,
        onBatchStats: (name, s) => {
          kept.push(s.mean, s.variance);
          bnStats.set(name, {
            mean: s.mean.dataSync() as Float32Array,
            variance: s.variance.dataSync() as Float32Array,
          });
        },
      });
      const shape4 = (c: number): [number, number, number, number] => [t.batch, t.h, t.w, c];
      const hmT = tf.tensor4d(t.heatmap, shape4(t.numClasses));
      const hmW = tf.tensor4d(t.heatmapWeight, shape4(1));
      const mask = tf.tensor4d(t.centerMask, shape4(1));
      const sizeT = tf.tensor4d(t.size, shape4(2));
      const offT = tf.tensor4d(t.offset, shape4(2));
      const hm = focalLossSum(out.heatmap, hmT, hmW, w.focalAlpha, w.focalBeta).div(norm.pos);
      const sz = maskedL1Sum(out.size, sizeT, mask).div(norm.pos);
      const off = maskedL1Sum(out.offset, offT, mask).div(norm.pos);
      terms.heatmap = tf.keep(hm) as tf.Scalar;
      terms.size = tf.keep(sz) as tf.Scalar;
      terms.offset = tf.keep(off) as tf.Scalar;
      let total = hm.mul(w.heatmap).add(sz.mul(w.size)).add(off.mul(w.offset));
      if (w.giou > 0) {
        const boxT = tf.tensor4d(t.boxTarget, shape4(4));
        const regW = tf.tensor4d(t.regWeight, shape4(1));
        const giou = giouLossSum(decodeCellBoxes(out.size, out.offset), boxT, regW).div(norm.reg);
        terms.giou = tf.keep(giou) as tf.Scalar;
        total = total.add(giou.mul(w.giou));
      }
      if (kd) {
        const ctx = kd.runtime.context(out, kd.teachers, mb.annotations, kd.step);
        const kdTerms = kd.runtime.terms(ctx);
        for (const [name, v] of Object.entries(kdTerms)) {
          terms[name] = tf.keep(v.mul(share)) as tf.Scalar;
          if (kd.ramp > 0) total = total.add(v.mul(kd.ramp * share));
        }
        if (kd.runtime.cfg.adversarial) {
          // The discriminator step sees the adapted student features as constants.
          discCtx = {
            ...ctx,
            teachers: ctx.teachers.map((tv) => ({
              ...tv,
              neck: tv.neck.map((l) => ({ ...l, adapted: tf.keep(l.adapted.clone()), student: l.student })),
            })),
          };
        }
      }
      return total as tf.Scalar;
    }, vars),
  );
  const flat = new Float32Array(layout.total);
  layout.slots.forEach((slot, i) => {
    const g = grads[vars[i].name];
    // A parameter the loss does not reach (possible in distillation setups) gets a zero gradient.
    if (g) flat.set(g.dataSync() as Float32Array, slot.offset);
  });
  let discGrads: Float32Array | undefined;
  if (kd && discCtx) {
    const dvars = kd.runtime.variables('discriminator');
    const d = tf.variableGrads(() => kd.runtime.discriminatorLoss(discCtx!)!.mul(share) as tf.Scalar, dvars);
    discGrads = new Float32Array(dvars.reduce((a, v) => a + v.size, 0));
    let o = 0;
    for (const v of dvars) {
      const g = d.grads[v.name];
      if (g) discGrads.set(g.dataSync() as Float32Array, o);
      o += v.size;
    }
    terms['adversarial.disc'] = tf.keep(d.value) as tf.Scalar;
    tf.dispose(d.grads);
    for (const tv of discCtx.teachers) tf.dispose(tv.neck.map((l) => l.adapted));
  }
  const losses: Record<string, number> = { total: value.dataSync()[0] };
  for (const [k, v] of Object.entries(terms)) losses[k] = v.dataSync()[0];
  value.dispose();
  tf.dispose(grads);
  tf.dispose(Object.values(terms));
  tf.dispose(kept);
  return { grads: flat, losses, bnStats, discGrads };
}
