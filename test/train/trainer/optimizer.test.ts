import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clipGradNorm, createOptimizerState, optimizerStep } from '../../../train/trainer/optimizer.js';
import { learningRate } from '../../../train/trainer/schedule.js';
import { createEma, emaDecay, emaUpdate } from '../../../train/trainer/ema.js';

const close = (a: number, b: number, eps = 1e-6) => assert.ok(Math.abs(a - b) < eps, `${a} vs ${b}`);

test('AdamW first step moves each weight by lr * sign(g) plus decoupled decay on kernels only', () => {
  const cfg = { kind: 'adamw' as const, lr: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.5 };
  const st = createOptimizerState(cfg, 2);
  const p = new Float32Array([1, 1]);
  optimizerStep(cfg, st, p, new Float32Array([2, -3]), new Uint8Array([1, 0]), 0.1);
  // Bias-corrected m/sqrt(v) = sign(g) on step 1: p0 = 1 - 0.1*(1 + 0.5*1) = 0.85; p1 = 1 + 0.1 = 1.1
  close(p[0], 0.85, 1e-5);
  close(p[1], 1.1, 1e-5);
});

test('SGD with Nesterov momentum follows the textbook update', () => {
  const cfg = { kind: 'sgd' as const, lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0 };
  const st = createOptimizerState(cfg, 1);
  const p = new Float32Array([0]);
  optimizerStep(cfg, st, p, new Float32Array([1]), new Uint8Array([0]), 0.1); // v=1, step g+0.9v = 1.9
  close(p[0], -0.19);
  optimizerStep(cfg, st, p, new Float32Array([1]), new Uint8Array([0]), 0.1); // v=1.9, step 1+1.71=2.71
  close(p[0], -0.19 - 0.271);
});

test('clipGradNorm rescales to the bound and reports the original norm', () => {
  const g = new Float32Array([3, 4]);
  assert.equal(clipGradNorm(g, 1), 5);
  close(Math.hypot(g[0], g[1]), 1, 1e-5);
  const h = new Float32Array([0.3, 0.4]);
  clipGradNorm(h, 1);
  close(h[0], 0.3);
});

test('warm-up then cosine schedule hits its end points', () => {
  const s = { baseLr: 1, warmupSteps: 4, totalSteps: 14, minLrRatio: 0.1 };
  close(learningRate(s, 0), 0.25);
  close(learningRate(s, 3), 1);
  close(learningRate(s, 4), 1);
  close(learningRate(s, 13), 0.1);
  assert.ok(learningRate(s, 8) < 1 && learningRate(s, 8) > 0.1);
});

test('EMA ramps its decay and tracks the weights', () => {
  close(emaDecay(0.999, 0), 0);
  assert.ok(emaDecay(0.999, 100000) > 0.998);
  const e = createEma(new Float32Array([0]));
  emaUpdate(e, new Float32Array([10]), 0.5, 1); // d = 0.5*(1-e^-1) = 0.316
  close(e.shadow[0], 10 * (1 - 0.5 * (1 - Math.exp(-1))), 1e-5);
});
