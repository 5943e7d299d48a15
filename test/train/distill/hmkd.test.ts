import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { Level } from '../../../models/core/spec.js';
import { HmkdConfigSchema, type HmkdConfig } from '../../../train/distill/config.js';
import {
  abfForward,
  adaptiveAvgPool,
  attentionMatchLoss,
  groupChildren,
  hcl,
  hmkdParams,
  hmkdTerms,
  objectWeights,
  supplementaryLoss,
  type AbfWeights,
} from '../../../train/distill/hmkd.js';
import type { KdBox, KdContext, KdDims } from '../../../train/distill/types.js';
import {
  close,
  adaptedKdLevels,
  kdContext,
  paramStore,
  type AdaptedLevelSetup,
} from '../../helpers/kd-context.js';

await tf.setBackend('cpu');

const INPUT = 64;

/** Builds the context; call it inside the gradient closure so adapted maps are on the tape. */
function buildCtx(levels: AdaptedLevelSetup[], params: Map<string, tf.Variable>, gts: KdBox[][]): KdContext {
  return kdContext({
    size: [INPUT, INPUT],
    gts,
    teachers: [{ name: 't0', weight: 1, backbone: [], neck: adaptedKdLevels(levels) }],
    params,
  });
}

const GTS: KdBox[][] = [
  [
    { box: [4, 4, 20, 28], classId: 0, ignore: false },
    { box: [40, 10, 42, 13], classId: 0, ignore: false }, // tiny: centre-cell fallback on P3/P4
  ],
  [
    { box: [10, 30, 50, 60], classId: 0, ignore: false },
    { box: [0, 0, 16, 16], classId: 0, ignore: true },
  ],
];

/** Random setup on a 64x64 input: P2 16x16, P3 8x8, P4 4x4; student width 5, teacher widths per level. */
function randomSetup(
  seed: number,
  widths: Partial<Record<Level, number>> = { 2: 6, 3: 6, 4: 6 },
  syntheticP2 = false,
): { levels: AdaptedLevelSetup[]; dims: KdDims } {
  const n = 2;
  const cs = 5;
  const levels: AdaptedLevelSetup[] = [];
  for (const level of [2, 3, 4] as Level[]) {
    const ct = widths[level];
    if (ct === undefined) continue;
    const hw = INPUT / 2 ** level;
    const s = seed + 10 * level;
    levels.push({
      level,
      synthetic: syntheticP2 && level === 2,
      student: tf.variable(tf.randomNormal([n, hw, hw, cs], 0, 1, 'float32', s)),
      adapter: tf.variable(tf.randomNormal([1, 1, cs, ct], 0, 0.5, 'float32', s + 1)),
      teacher: tf.randomNormal([n, hw, hw, ct], 0, 1, 'float32', s + 2) as tf.Tensor4D,
    });
  }
  return { levels, dims: { teacherNeckChannels: [widths], studentNeckChannels: { 2: cs, 3: cs, 4: cs } } };
}

/** Student == teacher, identity adapters. */
function identitySetup(seed: number, c = 4): AdaptedLevelSetup[] {
  return ([2, 3, 4] as Level[]).map((level) => {
    const hw = INPUT / 2 ** level;
    const t = tf.randomNormal([2, hw, hw, c], 0, 1, 'float32', seed + level) as tf.Tensor4D;
    return {
      level,
      student: tf.variable(t.clone()),
      adapter: tf.variable(tf.eye(c).reshape([1, 1, c, c])),
      teacher: t,
    };
  });
}

function cfgOf(over: Partial<HmkdConfig> = {}): HmkdConfig {
  return { ...HmkdConfigSchema.parse({}), midChannels: 8, ...over };
}

function disposeSetup(levels: AdaptedLevelSetup[], params: Map<string, tf.Variable>): void {
  for (const l of levels) tf.dispose([l.student, l.adapter, l.teacher]);
  for (const p of params.values()) p.dispose();
}

test('groups the 2x2 children of each deep cell in row-major order', () => {
  const x = tf.range(0, 16).reshape([1, 4, 4, 1]) as tf.Tensor4D;
  const g = groupChildren(x, 2);
  assert.deepEqual(g.shape, [1, 2, 2, 4, 1]);
  assert.deepEqual(g.reshape([2, 2, 4]).arraySync(), [
    [
      [0, 1, 4, 5],
      [2, 3, 6, 7],
    ],
    [
      [8, 9, 12, 13],
      [10, 11, 14, 15],
    ],
  ]);
  assert.throws(() => groupChildren(x, 3), { name: 'RangeError', message: /'r'/ });
  tf.dispose([x, g]);
});

test('attention matching of the hand example gives 0.231059, and 0 for identical children', () => {
  const e = tf.tensor4d([1, 0], [1, 1, 1, 2]);
  const kT = tf.tensor4d([1, 0, 0, 1, 1, 0, 0, 1], [1, 2, 2, 2]);
  const kS = tf.tensor4d([1, 0, 1, 0, 0, 1, 0, 1], [1, 2, 2, 2]);
  close(attentionMatchLoss(e, kT, kS, 2, 1).dataSync()[0], 0.231059, 1e-6, 'L_match');
  // Scale-free: rescaling the keys or the query changes nothing (ℓ2-normalised).
  close(
    attentionMatchLoss(e.mul(3) as tf.Tensor4D, kT, kS.mul(5) as tf.Tensor4D, 2, 1).dataSync()[0],
    0.231059,
    1e-6,
  );
  assert.ok(Math.abs(attentionMatchLoss(e, kT, kT, 2, 1).dataSync()[0]) < 1e-7);
  assert.throws(() => attentionMatchLoss(e, kT, kS, 4, 1), {
    name: 'RangeError',
    message: /'shallowTeacher'/,
  });
  tf.dispose([e, kT, kS]);
});

test('attention matching sends no gradient into the teacher side', () => {
  const e = tf.randomNormal([1, 2, 2, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const kT = tf.randomNormal([1, 4, 4, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
  const kS = tf.randomNormal([1, 4, 4, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const [gE, gT, gS] = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    attentionMatchLoss(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, 2, 0.2),
  )([e, kT, kS]);
  assert.ok(gE.dataSync().every((v) => v === 0) && gT.dataSync().every((v) => v === 0));
  assert.ok(gS.dataSync().some((v) => v !== 0));
  tf.dispose([e, kT, kS, gE, gT, gS]);
});

test('HCL: 4x4 checkerboard 0.571429, constant 1.0, 8x8 checkerboard 0.533333', () => {
  const checker = (h: number) =>
    tf.tensor4d(
      Array.from({ length: h * h }, (_, k) => ((Math.floor(k / h) + (k % h)) % 2 === 0 ? 1 : -1)),
      [1, h, h, 1],
    );
  const z4 = tf.zeros([1, 4, 4, 1]) as tf.Tensor4D;
  const z8 = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
  const c4 = checker(4);
  const c8 = checker(8);
  const one4 = tf.ones([1, 4, 4, 1]) as tf.Tensor4D;
  close(hcl(z4, c4).dataSync()[0], 0.571429, 1e-6, '4x4 checkerboard');
  close(hcl(z4, one4).dataSync()[0], 1.0, 1e-6, 'constant');
  close(hcl(z8, c8).dataSync()[0], 0.533333, 1e-6, '8x8 checkerboard');
  tf.dispose([z4, z8, c4, c8, one4]);
});

test('adaptive average pooling uses floor/ceil bins (overlapping when p does not divide the size)', () => {
  // 5x5 to 2x2: rows/cols [0,3) and [2,5).
  const x = tf.range(0, 25).reshape([1, 5, 5, 1]) as tf.Tensor4D;
  const p = adaptiveAvgPool(x, 2).dataSync();
  const mean = (r0: number, c0: number) => {
    let s = 0;
    for (let i = r0; i < r0 + 3; i++) for (let j = c0; j < c0 + 3; j++) s += i * 5 + j;
    return s / 9;
  };
  [mean(0, 0), mean(0, 2), mean(2, 0), mean(2, 2)].forEach((want, k) => close(p[k], want, 1e-5));
  // The divisible fast path equals the slice path (8x8 to 4x4 vs the same via 2x2 blocks).
  const y = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
  const fast = adaptiveAvgPool(y, 4);
  const ref = tf.avgPool(y, 2, 2, 'valid');
  close(tf.max(tf.abs(tf.sub(fast, ref))).dataSync()[0], 0, 1e-6);
  tf.dispose([x, y, fast, ref]);
});

test('supplementary loss of the hand example: L_fg = 2, L_bg = 1', () => {
  // 1x4 map, stride 4, one box over cells 0-1; squared differences [4, 0, 1, 1].
  const s = tf.tensor4d([2, 0, 1, -1], [1, 1, 4, 1]);
  const t = tf.zeros([1, 1, 4, 1]) as tf.Tensor4D;
  const { fg, bg } = supplementaryLoss(s, t, [[{ box: [0, 0, 8, 4], classId: 0, ignore: false }]], 4);
  close(fg.dataSync()[0], 2, 1e-6, 'L_fg');
  close(bg.dataSync()[0], 1, 1e-6, 'L_bg');
  // An ignore box over cell 3 removes it from the background.
  const ig = supplementaryLoss(
    s,
    t,
    [
      [
        { box: [0, 0, 8, 4], classId: 0, ignore: false },
        { box: [12, 0, 16, 4], classId: 0, ignore: true },
      ],
    ],
    4,
  );
  close(ig.fg.dataSync()[0], 2, 1e-6);
  close(ig.bg.dataSync()[0], 1, 1e-6);
  tf.dispose([s, t, fg, bg, ig.fg, ig.bg]);
});

test('object weights: per-object normalisation, centre-cell fallback, ignore cells in neither set', () => {
  // 4x4 grid, stride 8: a 2x2-cell object, a tiny object inside cell (3, 3), an ignore box over cell (0, 3).
  const w = objectWeights(
    [
      [
        { box: [0, 0, 16, 16], classId: 0, ignore: false },
        { box: [26, 26, 28, 28], classId: 0, ignore: false },
        { box: [24, 0, 32, 8], classId: 0, ignore: true },
      ],
    ],
    8,
    4,
    4,
  );
  assert.equal(w.objects, 2);
  assert.equal(w.bgCells, 16 - 4 - 1 - 1);
  close(w.fg[0], 1 / (4 * 2));
  close(w.fg[15], 1 / 2);
  assert.equal(w.fg[3], 0);
  assert.equal(w.bg[3], 0);
  assert.equal(w.bg[15], 0);
  close(w.bg[2], 1 / 10);
  close(
    w.fg.reduce((a, b) => a + b, 0),
    1,
  );
});

test('declares three ABF blocks (att on all but the deepest), none when the decoder is off', () => {
  const dims: KdDims = { teacherNeckChannels: [{ 2: 6, 3: 7, 4: 9 }], studentNeckChannels: {} };
  const specs = hmkdParams(cfgOf({ midChannels: 16 }), dims);
  const shape = (n: string) => specs.find((s) => s.name === n)?.shape;
  assert.deepEqual(shape('hmkd.abf4.in.weight'), [1, 1, 9, 16]);
  assert.deepEqual(shape('hmkd.abf4.out.weight'), [3, 3, 16, 9]);
  assert.equal(shape('hmkd.abf4.att.weight'), undefined);
  assert.deepEqual(shape('hmkd.abf3.att.weight'), [1, 1, 32, 2]);
  assert.deepEqual(shape('hmkd.abf2.out.bias'), [6]);
  assert.equal(specs.length, 4 + 6 + 6);
  assert.ok(specs.every((s) => s.group === 'student'));
  assert.deepEqual(hmkdParams(cfgOf({ decoder: 0 }), dims), []);
  // A teacher with P3/P4 only still gets a P2 block (target up(T_3), P3's width).
  const noP2 = hmkdParams(cfgOf(), { teacherNeckChannels: [{ 3: 7, 4: 9 }], studentNeckChannels: {} });
  assert.deepEqual(noP2.find((s) => s.name === 'hmkd.abf2.out.weight')?.shape, [3, 3, 8, 7]);
});

test('T0: student == teacher with identity adapters gives zero matching and supplementary terms', () => {
  const levels = identitySetup(31);
  const cfg = cfgOf();
  const params = paramStore(
    hmkdParams(cfg, { teacherNeckChannels: [{ 2: 4, 3: 4, 4: 4 }], studentNeckChannels: {} }),
  );
  const terms = hmkdTerms(buildCtx(levels, params, GTS), cfg);
  assert.deepEqual(Object.keys(terms).sort(), ['hmkd.decoder', 'hmkd.match', 'hmkd.supplementary']);
  assert.ok(Math.abs(terms['hmkd.match'].dataSync()[0]) < 1e-6, `match ${terms['hmkd.match'].dataSync()[0]}`);
  assert.ok(Math.abs(terms['hmkd.supplementary'].dataSync()[0]) < 1e-6);
  assert.ok(Number.isFinite(terms['hmkd.decoder'].dataSync()[0]));
  disposeSetup(levels, params);
});

test('T1: student, adapter and ABF gradients are finite and not all zero; no tensor leaks', () => {
  const { levels, dims } = randomSetup(41, { 2: 6, 3: 6, 4: 6 });
  const cfg = cfgOf();
  const params = paramStore(hmkdParams(cfg, dims));
  const vars = [...levels.flatMap((l) => [l.student, l.adapter]), ...params.values()];
  const { value, grads } = tf.variableGrads(() => {
    const terms = hmkdTerms(buildCtx(levels, params, GTS), cfg);
    assert.deepEqual(Object.keys(terms).sort(), ['hmkd.decoder', 'hmkd.match', 'hmkd.supplementary']);
    return tf.addN(Object.values(terms)) as tf.Scalar;
  }, vars);
  for (const v of vars) {
    const g = grads[v.name];
    assert.ok(g, `gradient for ${v.name}`);
    const d = g.dataSync();
    assert.ok(d.every(Number.isFinite) && d.some((x) => x !== 0), v.name);
  }
  tf.dispose([value, ...Object.values(grads)]);
  const ctx = buildCtx(levels, params, GTS);
  const before = tf.memory().numTensors;
  const terms = hmkdTerms(ctx, cfg);
  assert.equal(tf.memory().numTensors, before + 3);
  tf.dispose(Object.values(terms));
  disposeSetup(levels, params);
});

test('terms are weighted by their λ and omitted when λ is 0', () => {
  const { levels, dims } = randomSetup(51);
  const base = cfgOf();
  const params = paramStore(hmkdParams(base, dims));
  const ctx = buildCtx(levels, params, GTS);
  const one = hmkdTerms(ctx, base);
  const scaled = hmkdTerms(ctx, cfgOf({ match: 2, decoder: 3, supplementary: 0.5 }));
  close(scaled['hmkd.match'].dataSync()[0], 2 * one['hmkd.match'].dataSync()[0], 1e-5);
  close(scaled['hmkd.decoder'].dataSync()[0], 3 * one['hmkd.decoder'].dataSync()[0], 1e-4);
  close(scaled['hmkd.supplementary'].dataSync()[0], 0.5 * one['hmkd.supplementary'].dataSync()[0], 1e-5);
  const none = hmkdTerms(ctx, cfgOf({ match: 0, supplementary: 0, decoder: 0 }));
  assert.deepEqual(Object.keys(none), []);
  // α_bg = 0 leaves only the foreground part; fg and bg add up.
  const fgOnly = hmkdTerms(ctx, cfgOf({ match: 0, decoder: 0, alphaBg: 0 }))['hmkd.supplementary'];
  const bgOnly = hmkdTerms(ctx, cfgOf({ match: 0, decoder: 0, alphaFg: 0 }))['hmkd.supplementary'];
  close(fgOnly.dataSync()[0] + bgOnly.dataSync()[0], one['hmkd.supplementary'].dataSync()[0], 1e-5);
  disposeSetup(levels, params);
});

test('a synthetic P2 drops its matching pairs and halves its decoder and supplementary weight', () => {
  const { levels, dims } = randomSetup(61, { 2: 6, 3: 6, 4: 6 }, true);
  const cfg = cfgOf();
  const params = paramStore(hmkdParams(cfg, dims));
  const ctx = buildCtx(levels, params, GTS);
  const [l2, l3, l4] = ctx.teachers[0].neck;
  const only43 = attentionMatchLoss(l4.teacher, l3.teacher, l3.adapted, 2, cfg.tau).dataSync()[0];
  const terms = hmkdTerms(ctx, cfg);
  close(terms['hmkd.match'].dataSync()[0], only43, 1e-6, 'match');
  const norm = (x: tf.Tensor4D) => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const n = x.shape[0] * x.shape[1] * x.shape[2];
    return x.sub(mean).div(
      variance
        .mul(n / (n - 1))
        .sqrt()
        .add(1e-6),
    ) as tf.Tensor4D;
  };
  const sup = (lv: typeof l2) => {
    const { fg, bg } = supplementaryLoss(norm(lv.adapted), norm(lv.teacher), GTS, lv.stride);
    return fg.dataSync()[0] * cfg.alphaFg + bg.dataSync()[0] * cfg.alphaBg;
  };
  const want = (0.5 * sup(l2) + sup(l3) + sup(l4)) / 3;
  close(terms['hmkd.supplementary'].dataSync()[0], want, 1e-5, 'supplementary');
  // Decoder: the ABF chain 4 → 3 → 2 by hand, P2's HCL at half weight.
  const w = (l: number, fuse: boolean): AbfWeights => {
    const p = (n: string) => params.get(`hmkd.abf${l}.${n}`) as tf.Tensor;
    return {
      inWeight: p('in.weight') as tf.Tensor4D,
      inBias: p('in.bias') as tf.Tensor1D,
      attWeight: fuse ? (p('att.weight') as tf.Tensor4D) : undefined,
      attBias: fuse ? (p('att.bias') as tf.Tensor1D) : undefined,
      outWeight: p('out.weight') as tf.Tensor4D,
      outBias: p('out.bias') as tf.Tensor1D,
    };
  };
  const d4 = abfForward(l4.adapted, null, w(4, false));
  const d3 = abfForward(l3.adapted, d4.u, w(3, true));
  const d2 = abfForward(l2.adapted, d3.u, w(2, true));
  const h = (o: tf.Tensor4D, lv: typeof l2) => hcl(norm(o), norm(lv.teacher)).dataSync()[0];
  const dec = h(d4.out, l4) + h(d3.out, l3) + 0.5 * h(d2.out, l2);
  close(terms['hmkd.decoder'].dataSync()[0], dec, 1e-5, 'decoder');
  disposeSetup(levels, params);
});

test('levels of different widths are matched through a fixed projection (T0 still holds)', () => {
  const widths: Partial<Record<Level, number>> = { 2: 3, 3: 5, 4: 7 };
  const levels = ([2, 3, 4] as Level[]).map((level) => {
    const hw = INPUT / 2 ** level;
    const c = widths[level]!;
    const t = tf.randomNormal([1, hw, hw, c], 0, 1, 'float32', 70 + level) as tf.Tensor4D;
    return {
      level,
      student: tf.variable(t.clone()),
      adapter: tf.variable(tf.eye(c).reshape([1, 1, c, c])),
      teacher: t,
    };
  });
  const cfg = cfgOf({ decoder: 0 });
  const params = new Map<string, tf.Variable>();
  const terms = hmkdTerms(buildCtx(levels, params, [[]]), cfg);
  assert.ok(Math.abs(terms['hmkd.match'].dataSync()[0]) < 1e-6);
  // A perturbed student gives a finite, positive matching loss.
  levels[1].student.assign(tf.randomNormal(levels[1].student.shape, 0, 1, 'float32', 99));
  const v = hmkdTerms(buildCtx(levels, params, [[]]), cfg)['hmkd.match'].dataSync()[0];
  assert.ok(Number.isFinite(v) && v > 0, String(v));
  disposeSetup(levels, params);
});
