/**
 * Adversarial feature distillation with several teachers (docs/distillation-methods.md §5, after
 * Dong et al. and GAN-KD). One small patch discriminator per teacher k and pyramid level l tells
 * the teacher's map T_l^(k) ("real") from the student's adapted map phi_l^(k)(S_l) ("fake"); the
 * student is pushed until it cannot. Both sides are PKD-normalised (mandatory: otherwise the
 * discriminator wins on magnitude alone). The loss is the non-saturating BCE [R], plus a PKD
 * anchor that keeps the student near the teacher while the discriminator is weak.
 *
 * Two gradient computations per step: {@link adversarialTerms} on the student tape (the
 * discriminator weights enter through a stop-gradient, so they never get a gradient there) and
 * {@link discriminatorLoss} on the discriminator's own tape (the student side enters through a
 * stop-gradient, so the student never gets a gradient there).
 */
import * as tf from '@tensorflow/tfjs';
import type { Level } from '../../models/core/spec.js';
import type { AdversarialConfig } from './config.js';
import type { KdContext, KdDims, KdLevel, KdParamSpec, KdTeacherView, KdTerms } from './types.js';
import { pkdNorm, sg } from './common.js';

/** One convolution of the discriminator: HWIO filter and bias. */
export interface ConvLayer {
  /** [kh, kw, cin, cout] */
  weight: tf.Tensor4D;
  /** [cout] */
  bias: tf.Tensor1D;
}

/**
 * The discriminator of §5(c): conv3x3 s1, conv3x3 s2, conv3x3 s2 (each followed by
 * LeakyReLU 0.2), then conv1x1 to one patch logit. No BatchNorm: real and fake batches are
 * passed separately and batch statistics would leak which is which.
 */
const DISC_LAYERS = [
  { id: 'd1', kernel: 3, stride: 1 },
  { id: 'd2', kernel: 3, stride: 2 },
  { id: 'd3', kernel: 3, stride: 2 },
  { id: 'd4', kernel: 1, stride: 1 },
] as const;

const LEAKY_SLOPE = 0.2;

/**
 * Parameter-name prefix of the discriminator judging teacher `teacher` at `level`.
 * @example discriminatorPrefix(0, 3) === 'adv.t0.P3'
 */
export function discriminatorPrefix(teacher: number, level: Level): string {
  return `adv.t${teacher}.P${level}`;
}

/**
 * Parameter specs of one discriminator (group 'discriminator'; he-normal weights, zero biases).
 * @param prefix - e.g. 'adv.t0.P3'
 * @param inChannels - C_t, the width of the maps it judges
 * @param channels - hidden width C
 */
export function discriminatorSpecs(prefix: string, inChannels: number, channels: number): KdParamSpec[] {
  const specs: KdParamSpec[] = [];
  DISC_LAYERS.forEach((layer, i) => {
    const cin = i === 0 ? inChannels : channels;
    const cout = i === DISC_LAYERS.length - 1 ? 1 : channels;
    specs.push(
      {
        name: `${prefix}.${layer.id}.weight`,
        shape: [layer.kernel, layer.kernel, cin, cout],
        init: { kind: 'he-normal' },
        group: 'discriminator',
      },
      { name: `${prefix}.${layer.id}.bias`, shape: [cout], init: { kind: 'zeros' }, group: 'discriminator' },
    );
  });
  return specs;
}

/**
 * Declares one discriminator per teacher k and per level of `cfg.levels` that teacher k has
 * (`dims.teacherNeckChannels[k]`), named `adv.t<k>.P<l>.d<1..4>.{weight,bias}`.
 */
export function adversarialParams(cfg: AdversarialConfig, dims: KdDims): KdParamSpec[] {
  const specs: KdParamSpec[] = [];
  dims.teacherNeckChannels.forEach((channels, k) => {
    for (const level of uniqueLevels(cfg.levels)) {
      const cin = channels[level];
      if (cin === undefined) continue;
      specs.push(...discriminatorSpecs(discriminatorPrefix(k, level), cin, cfg.channels));
    }
  });
  return specs;
}

/**
 * Runs a discriminator.
 * @param x - features [N, H, W, C_t]
 * @param layers - the four convolutions, in order (see {@link discriminatorSpecs})
 * @returns patch logits [N, ceil(H/4), ceil(W/4), 1]
 */
export function discriminatorForward(x: tf.Tensor4D, layers: readonly ConvLayer[]): tf.Tensor4D {
  if (layers.length !== DISC_LAYERS.length) {
    throw new RangeError(`'layers' must hold ${DISC_LAYERS.length} convolutions, got ${layers.length}`);
  }
  return tf.tidy(() => {
    let h = x;
    layers.forEach((layer, i) => {
      const stride = DISC_LAYERS[i].stride;
      h = tf.add(tf.conv2d(h, layer.weight, stride, 'same'), layer.bias);
      if (i < layers.length - 1) h = tf.leakyRelu(h, LEAKY_SLOPE);
    });
    return h;
  });
}

/**
 * Discriminator BCE from logits: mean BCE(d_real, y) + mean softplus(d_fake), where
 * BCE(z, y) = y·softplus(−z) + (1−y)·softplus(z) and y = `realLabel` (1, or 0.9 when smoothed).
 * @example logits 0 everywhere give 2 ln 2 = 1.386294; d_real = 2, d_fake = −1 give 0.440190
 */
export function discriminatorLogitLoss(dReal: tf.Tensor, dFake: tf.Tensor, realLabel = 1): tf.Scalar {
  return tf.tidy(() => {
    let real = tf.mean(tf.softplus(tf.neg(dReal)));
    if (realLabel !== 1) {
      real = tf.add(tf.mul(real, realLabel), tf.mul(tf.mean(tf.softplus(dReal)), 1 - realLabel));
    }
    return tf.add(real, tf.mean(tf.softplus(dFake))) as tf.Scalar;
  });
}

/**
 * Non-saturating generator loss from logits: mean softplus(−d_fake).
 * @example logits 0 give ln 2 = 0.693147; d_fake = −1 gives 1.313262
 */
export function generatorLogitLoss(dFake: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.softplus(tf.neg(dFake))) as tf.Scalar);
}

/**
 * The four convolutions of teacher k's discriminator at `level`. `frozen` wraps each in a
 * stop-gradient so that a student-side loss gives the discriminator no gradient at all.
 */
function discriminatorLayers(ctx: KdContext, teacher: number, level: Level, frozen: boolean): ConvLayer[] {
  const prefix = discriminatorPrefix(teacher, level);
  return DISC_LAYERS.map((layer) => {
    const weight = ctx.param(`${prefix}.${layer.id}.weight`) as tf.Tensor as tf.Tensor4D;
    const bias = ctx.param(`${prefix}.${layer.id}.bias`) as tf.Tensor as tf.Tensor1D;
    return frozen ? { weight: sg(weight), bias: sg(bias) } : { weight, bias };
  });
}

/**
 * Levels a teacher's discriminators judge: those of `cfg.levels` it really has. Synthetic levels
 * (upsampled from a coarser map) are left out, §5(e): a discriminator would tell a blurred map
 * from a sharp one rather than teacher features from student features.
 */
function judgedLevels(view: KdTeacherView, cfg: AdversarialConfig): KdLevel[] {
  const wanted = new Set<number>(cfg.levels);
  return view.neck.filter((lv) => wanted.has(lv.level) && !lv.synthetic);
}

/**
 * Student-side terms (call inside the student's gradient tape):
 * - 'adversarial.adv' = λ_adv · Σ_k ω_k (1/|L_k|) Σ_l mean softplus(−D_l^(k)(pkd(Ŝ_l^(k)))),
 *   omitted while `ctx.step < cfg.warmupSteps` (the discriminator trains alone) or when λ_adv = 0;
 * - 'adversarial.anchor' = λ_anc · Σ_k ω_k (1/|L_k|) Σ_l ½·mean (pkd(Ŝ_l^(k)) − pkd(T_l^(k)))²,
 *   omitted when λ_anc = 0.
 * L_k are the non-synthetic levels of `cfg.levels` teacher k has; Ŝ^(k) = `level.adapted` of
 * view k. Discriminator weights enter through a stop-gradient: this tape gives them no gradient.
 * @returns already weighted by λ; terms with no level anywhere are omitted
 */
export function adversarialTerms(ctx: KdContext, cfg: AdversarialConfig): KdTerms {
  const useAdv = cfg.adversarial > 0 && ctx.step >= cfg.warmupSteps;
  const useAnc = cfg.anchor > 0;
  if (!useAdv && !useAnc) return {};
  return tf.tidy(() => {
    const adv: tf.Scalar[] = [];
    const anc: tf.Scalar[] = [];
    ctx.teachers.forEach((view, k) => {
      const levels = judgedLevels(view, cfg);
      if (levels.length === 0) return;
      const scale = view.weight / levels.length;
      for (const lv of levels) {
        const fake = pkdNorm(lv.adapted);
        if (useAdv) {
          const d = discriminatorForward(fake, discriminatorLayers(ctx, k, lv.level, true));
          adv.push(tf.mul(generatorLogitLoss(d), scale));
        }
        if (useAnc) {
          const diff = tf.sub(fake, pkdNorm(lv.teacher));
          anc.push(tf.mul(tf.mean(tf.square(diff)), 0.5 * scale));
        }
      }
    });
    const terms: KdTerms = {};
    if (adv.length > 0) terms['adversarial.adv'] = tf.mul(tf.addN(adv), cfg.adversarial);
    if (anc.length > 0) terms['adversarial.anchor'] = tf.mul(tf.addN(anc), cfg.anchor);
    return terms;
  });
}

/**
 * Discriminator loss L_D = Σ_k ω_k (1/|L_k|) Σ_l [ mean BCE(D(pkd(T)), realLabel)
 * + mean softplus(D(pkd(sg(Ŝ)))) ], for the discriminator's own optimiser (Adam, cfg.lr,
 * cfg.beta1/2), trained from step 0 (also during the warm-up). The student side enters through
 * a stop-gradient, so this tape never reaches a student or adapter variable.
 * @returns a scalar; 0 (a constant) when no teacher has a judged level
 */
export function discriminatorLoss(ctx: KdContext, cfg: AdversarialConfig): tf.Scalar {
  return tf.tidy(() => {
    const parts: tf.Scalar[] = [];
    ctx.teachers.forEach((view, k) => {
      const levels = judgedLevels(view, cfg);
      if (levels.length === 0) return;
      const scale = view.weight / levels.length;
      for (const lv of levels) {
        const layers = discriminatorLayers(ctx, k, lv.level, false);
        const dReal = discriminatorForward(pkdNorm(lv.teacher), layers);
        const dFake = discriminatorForward(pkdNorm(sg(lv.adapted)), layers);
        parts.push(tf.mul(discriminatorLogitLoss(dReal, dFake, cfg.realLabel), scale));
      }
    });
    return parts.length > 0 ? (tf.addN(parts) as tf.Scalar) : tf.scalar(0);
  });
}

function uniqueLevels(levels: readonly number[]): Level[] {
  return [...new Set(levels)].filter((l): l is Level => l >= 2 && l <= 5);
}
