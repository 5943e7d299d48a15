/**
 * The contract between the trainer and the distillation methods. The trainer builds one
 * KdContext per micro-batch inside the gradient tape: student tensors are live (they carry
 * gradients), teacher tensors are constants already aligned to the student's grids.
 * Each method turns the context into named, unweighted loss terms; the trainer weights them.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Level } from '../../models/core/spec.js';

/** One pyramid level where the student and a teacher meet, on the student's grid. */
export interface KdLevel {
  /** 2..5 (stride 4..32). */
  level: Level;
  stride: number;
  /** Raw student feature S_l [N, H_l, W_l, C_s] (live: gradients flow). */
  student: tf.Tensor4D;
  /** Adapted student feature phi_l(S_l) [N, H_l, W_l, C_t] (live; 1x1 adapter, dropped at export). */
  adapted: tf.Tensor4D;
  /** Teacher feature T_l [N, H_l, W_l, C_t], aligned to the student grid; a constant. */
  teacher: tf.Tensor4D;
  /** True when the teacher has no map of this stride and T_l was upsampled from the next one. */
  synthetic: boolean;
}

/** Everything one teacher contributes for a micro-batch. */
export interface KdTeacherView {
  /** Teacher name from the config (for loss-term names with several teachers). */
  name: string;
  /** Ensemble weight omega_k (weights over all teachers sum to 1). */
  weight: number;
  /** Neck levels (student P_l vs teacher neck at the same stride), ascending stride. */
  neck: KdLevel[];
  /** Backbone levels (student C_l vs teacher backbone) where the teacher exposes them; may be empty. */
  backbone: KdLevel[];
  /**
   * Teacher class probabilities mapped to the student's classes, on the student's head grid
   * [N, H_h, W_h, K]; a constant. Absent when the teacher has no dense head.
   */
  headProb?: tf.Tensor4D;
}

/** A ground-truth box in student-input pixels. */
export interface KdBox {
  box: [number, number, number, number];
  classId: number;
  /** Don't-care region: excluded from foreground and background everywhere. */
  ignore: boolean;
}

export interface KdContext {
  /** Student head logits [N, H_h, W_h, K] (live). */
  headLogits: tf.Tensor4D;
  /** Student head stride (4 for the CenterNet-style student). */
  headStride: number;
  /** Input size of the student, pixels. */
  inputHeight: number;
  inputWidth: number;
  /** Per image of the micro-batch, its boxes (labels or teacher pseudo-labels). */
  gts: KdBox[][];
  /** teachers[0] is the primary teacher; the adversarial method may use all of them. */
  teachers: KdTeacherView[];
  /** Optimiser steps done so far (for method-internal schedules such as a discriminator warm-up). */
  step: number;
  /** A method-owned trainable variable declared through `KdParamSpec` (throws if undeclared). */
  param(name: string): tf.Variable;
}

/** A training-only variable a method owns (discarded at export). */
export interface KdParamSpec {
  /** Unique, prefixed by the method: e.g. 'hmkd.abf4.in.weight'. */
  name: string;
  shape: number[];
  /** he-normal (fan-in = product of all but the last dim), zeros, or a constant. */
  init:
    | { kind: 'he-normal' }
    | { kind: 'zeros' }
    | { kind: 'constant'; value: number }
    /** 1x1 conv kernel [1, 1, C, C] set to the identity (adapters when C_s == C_t). */
    | { kind: 'identity' };
  /** 'student' joins the student's optimiser; 'discriminator' has its own (adversarial only). */
  group: 'student' | 'discriminator';
}

/** Dimensions a method needs to declare its parameters. */
export interface KdDims {
  /** Per teacher: channels of its (aligned) neck map by level, for the levels it covers. */
  teacherNeckChannels: Partial<Record<Level, number>>[];
  /** Student neck width per level. */
  studentNeckChannels: Partial<Record<Level, number>>;
}

/** Named, unweighted loss terms (scalars) of one method; the trainer applies lambda(t). */
export type KdTerms = Record<string, tf.Scalar>;
