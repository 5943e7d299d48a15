/** Messages between the trainer (main thread) and its replica workers. Flat arrays only. */
import type { ModelSpec } from '../../models/core/spec.js';
import type { LossNormalizers, LossWeights, MicroBatch } from '../step.js';

export type BackendPref = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

export type ReplicaRequest =
  | { type: 'init'; spec: ModelSpec; backend: BackendPref; lossWeights: LossWeights }
  | { type: 'step'; id: number; trainable: Float32Array; microBatches: MicroBatch[]; norm: LossNormalizers }
  | {
      type: 'predict';
      id: number;
      trainable: Float32Array;
      stats: Float32Array;
      batch: number;
      imagesNhwc: Float32Array;
    };

export type ReplicaResponse =
  | { type: 'ready'; backend: string; detail: string; fallbacks: { name: string; reason: string }[] }
  | {
      type: 'step-done';
      id: number;
      grads: Float32Array;
      losses: Record<string, number>;
      /** Sum over micro-batches of (batch size) * stat, flat in stats-layout order: mean then variance per BN. */
      statsWeighted: Float32Array;
      images: number;
      ms: number;
    }
  | {
      type: 'predict-done';
      id: number;
      heatmap: Float32Array;
      size: Float32Array;
      offset: Float32Array;
      h: number;
      w: number;
    }
  | { type: 'error'; id?: number; name: string; code?: string; message: string; stack?: string };
