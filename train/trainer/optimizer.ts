/**
 * Optimisers on flat Float32Arrays (see param-layout.ts). Plain TypeScript: the update is
 * a few ms for a million parameters, identical on every backend, and its state is two flat
 * arrays that checkpoint trivially.
 */
import type { ParamLayout } from './param-layout.js';

export type OptimizerConfig =
  | { kind: 'adamw'; lr: number; beta1: number; beta2: number; epsilon: number; weightDecay: number }
  | { kind: 'sgd'; lr: number; momentum: number; nesterov: boolean; weightDecay: number };

export interface OptimizerState {
  kind: OptimizerConfig['kind'];
  step: number;
  /** AdamW: first moment; SGD: velocity. */
  m: Float32Array;
  /** AdamW: second moment; SGD: empty. */
  v: Float32Array;
}

export function createOptimizerState(cfg: OptimizerConfig, total: number): OptimizerState {
  return {
    kind: cfg.kind,
    step: 0,
    m: new Float32Array(total),
    v: new Float32Array(cfg.kind === 'adamw' ? total : 0),
  };
}

/** Per-element decoupled weight-decay flags from the layout (kernels decay; biases and BN do not). */
export function decayMask(layout: ParamLayout): Uint8Array {
  const mask = new Uint8Array(layout.total);
  for (const s of layout.slots) if (s.decay) mask.fill(1, s.offset, s.offset + s.length);
  return mask;
}

/**
 * Applies one update in place.
 * @param params - flat parameters (updated)
 * @param grads - flat gradients
 * @param lr - learning rate of this step (from the schedule)
 */
export function optimizerStep(
  cfg: OptimizerConfig,
  state: OptimizerState,
  params: Float32Array,
  grads: Float32Array,
  decay: Uint8Array,
  lr: number,
): void {
  if (state.kind !== cfg.kind)
    throw new RangeError(`optimizer state is '${state.kind}', config asks for '${cfg.kind}'`);
  state.step++;
  const { m, v } = state;
  if (cfg.kind === 'adamw') {
    const { beta1, beta2, epsilon, weightDecay } = cfg;
    const bc1 = 1 - beta1 ** state.step;
    const bc2 = 1 - beta2 ** state.step;
    for (let i = 0; i < params.length; i++) {
      const g = grads[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      const update = m[i] / bc1 / (Math.sqrt(v[i] / bc2) + epsilon);
      // Decoupled decay (Loshchilov & Hutter): shrink the weight, not the gradient.
      params[i] -= lr * (update + (decay[i] ? weightDecay * params[i] : 0));
    }
  } else {
    const { momentum, nesterov, weightDecay } = cfg;
    for (let i = 0; i < params.length; i++) {
      const g = grads[i] + (decay[i] ? weightDecay * params[i] : 0);
      m[i] = momentum * m[i] + g;
      params[i] -= lr * (nesterov ? g + momentum * m[i] : m[i]);
    }
  }
}

/**
 * Scales gradients in place so their global L2 norm is at most `maxNorm`.
 * @returns the norm before clipping
 */
export function clipGradNorm(grads: Float32Array, maxNorm: number): number {
  let sq = 0;
  for (let i = 0; i < grads.length; i++) sq += grads[i] * grads[i];
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const k = maxNorm / (norm + 1e-6);
    for (let i = 0; i < grads.length; i++) grads[i] *= k;
  }
  return norm;
}
