/**
 * Training-only KD parameters (adapters, HMKD decoder, discriminators) as flat layouts with
 * seeded initial values. Plain arrays, no tfjs: the trainer's main thread owns them like the
 * student's weights. They are saved in checkpoints under `kd/` and never exported.
 */
import seedrandom from 'seedrandom';
import type { ParamLayout, ParamSlot } from '../trainer/param-layout.js';
import type { KdParamSpec } from './types.js';
import { KD_PARAM_PREFIX } from '../../models/core/checkpoint.js';

/** Checkpoint-name prefix of KD parameters (the exporter only reads spec parameter names). */
/** One definition: models/core's deployWeights drops exactly these when exporting. */
export const KD_CHECKPOINT_PREFIX = KD_PARAM_PREFIX;

/** Layout of KD parameters of one group, starting at `offset` (to append after the student's). */
export function kdLayout(specs: KdParamSpec[], group: KdParamSpec['group'], offset = 0): ParamLayout {
  const slots: ParamSlot[] = [];
  let o = offset;
  for (const p of specs.filter((s) => s.group === group)) {
    const length = p.shape.reduce((a, b) => a * b, 1);
    slots.push({ name: p.name, shape: p.shape, offset: o, length, decay: p.name.endsWith('.weight') });
    o += length;
  }
  return { slots, total: o - offset };
}

/** Deterministic initial values for one KD parameter. */
export function kdInitValues(p: KdParamSpec, rng: () => number): Float32Array {
  const size = p.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  switch (p.init.kind) {
    case 'zeros':
      break;
    case 'constant':
      out.fill(p.init.value);
      break;
    case 'identity': {
      const c = p.shape[p.shape.length - 1];
      for (let i = 0; i < c; i++) out[i * c + i] = 1;
      break;
    }
    case 'he-normal': {
      const fanIn = p.shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const std = Math.sqrt(2 / Math.max(1, fanIn));
      for (let i = 0; i < size; i++) {
        const u = Math.max(rng(), 1e-12);
        out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng()) * std;
      }
      break;
    }
  }
  return out;
}

/** Initial values of every KD parameter of `group`, flat in layout order. */
export function kdInitialFlat(specs: KdParamSpec[], group: KdParamSpec['group'], seed: number): Float32Array {
  const rng = seedrandom(`edgekd-kd-init-${seed}`);
  const layout = kdLayout(specs, group);
  const flat = new Float32Array(layout.total);
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const slot of layout.slots) flat.set(kdInitValues(byName.get(slot.name)!, rng), slot.offset);
  return flat;
}
