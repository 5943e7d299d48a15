/**
 * The edgekd checkpoint: one safetensors file holding the model spec, every parameter
 * (`param/<name>`), the EMA of the trainable ones (`ema/<name>`), optimiser moments
 * (`optim/m`, `optim/v`) and the trainer state. Export and runtime tooling read it
 * through here (models/core), so they never import train/.
 */
import { parseModelSpec, type ModelSpec } from './spec.js';
import { ModelFormatError } from './errors.js';
import { encodeSafetensors, readSafetensors, writeFileAtomic, type NamedTensor } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'edgekd-checkpoint';

/** Trainer progress saved with the weights so `--resume` continues where it stopped. */
export interface TrainerState {
  epoch: number;
  globalStep: number;
  optimizerKind: 'adamw' | 'sgd';
  optimizerStep: number;
  emaUpdates: number;
  /** The resolved train config of the run (for resume and provenance). */
  config: unknown;
  metrics?: Record<string, number>;
}

export interface Checkpoint {
  spec: ModelSpec;
  /** All parameters (trainable and BN moving statistics) by graph name. */
  params: Map<string, NamedTensor>;
  /** EMA of trainable parameters; empty when EMA was off. */
  ema: Map<string, NamedTensor>;
  optimizer?: { m: Float32Array; v: Float32Array };
  state?: TrainerState;
}

/** Writes a checkpoint atomically. */
export function saveCheckpoint(path: string, ckpt: Checkpoint): void {
  const tensors = new Map<string, NamedTensor>();
  for (const [k, t] of ckpt.params) tensors.set(`param/${k}`, t);
  for (const [k, t] of ckpt.ema) tensors.set(`ema/${k}`, t);
  if (ckpt.optimizer) {
    tensors.set('optim/m', { shape: [ckpt.optimizer.m.length], data: ckpt.optimizer.m });
    tensors.set('optim/v', { shape: [ckpt.optimizer.v.length], data: ckpt.optimizer.v });
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    version: '1',
    spec: JSON.stringify(ckpt.spec),
  };
  if (ckpt.state) metadata.state = JSON.stringify(ckpt.state);
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/**
 * Loads and validates a checkpoint.
 * @throws {ModelFormatError} when it is not an edgekd checkpoint or its spec is invalid
 */
export function loadCheckpoint(path: string): Checkpoint {
  const f = readSafetensors(path);
  if (f.metadata.format !== CHECKPOINT_FORMAT) {
    throw new ModelFormatError(
      'ERR_CHECKPOINT',
      `'${path}' is not an edgekd checkpoint (metadata.format = ${String(f.metadata.format)})`,
    );
  }
  let specJson: unknown;
  try {
    specJson = JSON.parse(f.metadata.spec ?? '');
  } catch (e) {
    throw new ModelFormatError('ERR_CHECKPOINT', `'${path}': the embedded model spec is not valid JSON`, {
      cause: e,
    });
  }
  const spec = parseModelSpec(specJson, `model spec in '${path}'`);
  const params = new Map<string, NamedTensor>();
  const ema = new Map<string, NamedTensor>();
  for (const [k, t] of f.tensors) {
    if (k.startsWith('param/')) params.set(k.slice(6), t);
    else if (k.startsWith('ema/')) ema.set(k.slice(4), t);
  }
  const m = f.tensors.get('optim/m');
  const v = f.tensors.get('optim/v');
  const state = f.metadata.state ? (JSON.parse(f.metadata.state) as TrainerState) : undefined;
  return { spec, params, ema, optimizer: m && v ? { m: m.data, v: v.data } : undefined, state };
}

/** Prefix of distillation-only parameters (adapters, decoders, discriminators) in a checkpoint. */
export const KD_PARAM_PREFIX = 'kd/';

/**
 * The weights to deploy or evaluate: EMA values where present, raw otherwise, plus the BN
 * moving statistics. Distillation-only parameters (`kd/...`) are training state kept for
 * --resume; the student never uses them, so they are left out.
 */
export function deployWeights(ckpt: Checkpoint): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const [k, t] of ckpt.params) if (!k.startsWith(KD_PARAM_PREFIX)) out.set(k, t);
  for (const [k, t] of ckpt.ema) if (!k.startsWith(KD_PARAM_PREFIX)) out.set(k, t);
  return out;
}
