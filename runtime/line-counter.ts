/**
 * Line-crossing counts for `--count-line x1,y1,x2,y2`: how many tracks crossed a segment in
 * each direction.
 *
 * Anchor: each track is located by the bottom-centre of its box ((x1 + x2) / 2, y2), the
 * point where a pedestrian stands, so a line drawn on the floor counts feet crossing it;
 * pass `{ anchor: 'centre' }` for objects seen from above.
 *
 * Direction: with s = cross(B - A, P - A) for the line A = (x1, y1), B = (x2, y2) and anchor
 * P, 'in' is a move from the side s > 0 to the side s < 0 and 'out' the reverse. In image
 * coordinates (y down) and a line drawn top to bottom, 'in' is left to right; for a line drawn
 * left to right, 'in' is bottom to top. Swap the end points to swap the directions.
 *
 * Hysteresis: a track has a committed side, set once its anchor is farther than the dead
 * band from the (infinite) line; the band is max(1 px, `hysteresis` x box height) on each
 * side. A crossing is counted only when the anchor reaches the other side beyond the band,
 * and only if the path from the last point beyond the band on the old side to the new point
 * passes through the segment (not beside its ends). So a track jittering on the line counts
 * nothing, and counts always alternate in, out, in for one track.
 */
import { ConfigError } from '../models/core/errors.js';
import type { Track } from './tracker.js';

/** Options of {@link LineCounter}; defaults in brackets. */
export interface LineCounterOptions {
  /** Point of the box that must cross the line ('bottom-centre'). */
  anchor?: 'bottom-centre' | 'centre';
  /** Half-width of the dead band around the line as a fraction of the box height (0.05); at least 1 px. */
  hysteresis?: number;
  /** Forget a track not seen for this many updates (300), so memory stays bounded on endless streams. */
  forgetAfter?: number;
}

/** Cumulative counts plus the crossings of the latest update. */
export interface LineCount {
  in: number;
  out: number;
  /** Crossings in this update only, ascending by track id. */
  crossed: { id: number; direction: 'in' | 'out' }[];
}

interface SideState {
  /** Committed side: +1, -1, or 0 while the track has never left the dead band. */
  side: number;
  /** Last anchor seen beyond the band on the committed side. */
  x: number;
  y: number;
  lastSeen: number;
}

/**
 * Counts tracks crossing a line segment, in and out (rules in the module comment).
 *
 * @example
 * ```ts
 * const counter = new LineCounter([100, 0, 100, 200]); // vertical line, drawn top to bottom
 * counter.update([{ id: 1, box: [60, 50, 80, 150], score: 0.9, classId: 0, age: 0 }]);
 * counter.update([{ id: 1, box: [120, 50, 140, 150], score: 0.9, classId: 0, age: 1 }]);
 * // -> { in: 1, out: 0, crossed: [{ id: 1, direction: 'in' }] }
 * ```
 */
export class LineCounter {
  private readonly ax: number;
  private readonly ay: number;
  private readonly dx: number;
  private readonly dy: number;
  private readonly length: number;
  private readonly anchor: 'bottom-centre' | 'centre';
  private readonly hysteresis: number;
  private readonly forgetAfter: number;
  private readonly states = new Map<number, SideState>();
  private countIn = 0;
  private countOut = 0;
  private tick = 0;

  /**
   * @param line - [x1, y1, x2, y2] end points in the pixels of the tracks' boxes.
   * @param opts - anchor point, dead band and memory; see {@link LineCounterOptions}.
   * @throws {RangeError} when the line has a non-finite coordinate or zero length, or an option is out of range.
   */
  constructor(line: [number, number, number, number], opts: LineCounterOptions = {}) {
    if (line.length !== 4 || !line.every((v) => Number.isFinite(v))) {
      throw new RangeError(`'line' must be 4 finite numbers [x1, y1, x2, y2], got [${line.join(', ')}]`);
    }
    this.ax = line[0];
    this.ay = line[1];
    this.dx = line[2] - line[0];
    this.dy = line[3] - line[1];
    this.length = Math.hypot(this.dx, this.dy);
    if (this.length === 0) {
      throw new RangeError(`'line' must have two distinct end points, got [${line.join(', ')}]`);
    }
    this.anchor = opts.anchor ?? 'bottom-centre';
    if (this.anchor !== 'bottom-centre' && this.anchor !== 'centre') {
      throw new RangeError(`'anchor' must be one of 'bottom-centre', 'centre', got '${String(this.anchor)}'`);
    }
    this.hysteresis = opts.hysteresis ?? 0.05;
    if (!(this.hysteresis >= 0 && this.hysteresis < 1)) {
      throw new RangeError(`'hysteresis' must be in [0, 1), got ${this.hysteresis}`);
    }
    this.forgetAfter = opts.forgetAfter ?? 300;
    if (!(Number.isInteger(this.forgetAfter) && this.forgetAfter >= 1)) {
      throw new RangeError(`'forgetAfter' must be an integer >= 1, got ${this.forgetAfter}`);
    }
  }

  /**
   * Feeds one frame's tracks.
   * @param tracks - the tracker's output for the frame (tracks absent from a frame keep their state).
   * @returns cumulative in / out counts and this update's crossings.
   */
  update(tracks: Track[]): LineCount {
    this.tick++;
    const crossed: LineCount['crossed'] = [];
    for (const t of tracks) {
      const [x1, y1, x2, y2] = t.box;
      const px = (x1 + x2) / 2;
      const py = this.anchor === 'centre' ? (y1 + y2) / 2 : y2;
      // Signed distance to the infinite line, > 0 on the side where the cross product is positive.
      const dist = (this.dx * (py - this.ay) - this.dy * (px - this.ax)) / this.length;
      const band = Math.max(1, this.hysteresis * (y2 - y1));
      const side = dist > band ? 1 : dist < -band ? -1 : 0;
      let s = this.states.get(t.id);
      if (s === undefined) {
        s = { side: 0, x: px, y: py, lastSeen: this.tick };
        this.states.set(t.id, s);
      }
      s.lastSeen = this.tick;
      if (side === 0) continue;
      if (s.side !== 0 && side !== s.side && this.throughSegment(s.x, s.y, px, py)) {
        const direction = s.side > 0 ? 'in' : 'out';
        if (direction === 'in') this.countIn++;
        else this.countOut++;
        crossed.push({ id: t.id, direction });
      }
      s.side = side;
      s.x = px;
      s.y = py;
    }
    if (this.tick % 64 === 0) {
      for (const [id, s] of this.states) {
        if (this.tick - s.lastSeen > this.forgetAfter) this.states.delete(id);
      }
    }
    crossed.sort((a, b) => a.id - b.id);
    return { in: this.countIn, out: this.countOut, crossed };
  }

  /** Zeroes the counts and forgets every track. */
  reset(): void {
    this.states.clear();
    this.countIn = 0;
    this.countOut = 0;
    this.tick = 0;
  }

  /** Whether the path P0 -> P1 (on opposite sides of the line) meets the line within the segment. */
  private throughSegment(x0: number, y0: number, x1: number, y1: number): boolean {
    const d0 = this.dx * (y0 - this.ay) - this.dy * (x0 - this.ax);
    const d1 = this.dx * (y1 - this.ay) - this.dy * (x1 - this.ax);
    const f = d0 / (d0 - d1);
    const ix = x0 + f * (x1 - x0);
    const iy = y0 + f * (y1 - y0);
    const t = ((ix - this.ax) * this.dx + (iy - this.ay) * this.dy) / (this.length * this.length);
    return t >= 0 && t <= 1;
  }
}

/**
 * Parses the `--count-line` flag.
 *
 * @param s - 'x1,y1,x2,y2', four finite numbers in source pixels (spaces allowed).
 * @returns the line's end points.
 * @throws {ConfigError} `ERR_CONFIG_INVALID` naming `--count-line` when it is not four numbers,
 *   `ERR_CONFIG_RANGE` when both end points are the same.
 */
export function parseCountLine(s: string): [number, number, number, number] {
  const parts = s.split(',');
  const nums = parts.map((p) => (p.trim() === '' ? NaN : Number(p)));
  if (parts.length !== 4 || !nums.every((v) => Number.isFinite(v))) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `'--count-line' must be 4 comma-separated numbers 'x1,y1,x2,y2', got '${s}'`,
    );
  }
  const [x1, y1, x2, y2] = nums;
  if (x1 === x2 && y1 === y2) {
    throw new ConfigError('ERR_CONFIG_RANGE', `'--count-line' must have two distinct end points, got '${s}'`);
  }
  return [x1, y1, x2, y2];
}
