/**
 * Batch normalisation for training with a hand-written backward pass.
 *
 * tfjs differentiates `tf.moments` through Mean/Tile/broadcast kernels, which profiled at
 * ~23% of a wasm training step. The closed-form gradient below needs only sums over the
 * batch/spatial axes and elementwise products (N = B*H*W per channel):
 *   xhat = (x - mean) * invStd
 *   dgamma = sum(dy * xhat), dbeta = sum(dy)
 *   dx = gamma * invStd / N * (N * dy - dbeta - xhat * dgamma)
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Optional fused kernels a backend may register (edgekd's wasm backend does, see
 * `train/backend/wasm-kernels/batch-norm-act.ts`). `BN_ACT_KERNEL`: inputs `x`, `gamma`, `beta`,
 * attrs `epsilon`, `activation`, outputs `[y, mean, variance, invStd]`. `BN_ACT_GRAD_KERNEL`:
 * inputs `dy`, `x`, `gamma`, `beta`, `mean`, `invStd`, attr `activation`, outputs
 * `[dx, dgamma, dbeta]`. The names are the contract; models/ never imports a backend.
 */
export const BN_ACT_KERNEL = 'EdgekdBatchNormAct';
/** See {@link BN_ACT_KERNEL}. */
export const BN_ACT_GRAD_KERNEL = 'EdgekdBatchNormActGrad';

/** Activation applied right after BN (`linear`: none). */
export type BnActivation = 'linear' | 'relu' | 'relu6';

export interface BatchStats {
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

/**
 * Training-mode BN on an NHWC tensor using the batch statistics.
 * @param x - [B, H, W, C]
 * @param gamma - [C] scale
 * @param beta - [C] shift
 * @param epsilon - variance epsilon
 * @param onStats - receives the batch mean and (biased) variance, kept (caller disposes),
 *   so the trainer can update moving statistics outside the gradient tape
 * @returns normalised [B, H, W, C]
 */
export function batchNormTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  onStats?: (s: BatchStats) => void,
): tf.Tensor4D {
  const c = x.shape[3];
  const n = x.shape[0] * x.shape[1] * x.shape[2];
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xi, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const x2 = xi.reshape([n, c]);
    const mean = x2.mean(0);
    const centered = x2.sub(mean);
    const variance = centered.square().mean(0);
    const invStd = variance.add(epsilon).rsqrt();
    const xhat = centered.mul(invStd);
    const value = xhat.mul(g).add(b).reshape(xi.shape);
    if (onStats) onStats({ mean: tf.keep(mean) as tf.Tensor1D, variance: tf.keep(variance) as tf.Tensor1D });
    save([xhat, invStd, g]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, inv, gm] = saved;
        const dy2 = dy.reshape([n, c]);
        const dbeta = dy2.sum(0);
        const dgamma = dy2.mul(xh).sum(0);
        const dx = dy2
          .sub(dbeta.div(n))
          .sub(xh.mul(dgamma.div(n)))
          .mul(gm.mul(inv))
          .reshape(dy.shape);
        return [dx, dgamma, dbeta];
      },
    };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}

/**
 * Training-mode BN followed by an activation: `act(batchNormTrain(x, ...))`. When the active
 * backend registers {@link BN_ACT_KERNEL} and {@link BN_ACT_GRAD_KERNEL} (and C % 4 == 0) it runs
 * as one fused op whose backward recomputes the activation mask from `x`; otherwise it is exactly
 * `batchNormTrain` then `tf.relu`/`tf.relu6`.
 * @param x - [B, H, W, C]
 * @param activation - activation after BN
 * @returns activated, normalised [B, H, W, C]
 */
export function batchNormActTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  activation: BnActivation,
  onStats?: (s: BatchStats) => void,
): tf.Tensor4D {
  const backend = tf.getBackend();
  const fused =
    x.shape[3] % 4 === 0 &&
    tf.getKernel(BN_ACT_KERNEL, backend) !== undefined &&
    tf.getKernel(BN_ACT_GRAD_KERNEL, backend) !== undefined;
  if (!fused) {
    const y = batchNormTrain(x, gamma, beta, epsilon, onStats);
    return activation === 'relu' ? tf.relu(y) : activation === 'relu6' ? tf.relu6(y) : y;
  }
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xi, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const [value, mean, variance, invStd] = tf
      .engine()
      .runKernel(BN_ACT_KERNEL, { x: xi, gamma: g, beta: b }, { epsilon, activation }) as tf.Tensor[];
    if (onStats) onStats({ mean: tf.keep(mean) as tf.Tensor1D, variance: tf.keep(variance) as tf.Tensor1D });
    save([xi, g, b, mean, invStd]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, gs, bs, ms, is] = saved;
        return tf
          .engine()
          .runKernel(
            BN_ACT_GRAD_KERNEL,
            { dy, x: xs, gamma: gs, beta: bs, mean: ms, invStd: is },
            { activation },
          ) as tf.Tensor[];
      },
    };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}

/** Inference-mode BN with moving statistics, folded into one scale and shift per channel. */
export function batchNormInfer(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  movingMean: tf.Tensor1D,
  movingVariance: tf.Tensor1D,
  epsilon: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const scale = gamma.mul(movingVariance.add(epsilon).rsqrt());
    const shift = beta.sub(movingMean.mul(scale));
    return x.mul(scale).add(shift) as tf.Tensor4D;
  });
}
