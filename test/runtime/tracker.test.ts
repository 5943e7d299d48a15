import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { BoxXyxy, Detection } from '../../models/core/detection.js';
import {
  BoxKalman,
  ByteTracker,
  hungarian,
  linearAssignment,
  type Track,
  type TrackerOptions,
} from '../../runtime/tracker.js';
import { LineCounter, parseCountLine } from '../../runtime/line-counter.js';

/** A w x h box with its centre at (cx, cy). */
function boxAt(cx: number, cy: number, w = 30, h = 80): BoxXyxy {
  return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
}

function det(box: BoxXyxy, score = 0.9, classId = 0): Detection {
  return { box, score, classId };
}

function centre(b: readonly number[]): [number, number] {
  return [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
}

function dist(a: readonly number[], b: readonly number[]): number {
  const [ax, ay] = centre(a);
  const [bx, by] = centre(b);
  return Math.hypot(ax - bx, ay - by);
}

/** Runs a tracker over per-frame detection lists (frame i gets index i). */
function run(frames: Detection[][], opts?: TrackerOptions): Track[][] {
  const tracker = new ByteTracker(opts);
  return frames.map((dets, i) => tracker.update(dets, i));
}

/**
 * Two people walking towards each other at +-4 px/frame, 10 px apart vertically, crossing at
 * frame 25 (boxes 30x80, IoU 0.78 at the crossing).
 */
function crossingFrames(): { a: BoxXyxy[]; b: BoxXyxy[]; frames: Detection[][] } {
  const a: BoxXyxy[] = [];
  const b: BoxXyxy[] = [];
  const frames: Detection[][] = [];
  for (let t = 0; t <= 50; t++) {
    a.push(boxAt(65 + 4 * t, 140));
    b.push(boxAt(265 - 4 * t, 150));
    // B listed first on odd frames so the order of detections cannot carry the ids.
    frames.push(t % 2 ? [det(b[t], 0.85), det(a[t], 0.9)] : [det(a[t], 0.9), det(b[t], 0.85)]);
  }
  return { a, b, frames };
}

describe('hungarian', () => {
  test('finds the optimum where greedy best-first does not', () => {
    // Greedy takes (0,0)=0.1 first and is left with (1,1)=0.9: total 1.0. Optimum 0.2+0.3 = 0.5.
    assert.deepEqual(
      hungarian([
        [0.1, 0.2],
        [0.3, 0.9],
      ]),
      [1, 0],
    );
  });

  test('solves a 3x3 matrix by hand (optimum 1 + 2 + 2 = 5)', () => {
    assert.deepEqual(
      hungarian([
        [4, 1, 3],
        [2, 0, 5],
        [3, 2, 2],
      ]),
      [1, 0, 2],
    );
  });

  test('handles rectangular matrices both ways', () => {
    assert.deepEqual(
      hungarian([
        [5, 1, 9],
        [1, 5, 9],
      ]),
      [1, 0],
    );
    // More rows than columns: the costliest row is left out.
    assert.deepEqual(hungarian([[3], [1], [2]]), [-1, 0, -1]);
    assert.deepEqual(hungarian([]), []);
  });

  test('rejects non-finite and ragged matrices', () => {
    assert.throws(() => hungarian([[1, Infinity]]), { name: 'RangeError', message: /'cost' must be finite/ });
    assert.throws(() => hungarian([[1, 2], [3]]), {
      name: 'RangeError',
      message: /'cost' must be rectangular/,
    });
  });
});

describe('linearAssignment', () => {
  test('matches a pair only when its cost is within the limit', () => {
    // In IoU terms: track 0 overlaps det 0 by 0.9 and det 1 by 0.8; track 1 overlaps det 0 by 0.7 and
    // det 1 by 0.1 (below matchIou 0.2). Greedy best-IoU gives 1 match, the optimum 2.
    const r = linearAssignment(
      [
        [0.1, 0.2],
        [0.3, 0.9],
      ],
      0.8,
    );
    assert.deepEqual(r.matches, [
      [0, 1],
      [1, 0],
    ]);
    assert.deepEqual(r.unmatchedRows, []);
    assert.deepEqual(r.unmatchedCols, []);
  });

  test('leaves pairs above the limit or forbidden (Infinity) unmatched', () => {
    const r = linearAssignment(
      [
        [0.9, Infinity],
        [Infinity, 0.5],
      ],
      0.8,
    );
    assert.deepEqual(r.matches, [[1, 1]]);
    assert.deepEqual(r.unmatchedRows, [0]);
    assert.deepEqual(r.unmatchedCols, [0]);
    const empty = linearAssignment([[], []], 0.8);
    assert.deepEqual(empty, { matches: [], unmatchedRows: [0, 1], unmatchedCols: [] });
    // No rows: the column count comes from the third argument.
    assert.deepEqual(linearAssignment([], 0.8, 3), {
      matches: [],
      unmatchedRows: [],
      unmatchedCols: [0, 1, 2],
    });
  });
});

describe('BoxKalman', () => {
  test('converges to the velocity of a constant-velocity sequence', () => {
    const kf = new BoxKalman(boxAt(100, 200, 40, 100));
    assert.deepEqual(kf.velocity(), [0, 0]);
    for (let t = 1; t <= 30; t++) {
      kf.predict();
      kf.update(boxAt(100 + 5 * t, 200 - 2 * t, 40, 100));
    }
    const [vx, vy] = kf.velocity();
    assert.ok(Math.abs(vx - 5) < 0.05, `vx ${vx}`);
    assert.ok(Math.abs(vy + 2) < 0.05, `vy ${vy}`);
    kf.predict();
    const predicted = kf.box();
    const expected = boxAt(100 + 5 * 31, 200 - 2 * 31, 40, 100);
    for (let k = 0; k < 4; k++)
      assert.ok(Math.abs(predicted[k] - expected[k]) < 0.5, `${predicted} vs ${expected}`);
  });

  test('predict alone moves the box by the velocity and grows the uncertainty', () => {
    const kf = new BoxKalman([0, 0, 10, 20]);
    kf.mean[4] = 3; // vcx
    const before = kf.cov[0];
    kf.predict();
    assert.deepEqual(kf.box(), [3, 0, 13, 20]);
    assert.ok(kf.cov[0] > before);
  });
});

describe('ByteTracker', () => {
  test('keeps the ids of two people whose paths cross', () => {
    const { a, b, frames } = crossingFrames();
    const out = run(frames);
    const [t0a, t0b] = out[0][0].box[0] < out[0][1].box[0] ? out[0] : [out[0][1], out[0][0]];
    assert.deepEqual(
      [t0a.id, t0b.id].sort((x, y) => x - y),
      [1, 2],
    );
    for (let t = 0; t < out.length; t++) {
      assert.equal(out[t].length, 2, `frame ${t}`);
      const ta = out[t].find((tr) => tr.id === t0a.id);
      const tb = out[t].find((tr) => tr.id === t0b.id);
      assert.ok(ta && tb, `frame ${t}: ids ${out[t].map((tr) => tr.id)}`);
      assert.ok(dist(ta.box, a[t]) < dist(ta.box, b[t]), `frame ${t}: A's id on B`);
      assert.ok(dist(tb.box, b[t]) < dist(tb.box, a[t]), `frame ${t}: B's id on A`);
    }
    const last = out[out.length - 1].find((tr) => tr.id === t0a.id) as Track;
    assert.ok(dist(last.box, a[50]) < 1);
    assert.ok(Math.abs((last.velocity as [number, number])[0] - 4) < 0.1);
    assert.equal(last.age, 50);
  });

  test('gives the same id back to a person missed for 5 frames', () => {
    const frames: Detection[][] = [];
    for (let t = 0; t < 25; t++) frames.push(t >= 10 && t < 15 ? [] : [det(boxAt(100 + 3 * t, 100))]);
    const out = run(frames);
    for (let t = 0; t < 25; t++) {
      if (t >= 10 && t < 15) assert.deepEqual(out[t], [], `frame ${t}: lost tracks are not reported`);
      else
        assert.deepEqual(
          out[t].map((tr) => tr.id),
          [1],
          `frame ${t}`,
        );
    }
  });

  test('bridges a gap in frameIndex by predicting over the dropped frames', () => {
    const tracker = new ByteTracker();
    for (let t = 0; t < 10; t++) tracker.update([det(boxAt(100 + 10 * t, 100))], t);
    // Frames 10..13 dropped: the person moved 50 px, farther than the 30 px box width.
    const out = tracker.update([det(boxAt(100 + 10 * 14, 100))], 14);
    assert.deepEqual(
      out.map((tr) => [tr.id, tr.age]),
      [[1, 14]],
    );
  });

  test('a low-score detection continues a track but never starts one', () => {
    const frames: Detection[][] = [];
    for (let t = 0; t < 10; t++) frames.push([det(boxAt(100 + 2 * t, 100), t < 5 ? 0.9 : 0.3)]);
    const out = run(frames);
    for (let t = 0; t < 10; t++)
      assert.deepEqual(
        out[t].map((tr) => [tr.id, tr.score]),
        [[1, t < 5 ? 0.9 : 0.3]],
      );

    const lowOnly = run(Array.from({ length: 10 }, (_, t) => [det(boxAt(100 + 2 * t, 100), 0.3)]));
    assert.ok(lowOnly.every((f) => f.length === 0));
    // High enough to match (>= 0.5) but below newTrackThreshold (0.6): no new track either.
    const mid = run(Array.from({ length: 10 }, (_, t) => [det(boxAt(100 + 2 * t, 100), 0.55)]));
    assert.ok(mid.every((f) => f.length === 0));
    // Below lowThreshold (0.1) a detection does not even continue a track.
    const faint = run([[det(boxAt(100, 100))], [det(boxAt(100, 100), 0.05)]]);
    assert.deepEqual(faint[1], []);
  });

  test('a low-score detection does not re-find a lost track', () => {
    const out = run([[det(boxAt(100, 100))], [], [det(boxAt(100, 100), 0.3)], [det(boxAt(100, 100))]]);
    assert.deepEqual(
      out.map((f) => f.map((tr) => tr.id)),
      [[1], [], [], [1]],
    );
  });

  test('a new person gets a new id once confirmed (minHits 2)', () => {
    const frames: Detection[][] = [];
    for (let t = 0; t < 15; t++) {
      const dets = [det(boxAt(100 + 2 * t, 100))];
      if (t >= 10) dets.push(det(boxAt(400 - 2 * t, 100)));
      frames.push(dets);
    }
    const out = run(frames);
    assert.deepEqual(
      out[9].map((tr) => tr.id),
      [1],
    );
    // Born at frame 10: tentative for one frame, reported from its second frame on.
    assert.deepEqual(
      out[10].map((tr) => tr.id),
      [1],
    );
    for (let t = 11; t < 15; t++)
      assert.deepEqual(
        out[t].map((tr) => [tr.id, tr.age]),
        [
          [1, t],
          [2, t - 10],
        ],
      );
  });

  test('reports tracks on their first frame with minHits 1', () => {
    const out = run([[det(boxAt(100, 100))], [det(boxAt(100, 100)), det(boxAt(300, 100))]], { minHits: 1 });
    assert.deepEqual(
      out.map((f) => f.map((tr) => tr.id)),
      [[1], [1, 2]],
    );
    assert.deepEqual(out[0][0], {
      id: 1,
      box: boxAt(100, 100),
      score: 0.9,
      classId: 0,
      age: 0,
      velocity: [0, 0],
    });
  });

  test('drops a tentative track that misses a frame, without using up an id', () => {
    const out = run([
      [det(boxAt(100, 100))],
      [det(boxAt(100, 100)), det(boxAt(300, 100))], // tentative
      [det(boxAt(100, 100))], // missed: dropped
      [det(boxAt(100, 100)), det(boxAt(500, 100))],
      [det(boxAt(100, 100)), det(boxAt(500, 100))],
    ]);
    assert.deepEqual(
      out.map((f) => f.map((tr) => tr.id)),
      [[1], [1], [1], [1], [1, 2]],
    );
  });

  test('gives up a lost track after maxLostFrames', () => {
    const frames: Detection[][] = [[det(boxAt(100, 100))], [det(boxAt(100, 100))]];
    for (let t = 0; t < 4; t++) frames.push([]);
    frames.push([det(boxAt(100, 100))], [det(boxAt(100, 100))]);
    assert.deepEqual(
      run(frames, { maxLostFrames: 3 }).map((f) => f.map((tr) => tr.id)),
      [[1], [1], [], [], [], [], [], [2]],
    );
    assert.deepEqual(
      run(frames, { maxLostFrames: 4 }).map((f) => f.map((tr) => tr.id)),
      [[1], [1], [], [], [], [], [1], [1]],
    );
  });

  test('never swaps ids across classes', () => {
    const p = boxAt(120, 150, 40, 100);
    const q = boxAt(140, 150, 40, 100); // IoU(p, q) = 0.33
    const frames: Detection[][] = [];
    for (let t = 0; t < 10; t++) {
      // From frame 5 the classes trade places: by position alone the ids would stay put.
      frames.push(t < 5 ? [det(p, 0.9, 0), det(q, 0.9, 1)] : [det(q, 0.9, 0), det(p, 0.9, 1)]);
    }
    const out = run(frames);
    const classOf = new Map<number, number>();
    for (const f of out) {
      assert.equal(f.length, 2);
      for (const tr of f) {
        if (!classOf.has(tr.id)) classOf.set(tr.id, tr.classId);
        assert.equal(tr.classId, classOf.get(tr.id), `id ${tr.id} changed class`);
      }
    }
    assert.deepEqual([...classOf.keys()].sort(), [1, 2]);
    const cls0 = out[9].find((tr) => tr.classId === 0) as Track;
    assert.ok(dist(cls0.box, q) < dist(cls0.box, p), 'class 0 followed its detection to q');
  });

  test('does not match different classes at the same place', () => {
    const out = run([
      [det(boxAt(100, 100), 0.9, 0)],
      [det(boxAt(100, 100), 0.9, 1)],
      [det(boxAt(100, 100), 0.9, 1)],
    ]);
    assert.deepEqual(
      out.map((f) => f.map((tr) => [tr.id, tr.classId])),
      [[[1, 0]], [], [[2, 1]]],
    );
  });

  test('skips detections with empty or non-finite boxes', () => {
    const out = run([[det([10, 10, 10, 50]), det([0, 0, NaN, 5]), det(boxAt(100, 100))]], { minHits: 1 });
    assert.deepEqual(
      out[0].map((tr) => tr.id),
      [1],
    );
  });

  test('is deterministic and reset() restarts ids and frames', () => {
    const { frames } = crossingFrames();
    assert.deepEqual(run(frames), run(frames));
    const tracker = new ByteTracker();
    tracker.update([det(boxAt(100, 100)), det(boxAt(300, 100))], 0);
    tracker.reset();
    assert.deepEqual(
      tracker.update([det(boxAt(300, 100))], 0).map((tr) => tr.id),
      [1],
    );
  });

  test('rejects bad options and non-increasing frame indices', () => {
    assert.throws(() => new ByteTracker({ highThreshold: 1.5 }), {
      name: 'RangeError',
      message: /'highThreshold' must be in \[0, 1\], got 1.5/,
    });
    assert.throws(() => new ByteTracker({ lowThreshold: 0.7 }), {
      name: 'RangeError',
      message: /'lowThreshold'/,
    });
    assert.throws(() => new ByteTracker({ minHits: 0 }), { name: 'RangeError', message: /'minHits'/ });
    assert.throws(() => new ByteTracker({ maxLostFrames: 1.5 }), {
      name: 'RangeError',
      message: /'maxLostFrames'/,
    });
    const tracker = new ByteTracker();
    tracker.update([], 3);
    assert.throws(() => tracker.update([], 3), { name: 'RangeError', message: /'frameIndex' must increase/ });
    assert.throws(() => tracker.update([], 4.5), {
      name: 'RangeError',
      message: /'frameIndex' must be an integer/,
    });
  });
});

describe('LineCounter', () => {
  /** A 20x100 box whose bottom-centre is (x, y). */
  const feetAt = (x: number, y = 150): [number, number, number, number] => [x - 10, y - 100, x + 10, y];
  const tr = (id: number, box: [number, number, number, number]): Track => ({
    id,
    box,
    score: 0.9,
    classId: 0,
    age: 0,
  });
  const vertical: [number, number, number, number] = [100, 0, 100, 200]; // drawn top to bottom

  test('counts left to right as in and right to left as out, once each', () => {
    const counter = new LineCounter(vertical);
    const results = [];
    for (let x = 60; x <= 140; x += 10) results.push(counter.update([tr(1, feetAt(x))]));
    assert.deepEqual(results.at(-1), { in: 1, out: 0, crossed: [] });
    assert.deepEqual(
      results.flatMap((r) => r.crossed),
      [{ id: 1, direction: 'in' }],
    );
    let last = results[0];
    for (let x = 140; x >= 60; x -= 10) {
      last = counter.update([tr(1, feetAt(x))]);
      if (x === 90) assert.deepEqual(last.crossed, [{ id: 1, direction: 'out' }]);
    }
    assert.equal(last.in, 1);
    assert.equal(last.out, 1);
  });

  test('does not count a track jittering on the line (dead band 5% of box height = 5 px)', () => {
    const counter = new LineCounter(vertical);
    counter.update([tr(1, feetAt(60))]);
    let r = counter.update([tr(1, feetAt(97))]);
    for (let i = 0; i < 30; i++) r = counter.update([tr(1, feetAt(i % 2 ? 96 : 104))]); // +-4 px around x = 100
    assert.deepEqual(r, { in: 0, out: 0, crossed: [] });
    r = counter.update([tr(1, feetAt(110))]);
    assert.deepEqual(r, { in: 1, out: 0, crossed: [{ id: 1, direction: 'in' }] });
    for (let i = 0; i < 30; i++) r = counter.update([tr(1, feetAt(i % 2 ? 96 : 104))]);
    assert.equal(r.in + r.out, 1);
  });

  test('does not count a track born on the line or passing beside the segment', () => {
    const counter = new LineCounter(vertical);
    counter.update([tr(1, feetAt(100)), tr(2, feetAt(60, 300))]);
    const r = counter.update([tr(1, feetAt(140)), tr(2, feetAt(140, 300))]); // track 2 passes below y = 200
    assert.deepEqual(r, { in: 0, out: 0, crossed: [] });
  });

  test('counts a crossing made while the track was not reported', () => {
    const counter = new LineCounter(vertical);
    counter.update([tr(1, feetAt(80))]);
    counter.update([]);
    counter.update([tr(2, feetAt(130))]);
    assert.deepEqual(counter.update([tr(1, feetAt(120))]).crossed, [{ id: 1, direction: 'in' }]);
  });

  test('uses the bottom-centre by default and the centre on request', () => {
    const horizontal: [number, number, number, number] = [0, 100, 200, 100]; // drawn left to right
    const bottom = new LineCounter(horizontal);
    const middle = new LineCounter(horizontal, { anchor: 'centre' });
    // Box moving up: feet from y = 140 to y = 60, centre from 90 to 10; bottom to top is 'in' for this line.
    for (const y of [140, 60]) {
      bottom.update([tr(1, feetAt(50, y))]);
      middle.update([tr(1, feetAt(50, y))]);
    }
    assert.equal(bottom.update([]).in, 1);
    assert.equal(middle.update([]).in, 0);
  });

  test('counts tracks from the tracker: two people crossing a line in opposite directions', () => {
    const { frames } = crossingFrames(); // A moves right 65 -> 265, B left 265 -> 65
    const tracker = new ByteTracker();
    const counter = new LineCounter([165, 0, 165, 400]);
    let r = counter.update([]);
    const crossed: { id: number; direction: string }[] = [];
    frames.forEach((dets, i) => {
      r = counter.update(tracker.update(dets, i));
      crossed.push(...r.crossed);
    });
    assert.equal(r.in, 1);
    assert.equal(r.out, 1);
    assert.deepEqual(crossed.map((c) => c.direction).sort(), ['in', 'out']);
    assert.equal(new Set(crossed.map((c) => c.id)).size, 2);
  });

  test('rejects a degenerate line and bad options', () => {
    assert.throws(() => new LineCounter([5, 5, 5, 5]), {
      name: 'RangeError',
      message: /'line' must have two distinct/,
    });
    assert.throws(() => new LineCounter([0, 0, NaN, 5]), { name: 'RangeError', message: /'line'/ });
    assert.throws(() => new LineCounter(vertical, { hysteresis: -1 }), {
      name: 'RangeError',
      message: /'hysteresis'/,
    });
    assert.throws(() => new LineCounter(vertical, { forgetAfter: 0 }), {
      name: 'RangeError',
      message: /'forgetAfter'/,
    });
  });

  test('reset() zeroes the counts', () => {
    const counter = new LineCounter(vertical);
    counter.update([tr(1, feetAt(60))]);
    counter.update([tr(1, feetAt(140))]);
    counter.reset();
    assert.deepEqual(counter.update([tr(1, feetAt(60))]), { in: 0, out: 0, crossed: [] });
  });
});

describe('parseCountLine', () => {
  test('parses x1,y1,x2,y2 with optional spaces', () => {
    assert.deepEqual(parseCountLine('10,20,30,40'), [10, 20, 30, 40]);
    assert.deepEqual(parseCountLine(' 0.5, -20 ,1e3,40'), [0.5, -20, 1000, 40]);
  });

  for (const bad of ['', '1,2,3', '1,2,3,4,5', 'a,b,c,d', '1,,3,4', '1,2,3,Infinity']) {
    test(`rejects '${bad}' with ERR_CONFIG_INVALID naming --count-line`, () => {
      assert.throws(() => parseCountLine(bad), {
        name: 'ConfigError',
        code: 'ERR_CONFIG_INVALID',
        message: /'--count-line' must be 4 comma-separated numbers/,
      });
    });
  }

  test('rejects a line whose end points coincide with ERR_CONFIG_RANGE', () => {
    assert.throws(() => parseCountLine('5,5,5,5'), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_RANGE',
      message: /'--count-line' must have two distinct end points/,
    });
  });
});

test('linearAssignment solves each group of competing pairs alone and reaches the whole-matrix optimum', () => {
  let seed = 7;
  const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const limit = 0.8;
  for (let trial = 0; trial < 200; trial++) {
    const rows = 1 + Math.floor(rand() * 12);
    const cols = 1 + Math.floor(rand() * 12);
    // Sparse: most pairs forbidden, as for boxes that do not overlap.
    const cost = Array.from({ length: rows }, () =>
      Array.from({ length: cols }, () => (rand() < 0.25 ? rand() : Infinity)),
    );
    const a = linearAssignment(cost, limit);
    // Reference: the padded square matrix solved in one piece.
    const size = Math.max(rows, cols);
    const square = Array.from({ length: size }, (_, r) =>
      Array.from({ length: size }, (_, c) =>
        r < rows && c < cols && cost[r][c] <= limit ? cost[r][c] : limit,
      ),
    );
    const whole = hungarian(square);
    let refObjective = 0;
    for (let r = 0; r < rows; r++) {
      const c = whole[r];
      if (c >= 0 && c < cols && cost[r][c] <= limit) refObjective += cost[r][c] - limit;
    }
    const objective = a.matches.reduce((s, [r, c]) => s + cost[r][c] - limit, 0);
    assert.ok(Math.abs(objective - refObjective) < 1e-9, `trial ${trial}: ${objective} vs ${refObjective}`);
    for (const [r, c] of a.matches) assert.ok(cost[r][c] <= limit);
    assert.equal(a.matches.length + a.unmatchedRows.length, rows);
    assert.equal(a.matches.length + a.unmatchedCols.length, cols);
    assert.equal(new Set(a.matches.map((m) => m[1])).size, a.matches.length, 'each column used once');
  }
});
