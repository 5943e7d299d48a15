/**
 * HMKD: distillation via hierarchical matching for small objects, on P2-P4
 * (docs/distillation-methods.md §7, after Ma et al.; proxy formulation [R]). Three parts:
 * - matching: deep teacher cells (P3, P4) query their own high-resolution children (P2, P3) by
 *   attention; the student's children must be attended to the same way (KL per query);
 * - decoding: ReviewKD-style attention-based fusion (ABF) blocks rebuild the teacher's P4, P3,
 *   P2 top-down from the student's adapted maps, trained with the hierarchical context loss;
 * - supplementary: foreground/background feature imitation with per-object normalisation, so
 *   the few small-object cells are not swamped by background.
 * Uses the primary teacher (ctx.teachers[0]) only.
 */
import * as tf from '@tensorflow/tfjs';
import type { Level } from '../../models/core/spec.js';
import type { HmkdConfig } from './config.js';
import type { KdBox, KdContext, KdDims, KdLevel, KdParamSpec, KdTerms } from './types.js';
import { featureGap, featureNorm, sg } from './common.js';

/** Levels HMKD works on, deepest first (the decoder's order). */
const HMKD_LEVELS: readonly Level[] = [4, 3, 2];

/** Deep-to-shallow matching pairs, §7(b). */
const MATCH_PAIRS: readonly (readonly [deep: Level, shallow: Level])[] = [
  [4, 3],
  [3, 2],
  [4, 2],
];

/** Weight of a synthetic level (teacher map upsampled from the next stride), §2.2 / §7(e). */
const SYNTHETIC_WEIGHT = 0.5;

/** HCL pooled sizes and their weights, ReviewKD order: the largest size used gets the first. */
const HCL_SIZES = [4, 2, 1] as const;
const HCL_WEIGHTS = [0.5, 0.25, 0.125] as const;

/**
 * Groups the r×r children of each deep cell.
 * @param x - shallow map [N, r·H, r·W, C]
 * @param r - stride ratio
 * @returns [N, H, W, r², C]; child m = dy·r + dx (row-major inside the parent)
 * @throws {RangeError} when H or W of `x` is not a multiple of `r`
 * @example range(16) as [1,4,4,1], r = 2 → groups [0,1,4,5], [2,3,6,7], [8,9,12,13], [10,11,14,15]
 */
export function groupChildren(x: tf.Tensor4D, r: number): tf.Tensor5D {
  const [n, h, w, c] = x.shape;
  if (!Number.isInteger(r) || r < 1 || h % r !== 0 || w % r !== 0) {
    throw new RangeError(`'r' must be a positive integer dividing the map size ${h}x${w}, got ${r}`);
  }
  return tf.tidy(() =>
    x
      .reshape([n, h / r, r, w / r, r, c])
      .transpose([0, 1, 3, 2, 4, 5])
      .reshape([n, h / r, w / r, r * r, c]),
  );
}

/** ℓ2-normalises along the last axis: x / sqrt(Σ x² + 1e-12) (smooth at 0). */
export function l2NormalizeChannels<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), -1, true), 1e-12))) as T);
}

/**
 * Attention of each deep query over its r² children: softmax_m(⟨E[n,i,j], K[n,i,j,m]⟩ / τ).
 * @returns log-probabilities [N·H_d·W_d, r²]
 */
function childLogAttention(query: tf.Tensor4D, keys: tf.Tensor5D, tau: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, h, w, m, c] = keys.shape;
    const rows = n * h * w;
    const logits = tf.matMul(keys.reshape([rows, m, c]), query.reshape([rows, c, 1])).reshape([rows, m]);
    return tf.logSoftmax(tf.div(logits, tau)) as tf.Tensor2D;
  });
}

/**
 * Matching loss of one deep-to-shallow pair, §7(b) steps 1-5: E = ℓ2(T_d) queries the grouped
 * children K^T = ℓ2(T_k) and K^S = ℓ2(Ŝ_k); loss = mean over queries of KL(A^T ‖ A^S). The
 * teacher side is a stop-gradient. All three maps must share the channel count.
 * @param deepTeacher - T_d [N, H, W, C]
 * @param shallowTeacher - T_k [N, r·H, r·W, C]
 * @param shallowStudent - Ŝ_k [N, r·H, r·W, C] (live)
 * @param r - stride ratio s_d / s_k
 * @param tau - attention temperature τ_a
 * @throws {RangeError} when the shapes do not fit together
 * @example τ = 1, E = [1,0], teacher children [1,0],[0,1],[1,0],[0,1], student children
 * [1,0],[1,0],[0,1],[0,1] → 0.231059
 */
export function attentionMatchLoss(
  deepTeacher: tf.Tensor4D,
  shallowTeacher: tf.Tensor4D,
  shallowStudent: tf.Tensor4D,
  r: number,
  tau: number,
): tf.Scalar {
  const [n, h, w, c] = deepTeacher.shape;
  const want = [n, h * r, w * r, c].join('x');
  for (const [name, t] of [
    ['shallowTeacher', shallowTeacher],
    ['shallowStudent', shallowStudent],
  ] as const) {
    if (t.shape.join('x') !== want) {
      throw new RangeError(`'${name}' must have shape ${want}, got ${t.shape.join('x')}`);
    }
  }
  return tf.tidy(() => {
    const query = l2NormalizeChannels(sg(deepTeacher));
    const logT = childLogAttention(query, groupChildren(l2NormalizeChannels(sg(shallowTeacher)), r), tau);
    const logS = childLogAttention(query, groupChildren(l2NormalizeChannels(shallowStudent), r), tau);
    const kl = tf.sum(tf.mul(tf.exp(logT), tf.sub(logT, logS)), -1);
    return tf.mean(kl) as tf.Scalar;
  });
}

/**
 * Adaptive average pooling to p×p (PyTorch `adaptive_avg_pool2d` bins: rows
 * [floor(i·H/p), ceil((i+1)·H/p)), likewise columns). Built from tf.slice + mean; when p divides
 * both sides it uses the equivalent reshape + mean (one op instead of p² slices, whose
 * gradients would each allocate a full-size map).
 * @param x - [N, H, W, C]
 * @returns [N, p, p, C]
 */
export function adaptiveAvgPool(x: tf.Tensor4D, p: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (!Number.isInteger(p) || p < 1) throw new RangeError(`'p' must be a positive integer, got ${p}`);
  return tf.tidy(() => {
    if (h % p === 0 && w % p === 0) {
      return tf.mean(x.reshape([n, p, h / p, p, w / p, c]), [2, 4]) as tf.Tensor4D;
    }
    const rows: tf.Tensor[] = [];
    for (let i = 0; i < p; i++) {
      const y0 = Math.floor((i * h) / p);
      const y1 = Math.ceil(((i + 1) * h) / p);
      const cells: tf.Tensor[] = [];
      for (let j = 0; j < p; j++) {
        const x0 = Math.floor((j * w) / p);
        const x1 = Math.ceil(((j + 1) * w) / p);
        cells.push(tf.mean(tf.slice(x, [0, y0, x0, 0], [n, y1 - y0, x1 - x0, c]), [1, 2]));
      }
      rows.push(tf.stack(cells, 1)); // [N, p, C]
    }
    return tf.stack(rows, 1) as tf.Tensor4D;
  });
}

/**
 * Hierarchical context loss (ReviewKD), §7(b) step 7:
 * [mean (a−b)² + Σ_{p∈{4,2,1}, p<H} w_p·mean (pool_p(a) − pool_p(b))²] / (1 + Σ w_p), the weights
 * ½, ¼, ⅛ going to the pooled sizes used, largest first.
 * @param a - [N, H, W, C]
 * @param b - same shape
 * @example 4×4 ±1 checkerboard vs 0 → 0.571429; constant 1 vs 0 → 1; 8×8 checkerboard → 0.533333
 */
export function hcl(a: tf.Tensor4D, b: tf.Tensor4D): tf.Scalar {
  if (a.shape.join('x') !== b.shape.join('x')) {
    throw new RangeError(`'b' must have the shape of 'a' (${a.shape.join('x')}), got ${b.shape.join('x')}`);
  }
  const h = a.shape[1];
  return tf.tidy(() => {
    let total: tf.Tensor = tf.mean(tf.squaredDifference(a, b));
    let weightSum = 1;
    let next = 0;
    for (const p of HCL_SIZES) {
      if (p >= h) continue;
      const wp = HCL_WEIGHTS[next++];
      const diff = tf.squaredDifference(adaptiveAvgPool(a, p), adaptiveAvgPool(b, p));
      total = tf.add(total, tf.mul(tf.mean(diff), wp));
      weightSum += wp;
    }
    return tf.div(total, weightSum) as tf.Scalar;
  });
}

/** Constant per-cell weights of the supplementary loss on one grid (see {@link objectWeights}). */
export interface ObjectWeights {
  /** [N·H·W]: Σ over objects o of 1/(|Ω_o|·N_obj) on the cells of Ω_o; sums to 1 (or 0). */
  fg: Float32Array;
  /** [N·H·W]: 1/N_bg on background cells; sums to 1 (or 0). */
  bg: Float32Array;
  /** N_obj: non-ignored objects with at least one cell. */
  objects: number;
  /** N_bg: background cells. */
  bgCells: number;
}

/**
 * Foreground/background cell weights on a stride-`stride` grid of size height×width (cell (i, j)
 * centred at ((j+.5)s, (i+.5)s)), §7(b) step 8:
 * - Ω_o: cells whose centre lies inside non-ignored box o (borders included), minus ignore
 *   cells; when that is empty, the cell containing the box centre (unless it is an ignore cell,
 *   then o is dropped);
 * - ignore cells: centre inside an ignore box; excluded from foreground and background;
 * - background: every other cell in no Ω_o.
 * @param gts - per image, boxes in input pixels
 */
export function objectWeights(gts: KdBox[][], stride: number, height: number, width: number): ObjectWeights {
  const cells = height * width;
  const fg = new Float32Array(gts.length * cells);
  const bg = new Float32Array(gts.length * cells);
  const ignoreCell = new Uint8Array(gts.length * cells);
  const objectCell = new Uint8Array(gts.length * cells);
  const objects: number[][] = []; // flat cell indices per object
  const cellsInside = (box: KdBox['box']): number[] => {
    const [x1, y1, x2, y2] = box;
    const out: number[] = [];
    const i0 = Math.max(0, Math.ceil(y1 / stride - 0.5));
    const i1 = Math.min(height - 1, Math.floor(y2 / stride - 0.5));
    const j0 = Math.max(0, Math.ceil(x1 / stride - 0.5));
    const j1 = Math.min(width - 1, Math.floor(x2 / stride - 0.5));
    for (let i = i0; i <= i1; i++) for (let j = j0; j <= j1; j++) out.push(i * width + j);
    return out;
  };
  gts.forEach((boxes, n) => {
    for (const g of boxes) {
      if (g.ignore) for (const idx of cellsInside(g.box)) ignoreCell[n * cells + idx] = 1;
    }
  });
  gts.forEach((boxes, n) => {
    const base = n * cells;
    for (const g of boxes) {
      if (g.ignore) continue;
      let idx = cellsInside(g.box).filter((k) => ignoreCell[base + k] === 0);
      if (idx.length === 0) {
        const [x1, y1, x2, y2] = g.box;
        const i = clamp(Math.floor((y1 + y2) / 2 / stride), 0, height - 1);
        const j = clamp(Math.floor((x1 + x2) / 2 / stride), 0, width - 1);
        idx = ignoreCell[base + i * width + j] === 0 ? [i * width + j] : [];
      }
      if (idx.length === 0) continue;
      objects.push(idx.map((k) => base + k));
      for (const k of idx) objectCell[base + k] = 1;
    }
  });
  for (const idx of objects) {
    const v = 1 / (idx.length * objects.length);
    for (const k of idx) fg[k] += v;
  }
  let bgCells = 0;
  for (let k = 0; k < bg.length; k++) if (ignoreCell[k] === 0 && objectCell[k] === 0) bgCells++;
  for (let k = 0; k < bg.length; k++) if (ignoreCell[k] === 0 && objectCell[k] === 0) bg[k] = 1 / bgCells;
  return { fg, bg, objects: objects.length, bgCells };
}

/**
 * Supplementary fg/bg imitation on one level, §7(b) step 8 (the caller normalises both sides):
 * L_fg = (1/N_obj) Σ_o mean_{Ω_o} mean_c (s − t)², L_bg = mean_{bg cells} mean_c (s − t)².
 * Each is 0 when it has no cell.
 * @param s - student map [N, H, W, C] (live)
 * @param t - teacher map, same shape
 * @param gts - per image, boxes in input pixels
 * @param stride - input pixels per cell
 * @example 1×4 map, C = 1, one box over cells 0-1, squared differences [4,0,1,1] → fg 2, bg 1
 */
export function supplementaryLoss(
  s: tf.Tensor4D,
  t: tf.Tensor4D,
  gts: KdBox[][],
  stride: number,
): { fg: tf.Scalar; bg: tf.Scalar } {
  return tf.tidy(() =>
    supplementaryFromGap(tf.mean(tf.squaredDifference(s, t), -1) as tf.Tensor3D, gts, stride),
  );
}

/**
 * {@link supplementaryLoss} from the per-cell gap `mean_c (s - t)^2` [N, H, W] (shared with PFI
 * through `featureGap`).
 */
export function supplementaryFromGap(
  d2: tf.Tensor3D,
  gts: KdBox[][],
  stride: number,
): { fg: tf.Scalar; bg: tf.Scalar } {
  const [n, h, w] = d2.shape;
  if (gts.length !== n) throw new RangeError(`'gts' must have one entry per image (${n}), got ${gts.length}`);
  const weights = objectWeights(gts, stride, h, w);
  return tf.tidy(() => {
    const flat = d2.reshape([n * h * w]);
    const fg = tf.sum(tf.mul(flat, tf.tensor1d(weights.fg))) as tf.Scalar;
    const bg = tf.sum(tf.mul(flat, tf.tensor1d(weights.bg))) as tf.Scalar;
    return { fg, bg };
  });
}

/** Weights of one ABF block; `att*` only on blocks that fuse a deeper output. */
export interface AbfWeights {
  /** [1, 1, C_t, C_m] and [C_m] */
  inWeight: tf.Tensor4D;
  inBias: tf.Tensor1D;
  /** [1, 1, 2·C_m, 2] and [2] */
  attWeight?: tf.Tensor4D;
  attBias?: tf.Tensor1D;
  /** [3, 3, C_m, C_t] and [C_t] */
  outWeight: tf.Tensor4D;
  outBias: tf.Tensor1D;
}

/**
 * One attention-based fusion block (ReviewKD ABF without BatchNorm), §7(b) step 6:
 * x' = conv1x1(x); with a deeper u: y = resizeNearest(u), a = σ(conv1x1([x'; y])),
 * x' = a₀·x' + a₁·y; out = conv3x3(x'), and x' is passed up as the next u.
 * @param x - Ŝ_k [N, H, W, C_t]
 * @param u - the deeper block's x' [N, H', W', C_m], or null for the deepest block
 * @returns out [N, H, W, C_t] and u [N, H, W, C_m]
 */
export function abfForward(
  x: tf.Tensor4D,
  u: tf.Tensor4D | null,
  weights: AbfWeights,
): { out: tf.Tensor4D; u: tf.Tensor4D } {
  return tf.tidy(() => {
    let mid: tf.Tensor4D = tf.add(tf.conv2d(x, weights.inWeight, 1, 'same'), weights.inBias);
    if (u !== null) {
      if (!weights.attWeight || !weights.attBias) {
        throw new TypeError("'weights.attWeight' and 'weights.attBias' are needed to fuse a deeper level");
      }
      const y = tf.image.resizeNearestNeighbor(u, [x.shape[1], x.shape[2]]);
      const att = tf.sigmoid(
        tf.add(tf.conv2d(tf.concat([mid, y], -1), weights.attWeight, 1, 'same'), weights.attBias),
      );
      const [a0, a1] = tf.split(att, 2, -1);
      mid = tf.add(tf.mul(mid, a0), tf.mul(y, a1));
    }
    const out: tf.Tensor4D = tf.add(tf.conv2d(mid, weights.outWeight, 1, 'same'), weights.outBias);
    return { out, u: mid };
  });
}

/** Teacher width of level l for the decoder; a synthetic P2 (up(T_3)) has P3's width. */
function decoderChannels(channels: Partial<Record<Level, number>>, level: Level): number | undefined {
  return channels[level] ?? (level === 2 ? channels[3] : undefined);
}

/**
 * Declares the ABF decoder when `cfg.decoder > 0` (else nothing): one block per level 4, 3, 2
 * that teacher 0 covers (P2 also when only P3 is covered: its target is then up(T_3)), group
 * 'student', named `hmkd.abf<l>.{in,att,out}.{weight,bias}`; `att` on all blocks but the deepest.
 */
export function hmkdParams(cfg: HmkdConfig, dims: KdDims): KdParamSpec[] {
  if (cfg.decoder <= 0) return [];
  const channels = dims.teacherNeckChannels[0] ?? {};
  const cm = cfg.midChannels;
  const specs: KdParamSpec[] = [];
  let deepest = true;
  for (const level of HMKD_LEVELS) {
    const ct = decoderChannels(channels, level);
    if (ct === undefined) continue;
    const p = `hmkd.abf${level}`;
    const he = { kind: 'he-normal' } as const;
    const zeros = { kind: 'zeros' } as const;
    specs.push(
      { name: `${p}.in.weight`, shape: [1, 1, ct, cm], init: he, group: 'student' },
      { name: `${p}.in.bias`, shape: [cm], init: zeros, group: 'student' },
    );
    if (!deepest) {
      specs.push(
        { name: `${p}.att.weight`, shape: [1, 1, 2 * cm, 2], init: he, group: 'student' },
        { name: `${p}.att.bias`, shape: [2], init: zeros, group: 'student' },
      );
    }
    specs.push(
      { name: `${p}.out.weight`, shape: [3, 3, cm, ct], init: he, group: 'student' },
      { name: `${p}.out.bias`, shape: [ct], init: zeros, group: 'student' },
    );
    deepest = false;
  }
  return specs;
}

/**
 * HMKD terms of the primary teacher, each already multiplied by its λ, omitted when its λ is 0
 * or it has nothing to compare:
 * - 'hmkd.match' = λ_match · mean over pairs (4→3, 3→2, 4→2) present of
 *   {@link attentionMatchLoss}; a pair with a synthetic level is dropped (§7e). Levels of
 *   different widths are first projected to the narrower width by a fixed random orthonormal
 *   matrix (§7e), the same for teacher and student;
 * - 'hmkd.decoder' = λ_dec · Σ_k w_k HCL(norm(out_k), norm(T_k)) over the ABF chain 4→3→2
 *   (w = 0.5 on a synthetic target);
 * - 'hmkd.supplementary' = λ_sup · (1/|K|) Σ_k w_k (α_fg L_fg,k + α_bg L_bg,k) on
 *   norm(Ŝ_k) vs norm(T_k), boxes from `ctx.gts` (w = 0.5 on a synthetic level).
 * `norm` is `cfg.norm` (pkd or none).
 */
export function hmkdTerms(ctx: KdContext, cfg: HmkdConfig): KdTerms {
  const view = ctx.teachers[0];
  if (view === undefined) throw new RangeError("'ctx.teachers' must hold at least one teacher, got 0");
  const byLevel = new Map<Level, KdLevel>();
  for (const lv of view.neck) if (HMKD_LEVELS.includes(lv.level)) byLevel.set(lv.level, lv);
  return tf.tidy(() => {
    const terms: KdTerms = {};
    if (cfg.match > 0) {
      const parts: tf.Scalar[] = [];
      for (const [deep, shallow] of MATCH_PAIRS) {
        const d = byLevel.get(deep);
        const s = byLevel.get(shallow);
        if (!d || !s || d.synthetic || s.synthetic) continue;
        parts.push(matchPair(d, s, cfg.tau));
      }
      if (parts.length > 0) terms['hmkd.match'] = tf.mul(tf.addN(parts), cfg.match / parts.length);
    }
    if (cfg.decoder > 0) {
      const parts: tf.Scalar[] = [];
      let u: tf.Tensor4D | null = null;
      for (const level of HMKD_LEVELS) {
        const lv = byLevel.get(level);
        if (!lv) continue;
        const { out, u: next } = abfForward(lv.adapted, u, abfWeights(ctx, level, u !== null));
        u = next;
        const loss = hcl(featureNorm(out, cfg.norm), featureNorm(lv.teacher, cfg.norm));
        parts.push(lv.synthetic ? tf.mul(loss, SYNTHETIC_WEIGHT) : loss);
      }
      if (parts.length > 0) terms['hmkd.decoder'] = tf.mul(tf.addN(parts), cfg.decoder);
    }
    if (cfg.supplementary > 0) {
      const parts: tf.Scalar[] = [];
      for (const level of HMKD_LEVELS) {
        const lv = byLevel.get(level);
        if (!lv) continue;
        const { fg, bg } = supplementaryFromGap(
          featureGap(lv.adapted, lv.teacher, cfg.norm),
          ctx.gts,
          lv.stride,
        );
        const loss = tf.add(tf.mul(fg, cfg.alphaFg), tf.mul(bg, cfg.alphaBg));
        parts.push((lv.synthetic ? tf.mul(loss, SYNTHETIC_WEIGHT) : loss) as tf.Scalar);
      }
      if (parts.length > 0) {
        terms['hmkd.supplementary'] = tf.mul(tf.addN(parts), cfg.supplementary / parts.length);
      }
    }
    return terms;
  });
}

function abfWeights(ctx: KdContext, level: Level, fuse: boolean): AbfWeights {
  const p = (name: string) => ctx.param(`hmkd.abf${level}.${name}`) as tf.Tensor;
  return {
    inWeight: p('in.weight') as tf.Tensor4D,
    inBias: p('in.bias') as tf.Tensor1D,
    attWeight: fuse ? (p('att.weight') as tf.Tensor4D) : undefined,
    attBias: fuse ? (p('att.bias') as tf.Tensor1D) : undefined,
    outWeight: p('out.weight') as tf.Tensor4D,
    outBias: p('out.bias') as tf.Tensor1D,
  };
}

/** One matching pair, with a fixed projection when the two levels differ in width. */
function matchPair(deep: KdLevel, shallow: KdLevel, tau: number): tf.Scalar {
  return tf.tidy(() => {
    const width = Math.min(deep.teacher.shape[3], shallow.teacher.shape[3]);
    const r = Math.round(deep.stride / shallow.stride);
    return attentionMatchLoss(
      projectChannels(deep.teacher, width),
      projectChannels(shallow.teacher, width),
      projectChannels(shallow.adapted, width),
      r,
      tau,
    );
  });
}

/** Fixed orthonormal projections C_in -> C_out (columns orthonormal), by "cin x cout". */
const projections = new Map<string, Float32Array>();

/**
 * Projects the channels of x to `cout` with a fixed random matrix with orthonormal columns
 * (seeded Gaussian, Gram-Schmidt): a frozen teacher-side-safe projection (§2.3). Identity when
 * the width already matches.
 */
function projectChannels(x: tf.Tensor4D, cout: number): tf.Tensor4D {
  const [n, h, w, cin] = x.shape;
  if (cin === cout) return x;
  const key = `${cin}x${cout}`;
  let m = projections.get(key);
  if (!m) {
    m = orthonormalColumns(cin, cout, cin * 7919 + cout);
    projections.set(key, m);
  }
  const mat = m;
  return tf.tidy(() =>
    tf.matMul(x.reshape([n * h * w, cin]), tf.tensor2d(mat, [cin, cout])).reshape([n, h, w, cout]),
  );
}

/** A rows×cols (rows ≥ cols) matrix with orthonormal columns, row-major, from a seeded Gaussian. */
function orthonormalColumns(rows: number, cols: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const uniform = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  const columns: Float64Array[] = [];
  for (let c = 0; c < cols; c++) {
    const v = new Float64Array(rows);
    for (let i = 0; i < rows; i++) v[i] = gauss();
    for (let pass = 0; pass < 2; pass++) {
      for (const q of columns) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += v[i] * q[i];
        for (let i = 0; i < rows; i++) v[i] -= dot * q[i];
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    for (let i = 0; i < rows; i++) v[i] /= norm;
    columns.push(v);
  }
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) out[i * cols + c] = columns[c][i];
  return out;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
