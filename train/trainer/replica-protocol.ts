/** Messages between the trainer (main thread) and its replica workers. Flat arrays only. */
import type { ModelSpec } from '../../models/core/spec.js';
import type { DistillConfig } from '../distill/config.js';
import type { KdParamSpec } from '../distill/types.js';
import type { LossNormalizers, LossWeights, MicroBatch } from '../step.js';

/** Per-step distillation inputs: `trainable` then carries student + KD 'student'-group params. */
export interface StepKd {
  /** Optimiser steps so far. */
  step: number;
  /** Schedule factor lambda(t)/lambda; 0 after the KD-off point (then `active` is false too). */
  ramp: number;
  /** False after the KD-off point: the teacher is not run at all. */
  active: boolean;
  /** Discriminator parameters (adversarial only; empty otherwise). */
  disc: Float32Array;
}

export type BackendPref = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

export type ReplicaRequest =
  | {
      type: 'init';
      spec: ModelSpec;
      backend: BackendPref;
      lossWeights: LossWeights;
      distill?: DistillConfig;
    }
  | {
      type: 'step';
      id: number;
      trainable: Float32Array;
      microBatches: MicroBatch[];
      norm: LossNormalizers;
      kd?: StepKd;
    }
  | {
      type: 'predict';
      id: number;
      trainable: Float32Array;
      stats: Float32Array;
      batch: number;
      imagesNhwc: Float32Array;
    };

export type ReplicaResponse =
  | {
      type: 'ready';
      backend: string;
      detail: string;
      fallbacks: { name: string; reason: string }[];
      /** Training-only KD parameters the worker declared (distillation only). */
      kdSpecs?: KdParamSpec[];
    }
  | {
      type: 'step-done';
      id: number;
      grads: Float32Array;
      losses: Record<string, number>;
      /** Sum over micro-batches of (batch size) * stat, flat in stats-layout order: mean then variance per BN. */
      statsWeighted: Float32Array;
      images: number;
      ms: number;
      /** Discriminator gradient sum (adversarial KD). */
      discGrads?: Float32Array;
      /** Milliseconds spent producing teacher outputs (run or cache). */
      teacherMs: number;
      cache?: { hits: number; misses: number };
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
