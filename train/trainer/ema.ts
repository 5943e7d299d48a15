/**
 * Exponential moving average of the weights (evaluated and exported instead of the raw
 * weights: smoother, usually better). The decay ramps up as 1 - exp(-step / tau)-style
 * so the average is not dominated by the random initialisation early on.
 */

export interface EmaState {
  updates: number;
  shadow: Float32Array;
}

export function createEma(params: Float32Array): EmaState {
  return { updates: 0, shadow: params.slice() };
}

/** Effective decay after `updates` updates: decay * (1 - exp(-updates / 2000)) (as YOLOv5's ModelEMA). */
export function emaDecay(decay: number, updates: number, rampSteps = 2000): number {
  return decay * (1 - Math.exp(-updates / rampSteps));
}

/** shadow = d * shadow + (1 - d) * params, in place. */
export function emaUpdate(ema: EmaState, params: Float32Array, decay: number, rampSteps?: number): void {
  ema.updates++;
  const d = emaDecay(decay, ema.updates, rampSteps);
  const s = ema.shadow;
  for (let i = 0; i < s.length; i++) s[i] = d * s[i] + (1 - d) * params[i];
}
