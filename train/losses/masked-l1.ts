/** Masked L1 regression loss for the size and offset heads. */
import * as tf from '@tensorflow/tfjs';

/**
 * Sum of |pred - target| over the cells where mask is 1 (both channels).
 * @param predBhw2 - [B, h, w, 2]
 * @param targetBhw2 - [B, h, w, 2]
 * @param maskBhw1 - [B, h, w, 1], 1 at object centres
 * @returns scalar sum (the caller normalises by the number of positives)
 */
export function maskedL1Sum(
  predBhw2: tf.Tensor4D,
  targetBhw2: tf.Tensor4D,
  maskBhw1: tf.Tensor4D,
): tf.Scalar {
  return tf.tidy(() => predBhw2.sub(targetBhw2).abs().mul(maskBhw1).sum() as tf.Scalar);
}
