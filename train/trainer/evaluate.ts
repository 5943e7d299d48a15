/**
 * Periodic / final evaluation: inference-mode forward on the replicas, decode in TS, map
 * boxes back to source pixels, then COCO AP and miss rate against the source-pixel labels.
 */
import { decodeCenterNet } from '../../models/core/decode.js';
import { headStride, type ModelSpec } from '../../models/core/spec.js';
import type { Detection } from '../../models/core/detection.js';
import { evalBatches } from '../data/loader.js';
import { boxToSource } from '../data/image.js';
import type { Dataset, EvalBatch } from '../data/types.js';
import { evaluateDetections, type EvalImage } from '../eval/index.js';
import type { ReplicaPool } from './replica-pool.js';

export interface EvalSettings {
  scoreThreshold: number;
  maxDetections: number;
}

/** Decodes one batch of head outputs into per-image detections in source pixels. */
function decodeBatch(
  spec: ModelSpec,
  batch: EvalBatch,
  out: { heatmap: Float32Array; size: Float32Array; offset: Float32Array; h: number; w: number },
  settings: EvalSettings,
): Detection[][] {
  const C = spec.classes.length;
  const cells = out.h * out.w;
  const result: Detection[][] = [];
  for (let i = 0; i < batch.size; i++) {
    const dets = decodeCenterNet(
      {
        heatmap: out.heatmap.subarray(i * cells * C, (i + 1) * cells * C),
        size: out.size.subarray(i * cells * 2, (i + 1) * cells * 2),
        offset: out.offset.subarray(i * cells * 2, (i + 1) * cells * 2),
        h: out.h,
        w: out.w,
        numClasses: C,
      },
      {
        stride: headStride(spec),
        topK: settings.maxDetections,
        scoreThreshold: settings.scoreThreshold,
        poolSize: spec.decode.poolSize,
      },
    );
    result.push(dets.map((d) => ({ ...d, box: boxToSource(d.box, batch.transforms[i]) })));
  }
  return result;
}

/**
 * Runs the model (flat trainable + BN stats) over a dataset and returns the flat metric
 * record of {@link evaluateDetections} (AP, AP50, APsmall, ..., MR2, MR2Reasonable, MR2Small).
 * Batches are spread over the replicas so every core works.
 */
export async function evaluateModel(
  pool: ReplicaPool,
  spec: ModelSpec,
  dataset: Dataset,
  trainable: Float32Array,
  stats: Float32Array,
  settings: EvalSettings,
  batchSize = 4,
): Promise<Record<string, number>> {
  const images: EvalImage[] = [];
  const inflight: Promise<void>[] = [];
  let k = 0;
  for await (const batch of evalBatches(dataset, { spec, batchSize })) {
    const replica = k++ % pool.size;
    inflight.push(
      pool.predict(trainable, stats, batch.size, batch.imagesNhwc, replica).then((out) => {
        const dets = decodeBatch(spec, batch, out, settings);
        for (let i = 0; i < batch.size; i++)
          images.push({ id: batch.ids[i], gts: batch.sourceAnnotations[i], dets: dets[i] });
      }),
    );
    // Keep at most one batch in flight per replica: bounded memory on large val sets.
    if (inflight.length >= pool.size) await inflight.shift();
  }
  await Promise.all(inflight);
  return evaluateDetections(images, { coco: { numClasses: spec.classes.length } });
}
