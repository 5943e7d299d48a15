/**
 * One training micro-step on the current tfjs backend: forward, CenterNet losses, backward.
 * Runs inside a replica worker; everything crossing the thread boundary is a flat array.
 */
import * as tf from '@tensorflow/tfjs';
import type { Student } from '../models/arch/student.js';
import type { HeadTargets } from './targets.js';
import type { ParamLayout } from './trainer/param-layout.js';
import { focalLossSum } from './losses/focal.js';
import { maskedL1Sum } from './losses/masked-l1.js';

export interface LossWeights {
  heatmap: number;
  size: number;
  offset: number;
  focalAlpha: number;
  focalBeta: number;
}

/** Input of one micro-step: images already normalised, targets at head resolution. */
export interface MicroBatch {
  batch: number;
  height: number;
  width: number;
  imagesNhwc: Float32Array;
  targets: HeadTargets;
}

export interface MicroStepResult {
  /** Gradient of (loss sum / normalizer) w.r.t. the trainable params, flat in layout order. */
  grads: Float32Array;
  /** Each loss term divided by the normalizer; `total` is the weighted sum. */
  losses: Record<string, number>;
  /** BN batch statistics, per BN node: mean and biased variance (flat: all means, then all variances). */
  bnStats: Map<string, { mean: Float32Array; variance: Float32Array }>;
}

/**
 * Computes gradients for one micro-batch. Losses are sums divided by `normalizer` (the
 * number of positives of the WHOLE batch), so summing results over micro-batches and
 * replicas gives exactly the full-batch gradient.
 */
export function microStep(
  student: Student,
  layout: ParamLayout,
  mb: MicroBatch,
  normalizer: number,
  w: LossWeights,
): MicroStepResult {
  const { targets: t } = mb;
  const bnStats = new Map<string, { mean: Float32Array; variance: Float32Array }>();
  const kept: tf.Tensor[] = [];
  const vars = student.trainableVariables();
  const terms: Record<string, tf.Scalar> = {};
  const { value, grads } = tf.variableGrads(() => {
    const x = tf.tensor4d(mb.imagesNhwc, [mb.batch, mb.height, mb.width, 3]);
    const out = student.apply(x, {
      training: true,
      onBatchStats: (name, s) => {
        kept.push(s.mean, s.variance);
        bnStats.set(name, { mean: s.mean.dataSync() as Float32Array, variance: s.variance.dataSync() as Float32Array });
      },
    });
    const shape4 = (c: number): [number, number, number, number] => [t.batch, t.h, t.w, c];
    const hmT = tf.tensor4d(t.heatmap, shape4(t.numClasses));
    const hmW = tf.tensor4d(t.heatmapWeight, shape4(1));
    const mask = tf.tensor4d(t.centerMask, shape4(1));
    const sizeT = tf.tensor4d(t.size, shape4(2));
    const offT = tf.tensor4d(t.offset, shape4(2));
    const hm = focalLossSum(out.heatmap, hmT, hmW, w.focalAlpha, w.focalBeta).div(normalizer);
    const sz = maskedL1Sum(out.size, sizeT, mask).div(normalizer);
    const off = maskedL1Sum(out.offset, offT, mask).div(normalizer);
    terms.heatmap = tf.keep(hm) as tf.Scalar;
    terms.size = tf.keep(sz) as tf.Scalar;
    terms.offset = tf.keep(off) as tf.Scalar;
    return hm.mul(w.heatmap).add(sz.mul(w.size)).add(off.mul(w.offset)) as tf.Scalar;
  }, vars);
  const flat = new Float32Array(layout.total);
  layout.slots.forEach((slot, i) => {
    const g = grads[vars[i].name];
    // A parameter the loss does not reach (possible in distillation setups) gets a zero gradient.
    if (g) flat.set(g.dataSync() as Float32Array, slot.offset);
  });
  const losses: Record<string, number> = { total: value.dataSync()[0] };
  for (const [k, v] of Object.entries(terms)) losses[k] = v.dataSync()[0];
  value.dispose();
  tf.dispose(grads);
  tf.dispose(Object.values(terms));
  tf.dispose(kept);
  return { grads: flat, losses, bnStats };
}
