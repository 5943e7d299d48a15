/** Builders shared by the KD method tests: levels, contexts, parameter stores and gradient checks. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { Level } from '../../models/core/spec.js';
import type { KdBox, KdContext, KdLevel, KdParamSpec, KdTeacherView } from '../../train/distill/types.js';

/** A KdLevel with identity adapter unless `adapted` is given. */
export function kdLevel(
  level: Level,
  student: tf.Tensor4D,
  teacher: tf.Tensor4D,
  adapted = student,
  synthetic = false,
): KdLevel {
  return { level, stride: 2 ** level, student, adapted, teacher, synthetic };
}

/** A level whose adapted map is computed from trainable student and 1x1 adapter variables. */
export interface AdaptedLevelSetup {
  level: Level;
  synthetic?: boolean;
  /** Raw student map (a variable, so gradients can be checked). */
  student: tf.Variable;
  /** 1x1 adapter [1,1,C_s,C_t]. */
  adapter: tf.Variable;
  teacher: tf.Tensor4D;
}

/** KdLevels with `adapted = conv2d(student, adapter)`; call inside the gradient closure so they are on the tape. */
export function adaptedKdLevels(levels: AdaptedLevelSetup[]): KdLevel[] {
  return levels.map((l) => ({
    level: l.level,
    stride: 2 ** l.level,
    student: l.student as tf.Tensor as tf.Tensor4D,
    adapted: tf.conv2d(
      l.student as tf.Tensor as tf.Tensor4D,
      l.adapter as tf.Tensor as tf.Tensor4D,
      1,
      'same',
    ),
    teacher: l.teacher,
    synthetic: l.synthetic ?? false,
  }));
}

let serial = 0;

/** Variables for the given specs (he-normal with a fixed seed, zeros, constants), keyed by spec name. */
export function paramStore(specs: KdParamSpec[], seed = 1): Map<string, tf.Variable> {
  const vars = new Map<string, tf.Variable>();
  specs.forEach((s, i) => {
    const fanIn = s.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const init =
      s.init.kind === 'he-normal'
        ? tf.randomNormal(s.shape, 0, Math.sqrt(2 / fanIn), 'float32', seed + i)
        : s.init.kind === 'constant'
          ? tf.fill(s.shape, s.init.value)
          : s.init.kind === 'identity'
            ? tf.eye(s.shape[3]).reshape(s.shape)
            : tf.zeros(s.shape);
    vars.set(s.name, tf.variable(init, true, `${s.name}#${serial++}`));
    init.dispose();
  });
  return vars;
}

/** What a test context is built from; everything but the levels has a default. */
export interface KdContextParts {
  /** Neck levels of the single teacher 't' (ignored when `teachers` is given). */
  neck?: KdLevel[];
  /** Backbone levels of the single teacher 't' (default none). */
  backbone?: KdLevel[];
  /** Head probability of the single teacher 't'. */
  headProb?: tf.Tensor4D;
  /** Full teacher list, replacing the single teacher 't'. */
  teachers?: KdTeacherView[];
  /** Default zeros [1,1,1,1]. */
  headLogits?: tf.Tensor4D;
  /** Default 4. */
  headStride?: number;
  /** [height, width] of the input; default [64, 64]. */
  size?: [number, number];
  /** Default none. */
  gts?: KdBox[][];
  /** Default 0. */
  step?: number;
  /** Declared parameters (from `paramStore`); without it every `param` lookup throws. */
  params?: Map<string, tf.Variable>;
}

/** A KdContext from the given parts. */
export function kdContext(p: KdContextParts): KdContext {
  const params = p.params;
  return {
    headLogits: p.headLogits ?? (tf.zeros([1, 1, 1, 1]) as tf.Tensor4D),
    headStride: p.headStride ?? 4,
    inputHeight: p.size?.[0] ?? 64,
    inputWidth: p.size?.[1] ?? 64,
    gts: p.gts ?? [],
    teachers: p.teachers ?? [
      { name: 't', weight: 1, neck: p.neck ?? [], backbone: p.backbone ?? [], headProb: p.headProb },
    ],
    step: p.step ?? 0,
    param(name: string): tf.Variable {
      if (!params) throw new RangeError(`no param '${name}'`);
      const v = params.get(name);
      if (!v) throw new RangeError(`'name' must be a declared parameter, got ${name}`);
      return v;
    },
  };
}

/** Random pyramid: levels 2..5 of an input `size`, C channels, seeded. */
export function randomPyramid(size: number, c: number, seed: number, n = 1): tf.Tensor4D[] {
  return [2, 3, 4, 5].map(
    (l, i) => tf.randomNormal([n, size >> l, size >> l, c], 0, 1, 'float32', seed + i) as tf.Tensor4D,
  );
}

/**
 * Every variable got a finite, not all-zero gradient, and an SGD step with those gradients leaves the
 * teacher tensors as they were (`before` holds their values).
 */
export function assertStudentOnlyStep(
  grads: tf.NamedTensorMap,
  vars: tf.Variable[],
  teachers: tf.Tensor[],
  before: number[][],
): void {
  for (const v of vars) {
    const g = grads[v.name].dataSync();
    assert.ok(g.every(Number.isFinite), v.name);
    assert.ok(
      g.some((x) => x !== 0),
      `${v.name} all zero`,
    );
  }
  new tf.SGDOptimizer(0.1).applyGradients(grads);
  teachers.forEach((x, i) => assert.deepEqual(Array.from(x.dataSync()), before[i]));
}

/** Asserts |got - want| <= tol, naming the value and both numbers on failure. */
export function close(got: number, want: number, tol = 1e-5, what = ''): void {
  assert.ok(Math.abs(got - want) <= tol, `${what} ${got} vs ${want} (tol ${tol})`);
}
