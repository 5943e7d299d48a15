/**
 * CenterNet's penalty-reduced focal loss on heatmap logits (Law & Deng, CornerNet;
 * Zhou et al., CenterNet):
 *   positive cells (target == 1): -(1 - p)^alpha * log(p)
 *   other cells:                  -(1 - y)^beta * p^alpha * log(1 - p) * weight
 * Returns the SUM over the batch; the caller divides by the number of positives of the
 * whole batch so that gradient accumulation over micro-batches is exact.
 */
import * as tf from '@tensorflow/tfjs';

/** Probabilities are clipped away from 0 and 1 so log() stays finite (as CenterNet does). */
const EPS = 1e-4;

/** x^n by repeated multiplication for small integer n (cheaper, and no gradient w.r.t. n). */
export function powInt(x: tf.Tensor, n: number): tf.Tensor {
  if (!Number.isInteger(n) || n < 0 || n > 8) return tf.pow(x, n);
  if (n === 0) return tf.onesLike(x);
  let r = x;
  for (let i = 1; i < n; i++) r = r.mul(x);
  return r;
}

/**
 * @param logitsBhwc - heatmap logits [B, h, w, C]
 * @param targetBhwc - Gaussian targets [B, h, w, C], exactly 1 at centres
 * @param weightBhw1 - per-cell weight of the negative term [B, h, w, 1] (0 in ignore regions)
 * @returns scalar sum of the loss over all cells
 */
export function focalLossSum(
  logitsBhwc: tf.Tensor4D,
  targetBhwc: tf.Tensor4D,
  weightBhw1: tf.Tensor4D,
  alpha = 2,
  beta = 4,
): tf.Scalar {
  return tf.tidy(() => {
    const p = tf.sigmoid(logitsBhwc).clipByValue(EPS, 1 - EPS);
    const pos = targetBhwc.greaterEqual(1).cast('float32');
    const negWeight = powInt(tf.sub(1, targetBhwc), beta).mul(tf.sub(1, pos)).mul(weightBhw1);
    const posLoss = powInt(tf.sub(1, p), alpha).mul(tf.log(p)).mul(pos);
    const negLoss = powInt(p, alpha)
      .mul(tf.log(tf.sub(1, p)))
      .mul(negWeight);
    return posLoss.add(negLoss).sum().neg() as tf.Scalar;
  });
}
