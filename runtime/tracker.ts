/**
 * ByteTrack-style multi-object tracker (Zhang et al., "ByteTrack: Multi-Object Tracking by
 * Associating Every Detection Box", ECCV 2022), pure TypeScript, no dependencies.
 *
 * - Motion model: one Kalman filter per track on (cx, cy, a = w/h, h) plus their velocities
 *   (constant-velocity model, noise scaled by the box height, the constants of ByteTrack's
 *   `kalman_filter.py`). The 8x8 covariance of that model stays block-diagonal in four
 *   independent (position, velocity) pairs, so it is stored and updated as four 2x2 blocks.
 * - Association: cost 1 - IoU(predicted track box, detection box), only between the same
 *   classId, solved optimally with the Hungarian algorithm ({@link hungarian}, O(n^3)) under a
 *   cost limit ({@link linearAssignment}, the `lap.lapjv(cost_limit)` objective ByteTrack uses),
 *   per connected group of overlapping pairs (300 detections a frame: 5.7 ms instead of 155 ms).
 * - Two stages: high-score detections against every confirmed track (tracked and lost), then
 *   low-score detections against the still unmatched tracked ones; tentative tracks against
 *   the leftover high detections; new tentative tracks from high detections above
 *   `newTrackThreshold`.
 *
 * Coordinates are the pixels of whatever image the detections were computed on (normally
 * source pixels); velocities are in those pixels per frame.
 */
import { iou } from '../models/core/detection.js';
import type { BoxXyxy, Detection } from '../models/core/detection.js';

export { LineCounter, parseCountLine } from './line-counter.js';
export type { LineCounterOptions, LineCount } from './line-counter.js';

/** Tracker settings; every field is optional, defaults in brackets. */
export interface TrackerOptions {
  /** Detections with score >= this take part in the first association (0.5). */
  highThreshold?: number;
  /** Detections with score in [lowThreshold, highThreshold) only continue tracked tracks; below it they are dropped (0.1). */
  lowThreshold?: number;
  /** An unmatched high detection starts a new track only if its score >= this (0.6). */
  newTrackThreshold?: number;
  /** First association and tentative tracks: a pair needs IoU >= this, i.e. cost 1 - IoU <= 1 - matchIou (0.2). */
  matchIou?: number;
  /** Second (low-score) association: a pair needs IoU >= this (0.5). */
  lowMatchIou?: number;
  /** A lost track is kept, and can be re-found by its prediction, for this many frames after its last match (30). */
  maxLostFrames?: number;
  /**
   * Consecutive matched frames before a track is confirmed, gets an id and is reported (2, as in
   * ByteTrack; 1 reports a track on its first frame). Tracks born on the first frame after
   * construction or {@link ByteTracker.reset} are confirmed at once, as in ByteTrack.
   */
  minHits?: number;
}

/** One confirmed track as reported for a frame. */
export interface Track {
  /** Stable id, 1, 2, 3, ... in order of confirmation; never reused until {@link ByteTracker.reset}. */
  id: number;
  /** Kalman-filtered box, xyxy pixels. */
  box: [number, number, number, number];
  /** Score of the detection matched this frame. */
  score: number;
  classId: number;
  /** Frames since first seen (0 on the frame the track was born). */
  age: number;
  /** Velocity of the box centre, pixels per frame (x right, y down). */
  velocity?: [number, number];
}

const DEFAULTS: Required<TrackerOptions> = {
  highThreshold: 0.5,
  lowThreshold: 0.1,
  newTrackThreshold: 0.6,
  matchIou: 0.2,
  lowMatchIou: 0.5,
  maxLostFrames: 30,
  minHits: 2,
};

/** A tracked and a lost track of the same class overlapping this much are duplicates (ByteTrack: 1 - 0.15). */
const DUPLICATE_IOU = 0.85;

// #region Hungarian algorithm

/**
 * Optimal assignment (minimum total cost) of rows to columns, Hungarian algorithm with
 * potentials (Kuhn-Munkres in the shortest-augmenting-path form), O(n^2 m) for n <= m.
 *
 * @param cost - rows x cols matrix of finite costs (rows may outnumber columns).
 * @returns for each row the assigned column, or -1 when there are more rows than columns and
 *   the row is left out. Every row (or every column, whichever are fewer) is assigned.
 * @throws {RangeError} when the matrix is ragged or holds a non-finite cost.
 */
export function hungarian(cost: readonly (readonly number[])[]): number[] {
  const rows = cost.length;
  const cols = rows > 0 ? cost[0].length : 0;
  for (let r = 0; r < rows; r++) {
    if (cost[r].length !== cols) {
      throw new RangeError(`'cost' must be rectangular: ${cols} columns, got ${cost[r].length} in row ${r}`);
    }
    for (let c = 0; c < cols; c++) {
      if (!Number.isFinite(cost[r][c])) {
        throw new RangeError(`'cost' must be finite: got ${cost[r][c]} at [${r}][${c}]`);
      }
    }
  }
  const out = new Array<number>(rows).fill(-1);
  if (rows === 0 || cols === 0) return out;
  const transpose = rows > cols;
  const n = transpose ? cols : rows;
  const m = transpose ? rows : cols;
  const at = transpose ? (i: number, j: number) => cost[j][i] : (i: number, j: number) => cost[i][j];
  // 1-based arrays; index 0 is the virtual root of the augmenting path.
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const p = new Int32Array(m + 1); // p[j]: row (1-based) assigned to column j, 0 if none
  const way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = at(i0 - 1, j - 1) - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  for (let j = 1; j <= m; j++) {
    if (p[j] === 0) continue;
    if (transpose) out[j - 1] = p[j] - 1;
    else out[p[j] - 1] = j - 1;
  }
  return out;
}

/** Result of {@link linearAssignment}: matched (row, col) pairs, ascending by row, and the rest. */
export interface Assignment {
  matches: [number, number][];
  unmatchedRows: number[];
  unmatchedCols: number[];
}

/**
 * Optimal assignment under a cost limit: minimises the sum over matched pairs of
 * (cost - limit), so a pair is matched only when that pays off and no pair above the limit is
 * ever matched. The same objective as `lap.lapjv(cost, extend_cost=True, cost_limit=limit)` in
 * ByteTrack, solved by {@link hungarian} on a square matrix padded with `limit`.
 *
 * @param cost - rows x cols costs; `Infinity` (or anything above `limit`) forbids the pair.
 * @param limit - highest cost a matched pair may have.
 * @param cols - number of columns; needed only when `cost` has no rows (then every column is unmatched).
 * @returns matched pairs and the unmatched row / column indices, each ascending.
 */
export function linearAssignment(
  cost: readonly (readonly number[])[],
  limit: number,
  cols: number = cost.length > 0 ? cost[0].length : 0,
): Assignment {
  const rows = cost.length;
  const result: Assignment = { matches: [], unmatchedRows: [], unmatchedCols: [] };
  // Pairs above the limit cost exactly as much as leaving both ends unmatched, so the objective
  // splits over the connected components of the allowed pairs: each is solved alone. In a
  // street scene tracks only compete with their neighbours, so this turns one O(n^3) problem
  // into many small ones (300 detections: 155 ms -> a few ms per frame).
  const parent = Int32Array.from({ length: rows + cols }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) if (cost[r][c] <= limit) parent[find(r)] = find(rows + c);
  const groups = new Map<number, { rows: number[]; cols: number[] }>();
  for (let i = 0; i < rows + cols; i++) {
    const root = find(i);
    let g = groups.get(root);
    if (!g) groups.set(root, (g = { rows: [], cols: [] }));
    if (i < rows) g.rows.push(i);
    else g.cols.push(i - rows);
  }
  for (const g of groups.values()) {
    if (g.rows.length === 0 || g.cols.length === 0) {
      result.unmatchedRows.push(...g.rows);
      result.unmatchedCols.push(...g.cols);
      continue;
    }
    const sub = assignDense(
      g.rows.map((r) => g.cols.map((c) => cost[r][c])),
      limit,
    );
    for (const [r, c] of sub.matches) result.matches.push([g.rows[r], g.cols[c]]);
    for (const r of sub.unmatchedRows) result.unmatchedRows.push(g.rows[r]);
    for (const c of sub.unmatchedCols) result.unmatchedCols.push(g.cols[c]);
  }
  result.matches.sort((a, b) => a[0] - b[0]);
  result.unmatchedRows.sort((a, b) => a - b);
  result.unmatchedCols.sort((a, b) => a - b);
  return result;
}

/** {@link linearAssignment} on one block: the square matrix padded with `limit`, solved whole. */
function assignDense(cost: readonly (readonly number[])[], limit: number): Assignment {
  const rows = cost.length;
  const cols = cost[0].length;
  const result: Assignment = { matches: [], unmatchedRows: [], unmatchedCols: [] };
  const size = Math.max(rows, cols);
  const square: number[][] = [];
  for (let r = 0; r < size; r++) {
    const row = new Array<number>(size).fill(limit);
    if (r < rows) {
      for (let c = 0; c < cols; c++) {
        const x = cost[r][c];
        if (x <= limit) row[c] = x;
      }
    }
    square.push(row);
  }
  const rowToCol = hungarian(square);
  const colUsed = new Uint8Array(cols);
  for (let r = 0; r < rows; r++) {
    const c = rowToCol[r];
    if (c >= 0 && c < cols && cost[r][c] <= limit) {
      result.matches.push([r, c]);
      colUsed[c] = 1;
    } else {
      result.unmatchedRows.push(r);
    }
  }
  for (let c = 0; c < cols; c++) if (!colUsed[c]) result.unmatchedCols.push(c);
  return result;
}

// #endregion

// #region Kalman filter

/** ByteTrack's noise weights: position and velocity std as fractions of the box height. */
const STD_POSITION = 1 / 20;
const STD_VELOCITY = 1 / 160;

/**
 * Constant-velocity Kalman filter of one box, state (cx, cy, a, h, vcx, vcy, va, vh) with
 * a = w / h, measurement (cx, cy, a, h); the model and noise of ByteTrack / DeepSORT.
 * Each of the four coordinates is an independent (position, velocity) pair, so the
 * covariance is kept as four 2x2 blocks [Ppp, Ppv, Pvv].
 */
export class BoxKalman {
  /** State: cx, cy, a, h, then their velocities per frame. */
  readonly mean = new Float64Array(8);
  /** For coordinate k: cov[3k] = var(pos), cov[3k+1] = cov(pos, vel), cov[3k+2] = var(vel). */
  readonly cov = new Float64Array(12);

  /** Starts at `box` with zero velocity and ByteTrack's initial uncertainty. */
  constructor(box: BoxXyxy) {
    this.setMeasurement(box, this.mean);
    const h = this.mean[3];
    const posStd = [2 * STD_POSITION * h, 2 * STD_POSITION * h, 1e-2, 2 * STD_POSITION * h];
    const velStd = [10 * STD_VELOCITY * h, 10 * STD_VELOCITY * h, 1e-5, 10 * STD_VELOCITY * h];
    for (let k = 0; k < 4; k++) {
      this.cov[3 * k] = posStd[k] ** 2;
      this.cov[3 * k + 1] = 0;
      this.cov[3 * k + 2] = velStd[k] ** 2;
    }
  }

  /**
   * Advances the state by one frame: x += v, P = F P F^T + Q.
   * @param freezeHeight - zero the height velocity first (ByteTrack does this for lost tracks,
   *   so an occluded box does not shrink or grow without evidence).
   */
  predict(freezeHeight = false): void {
    const m = this.mean;
    const c = this.cov;
    if (freezeHeight) m[7] = 0;
    const h = m[3];
    for (let k = 0; k < 4; k++) {
      const qp = k === 2 ? 1e-2 : STD_POSITION * h;
      const qv = k === 2 ? 1e-5 : STD_VELOCITY * h;
      m[k] += m[k + 4];
      const pp = c[3 * k];
      const pv = c[3 * k + 1];
      const vv = c[3 * k + 2];
      c[3 * k] = pp + 2 * pv + vv + qp * qp;
      c[3 * k + 1] = pv + vv;
      c[3 * k + 2] = vv + qv * qv;
    }
    // Keep the box valid however long it is extrapolated.
    if (m[3] < 1) m[3] = 1;
    if (m[2] < 1e-3) m[2] = 1e-3;
  }

  /** Corrects the state with a measured box: K = P H^T (H P H^T + R)^-1, P = (I - K H) P. */
  update(box: BoxXyxy): void {
    const m = this.mean;
    const c = this.cov;
    const h = m[3];
    for (let k = 0; k < 4; k++) {
      const z = measure(box, k);
      const r = k === 2 ? 1e-1 : STD_POSITION * h;
      const pp = c[3 * k];
      const pv = c[3 * k + 1];
      const vv = c[3 * k + 2];
      const s = pp + r * r;
      const kp = pp / s;
      const kv = pv / s;
      const innovation = z - m[k];
      m[k] += kp * innovation;
      m[k + 4] += kv * innovation;
      c[3 * k] = pp - kp * pp;
      c[3 * k + 1] = pv - kp * pv;
      c[3 * k + 2] = vv - kv * pv;
    }
  }

  /** Current box estimate as xyxy, written into `out` when given. */
  box(out: BoxXyxy = [0, 0, 0, 0]): BoxXyxy {
    const [cx, cy, a, h] = this.mean;
    const w = a * h;
    out[0] = cx - w / 2;
    out[1] = cy - h / 2;
    out[2] = cx + w / 2;
    out[3] = cy + h / 2;
    return out;
  }

  /** Centre velocity (vcx, vcy) in pixels per frame. */
  velocity(): [number, number] {
    return [this.mean[4], this.mean[5]];
  }

  private setMeasurement(box: BoxXyxy, out: Float64Array): void {
    for (let k = 0; k < 4; k++) out[k] = measure(box, k);
  }
}

/** Coordinate k of the measurement (cx, cy, w/h, h) of an xyxy box. */
function measure(b: BoxXyxy, k: number): number {
  switch (k) {
    case 0:
      return (b[0] + b[2]) / 2;
    case 1:
      return (b[1] + b[3]) / 2;
    case 2:
      return (b[2] - b[0]) / (b[3] - b[1]);
    default:
      return b[3] - b[1];
  }
}

// #endregion

// #region Tracker

interface TrackRecord {
  /** 0 until confirmed. */
  id: number;
  kf: BoxKalman;
  /** Box of the current frame: the prediction, replaced by the filtered box when matched. */
  box: BoxXyxy;
  classId: number;
  score: number;
  startFrame: number;
  lastFrame: number;
  /** Consecutive matched frames while tentative. */
  hits: number;
  confirmed: boolean;
  lost: boolean;
}

/**
 * ByteTrack multi-object tracker: feed it each frame's detections, get stable ids back.
 * Deterministic: the same detections in the same order give the same tracks.
 *
 * @example
 * ```ts
 * const tracker = new ByteTracker({ minHits: 1 });
 * tracker.update([{ box: [10, 10, 40, 90], score: 0.9, classId: 0 }], 0);
 * // -> [{ id: 1, box: [10, 10, 40, 90], score: 0.9, classId: 0, age: 0, velocity: [0, 0] }]
 * tracker.update([{ box: [14, 10, 44, 90], score: 0.9, classId: 0 }], 1)[0].id; // -> 1
 * ```
 */
export class ByteTracker {
  private readonly opts: Required<TrackerOptions>;
  private tracks: TrackRecord[] = [];
  private nextId = 1;
  private lastFrame: number | undefined;

  /**
   * @param opts - thresholds and track life cycle; see {@link TrackerOptions}.
   * @throws {RangeError} naming the option when a value is out of range.
   */
  constructor(opts: TrackerOptions = {}) {
    const o: Required<TrackerOptions> = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS) as (keyof TrackerOptions)[]) {
      const value = opts[key];
      if (value !== undefined) o[key] = value;
    }
    for (const key of [
      'highThreshold',
      'lowThreshold',
      'newTrackThreshold',
      'matchIou',
      'lowMatchIou',
    ] as const) {
      const x = o[key];
      if (!(typeof x === 'number' && x >= 0 && x <= 1)) {
        throw new RangeError(`'${key}' must be in [0, 1], got ${String(x)}`);
      }
    }
    if (o.lowThreshold > o.highThreshold) {
      throw new RangeError(
        `'lowThreshold' must be <= 'highThreshold' (${o.highThreshold}), got ${o.lowThreshold}`,
      );
    }
    if (!(Number.isInteger(o.maxLostFrames) && o.maxLostFrames >= 0)) {
      throw new RangeError(`'maxLostFrames' must be an integer >= 0, got ${String(o.maxLostFrames)}`);
    }
    if (!(Number.isInteger(o.minHits) && o.minHits >= 1)) {
      throw new RangeError(`'minHits' must be an integer >= 1, got ${String(o.minHits)}`);
    }
    this.opts = o;
  }

  /**
   * Associates one frame's detections with the tracks.
   *
   * Detections with a non-finite or empty box (x2 <= x1 or y2 <= y1) carry no position and are
   * skipped. A gap in `frameIndex` (frames dropped in live mode) is bridged by predicting the
   * motion over the missing frames.
   *
   * @param dets - detections of this frame, in any order.
   * @param frameIndex - the frame's index; must increase from call to call (call
   *   {@link ByteTracker.reset} when a stream restarts).
   * @returns the confirmed tracks matched in this frame, ascending by id.
   * @throws {RangeError} when `frameIndex` is not an integer greater than the previous one.
   */
  update(dets: Detection[], frameIndex: number): Track[] {
    if (!Number.isInteger(frameIndex)) {
      throw new RangeError(`'frameIndex' must be an integer, got ${frameIndex}`);
    }
    if (this.lastFrame !== undefined && frameIndex <= this.lastFrame) {
      throw new RangeError(
        `'frameIndex' must increase from call to call: previous ${this.lastFrame}, got ${frameIndex}`,
      );
    }
    const firstFrame = this.lastFrame === undefined;
    const steps = firstFrame
      ? 0
      : Math.min(frameIndex - (this.lastFrame as number), this.opts.maxLostFrames + 1);
    this.lastFrame = frameIndex;
    const { highThreshold, lowThreshold, newTrackThreshold, matchIou, lowMatchIou, maxLostFrames, minHits } =
      this.opts;

    const high: Detection[] = [];
    const low: Detection[] = [];
    for (const d of dets) {
      if (!validBox(d.box)) continue;
      if (d.score >= highThreshold) high.push(d);
      else if (d.score >= lowThreshold) low.push(d);
    }

    for (const t of this.tracks) {
      for (let s = 0; s < steps; s++) t.kf.predict(t.lost);
      t.kf.box(t.box);
    }

    const matched = (t: TrackRecord, d: Detection): void => {
      t.kf.update(d.box);
      t.kf.box(t.box);
      t.score = d.score;
      t.lastFrame = frameIndex;
      t.lost = false;
    };

    // Stage 1: high detections against every confirmed track, tracked or lost.
    const pool = this.tracks.filter((t) => t.confirmed);
    const first = linearAssignment(costMatrix(pool, high), 1 - matchIou, high.length);
    for (const [r, c] of first.matches) matched(pool[r], high[c]);
    const highLeft = first.unmatchedCols.map((c) => high[c]);

    // Stage 2: low detections against the confirmed tracks that were tracked last frame.
    const tracked = first.unmatchedRows.map((r) => pool[r]).filter((t) => !t.lost);
    const second = linearAssignment(costMatrix(tracked, low), 1 - lowMatchIou, low.length);
    for (const [r, c] of second.matches) matched(tracked[r], low[c]);
    for (const r of second.unmatchedRows) tracked[r].lost = true;

    // Stage 3: tentative tracks against the high detections left over; a miss ends them.
    const tentative = this.tracks.filter((t) => !t.confirmed);
    const third = linearAssignment(costMatrix(tentative, highLeft), 1 - matchIou, highLeft.length);
    const removed = new Set<TrackRecord>();
    for (const [r, c] of third.matches) {
      const t = tentative[r];
      matched(t, highLeft[c]);
      t.hits++;
      if (t.hits >= minHits) this.confirm(t);
    }
    for (const r of third.unmatchedRows) removed.add(tentative[r]);

    // New tentative tracks from confident detections nobody claimed.
    for (const c of third.unmatchedCols) {
      const d = highLeft[c];
      if (d.score < newTrackThreshold) continue;
      const kf = new BoxKalman(d.box);
      const t: TrackRecord = {
        id: 0,
        kf,
        box: kf.box(),
        classId: d.classId,
        score: d.score,
        startFrame: frameIndex,
        lastFrame: frameIndex,
        hits: 1,
        confirmed: false,
        lost: false,
      };
      if (firstFrame || minHits <= 1) this.confirm(t);
      this.tracks.push(t);
    }

    for (const t of this.tracks) {
      if (t.lost && frameIndex - t.lastFrame > maxLostFrames) removed.add(t);
    }
    this.removeDuplicates(removed, frameIndex);
    if (removed.size > 0) this.tracks = this.tracks.filter((t) => !removed.has(t));

    const out: Track[] = [];
    for (const t of this.tracks) {
      if (!t.confirmed || t.lost) continue;
      out.push({
        id: t.id,
        box: [t.box[0], t.box[1], t.box[2], t.box[3]],
        score: t.score,
        classId: t.classId,
        age: frameIndex - t.startFrame,
        velocity: t.kf.velocity(),
      });
    }
    return out.sort((a, b) => a.id - b.id);
  }

  /** Forgets every track and restarts ids at 1 and the frame count (e.g. when a stream reconnects). */
  reset(): void {
    this.tracks = [];
    this.nextId = 1;
    this.lastFrame = undefined;
  }

  private confirm(t: TrackRecord): void {
    t.confirmed = true;
    t.id = this.nextId++;
  }

  /**
   * ByteTrack's `remove_duplicate_stracks`: a tracked and a lost track of the same class that
   * overlap by IoU > 0.85 describe one object; the younger of the two goes (the lost one on a tie).
   */
  private removeDuplicates(removed: Set<TrackRecord>, frameIndex: number): void {
    const live = this.tracks.filter((t) => t.confirmed && !t.lost && !removed.has(t));
    const lost = this.tracks.filter((t) => t.confirmed && t.lost && !removed.has(t));
    for (const p of live) {
      for (const q of lost) {
        if (removed.has(q) || p.classId !== q.classId || iou(p.box, q.box) <= DUPLICATE_IOU) continue;
        const ageP = frameIndex - p.startFrame;
        const ageQ = frameIndex - q.startFrame;
        removed.add(ageP >= ageQ ? q : p);
        if (removed.has(p)) break;
      }
    }
  }
}

/** Rows = tracks, cols = detections, cost 1 - IoU, Infinity across classes. */
function costMatrix(tracks: readonly TrackRecord[], dets: readonly Detection[]): number[][] {
  const cost: number[][] = [];
  for (const t of tracks) {
    const row = new Array<number>(dets.length);
    for (let c = 0; c < dets.length; c++) {
      row[c] = dets[c].classId === t.classId ? 1 - iou(t.box, dets[c].box) : Infinity;
    }
    cost.push(row);
  }
  return cost;
}

function validBox(b: BoxXyxy): boolean {
  return (
    Number.isFinite(b[0]) &&
    Number.isFinite(b[1]) &&
    Number.isFinite(b[2]) &&
    Number.isFinite(b[3]) &&
    b[2] > b[0] &&
    b[3] > b[1]
  );
}

// #endregion
