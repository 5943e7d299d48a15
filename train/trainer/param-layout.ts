/**
 * Flat parameter layout: every trainable parameter laid end to end in graph order in one
 * Float32Array. The optimiser, EMA, gradient averaging and the worker protocol all work on
 * flat arrays, which cross worker_threads as one transferable buffer.
 */
import type { ModelGraph, ParamSpec } from '../../models/arch/graph.js';

export interface ParamSlot {
  name: string;
  shape: number[];
  offset: number;
  length: number;
  /** Decoupled weight decay applies to conv kernels only, not biases or BN affine terms. */
  decay: boolean;
}

export interface ParamLayout {
  slots: ParamSlot[];
  total: number;
}

function layoutOf(params: ParamSpec[]): ParamLayout {
  const slots: ParamSlot[] = [];
  let offset = 0;
  for (const p of params) {
    const length = p.shape.reduce((a, b) => a * b, 1);
    slots.push({ name: p.name, shape: p.shape, offset, length, decay: p.name.endsWith('.weight') });
    offset += length;
  }
  return { slots, total: offset };
}

/** Layout of the trainable parameters (what gradients and the optimiser cover). */
export function trainableLayout(graph: ModelGraph): ParamLayout {
  return layoutOf(graph.params.filter((p) => p.trainable));
}

/** Layout of the BN moving statistics (updated from batch statistics, not by gradients). */
export function statsLayout(graph: ModelGraph): ParamLayout {
  return layoutOf(graph.params.filter((p) => !p.trainable));
}
