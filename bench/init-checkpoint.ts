/** The model the speed benches run when no checkpoint is given. */
import { join } from 'node:path';
import { buildGraph, initialWeights } from '../models/arch/graph.js';
import { saveCheckpoint } from '../models/core/checkpoint.js';
import { readModelSpec } from '../models/core/spec.js';

/**
 * Writes `<dir>/init.safetensors`: the spec with its initial weights (seed 1). Latency does not
 * depend on weight values, so speed benches export this when given no trained checkpoint.
 * @returns the checkpoint path
 */
export function writeInitCheckpoint(specPath: string, dir: string): string {
  const spec = readModelSpec(specPath);
  const graph = buildGraph(spec);
  const init = initialWeights(graph, 1);
  const params = new Map(
    graph.params.map((p) => [p.name, { shape: p.shape.slice(), data: init.get(p.name)! }]),
  );
  const path = join(dir, 'init.safetensors');
  saveCheckpoint(path, { spec, params, ema: new Map() });
  return path;
}
