/** Learning-rate schedule: linear warm-up, then cosine decay to `minLrRatio * lr`. */

export interface ScheduleConfig {
  baseLr: number;
  warmupSteps: number;
  totalSteps: number;
  minLrRatio: number;
}

/**
 * Learning rate at a 0-based optimiser step.
 * Warm-up ramps from baseLr/warmupSteps at step 0 to baseLr at step warmupSteps; the cosine
 * then falls from baseLr to minLrRatio*baseLr at the last step.
 */
export function learningRate(cfg: ScheduleConfig, step: number): number {
  const { baseLr, warmupSteps, totalSteps, minLrRatio } = cfg;
  if (step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
  const span = Math.max(1, totalSteps - warmupSteps - 1);
  const t = Math.min(1, (step - warmupSteps) / span);
  const minLr = baseLr * minLrRatio;
  return minLr + ((baseLr - minLr) * (1 + Math.cos(Math.PI * t))) / 2;
}
