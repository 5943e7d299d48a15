import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Annotation, BoxXyxy, Detection } from '../../../models/core/detection.js';
import {
  COCO_IOU_THRESHOLDS,
  COCO_RECALL_THRESHOLDS,
  evaluateCocoAp,
  type CocoApOptions,
  type EvalImage,
} from '../../../train/eval/coco-ap.js';
import { EVAL_METRIC_KEYS, evaluateDetections } from '../../../train/eval/index.js';

/** pycocotools' precision for tp = n, fp = 0: n / (n + np.spacing(1)) ≈ 1 - 2.2e-16. */
const ONE = 1 / (1 + Number.EPSILON);

const xywh = (x: number, y: number, w: number, h: number): BoxXyxy => [x, y, x + w, y + h];
const gt = (box: BoxXyxy, classId = 0, ignore?: boolean): Annotation =>
  ignore === undefined ? { box, classId } : { box, classId, ignore };
const det = (box: BoxXyxy, score: number, classId = 0): Detection => ({ box, score, classId });

function close(actual: number, expected: number, what = 'value'): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: expected ${expected}, got ${actual}`);
}

describe('evaluateCocoAp', () => {
  test('uses the pycocotools thresholds', () => {
    assert.equal(COCO_IOU_THRESHOLDS.length, 10);
    assert.equal(COCO_IOU_THRESHOLDS[0], 0.5);
    assert.equal(COCO_IOU_THRESHOLDS[2], 0.6);
    assert.equal(COCO_IOU_THRESHOLDS[9], 0.95);
    assert.equal(COCO_RECALL_THRESHOLDS.length, 101);
    assert.equal(COCO_RECALL_THRESHOLDS[50], 0.5);
    assert.equal(COCO_RECALL_THRESHOLDS[100], 1);
  });

  test('gives AP 1 for perfect detections in every area range and class', () => {
    const boxes = [xywh(0, 0, 20, 20), xywh(100, 0, 50, 50), xywh(200, 0, 120, 120)];
    const images: EvalImage[] = [1, 2].map((id) => ({
      id,
      gts: boxes.flatMap((b) => [gt(b, 0), gt(b, 1)]),
      dets: boxes.flatMap((b, i) => [det(b, 0.9 - i / 10, 0), det(b, 0.5 + i / 10, 1)]),
    }));
    const r = evaluateCocoAp(images);
    for (const key of ['AP', 'AP50', 'AP75', 'APsmall', 'APmedium', 'APlarge'] as const)
      close(r[key], ONE, key);
    close(r.AR100, 1, 'AR100');
    assert.deepEqual(
      r.perClass.map((c) => [c.classId, c.numGt]),
      [
        [0, 6],
        [1, 6],
      ],
    );
  });

  test('a false positive scored above the only true positive gives AP 0.5', () => {
    // Sorted: FP (p=0, r=0), TP (p=0.5, r=1); right-to-left max -> 0.5 at every recall point.
    const r = evaluateCocoAp([
      {
        id: 'a',
        gts: [gt(xywh(0, 0, 50, 50))],
        dets: [det(xywh(300, 300, 50, 50), 0.9), det(xywh(0, 0, 50, 50), 0.8)],
      },
    ]);
    close(r.AP50, 0.5, 'AP50');
    close(r.AP, 0.5, 'AP');
    close(r.AR100, 1, 'AR100');
  });

  test('samples the interpolated precision at 101 recall points (not VOC area, not 11 points)', () => {
    // 2 GTs; TP 0.9, FP 0.8, TP 0.7 -> r = [.5, .5, 1], p = [1, .5, 2/3] -> interpolated [1, 2/3, 2/3].
    // Recall points 0..0.50 (51) take 1, 0.51..1 (50) take 2/3: (51 + 50 * 2/3) / 101 = 253/303.
    // (VOC all-point area would be 0.8333, 11-point 0.8485.)
    const r = evaluateCocoAp([
      {
        id: 1,
        gts: [gt(xywh(0, 0, 50, 50)), gt(xywh(100, 0, 50, 50))],
        dets: [det(xywh(0, 0, 50, 50), 0.9), det(xywh(300, 0, 50, 50), 0.8), det(xywh(100, 0, 50, 50), 0.7)],
      },
    ]);
    close(r.AP, 253 / 303, 'AP');
  });

  test('counts a second detection on the same ground truth as a false positive', () => {
    const a = xywh(0, 0, 50, 50);
    const b = xywh(100, 0, 50, 50);
    const r = evaluateCocoAp([{ id: 1, gts: [gt(a), gt(b)], dets: [det(a, 0.9), det(a, 0.8), det(b, 0.7)] }]);
    close(r.AP, 253 / 303, 'AP');
    close(r.AR100, 1, 'AR100');
  });

  test('detections on an image without ground truth are false positives', () => {
    const r = evaluateCocoAp([
      { id: 1, gts: [gt(xywh(0, 0, 50, 50))], dets: [det(xywh(0, 0, 50, 50), 0.8)] },
      { id: 2, gts: [], dets: [det(xywh(0, 0, 50, 50), 0.9)] },
      { id: 3, gts: [], dets: [] },
    ]);
    close(r.AP, 0.5, 'AP');
  });

  test('returns -1 everywhere when no class has a non-ignored ground truth', () => {
    const r = evaluateCocoAp([
      { id: 1, gts: [], dets: [det(xywh(0, 0, 50, 50), 0.9)] },
      { id: 2, gts: [gt(xywh(0, 0, 80, 80), 0, true)], dets: [] },
    ]);
    for (const key of ['AP', 'AP50', 'AP75', 'APsmall', 'APmedium', 'APlarge', 'AR100'] as const) {
      assert.equal(r[key], -1, key);
    }
    assert.equal(r.perClass[0].AP, -1);
    assert.equal(evaluateCocoAp([]).AP, -1);
  });

  test('detections inside an ignore region are neither TP nor FP (crowd rule: inter / det area)', () => {
    // The small boxes have IoU 0.01 with the region but lie fully inside it; scored above the TP.
    const region = xywh(0, 0, 200, 200);
    const r = evaluateCocoAp([
      {
        id: 1,
        gts: [gt(region, 0, true), gt(xywh(300, 0, 50, 50))],
        dets: [
          det(xywh(10, 10, 20, 20), 0.95),
          det(xywh(50, 50, 20, 20), 0.94),
          det(xywh(300, 0, 50, 50), 0.8),
        ],
      },
    ]);
    close(r.AP, ONE, 'AP');
    assert.equal(r.APsmall, -1); // no non-ignored small GT: the small boxes are detections only
  });

  test('matching prefers a non-ignored ground truth over a better-overlapping ignore region', () => {
    // IoU with the person is 0.9; with the crowd region inter/det = 1. pycocotools keeps the person.
    const r = evaluateCocoAp([
      {
        id: 1,
        gts: [gt(xywh(0, 0, 100, 100), 0, true), gt(xywh(0, 0, 50, 100))],
        dets: [det(xywh(0, 0, 50, 90), 0.9)],
      },
    ]);
    close(r.AP50, ONE, 'AP50');
  });

  test('splits AP by ground-truth area into small, medium and large', () => {
    // small 20x20, medium 50x50 (missed), large 120x120; an unmatched 50x50 FP scored lowest.
    // all: r = [1/3, 2/3, 2/3], p = [1, 1, 2/3] -> recall points 0..0.66 -> 1: AP = 67/101.
    // small: the large TP matches an ignored GT, the 2500 px² FP is outside the range -> 1.
    // medium: both TPs land on ignored GTs, the FP counts, the medium GT is missed -> 0.
    const r = evaluateCocoAp([
      {
        id: 1,
        gts: [gt(xywh(0, 0, 20, 20)), gt(xywh(100, 0, 50, 50)), gt(xywh(200, 0, 120, 120))],
        dets: [
          det(xywh(0, 0, 20, 20), 0.9),
          det(xywh(200, 0, 120, 120), 0.8),
          det(xywh(400, 400, 50, 50), 0.7),
        ],
      },
    ]);
    close(r.AP, 67 / 101, 'AP');
    close(r.APsmall, ONE, 'APsmall');
    close(r.APmedium, 0, 'APmedium');
    close(r.APlarge, ONE, 'APlarge');
    close(r.AR100, 2 / 3, 'AR100');
  });

  test('a box at IoU 0.6 counts at thresholds 0.50, 0.55 and 0.60 only: AP = 3/10', () => {
    const r = evaluateCocoAp([
      { id: 1, gts: [gt(xywh(0, 0, 100, 100))], dets: [det(xywh(0, 0, 100, 60), 0.9)] },
    ]);
    close(r.AP50, ONE, 'AP50');
    close(r.AP75, 0, 'AP75');
    close(r.AP, (3 / 10) * ONE, 'AP');
    close(r.AR100, 3 / 10, 'AR100');
  });

  test('keeps only the maxDets top-scored detections per image and class', () => {
    const boxes = [xywh(0, 0, 50, 50), xywh(100, 0, 50, 50), xywh(200, 0, 50, 50)];
    // Input order is lowest score first, so truncating before sorting would keep the wrong ones.
    const images: EvalImage[] = [
      { id: 1, gts: boxes.map((b) => gt(b)), dets: boxes.map((b, i) => det(b, 0.5 + i / 10)) },
    ];
    const r = evaluateCocoAp(images, { maxDets: 2 });
    close(r.AP, 67 / 101, 'AP');
    close(r.AR100, 2 / 3, 'AR100');
    close(evaluateCocoAp(images).AP, ONE, 'AP at maxDets 100');
    // The cap is per class: two classes with two detections each are both kept under maxDets 2.
    const twoClasses: EvalImage[] = [
      {
        id: 1,
        gts: [gt(boxes[0], 0), gt(boxes[1], 0), gt(boxes[0], 1), gt(boxes[1], 1)],
        dets: [det(boxes[0], 0.9, 0), det(boxes[1], 0.8, 0), det(boxes[0], 0.7, 1), det(boxes[1], 0.6, 1)],
      },
    ];
    close(evaluateCocoAp(twoClasses, { maxDets: 2 }).AP, ONE, 'AP two classes');
  });

  test('averages over classes with ground truth only', () => {
    const b = xywh(0, 0, 50, 50);
    const r = evaluateCocoAp(
      [
        {
          id: 1,
          gts: [gt(b, 0), gt(b, 1)],
          dets: [det(b, 0.9, 0), det(xywh(300, 0, 50, 50), 0.9, 1), det(b, 0.8, 1), det(b, 0.9, 2)],
        },
      ],
      { numClasses: 3 },
    );
    close(r.AP, (ONE + 0.5) / 2, 'AP');
    assert.deepEqual(
      r.perClass.map((c) => [c.classId, c.numGt]),
      [
        [0, 1],
        [1, 1],
        [2, 0],
      ],
    );
    close(r.perClass[1].AP50, 0.5, 'class 1 AP50');
    assert.equal(r.perClass[2].AP, -1);
  });

  test('breaks score ties in input order (stable, like numpy mergesort)', () => {
    const g = xywh(0, 0, 50, 50);
    const tp = det(g, 0.5);
    const fp = det(xywh(300, 0, 50, 50), 0.5);
    close(evaluateCocoAp([{ id: 1, gts: [gt(g)], dets: [fp, tp] }]).AP, 0.5, 'FP first');
    close(evaluateCocoAp([{ id: 1, gts: [gt(g)], dets: [tp, fp] }]).AP, ONE, 'TP first');
  });

  test('honours custom iouThresholds and areaRanges', () => {
    const images: EvalImage[] = [
      { id: 1, gts: [gt(xywh(0, 0, 100, 100))], dets: [det(xywh(0, 0, 100, 60), 0.9)] },
    ];
    const r = evaluateCocoAp(images, { iouThresholds: [0.5, 0.7] });
    close(r.AP, 0.5 * ONE, 'AP');
    close(r.AP50, ONE, 'AP50');
    assert.equal(r.AP75, -1);
    // A 100x100 GT is "small" once small goes up to 128².
    close(
      evaluateCocoAp(images, { areaRanges: { small: [0, 128 ** 2] } }).APsmall,
      (3 / 10) * ONE,
      'APsmall',
    );
  });

  describe('input validation', () => {
    const ok: EvalImage[] = [{ id: 1, gts: [gt(xywh(0, 0, 10, 10))], dets: [det(xywh(0, 0, 10, 10), 0.9)] }];
    const bad = (patch: (img: EvalImage) => void): EvalImage[] => {
      const img = structuredClone(ok[0]);
      patch(img);
      return [img];
    };

    test('rejects out-of-range options with a RangeError naming the parameter', () => {
      const cases: [CocoApOptions, RegExp][] = [
        [{ maxDets: 0 }, /'maxDets'/],
        [{ maxDets: 1.5 }, /'maxDets'/],
        [{ numClasses: 0 }, /'numClasses'/],
        [{ iouThresholds: [] }, /'iouThresholds'/],
        [{ iouThresholds: [0.5, 1.5] }, /'iouThresholds\[1\]'/],
        [{ iouThresholds: [0] }, /'iouThresholds\[0\]'/],
        [{ areaRanges: { medium: [100, 10] } }, /'areaRanges.medium'/],
      ];
      for (const [opts, message] of cases) {
        assert.throws(() => evaluateCocoAp(ok, opts), { name: 'RangeError', message });
      }
    });

    test('rejects unknown option keys with a TypeError', () => {
      assert.throws(() => evaluateCocoAp(ok, { maxDet: 10 } as unknown as CocoApOptions), {
        name: 'TypeError',
        message: /'options.maxDet'.*maxDets/,
      });
      assert.throws(() => evaluateCocoAp(ok, { areaRanges: { tiny: [0, 1] } } as unknown as CocoApOptions), {
        name: 'TypeError',
        message: /'areaRanges.tiny'/,
      });
    });

    test('rejects malformed images naming the offending path', () => {
      const cases: [EvalImage[], string, RegExp][] = [
        [bad((i) => (i.dets[0].score = NaN)), 'RangeError', /'images\[0\].dets\[0\].score'/],
        [bad((i) => (i.dets[0].box = [10, 0, 0, 10])), 'RangeError', /'images\[0\].dets\[0\].box'/],
        [
          bad((i) => (i.gts[0].box = [0, 0, 1] as unknown as BoxXyxy)),
          'TypeError',
          /'images\[0\].gts\[0\].box'/,
        ],
        [bad((i) => (i.gts[0].classId = -1)), 'RangeError', /'images\[0\].gts\[0\].classId'/],
        [bad((i) => (i.gts = undefined as unknown as Annotation[])), 'TypeError', /'images\[0\].gts'/],
        [[ok[0], ok[0]], 'RangeError', /'images\[1\].id' must be unique/],
      ];
      for (const [images, name, message] of cases) {
        assert.throws(() => evaluateCocoAp(images), { name, message });
      }
      const class1 = bad((i) => (i.dets[0].classId = 1));
      assert.doesNotThrow(() => evaluateCocoAp(class1));
      assert.throws(() => evaluateCocoAp(class1, { numClasses: 1 }), {
        name: 'RangeError',
        message: /'images\[0\].dets\[0\].classId' must be < numClasses/,
      });
      assert.throws(() => evaluateCocoAp({} as unknown as EvalImage[]), {
        name: 'TypeError',
        message: /'images'/,
      });
    });
  });
});

describe('evaluateDetections', () => {
  test('returns AP and MR figures as one flat record with the documented keys', () => {
    const b = xywh(0, 0, 30, 60);
    const m = evaluateDetections([{ id: 0, gts: [gt(b)], dets: [det(b, 0.9)] }]);
    assert.deepEqual(Object.keys(m).sort(), [...EVAL_METRIC_KEYS].sort());
    close(m.AP, ONE, 'AP');
    close(m.APmedium, ONE, 'APmedium'); // 30x60 = 1800 px², between 32² and 96²
    assert.equal(m.APsmall, -1);
    assert.ok(m.MR2 < 1e-9 && m.MR2Reasonable < 1e-9 && m.MR2Small < 1e-9, JSON.stringify(m));
  });

  test('passes each options block to its evaluator', () => {
    const images: EvalImage[] = [
      { id: 0, gts: [gt(xywh(0, 0, 30, 60), 1)], dets: [det(xywh(0, 0, 30, 60), 0.9, 1)] },
    ];
    assert.ok(Number.isNaN(evaluateDetections(images).MR2));
    assert.ok(evaluateDetections(images, { missRate: { classId: 1 } }).MR2 < 1e-9);
    assert.throws(() => evaluateDetections(images, { coco: { maxDets: -1 } }), {
      name: 'RangeError',
      message: /'maxDets'/,
    });
    assert.throws(() => evaluateDetections(images, { ap: {} } as never), {
      name: 'TypeError',
      message: /'options.ap'/,
    });
  });
});
