/**
 * Fixtures for the export tests, made by code: small specs and checkpoints with random weights
 * and random BN statistics (so BN folding is not the identity) and a heatmap bias that puts many
 * peaks above the score threshold (so box parity compares real detections).
 */
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { Student, type WeightMap } from '../../models/arch/student.js';
import { normalizePixels, syntheticScene } from '../../export/verify.js';
import { saveCheckpoint } from '../../models/core/checkpoint.js';
import { buildGraph, initialWeights } from '../../models/arch/graph.js';
import { parseModelSpec, type ModelSpec, type ModelSpecInput } from '../../models/core/spec.js';
import type { NamedTensor } from '../../models/core/safetensors.js';

/** A 64x64 two-class student, small enough to export and verify in well under a second. */
export const TINY_SPEC: ModelSpecInput = {
  name: 'exp-tiny',
  classes: ['person', 'bike'],
  input: { height: 64, width: 64 },
  backbone: {
    stemChannels: 8,
    stages: [
      { channels: 8, depth: 1, expansion: 2 },
      { channels: 12, depth: 2, expansion: 2 },
      { channels: 16, depth: 1, expansion: 2 },
      { channels: 16, depth: 1, expansion: 2 },
    ],
  },
  neck: { channels: 8 },
  head: { channels: 8 },
  decode: { topK: 50, scoreThreshold: 0.3, poolSize: 3 },
};

export function tinySpec(overrides: Partial<ModelSpecInput> = {}): ModelSpec {
  return parseModelSpec({ ...TINY_SPEC, ...overrides });
}

/**
 * Deploy weights for a spec: he-normal init, BN gamma/beta/mean/var drawn at random, and the
 * heatmap bias set to `heatmapBias` (logit; 0 gives probabilities around 0.5).
 */
export function randomWeights(spec: ModelSpec, seed = 1, heatmapBias = 0): Map<string, NamedTensor> {
  const graph = buildGraph(spec);
  const init = initialWeights(graph, seed);
  const rng = seedrandom(`export-fixture-${seed}`);
  const u = (lo: number, hi: number) => lo + (hi - lo) * rng();
  const out = new Map<string, NamedTensor>();
  for (const p of graph.params) {
    const data = init.get(p.name)!;
    if (p.name.endsWith('.gamma')) data.forEach((_, i) => (data[i] = u(0.5, 1.5)));
    else if (p.name.endsWith('.beta')) data.forEach((_, i) => (data[i] = u(-0.2, 0.2)));
    else if (p.name.endsWith('.movingMean')) data.forEach((_, i) => (data[i] = u(-0.3, 0.3)));
    else if (p.name.endsWith('.movingVariance')) data.forEach((_, i) => (data[i] = u(0.3, 2)));
    else if (p.name === `${graph.outputs.heatmap}.bias`) data.fill(heatmapBias);
    else if (p.name.endsWith('.bias')) data.forEach((_, i) => (data[i] = u(-0.1, 0.1)));
    out.set(p.name, { shape: p.shape.slice(), data });
  }
  return out;
}

/**
 * Replaces the BN moving statistics of `weights` with the batch statistics of a few synthetic
 * scenes (a training-mode forward pass), as training would: activations then keep a trained
 * network's scale through every layer instead of growing with depth, so absolute parity bounds
 * mean what they mean for a real checkpoint. Needs a tfjs backend (the caller sets it).
 */
export function calibrateBn(
  spec: ModelSpec,
  weights: Map<string, NamedTensor>,
  seed = 1,
  images = 4,
): Map<string, NamedTensor> {
  const { height: H, width: W } = spec.input;
  const rng = seedrandom(`export-calib-${seed}`);
  const x = new Float32Array(images * H * W * 3);
  for (let i = 0; i < images; i++) x.set(normalizePixels(spec, syntheticScene(H, W, rng)), i * H * W * 3);
  const student = new Student(spec, 0);
  const out = new Map(weights);
  try {
    const wm: WeightMap = {};
    for (const [k, v] of weights) wm[k] = v;
    student.setWeights(wm);
    tf.tidy(() => {
      student.apply(tf.tensor4d(x, [images, H, W, 3]), {
        training: true,
        onBatchStats: (bn, s) => {
          out.set(`${bn}.movingMean`, {
            shape: s.mean.shape.slice(),
            data: s.mean.dataSync().slice() as Float32Array,
          });
          out.set(`${bn}.movingVariance`, {
            shape: s.variance.shape.slice(),
            data: s.variance.dataSync().slice() as Float32Array,
          });
          s.mean.dispose();
          s.variance.dispose();
        },
      });
    });
  } finally {
    student.dispose();
  }
  return out;
}

/** Writes a checkpoint (params only, no EMA) holding {@link randomWeights}. */
export function writeRandomCheckpoint(path: string, spec: ModelSpec, seed = 1): Map<string, NamedTensor> {
  const params = randomWeights(spec, seed);
  saveCheckpoint(path, { spec, params, ema: new Map() });
  return params;
}
