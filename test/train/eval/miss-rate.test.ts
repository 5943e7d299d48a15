import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Annotation, BoxXyxy, Detection } from '../../../models/core/detection.js';
import type { EvalImage } from '../../../train/eval/coco-ap.js';
import {
  MISS_RATE_FPPI_REFS,
  evaluateMissRate,
  logAverageMissRate,
  missRateCurve,
  type MissRateOptions,
} from '../../../train/eval/miss-rate.js';

/** A pedestrian-shaped box of height h at x (width h/2). */
const ped = (x: number, h: number): BoxXyxy => [x, 0, x + h / 2, h];
const gt = (box: BoxXyxy, ignore?: boolean, classId = 0): Annotation =>
  ignore === undefined ? { box, classId } : { box, classId, ignore };
const det = (box: BoxXyxy, score: number, classId = 0): Detection => ({ box, score, classId });
/** `n` images without objects or detections: they only add to the FPPI denominator. */
const empty = (n: number, from = 100): EvalImage[] =>
  Array.from({ length: n }, (_, i) => ({ id: from + i, gts: [], dets: [] }));

function close(actual: number, expected: number, what = 'value'): void {
  assert.ok(
    Math.abs(actual - expected) <= 1e-12 * Math.max(1, Math.abs(expected)),
    `${what}: expected ${expected}, got ${actual}`,
  );
}

describe('logAverageMissRate', () => {
  test('samples 9 FPPI points in [1e-2, 1], log-spaced', () => {
    assert.equal(MISS_RATE_FPPI_REFS.length, 9);
    assert.equal(MISS_RATE_FPPI_REFS[0], 0.01);
    assert.equal(MISS_RATE_FPPI_REFS[4], 0.1);
    assert.equal(MISS_RATE_FPPI_REFS[8], 1);
    close(MISS_RATE_FPPI_REFS[2], Math.sqrt(0.001), 'ref 10^-1.5');
  });

  test('takes the miss rate at the largest FPPI <= each reference point', () => {
    // refs 0.01..0.316 (7) see mr 0.5; 0.562 and 1 see 0.25 -> exp((7 ln .5 + 2 ln .25) / 9) = 0.5^(11/9).
    close(logAverageMissRate({ fppi: [0, 0.05, 0.5, 2], missRate: [0.5, 0.5, 0.25, 0.25] }), 0.5 ** (11 / 9));
  });

  test('uses a miss rate of 1 for reference points left of the curve', () => {
    // Only refs 0.316, 0.562, 1 reach the point at FPPI 0.2; the other 6 read the start, mr = 1.
    close(logAverageMissRate({ fppi: [0.2], missRate: [0.5] }), 0.5 ** (3 / 9));
    close(logAverageMissRate({ fppi: [], missRate: [] }), 1, 'empty curve');
  });

  test('floors each sample at 1e-10 before the log', () => {
    close(logAverageMissRate({ fppi: [0], missRate: [0] }), 1e-10);
    close(
      logAverageMissRate({ fppi: [0, 0.5], missRate: [0.5, 0] }),
      Math.exp((7 * Math.log(0.5) + 2 * Math.log(1e-10)) / 9),
    );
  });

  test('rejects curves whose arrays differ in length', () => {
    assert.throws(() => logAverageMissRate({ fppi: [0, 1], missRate: [1] }), {
      name: 'RangeError',
      message: /'curve.missRate'/,
    });
    assert.throws(() => logAverageMissRate({ fppi: [], missRate: [] }, []), {
      name: 'RangeError',
      message: /'refs'/,
    });
  });
});

describe('evaluateMissRate', () => {
  test('perfect detections give the 1e-10 floor in every subset', () => {
    const images: EvalImage[] = [
      {
        id: 0,
        gts: [gt(ped(0, 60)), gt(ped(100, 120))],
        dets: [det(ped(0, 60), 0.9), det(ped(100, 120), 0.8)],
      },
      { id: 1, gts: [gt(ped(0, 30))], dets: [det(ped(0, 30), 0.7)] },
    ];
    const r = evaluateMissRate(images);
    close(r.MR2, 1e-10, 'MR2');
    close(r.MR2Reasonable, 1e-10, 'MR2Reasonable');
    close(r.MR2Small, 1e-10, 'MR2Small');
  });

  test('no detections at all give a miss rate of 1', () => {
    close(evaluateMissRate([{ id: 0, gts: [gt(ped(0, 100))], dets: [] }]).MR2, 1);
  });

  test('normalises false positives by every image, empty ones included', () => {
    // 8 images; an FP (0.9) on image 1, a TP (0.8) for one of two GTs on image 0.
    // Curve: (fppi 1/8, mr 1), (1/8, 0.5). Refs >= 0.125 (4 of 9) read 0.5, the others 1.
    const images: EvalImage[] = [
      { id: 0, gts: [gt(ped(0, 100)), gt(ped(200, 100))], dets: [det(ped(0, 100), 0.8)] },
      { id: 1, gts: [], dets: [det(ped(0, 100), 0.9)] },
      ...empty(6),
    ];
    const curve = missRateCurve(images, [50, Infinity]);
    assert.deepEqual(curve, { fppi: [0.125, 0.125], missRate: [1, 0.5], numGt: 2, numImages: 8 });
    close(evaluateMissRate(images).MR2Reasonable, 0.5 ** (4 / 9));
  });

  test('counts a second detection on the same pedestrian as a false positive', () => {
    // 4 images; GTs A, B. A 0.9, A again 0.8, B 0.7 -> (0, .5), (.25, .5), (.25, 0):
    // refs < 0.25 (6) read 0.5, refs >= 0.316 (3) read 0 -> floor.
    const a = ped(0, 100);
    const b = ped(200, 100);
    const images: EvalImage[] = [
      { id: 0, gts: [gt(a), gt(b)], dets: [det(a, 0.9), det(a, 0.8), det(b, 0.7)] },
      ...empty(3),
    ];
    close(evaluateMissRate(images).MR2, Math.exp((6 * Math.log(0.5) + 3 * Math.log(1e-10)) / 9));
  });

  test('a detection on an ignore region is not a false positive (overlap = inter / det area)', () => {
    // The region is 400x400; the detection inside it has IoU 0.005 but lies fully inside.
    const images: EvalImage[] = [
      {
        id: 0,
        gts: [gt([0, 0, 400, 400], true), gt(ped(500, 100))],
        dets: [det(ped(10, 80), 0.95), det(ped(20, 80), 0.94), det(ped(500, 100), 0.8)],
      },
    ];
    close(evaluateMissRate(images).MR2, 1e-10);
    // Without the flag the same boxes are two FPs at FPPI 2 (one image): only the start is read.
    const noFlag = structuredClone(images);
    noFlag[0].gts[0].ignore = false;
    close(evaluateMissRate(noFlag).MR2, 1);
  });

  test('applies the height subsets to ground truths and the expanded range to detections', () => {
    // 4 images. GTs: A h=100, B h=30, C h=45. Dets: C 0.99, FP h=35 0.95, B 0.9, A 0.7.
    // all [20, inf]: (0, 2/3), (.25, 2/3), (.25, 1/3), (.25, 0) -> 6 refs read 2/3, 3 the floor.
    // reasonable [50, inf]: B and C are ignore; dets kept from h >= 40: the FP (35) and B's det (30)
    //   are dropped, C's det (45) lands on an ignore box -> discarded; A is found -> floor.
    // small [50, 75]: no GT in range -> NaN.
    const images: EvalImage[] = [
      {
        id: 0,
        gts: [gt(ped(0, 100)), gt(ped(100, 30)), gt(ped(200, 45))],
        dets: [
          det(ped(200, 45), 0.99),
          det(ped(300, 35), 0.95),
          det(ped(100, 30), 0.9),
          det(ped(0, 100), 0.7),
        ],
      },
      ...empty(3),
    ];
    const r = evaluateMissRate(images);
    close(r.MR2, Math.exp((6 * Math.log(2 / 3) + 3 * Math.log(1e-10)) / 9), 'MR2');
    close(r.MR2Reasonable, 1e-10, 'MR2Reasonable');
    assert.ok(Number.isNaN(r.MR2Small), `MR2Small: ${r.MR2Small}`);
  });

  test('small is 50 <= h <= 75 for ground truths and keeps detections below 75 * 1.25', () => {
    // GT h=75 is in "small"; the det for the h=100 GT (100 >= 93.75) is dropped, not an FP.
    const images: EvalImage[] = [
      {
        id: 0,
        gts: [gt(ped(0, 75)), gt(ped(100, 100))],
        dets: [det(ped(100, 100), 0.9), det(ped(0, 75), 0.8)],
      },
    ];
    const curve = missRateCurve(images, [50, 75]);
    assert.deepEqual(curve, { fppi: [0], missRate: [0], numGt: 1, numImages: 1 });
    close(evaluateMissRate(images).MR2Small, 1e-10);
  });

  test('evaluates one class only, chosen by classId', () => {
    const images: EvalImage[] = [
      {
        id: 0,
        gts: [gt(ped(0, 100), undefined, 1)],
        dets: [det(ped(0, 100), 0.9, 1), det(ped(200, 100), 0.95, 0)],
      },
    ];
    assert.ok(Number.isNaN(evaluateMissRate(images).MR2));
    close(evaluateMissRate(images, { classId: 1 }).MR2, 1e-10);
  });

  test('honours iouThreshold and custom subsets', () => {
    // IoU of the detection with the GT is 0.6.
    const images: EvalImage[] = [{ id: 0, gts: [gt([0, 0, 50, 100])], dets: [det([0, 0, 50, 60], 0.9)] }];
    close(evaluateMissRate(images).MR2, 1e-10);
    close(evaluateMissRate(images, { iouThreshold: 0.7 }).MR2, 1);
    assert.ok(Number.isNaN(evaluateMissRate(images, { subsets: { all: [120, 200] } }).MR2));
  });

  test('rejects bad options with an error naming the parameter', () => {
    const images: EvalImage[] = [{ id: 0, gts: [], dets: [] }];
    const cases: [MissRateOptions, string, RegExp][] = [
      [{ iouThreshold: 0 }, 'RangeError', /'iouThreshold'/],
      [{ iouThreshold: 1.2 }, 'RangeError', /'iouThreshold'/],
      [{ heightExpand: 0.8 }, 'RangeError', /'heightExpand'/],
      [{ classId: -1 }, 'RangeError', /'classId'/],
      [{ subsets: { small: [75, 50] } }, 'RangeError', /'subsets.small'/],
      [{ subsets: { heavy: [50, 75] } } as unknown as MissRateOptions, 'TypeError', /'subsets.heavy'/],
      [{ iou: 0.5 } as unknown as MissRateOptions, 'TypeError', /'options.iou'/],
    ];
    for (const [opts, name, message] of cases) {
      assert.throws(() => evaluateMissRate(images, opts), { name, message });
    }
    assert.throws(() => missRateCurve(images, [10, 5]), { name: 'RangeError', message: /'heightRange'/ });
    assert.throws(() => evaluateMissRate([{ id: 0, gts: [], dets: [det(ped(0, 10), Infinity)] }]), {
      name: 'RangeError',
      message: /'images\[0\].dets\[0\].score'/,
    });
  });
});
