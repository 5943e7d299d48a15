/**
 * Test models for the runtime, written by the project's exporter (no checkpoint, no tfjs): a
 * micro spec with initial weights whose heatmap bias is 0 (probabilities around 0.5, so many
 * peaks pass the threshold), in `boxes` and `heads` form from the same weights, plus a plain ONNX
 * copy without metadata and its sidecar spec.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onnx } from '../../export/onnx-proto.js';
import { buildOnnxModel, encodeModel, valueInfo } from '../../export/onnx-graph.js';
import { pruneDeadNodes } from '../../export/int8.js';
import { buildGraph, initialWeights } from '../../models/arch/graph.js';
import { parseModelSpec, type ModelSpec, type ModelSpecInput } from '../../models/core/spec.js';
import type { NamedTensor } from '../../models/core/safetensors.js';
import { microSpec } from '../helpers/specs.js';

export interface TestModels {
  spec: ModelSpec;
  boxes: string;
  heads: string;
  /** The heads model without metadata_props (a "plain" ONNX detector). */
  plain: string;
  /** The spec as JSON, for `specPath`. */
  specPath: string;
}

/** Deploy weights: initial weights with the heatmap bias at `heatmapBias` (a logit). */
export function testWeights(spec: ModelSpec, seed = 3, heatmapBias = 0): Map<string, NamedTensor> {
  const graph = buildGraph(spec);
  const init = initialWeights(graph, seed);
  const out = new Map<string, NamedTensor>();
  for (const p of graph.params) {
    const data = init.get(p.name)!;
    if (p.name === `${graph.outputs.heatmap}.bias`) data.fill(heatmapBias);
    out.set(p.name, { shape: p.shape.slice(), data });
  }
  return out;
}

/** Writes the test models into `dir`. */
export function writeTestModels(
  dir: string,
  overrides: Partial<ModelSpecInput> = {},
  opts: { seed?: number; heatmapBias?: number } = {},
): TestModels {
  const spec = parseModelSpec({
    ...microSpec('rt-micro'),
    decode: { topK: 100, scoreThreshold: 0.3 },
    ...overrides,
  });
  const weights = testWeights(spec, opts.seed, opts.heatmapBias);
  const write = (name: string, m: ReturnType<typeof buildOnnxModel>) => {
    const path = join(dir, name);
    writeFileSync(path, encodeModel(m));
    return path;
  };
  const boxes = write(
    'boxes.onnx',
    pruneDeadNodes(buildOnnxModel(spec, weights, { outputs: 'boxes', opset: 17 })),
  );
  const headsModel = pruneDeadNodes(buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 }));
  const heads = write('heads.onnx', headsModel);
  const plainModel = onnx.ModelProto.decode(encodeModel(headsModel));
  plainModel.metadataProps = [];
  plainModel.producerName = 'someone-else';
  const plain = write('plain.onnx', plainModel);
  const specPath = join(dir, 'spec.json');
  writeFileSync(specPath, JSON.stringify(spec));
  return { spec, boxes, heads, plain, specPath };
}

/**
 * A plain ONNX "detector" whose `detections` output is the given rows for every image, whatever
 * the pixels: `[N, K, 6]` = rows broadcast over the batch (input [N, 3, height, width]). Boxes are
 * thus placed by hand in network-input pixels, to check the mapping back to source pixels.
 */
export function writeConstantDetector(path: string, rows: number[][], height = 64, width = 64): void {
  const F = onnx.TensorProto.DataType.FLOAT;
  const I64 = onnx.TensorProto.DataType.INT64;
  const f32 = (name: string, dims: number[], v: number[]) =>
    onnx.TensorProto.create({
      name,
      dims,
      dataType: F,
      rawData: new Uint8Array(Float32Array.from(v).buffer),
    });
  const i64 = (name: string, v: number[]) =>
    onnx.TensorProto.create({
      name,
      dims: [v.length],
      dataType: I64,
      rawData: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer),
    });
  const node = (opType: string, input: string[], output: string) =>
    onnx.NodeProto.create({ name: output, opType, input, output: [output] });
  const graph = onnx.GraphProto.create({
    name: 'constant-detector',
    // [N,3,H,W] -> slice [N,1,1,6] -> reshape [N,1,6] -> * 0 -> + rows [K,6] -> [N,K,6]
    node: [
      node('Slice', ['images', 'starts', 'ends', 'axes'], 'slice'),
      node('Reshape', ['slice', 'shape'], 'flat'),
      node('Mul', ['flat', 'zero'], 'zeros'),
      node('Add', ['zeros', 'rows'], 'detections'),
    ],
    initializer: [
      i64('starts', [0, 0, 0]),
      i64('ends', [1, 1, 6]),
      i64('axes', [1, 2, 3]),
      i64('shape', [-1, 1, 6]),
      f32('zero', [], [0]),
      f32('rows', [rows.length, 6], rows.flat()),
    ],
    input: [valueInfo('images', F, ['batch', 3, height, width])],
    output: [valueInfo('detections', F, ['batch', rows.length, 6])],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 17 })],
    producerName: 'hand-made',
    graph,
  });
  writeFileSync(path, encodeModel(model));
}
