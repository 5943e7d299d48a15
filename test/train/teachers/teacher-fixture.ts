/**
 * Fixtures for the teacher tests, made by code: a micro edgekd checkpoint with initial weights
 * whose BN statistics are randomised (so BN folding in the ONNX export is not the identity), and
 * seeded random RGB images.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { buildGraph, initialWeights } from '../../../models/arch/graph.js';
import { saveCheckpoint } from '../../../models/core/checkpoint.js';
import type { NamedTensor } from '../../../models/core/safetensors.js';
import { parseModelSpec, type ModelSpec } from '../../../models/core/spec.js';
import { microSpec } from '../../helpers/specs.js';

/** A fresh temp folder. */
export function tempDir(prefix = 'edgekd-teach-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The micro spec (64x64) with the given classes. */
export function teacherSpec(classes: string[] = ['person', 'car']): ModelSpec {
  return parseModelSpec({ ...microSpec('teach-micro'), classes });
}

/**
 * Writes a checkpoint of `spec` with initial weights (seeded) and random BN statistics.
 * @returns the checkpoint path
 */
export function writeTeacherCheckpoint(
  dir: string,
  spec: ModelSpec,
  seed = 1,
  file = 'teacher.safetensors',
): string {
  const graph = buildGraph(spec);
  const init = initialWeights(graph, seed);
  const rng = seedrandom(`teacher-fixture-${seed}`);
  const params = new Map<string, NamedTensor>();
  for (const p of graph.params) {
    const data = Float32Array.from(init.get(p.name)!);
    if (p.name.endsWith('.movingMean')) data.forEach((_, i) => (data[i] = (rng() - 0.5) * 0.4));
    if (p.name.endsWith('.movingVariance')) data.forEach((_, i) => (data[i] = 0.5 + rng()));
    if (p.name.endsWith('.gamma')) data.forEach((_, i) => (data[i] = 0.7 + 0.6 * rng()));
    if (p.name.endsWith('.beta')) data.forEach((_, i) => (data[i] = (rng() - 0.5) * 0.2));
    params.set(p.name, { shape: p.shape, data });
  }
  const path = join(dir, file);
  saveCheckpoint(path, { spec, params, ema: new Map() });
  return path;
}

/** Seeded RGB 0..255 NHWC pixels. */
export function randomImages(batch: number, height: number, width: number, seed = 7): Float32Array {
  const rng = seedrandom(`teacher-images-${seed}`);
  return Float32Array.from({ length: batch * height * width * 3 }, () => Math.floor(rng() * 256));
}

/** Max |a - b|. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
