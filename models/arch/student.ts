/**
 * The tfjs executor of the student graph (see graph.ts): owns the variables and runs the
 * forward pass in training (batch statistics) or inference (moving statistics) mode.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelSpec } from '../core/spec.js';
import { ModelFormatError } from '../core/errors.js';
import { buildGraph, initialWeights, type ModelGraph, type TapName, TAP_NAMES } from './graph.js';
import { batchNormActTrain, batchNormInfer, type BatchStats } from './batch-norm.js';

/** Raw outputs of one forward pass. Spatial size is input / 4 for the heads. */
export interface StudentOutput {
  /** Heatmap logits [B, H/4, W/4, numClasses] (apply sigmoid for probabilities). */
  heatmap: tf.Tensor4D;
  /** log(w / stride), log(h / stride) [B, H/4, W/4, 2]. */
  size: tf.Tensor4D;
  /** Sub-cell centre offset in cells [B, H/4, W/4, 2] (x, y). */
  offset: tf.Tensor4D;
  /** Feature taps for distillation: C2..C5 (backbone) and P2..P5 (FPN), NHWC. */
  features: Record<TapName, tf.Tensor4D>;
}

export interface ForwardOptions {
  training: boolean;
  /** Training mode only: receives each BN node's batch statistics (caller disposes them). */
  onBatchStats?: (bnName: string, stats: BatchStats) => void;
}

/** Plain-array weights, keyed by parameter name, for checkpoints and worker transfer. */
export type WeightMap = Record<string, { shape: number[]; data: Float32Array }>;

export class Student {
  readonly spec: ModelSpec;
  readonly graph: ModelGraph;
  /** Every parameter (trainable and BN moving statistics) by name. */
  readonly params = new Map<string, tf.Variable>();
  /**
   * Training mode fuses BN with the activation that is its only consumer (one op, whose backward
   * recomputes the mask): BN node name -> that activation node. Same numerics as unfused.
   */
  private readonly fusedAct = new Map<string, { name: string; op: 'relu' | 'relu6' }>();

  /**
   * @param spec - validated model spec
   * @param seed - weight-initialisation seed (same seed, same weights)
   */
  constructor(spec: ModelSpec, seed = 0) {
    this.spec = spec;
    this.graph = buildGraph(spec);
    const init = initialWeights(this.graph, seed);
    for (const p of this.graph.params) {
      const t = tf.tensor(init.get(p.name)!, p.shape, 'float32');
      this.params.set(
        p.name,
        tf.variable(t, p.trainable, `${spec.name}/${p.name}/${Math.random().toString(36).slice(2)}`),
      );
      t.dispose();
    }
    const uses = new Map<string, number>();
    const use = (n: string): void => void uses.set(n, (uses.get(n) ?? 0) + 1);
    for (const n of this.graph.nodes) {
      if ('inputs' in n) n.inputs.forEach(use);
      else if ('input' in n) use(n.input);
    }
    Object.values(this.graph.taps).forEach(use);
    Object.values(this.graph.outputs).forEach(use);
    for (const n of this.graph.nodes) {
      if ((n.op === 'relu' || n.op === 'relu6') && uses.get(n.input) === 1)
        this.fusedAct.set(n.input, { name: n.name, op: n.op });
    }
  }

  /** Trainable variables in graph order (the order the optimiser and gradient averaging use). */
  trainableVariables(): tf.Variable[] {
    return this.graph.params.filter((p) => p.trainable).map((p) => this.params.get(p.name)!);
  }

  private p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new ModelFormatError('ERR_MODEL_FORMAT', `missing parameter '${name}'`);
    return v;
  }

  /**
   * Runs the network.
   * @param imageNhwc - [B, H, W, 3], already normalised per the spec
   */
  apply(imageNhwc: tf.Tensor4D, opts: ForwardOptions): StudentOutput {
    const { height, width } = this.spec.input;
    if (imageNhwc.shape[1] !== height || imageNhwc.shape[2] !== width || imageNhwc.shape[3] !== 3) {
      throw new RangeError(
        `'imageNhwc' must be [B, ${height}, ${width}, 3], got [${imageNhwc.shape.join(', ')}]`,
      );
    }
    const values = new Map<string, tf.Tensor4D>([['image', imageNhwc]]);
    const get = (n: string): tf.Tensor4D => values.get(n)!;
    for (const n of this.graph.nodes) {
      if (values.has(n.name)) continue; // produced by a fused BN + activation
      let y: tf.Tensor4D;
      switch (n.op) {
        case 'conv': {
          const w = this.p(`${n.name}.weight`);
          const x = get(n.input);
          y = n.depthwise
            ? tf.depthwiseConv2d(x, w as tf.Tensor4D, n.stride, 'same')
            : tf.conv2d(x, w as tf.Tensor4D, n.stride, 'same');
          if (n.bias) y = y.add(this.p(`${n.name}.bias`));
          break;
        }
        case 'bn': {
          const gamma = this.p(`${n.name}.gamma`) as tf.Tensor1D;
          const beta = this.p(`${n.name}.beta`) as tf.Tensor1D;
          if (opts.training) {
            const cb = opts.onBatchStats;
            const act = this.fusedAct.get(n.name);
            y = batchNormActTrain(
              get(n.input),
              gamma,
              beta,
              n.epsilon,
              act?.op ?? 'linear',
              cb ? (s) => cb(n.name, s) : undefined,
            );
            if (act) {
              values.set(act.name, y);
              continue;
            }
          } else {
            y = batchNormInfer(
              get(n.input),
              gamma,
              beta,
              this.p(`${n.name}.movingMean`) as tf.Tensor1D,
              this.p(`${n.name}.movingVariance`) as tf.Tensor1D,
              n.epsilon,
            );
          }
          break;
        }
        case 'relu':
          y = tf.relu(get(n.input));
          break;
        case 'relu6':
          y = tf.relu6(get(n.input));
          break;
        case 'add':
          y = tf.add(get(n.inputs[0]), get(n.inputs[1]));
          break;
        case 'upsample2x': {
          const x = get(n.input);
          y = tf.image.resizeNearestNeighbor(x, [x.shape[1] * 2, x.shape[2] * 2], false, false);
          break;
        }
      }
      values.set(n.name, y);
    }
    const features = {} as Record<TapName, tf.Tensor4D>;
    for (const t of TAP_NAMES) features[t] = get(this.graph.taps[t]);
    return {
      heatmap: get(this.graph.outputs.heatmap),
      size: get(this.graph.outputs.size),
      offset: get(this.graph.outputs.offset),
      features,
    };
  }

  /** Copies every parameter out as plain arrays. */
  getWeights(): WeightMap {
    const out: WeightMap = {};
    for (const [name, v] of this.params)
      out[name] = { shape: v.shape.slice(), data: v.dataSync().slice() as Float32Array };
    return out;
  }

  /**
   * Loads weights by name. Every parameter of the graph must be present with its exact shape.
   * @throws {ModelFormatError} naming the missing or mis-shaped parameter
   */
  setWeights(weights: WeightMap, source = 'weights'): void {
    for (const p of this.graph.params) {
      const w = weights[p.name];
      if (!w)
        throw new ModelFormatError(
          'ERR_MODEL_FORMAT',
          `${source}: missing parameter '${p.name}' required by the model spec`,
        );
      if (w.shape.length !== p.shape.length || w.shape.some((d, i) => d !== p.shape[i])) {
        throw new ModelFormatError(
          'ERR_MODEL_FORMAT',
          `${source}: parameter '${p.name}' has shape [${w.shape.join(', ')}], the model spec needs [${p.shape.join(', ')}]`,
        );
      }
    }
    const extra = Object.keys(weights).filter((k) => !this.params.has(k));
    if (extra.length)
      throw new ModelFormatError(
        'ERR_MODEL_FORMAT',
        `${source}: unexpected parameters not in the model spec: ${extra.slice(0, 5).join(', ')}`,
      );
    for (const p of this.graph.params) {
      const w = weights[p.name];
      tf.tidy(() => this.params.get(p.name)!.assign(tf.tensor(w.data, w.shape, 'float32')));
    }
  }

  /** Frees every variable. */
  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}
