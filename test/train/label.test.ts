/**
 * `edgekd label`'s library: letterbox mapping of teacher boxes back to source pixels, filtering,
 * COCO assembly, and a round trip of the written file through the project's COCO reader. The
 * teacher here is a stub returning fixed boxes: this tests the COCO writer, not a teacher.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../models/core/config.js';
import type { BoxXyxy, Detection } from '../../models/core/detection.js';
import { boxToNetwork, letterboxTransform } from '../../train/data/image.js';
import { readCoco } from '../../train/data/coco.js';
import {
  buildCocoLabels,
  detectionsToSource,
  evaluationSplitWarning,
  LabelConfigSchema,
  labelClasses,
  labelFrames,
  labelImages,
  parseFrameRange,
  type LabelEvent,
  type LabelSettings,
} from '../../train/label.js';
import type { Teacher, TeacherDetectOptions, TeacherOutput } from '../../train/teachers/types.js';
import {
  FFMPEG,
  ffmpegSkipReason,
  makeTestsrcClip,
  tempDir,
  writeRectImage,
} from '../fixtures/make-data-fixtures.js';

const skipFfmpeg = ffmpegSkipReason();

/** A teacher that returns, for every image, the given boxes (in its letterboxed input pixels). */
class FixedTeacher implements Teacher {
  readonly name = 'fixed';
  readonly fingerprint = 'fixed:v1';
  readonly neckChannels = new Map<number, number>();
  readonly backboneChannels = new Map<number, number>();
  readonly headClasses: readonly string[] = ['person'];
  calls: { batch: number; height: number; width: number; opts: TeacherDetectOptions; first: number }[] = [];
  disposed = false;
  constructor(private readonly perImage: (i: number, h: number, w: number) => Detection[]) {}
  async run(): Promise<TeacherOutput> {
    return { neck: new Map(), backbone: new Map() };
  }
  async detect(
    images: Float32Array,
    batch: number,
    height: number,
    width: number,
    opts: TeacherDetectOptions,
  ): Promise<Detection[][]> {
    assert.equal(images.length, batch * height * width * 3);
    this.calls.push({ batch, height, width, opts, first: images[0] });
    return Array.from({ length: batch }, (_, i) => this.perImage(i, height, width));
  }
  dispose(): void {
    this.disposed = true;
  }
}

const settings = (over: Partial<LabelSettings> = {}): LabelSettings => ({
  classes: ['person'],
  threshold: 0.4,
  size: 128,
  batch: 2,
  maxDetections: 100,
  minBoxSize: 2,
  quality: 95,
  ...over,
});

const close = (a: number[], b: number[], tol: number, what: string) =>
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= tol, `${what}: ${a.join(',')} vs ${b.join(',')}`));

describe('detectionsToSource', () => {
  // 768x576 into 512x512: scale 2/3, 512x384 placed at padY 64.
  const t = letterboxTransform(768, 576, 512, 512);

  test('maps letterboxed boxes back to source pixels', () => {
    assert.deepEqual([t.padX, t.padY], [0, 64]);
    const out = detectionsToSource([{ box: [100, 164, 200, 264], score: 0.9, classId: 0 }], t, {
      threshold: 0.4,
      numClasses: 1,
      minBoxSize: 2,
    });
    assert.equal(out.length, 1);
    close(out[0].box, [150, 150, 300, 300], 1e-9, 'box');
  });

  test('clips to the image and drops boxes under minBoxSize, low scores and unknown classes', () => {
    const out = detectionsToSource(
      [
        { box: [-20, 30, 50, 100], score: 0.9, classId: 0 }, // into the top padding: clipped to y >= 0
        { box: [10, 100, 11, 200], score: 0.9, classId: 0 }, // 1.5 px wide in the source
        { box: [10, 100, 100, 200], score: 0.3, classId: 0 }, // below the threshold
        { box: [10, 100, 100, 200], score: 0.9, classId: 1 }, // not one of the classes
        { box: [10, 0, 100, 60], score: 0.9, classId: 0 }, // entirely in the padding
        { box: [NaN, 100, 100, 200], score: 0.9, classId: 0 },
      ],
      t,
      { threshold: 0.4, numClasses: 1, minBoxSize: 2 },
    );
    assert.equal(out.length, 1);
    close(out[0].box, [0, 0, 75, 54], 1e-9, 'clipped box');
  });
});

describe('buildCocoLabels', () => {
  test('writes xywh boxes, areas, 1-based ids and categories from the class list', () => {
    const coco = buildCocoLabels(
      [
        {
          fileName: 'frame_000007.jpg',
          width: 64,
          height: 48,
          frameIndex: 7,
          detections: [
            { box: [1.004, 2, 11, 22.5], score: 0.87654, classId: 1 },
            { box: [5, 5, 9, 9], score: 0.5, classId: 0 },
          ],
        },
        { fileName: 'frame_000008.jpg', width: 64, height: 48, frameIndex: 8, detections: [] },
      ],
      {
        description: 'x',
        date_created: '2025-01-01T00:00:00.000Z',
        teacher: { name: 't', fingerprint: 'f' },
        threshold: 0.4,
        classes: ['car', 'person'],
        letterbox: 512,
        source: 'clip.avi',
      },
    );
    assert.deepEqual(coco.categories, [
      { id: 1, name: 'car', supercategory: 'object' },
      { id: 2, name: 'person', supercategory: 'object' },
    ]);
    assert.deepEqual(coco.images[1], {
      id: 2,
      file_name: 'frame_000008.jpg',
      width: 64,
      height: 48,
      frame_index: 8,
    });
    assert.deepEqual(coco.annotations[0], {
      id: 1,
      image_id: 1,
      category_id: 2,
      bbox: [1, 2, 10, 20.5],
      area: 205,
      iscrowd: 0,
      score: 0.8765,
    });
    assert.equal(coco.annotations[1].category_id, 1);
  });
});

describe('label options', () => {
  test('parseFrameRange reads FIRST-LAST inclusive and FIRST', () => {
    assert.deepEqual(parseFrameRange('0-499'), { start: 0, count: 500 });
    assert.deepEqual(parseFrameRange('500'), { start: 500 });
  });

  test('rejects an empty or malformed frame range', () => {
    assert.throws(() => parseFrameRange('10-3'), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_RANGE',
      message: /empty/,
    });
    assert.throws(() => parseFrameRange('a-b'), { name: 'ConfigError', code: 'ERR_CONFIG_RANGE' });
  });

  test('warns when a vtest.avi range reaches the evaluation split (frames >= 500)', () => {
    assert.equal(evaluationSplitWarning('/x/vtest.avi', parseFrameRange('0-499')), undefined);
    assert.match(
      evaluationSplitWarning('/x/vtest.avi', parseFrameRange('400-600')) ?? '',
      /400-600.*evaluation split/,
    );
    assert.match(evaluationSplitWarning('vtest.avi', parseFrameRange('10')) ?? '', /10-end/);
    assert.equal(evaluationSplitWarning('/x/other.avi', parseFrameRange('0-700')), undefined);
  });

  test('rejects a threshold outside [0, 1] and takes classes as a list or a comma string', () => {
    assert.throws(
      () => validateConfig(LabelConfigSchema, { teacher: 'centernet', out: 'x.json', threshold: 1.5 }),
      {
        name: 'ConfigError',
        code: 'ERR_CONFIG_INVALID',
        message: /threshold/,
      },
    );
    const c = validateConfig(LabelConfigSchema, { teacher: 'centernet', out: 'x.json' });
    assert.deepEqual(labelClasses(c.classes), ['person']);
    assert.deepEqual(labelClasses('person, car'), ['person', 'car']);
    assert.throws(() => labelClasses('person,person'), { name: 'ConfigError', message: /duplicate/ });
  });
});

describe('labelImages / labelFrames', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await tempDir('edgekd-label-'));
  });
  after(() => cleanup());

  // The boxes each image should end up with, in source pixels; the stub teacher returns them
  // mapped into its letterboxed input, so the writer has to map them back.
  const wanted: BoxXyxy[] = [
    [10, 8, 30, 40],
    [50.5, 3.25, 90, 60],
  ];

  test('writes a COCO file the COCO reader loads with the same boxes', async () => {
    const src = join(dir, 'src');
    await mkdir(src);
    await writeRectImage(join(src, 'b.png'), 96, 64, [10, 8, 30, 40]);
    await writeRectImage(join(src, 'a.png'), 96, 64);
    await writeRectImage(join(src, 'c.png'), 96, 64);
    await writeFile(join(src, 'notes.txt'), 'not an image');
    const t = letterboxTransform(96, 64, 128, 128);
    const teacher = new FixedTeacher(() => [
      ...wanted.map((b) => ({ box: boxToNetwork(b, t), score: 0.8, classId: 0 })),
      { box: boxToNetwork([1, 1, 20, 20], t), score: 0.2, classId: 0 },
    ]);
    const out = join(dir, 'set', 'labels.json');
    const events: LabelEvent[] = [];
    const r = await labelImages(teacher, src, out, settings(), { onEvent: (e) => events.push(e) });
    // Batches of 2 over 3 images; the letterbox pads with grey 114 (top-left pixel is padding).
    assert.deepEqual(
      teacher.calls.map((c) => [c.batch, c.height, c.width, c.opts.scoreThreshold, c.first]),
      [
        [2, 128, 128, 0.4, 114],
        [1, 128, 128, 0.4, 114],
      ],
    );
    assert.deepEqual(
      events.map((e) => e.kind),
      ['label-start', 'label-progress', 'label-progress', 'label-done'],
    );
    assert.deepEqual(
      r.coco.images.map((i) => i.file_name),
      ['a.png', 'b.png', 'c.png'],
    );
    assert.equal(r.coco.annotations.length, 6);
    assert.equal(r.coco.info.teacher.fingerprint, 'fixed:v1');
    assert.equal(r.coco.info.threshold, 0.4);
    assert.ok(existsSync(join(dir, 'set', 'images', 'b.png')));
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), r.coco);

    const ds = await readCoco(out, { classes: ['person'], strict: true });
    assert.deepEqual(ds.skipped, []);
    assert.equal(ds.samples.length, 3);
    for (const s of ds.samples) {
      assert.deepEqual([s.width, s.height], [96, 64]);
      assert.equal(s.annotations.length, 2);
      s.annotations.forEach((a, k) => close(a.box, wanted[k], 0.01, `${s.id} box ${k}`));
      const img = await s.load();
      assert.equal(img.width, 96);
    }
  });

  test('rejects a missing folder and a folder without images', async () => {
    const teacher = new FixedTeacher(() => []);
    await assert.rejects(labelImages(teacher, join(dir, 'nope'), join(dir, 'x.json'), settings()), {
      name: 'ConfigError',
      code: 'ERR_FILE_NOT_FOUND',
    });
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await assert.rejects(labelImages(teacher, empty, join(dir, 'x.json'), settings()), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /no image files/,
    });
  });

  test('labels a frame range of a video into frame_NNNNNN.jpg files', { skip: skipFfmpeg }, async () => {
    const clip = makeTestsrcClip(join(dir, 'clip.avi'), { frames: 12, width: 96, height: 64 });
    const t = letterboxTransform(96, 64, 64, 64);
    const teacher = new FixedTeacher((i) =>
      i === 0 ? [{ box: boxToNetwork(wanted[0], t), score: 0.9, classId: 0 }] : [],
    );
    const out = join(dir, 'video', 'labels.json');
    const r = await labelFrames(
      teacher,
      clip,
      { start: 2, count: 4 },
      out,
      settings({ size: 64, batch: 3 }),
      {
        ffmpegPath: FFMPEG,
      },
    );
    assert.deepEqual(
      r.coco.images.map((i) => [i.file_name, i.frame_index, i.width, i.height]),
      [
        ['frame_000002.jpg', 2, 96, 64],
        ['frame_000003.jpg', 3, 96, 64],
        ['frame_000004.jpg', 4, 96, 64],
        ['frame_000005.jpg', 5, 96, 64],
      ],
    );
    assert.deepEqual(r.coco.info.frames, { first: 2, last: 5, step: 1, count: 4 });
    assert.equal(r.coco.info.source, 'clip.avi');
    // First image of each batch (frames 2 and 5) got the box.
    assert.deepEqual(
      r.coco.annotations.map((a) => a.image_id),
      [1, 4],
    );
    const ds = await readCoco(out, { classes: ['person'], strict: true });
    close(ds.samples[3].annotations[0].box, wanted[0], 0.01, 'frame 5 box');
    const img = await ds.samples[0].load();
    assert.deepEqual([img.width, img.height], [96, 64]);
  });

  test(
    'rejects a missing video, a file that is not a video and a range past the end',
    { skip: skipFfmpeg },
    async () => {
      const teacher = new FixedTeacher(() => []);
      const o = { ffmpegPath: FFMPEG };
      await assert.rejects(
        labelFrames(teacher, join(dir, 'none.avi'), { start: 0 }, join(dir, 'x.json'), settings(), o),
        {
          name: 'ConfigError',
          code: 'ERR_FILE_NOT_FOUND',
        },
      );
      const bogus = join(dir, 'bogus.avi');
      await writeFile(bogus, 'this is not a video');
      await assert.rejects(labelFrames(teacher, bogus, { start: 0 }, join(dir, 'x.json'), settings(), o), {
        name: 'DataFormatError',
        code: 'ERR_DATA_FORMAT',
      });
      const clip = makeTestsrcClip(join(dir, 'short.avi'), { frames: 5, width: 64, height: 64 });
      await assert.rejects(
        labelFrames(teacher, clip, { start: 50, count: 10 }, join(dir, 'x.json'), settings(), o),
        {
          name: 'ConfigError',
          code: 'ERR_CONFIG_RANGE',
          message: /no frames/,
        },
      );
      assert.ok(!existsSync(join(dir, 'x.json')));
    },
  );
});
