/**
 * Tensor helpers shared by the distillation methods (NHWC, pure; docs/distillation-methods.md
 * §2 and Appendix A). Teacher-side inputs are constants; these functions never read variables.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Stop-gradient: identity forward, zero gradient backward (tfjs has no tf.stopGradient).
 * @example sg(x) in `tf.grad(x => tf.sum(tf.mul(sg(x), x)))` gives d/dx = x
 */
export const sg = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
  value: (args[0] as tf.Tensor).clone(),
  gradFunc: (dy: tf.Tensor) => [tf.zerosLike(dy)],
})) as <T extends tf.Tensor>(x: T) => T;

/**
 * PKD normalisation: per channel, subtract the mean and divide by (unbiased std + 1e-6) over
 * (N, H, W). Invariant to a per-channel positive scale and shift.
 */
export function pkdNorm(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w] = x.shape;
    const count = n * h * w;
    const { mean, variance } = tf.moments(x, [0, 1, 2], true);
    // moments gives the biased variance; rescale to the unbiased one (count - 1 in the divisor).
    const unbiased = count > 1 ? variance.mul(count / (count - 1)) : variance;
    // + 1e-12 under the root: sqrt'(0) is infinite, and a constant (dead) channel would turn the
    // backward pass into NaN (even through a zero upstream gradient, e.g. behind sg()).
    return x.sub(mean).div(unbiased.add(1e-12).sqrt().add(1e-6));
  });
}

let gapMemo: Map<string, tf.Tensor3D> | undefined;

/**
 * Runs `fn` (one micro-step's forward and backward) with {@link featureGap} results shared
 * between the methods that need the same map (PFI and HMKD's supplementary term both imitate
 * the normalised features cell by cell); the shared maps are disposed when `fn` returns.
 */
export function withFeatureGapMemo<T>(fn: () => T): T {
  const outer = gapMemo;
  gapMemo = new Map();
  const mine = gapMemo;
  try {
    return fn();
  } finally {
    gapMemo = outer;
    for (const t of mine.values()) t.dispose();
  }
}

/**
 * Per-cell feature gap `mean_c (norm(adapted) - norm(T))^2` [N, H, W]; the teacher side is a
 * constant (stop-gradient). Inside {@link withFeatureGapMemo} a second call with the same
 * tensors returns the first result.
 */
export function featureGap(adapted: tf.Tensor4D, teacher: tf.Tensor4D, norm: 'pkd' | 'none'): tf.Tensor3D {
  const compute = () =>
    tf.tidy(
      () =>
        tf.mean(
          tf.squaredDifference(featureNorm(adapted, norm), featureNorm(sg(teacher), norm)),
          -1,
        ) as tf.Tensor3D,
    );
  if (!gapMemo) return compute();
  const key = `${adapted.id}:${teacher.id}:${norm}`;
  const hit = gapMemo.get(key);
  if (hit && !hit.isDisposed) return hit;
  const r = tf.keep(compute());
  gapMemo.set(key, r);
  return r;
}

/** Applies the configured feature normalisation. */
export function featureNorm(x: tf.Tensor4D, norm: 'pkd' | 'none'): tf.Tensor4D {
  return norm === 'pkd' ? pkdNorm(x) : x;
}

/**
 * Aligns a teacher map to a student grid: identity when the size already matches, else bilinear
 * resampling with half-pixel centres (cell (i, j) at stride s is centred at ((j+.5)s, (i+.5)s)).
 */
export function alignToStudent(t: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  if (t.shape[1] === height && t.shape[2] === width) return t.clone();
  return tf.image.resizeBilinear(t, [height, width], false, true);
}

/**
 * Spatial saliency map, mean 1 per image (§3b): `H·W · softmax_{(h,w)}(mean_c |x| / tau)`.
 * Channel-agnostic, so it works for any width.
 * @param x - feature map [N, H, W, C]
 * @param tau - softmax temperature (> 0)
 * @returns saliency [N, H, W]
 */
export function spatialSaliency(x: tf.Tensor4D, tau: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, h, w] = x.shape;
    const logits = tf.mean(tf.abs(x), -1).reshape([n, h * w]);
    return tf
      .softmax(logits.div(tau))
      .mul(h * w)
      .reshape([n, h, w]) as tf.Tensor3D;
  });
}

/**
 * Inter-level relation (§3b step 6): per image, the cosine similarity of the levels'
 * global-average-pooled descriptors.
 * @param feats - one map per level [N, H_l, W_l, C], all of the same width C
 * @returns relation matrices [N, L, L]
 * @throws {RangeError} when the levels differ in batch size or width
 */
export function levelRelation(feats: readonly tf.Tensor4D[]): tf.Tensor3D {
  if (feats.length === 0) throw new RangeError(`'feats' must hold at least one level, got 0`);
  const [n, , , c] = feats[0].shape;
  for (const f of feats) {
    if (f.shape[0] !== n || f.shape[3] !== c)
      throw new RangeError(
        `'feats' must share batch and width [${n}, *, *, ${c}], got [${f.shape.join(', ')}]`,
      );
  }
  return tf.tidy(() => {
    const g = tf.stack(
      feats.map((f) => tf.mean(f, [1, 2])),
      1,
    ); // [N, L, C]
    const unit = g.div(tf.sqrt(tf.sum(tf.square(g), -1, true).add(1e-12)));
    return tf.matMul(unit as tf.Tensor3D, unit as tf.Tensor3D, false, true);
  });
}

/**
 * Precomputed bilinear sampling of points on a flattened map (§2.7): four corner rows of
 * `[N·H·W, C]` and their weights per point. Plain arrays, made outside any gradient tape.
 */
export interface BilinearPlan {
  /** Number of sample points P. */
  count: number;
  /** Corner row indices, 4·P: all top-left, then top-right, bottom-left, bottom-right. */
  index: Int32Array;
  /** Matching bilinear weights, 4·P. */
  weight: Float32Array;
}

/** Sample points in input pixels, one entry per point (struct of arrays). */
export interface SamplePoints {
  /** Image index in the batch. */
  batch: ArrayLike<number>;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
}

/**
 * Plans bilinear samples of image points on a stride-`stride` grid. Cell (i, j) is centred at
 * ((j+0.5)s, (i+0.5)s), so image point x has feature coordinate u = x/s − 0.5; coordinates
 * are clamped to the grid (border replication, as resizeBilinear does).
 * @param points - image points in input pixels
 * @param stride - grid stride, pixels
 * @param height - grid height H
 * @param width - grid width W
 */
export function bilinearPlan(
  points: SamplePoints,
  stride: number,
  height: number,
  width: number,
): BilinearPlan {
  const count = points.x.length;
  if (points.y.length !== count || points.batch.length !== count)
    throw new RangeError(
      `'points' must have batch, x and y of one length, got ${points.batch.length}, ${count}, ${points.y.length}`,
    );
  const index = new Int32Array(4 * count);
  const weight = new Float32Array(4 * count);
  for (let p = 0; p < count; p++) {
    const u = Math.min(Math.max(points.x[p] / stride - 0.5, 0), width - 1);
    const v = Math.min(Math.max(points.y[p] / stride - 0.5, 0), height - 1);
    const u0 = Math.floor(u);
    const v0 = Math.floor(v);
    const u1 = Math.min(u0 + 1, width - 1);
    const v1 = Math.min(v0 + 1, height - 1);
    const fu = u - u0;
    const fv = v - v0;
    const base = points.batch[p] * height * width;
    index[p] = base + v0 * width + u0;
    index[count + p] = base + v0 * width + u1;
    index[2 * count + p] = base + v1 * width + u0;
    index[3 * count + p] = base + v1 * width + u1;
    weight[p] = (1 - fu) * (1 - fv);
    weight[count + p] = fu * (1 - fv);
    weight[2 * count + p] = (1 - fu) * fv;
    weight[3 * count + p] = fu * fv;
  }
  return { count, index, weight };
}

/**
 * Weighted row gather on the host: `out[p] = Σ_k weight[k·P + p] · map[index[k·P + p]]` for
 * `k < index.length / P`. tfjs's own GatherV2 costs about 70 ns per element on wasm and cpu
 * (0.3 s for the RoIAlign samples of one P2 map), this loop a few ns.
 */
function gatherHost(
  map: ArrayLike<number>,
  cols: number,
  index: Int32Array,
  weight: Float32Array | undefined,
  points: number,
): Float32Array {
  const out = new Float32Array(points * cols);
  for (let i = 0; i < index.length; i++) {
    const w = weight === undefined ? 1 : weight[i];
    if (w === 0) continue;
    const src = index[i] * cols;
    const dst = (i % points) * cols;
    for (let c = 0; c < cols; c++) out[dst + c] += w * map[src + c];
  }
  return out;
}

/**
 * The adjoint of `gatherHost`, also on the host: `out[index[i]] += weight[i] · dy[i mod P]`.
 * tf.gather's gradient is UnsortedSegmentSum, which costs O(rows × indices) on both the cpu
 * kernel (one masked sum per output row) and edgekd's wasm kernel (a dense one-hot matmul):
 * minutes, or gigabytes, for a P2 map of a batch. This is O(indices × C).
 */
function scatterHost(
  dy: ArrayLike<number>,
  cols: number,
  index: Int32Array,
  weight: Float32Array | undefined,
  points: number,
  rows: number,
): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < index.length; i++) {
    const w = weight === undefined ? 1 : weight[i];
    if (w === 0) continue;
    const dst = index[i] * cols;
    const src = (i % points) * cols;
    for (let c = 0; c < cols; c++) out[dst + c] += w * dy[src + c];
  }
  return out;
}

/**
 * Weighted row gather of a [M, C] map as one differentiable op (both passes on the host, in a
 * fixed order, so results are deterministic). The map is read back with dataSync: cheap on the
 * cpu and wasm backends edgekd trains on.
 */
function weightedGather(
  mapFlat: tf.Tensor2D,
  index: Int32Array,
  weight: Float32Array | undefined,
  points: number,
): tf.Tensor2D {
  const [rows, cols] = mapFlat.shape;
  for (const i of index) {
    if (i < 0 || i >= rows) throw new RangeError(`'index' must lie in [0, ${rows - 1}], got ${i}`);
  }
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.tensor2d(gatherHost((args[0] as tf.Tensor).dataSync(), cols, index, weight, points), [
      points,
      cols,
    ]),
    gradFunc: (dy: tf.Tensor) => [
      tf.tensor2d(scatterHost(dy.dataSync(), cols, index, weight, points, rows), [rows, cols]),
    ],
  }));
  return op(mapFlat) as tf.Tensor2D;
}

/**
 * Rows of a flattened map, differentiable w.r.t. the map (gatherND and cropAndResize have no
 * gradient in tfjs, and tf.gather's is far too slow here; see `scatterHost`).
 * @param mapFlat - map [M, C]
 * @param index - row indices in [0, M), length P
 * @returns rows [P, C]
 */
export function gatherRows(mapFlat: tf.Tensor2D, index: Int32Array): tf.Tensor2D {
  return weightedGather(mapFlat, index, undefined, index.length);
}

/**
 * Bilinear samples of a flattened map, differentiable w.r.t. the map: the weighted sum of the
 * four corner rows of each point (see `weightedGather`).
 * @param mapFlat - map [N·H·W, C] (a NHWC map reshaped)
 * @param plan - from `bilinearPlan` with the same N, H, W
 * @returns samples [P, C]
 */
export function bilinearSample(mapFlat: tf.Tensor2D, plan: BilinearPlan): tf.Tensor2D {
  return weightedGather(mapFlat, plan.index, plan.weight, plan.count);
}

/** A region of interest: image index and box [x1, y1, x2, y2] in input pixels. */
export interface Roi {
  batch: number;
  box: readonly [number, number, number, number];
}

/**
 * RoIAlign (§6b): `bins × bins` bins per RoI, each the mean of `samples × samples` bilinear
 * samples at x = x1 + (b_x + (i+0.5)/samples)·w/bins (same for y), built on the gather sampler.
 * @param featFlat - map [N·H·W, C]
 * @param rois - RoIs in input pixels
 * @param stride - stride of the map, pixels
 * @param height - map height H
 * @param width - map width W
 * @returns pooled features [R, bins, bins, C]
 */
export function roiAlign(
  featFlat: tf.Tensor2D,
  rois: readonly Roi[],
  stride: number,
  height: number,
  width: number,
  bins = 7,
  samples = 2,
): tf.Tensor4D {
  const images = featFlat.shape[0] / (height * width);
  for (const r of rois) {
    if (!Number.isInteger(r.batch) || r.batch < 0 || r.batch >= images)
      throw new RangeError(`'rois' batch index must be an integer in [0, ${images - 1}], got ${r.batch}`);
  }
  const perRoi = bins * bins * samples * samples;
  const total = rois.length * perRoi;
  const batch = new Int32Array(total);
  const x = new Float32Array(total);
  const y = new Float32Array(total);
  let p = 0;
  // Point order: roi, bin row, bin column, sample row, sample column.
  for (const r of rois) {
    const [x1, y1, x2, y2] = r.box;
    const bw = (x2 - x1) / bins;
    const bh = (y2 - y1) / bins;
    for (let by = 0; by < bins; by++)
      for (let bx = 0; bx < bins; bx++)
        for (let j = 0; j < samples; j++)
          for (let i = 0; i < samples; i++, p++) {
            batch[p] = r.batch;
            x[p] = x1 + (bx + (i + 0.5) / samples) * bw;
            y[p] = y1 + (by + (j + 0.5) / samples) * bh;
          }
  }
  const plan = bilinearPlan({ batch, x, y }, stride, height, width);
  return tf.tidy(() => {
    const c = featFlat.shape[1];
    const pts = bilinearSample(featFlat, plan).reshape([rois.length, bins, bins, samples * samples, c]);
    return tf.mean(pts, 3) as tf.Tensor4D;
  });
}

/**
 * Row-wise tempered KL divergence: `T² · Σ_j softmax(p/T)_j (logSoftmax(p/T)_j − logSoftmax(q/T)_j)`.
 * @param pLogits - target logits [P, M] (the teacher)
 * @param qLogits - predicted logits [P, M] (the student)
 * @param temperature - T > 0
 * @returns KL per row [P]
 */
export function klRows(pLogits: tf.Tensor2D, qLogits: tf.Tensor2D, temperature: number): tf.Tensor1D {
  return tf.tidy(() => {
    const logP = tf.logSoftmax(pLogits.div(temperature));
    const logQ = tf.logSoftmax(qLogits.div(temperature));
    return tf.sum(tf.exp(logP).mul(logP.sub(logQ)), -1).mul(temperature * temperature) as tf.Tensor1D;
  });
}

/** Binary cross-entropy from logits, elementwise: `y·softplus(−z) + (1−y)·softplus(z)`. */
export function bceLogits<T extends tf.Tensor>(z: T, y: tf.Tensor | number): T {
  return tf.tidy(() => {
    const yt = typeof y === 'number' ? tf.scalar(y) : y;
    return tf.add(tf.mul(yt, tf.softplus(tf.neg(z))), tf.mul(tf.sub(1, yt), tf.softplus(z))) as T;
  });
}

/** Probability to logit with p clipped to [1e-4, 1 − 1e-4] (§2.5), so the logit stays within ±9.21. */
export function safeLogit<T extends tf.Tensor>(p: T): T {
  return tf.tidy(() => {
    const q = tf.clipByValue(p, 1e-4, 1 - 1e-4);
    return tf.log(q.div(tf.sub(1, q))) as T;
  });
}
