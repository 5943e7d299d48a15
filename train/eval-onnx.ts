/**
 * Evaluates an exported edgekd ONNX model (any precision, `boxes` or `heads` outputs) with
 * onnxruntime-node's CPU provider on a dataset, with the same letterbox, decode and metrics as
 * training-time eval, so the accuracy cost of an export is one command: `edgekd eval --model`.
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { decodeCenterNet } from '../models/core/decode.js';
import { nhwcToNchw } from '../models/core/layout.js';
import type { Detection } from '../models/core/detection.js';
import { ConfigError, ModelFormatError } from '../models/core/errors.js';
import { headStride, parseModelSpec, type ModelSpec } from '../models/core/spec.js';
import { evalBatches } from './data/loader.js';
import { boxToSource } from './data/image.js';
import type { Dataset, EvalBatch } from './data/types.js';
import { evaluateDetections, type EvalImage } from './eval/index.js';

export interface OnnxEvalOptions {
  /** Detections below this score are dropped before matching. */
  scoreThreshold: number;
  maxDetections: number;
  batchSize?: number;
}

/** An exported model opened for evaluation: session, embedded spec and output form. */
export interface OpenedOnnxModel {
  session: ort.InferenceSession;
  spec: ModelSpec;
  outputs: 'boxes' | 'heads';
}

/**
 * Opens an edgekd ONNX file: reads the embedded spec and output form from its metadata_props
 * (onnxruntime-node does not expose them, so the protobuf is decoded with onnx-proto) and creates
 * a CPU session.
 * @throws {ConfigError} missing file; {ModelFormatError} not an edgekd export
 */
export async function openOnnxModel(path: string): Promise<OpenedOnnxModel> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new ConfigError('ERR_FILE_NOT_FOUND', `cannot read ONNX model '${path}'`, { cause: e });
  }
  let meta: Record<string, string>;
  try {
    const model = onnxProto.onnx.ModelProto.decode(bytes);
    meta = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
  } catch (e) {
    throw new ModelFormatError('ERR_MODEL_FORMAT', `'${path}' is not an ONNX model`, { cause: e });
  }
  if (!meta['edgekd.spec'])
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `'${path}' has no edgekd.spec metadata: not an edgekd export`,
    );
  const spec = parseModelSpec(JSON.parse(meta['edgekd.spec']), `edgekd.spec in '${path}'`);
  const outputs = meta['edgekd.outputs'] === 'heads' ? 'heads' : 'boxes';
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' });
  return { session, spec, outputs };
}

async function detectBatch(m: OpenedOnnxModel, b: EvalBatch, opts: OnnxEvalOptions): Promise<Detection[][]> {
  const { height: H, width: W } = m.spec.input;
  const out = await m.session.run({
    images: new ort.Tensor('float32', nhwcToNchw(b.imagesNhwc, b.size, H, W), [b.size, 3, H, W]),
  });
  const result: Detection[][] = [];
  if (m.outputs === 'boxes') {
    const det = out.detections.data as Float32Array;
    const K = out.detections.dims[1];
    for (let i = 0; i < b.size; i++) {
      const dets: Detection[] = [];
      for (let k = 0; k < Math.min(K, opts.maxDetections); k++) {
        const r = det.subarray((i * K + k) * 6, (i * K + k + 1) * 6);
        if (r[4] >= opts.scoreThreshold)
          dets.push({ box: [r[0], r[1], r[2], r[3]], score: r[4], classId: Math.round(r[5]) });
      }
      result.push(dets);
    }
  } else {
    const [, h, w, C] = out.heatmap.dims;
    const cells = h * w;
    for (let i = 0; i < b.size; i++) {
      result.push(
        decodeCenterNet(
          {
            heatmap: (out.heatmap.data as Float32Array).subarray(i * cells * C, (i + 1) * cells * C),
            size: (out.size.data as Float32Array).subarray(i * cells * 2, (i + 1) * cells * 2),
            offset: (out.offset.data as Float32Array).subarray(i * cells * 2, (i + 1) * cells * 2),
            h,
            w,
            numClasses: C,
          },
          {
            stride: headStride(m.spec),
            topK: opts.maxDetections,
            scoreThreshold: opts.scoreThreshold,
            poolSize: m.spec.decode.poolSize,
          },
        ),
      );
    }
  }
  return result.map((dets, i) => dets.map((d) => ({ ...d, box: boxToSource(d.box, b.transforms[i]) })));
}

/**
 * Runs an opened model over a dataset and returns the flat metric record (AP, AP50, ..., MR2*).
 */
export async function evaluateOnnxModel(
  model: OpenedOnnxModel,
  dataset: Dataset,
  opts: OnnxEvalOptions,
): Promise<Record<string, number>> {
  const images: EvalImage[] = [];
  for await (const b of evalBatches(dataset, { spec: model.spec, batchSize: opts.batchSize ?? 8 })) {
    const dets = await detectBatch(model, b, opts);
    for (let i = 0; i < b.size; i++)
      images.push({ id: b.ids[i], gts: b.sourceAnnotations[i], dets: dets[i] });
  }
  return evaluateDetections(images, { coco: { numClasses: model.spec.classes.length } });
}
