/**
 * createDetector end to end on real ONNX Runtime sessions in worker threads, with models written
 * by the project's exporter (boxes and heads forms of the same weights), a plain ONNX model with a
 * sidecar spec, and a hand-made model whose boxes are placed by hand.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Detection } from '../../models/core/detection.js';
import { letterboxTransform } from '../../models/core/letterbox.js';
import { setLogSink } from '../../models/core/log.js';
import { parseModelSpec } from '../../models/core/spec.js';
import { createDetector } from '../../runtime/detector.js';
import type { Detector, PreparedFrame } from '../../runtime/types.js';
import { microSpec } from '../helpers/specs.js';
import { writeConstantDetector, writeTestModels } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'edgekd-detector-'));
const m = writeTestModels(dir);

/** A seeded noise image with a few bright blocks, encoded as PNG. */
async function noiseImage(width: number, height: number, seed: number): Promise<Buffer> {
  const px = new Uint8Array(width * height * 3);
  let s = seed >>> 0;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    px[i] = s >>> 24;
  }
  for (let b = 0; b < 4; b++) {
    const x0 = (seed * 37 + b * 53) % (width - 12);
    const y0 = (seed * 11 + b * 29) % (height - 20);
    for (let y = y0; y < y0 + 20; y++)
      for (let x = x0; x < x0 + 12; x++) px.fill(235, (y * width + x) * 3, (y * width + x) * 3 + 3);
  }
  return sharp(px, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

function assertSameDetections(a: Detection[], b: Detection[], tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: ${a.length} vs ${b.length} detections`);
  for (let i = 0; i < a.length; i++) {
    assert.equal(a[i].classId, b[i].classId, `${what}[${i}] class`);
    assert.ok(Math.abs(a[i].score - b[i].score) < 1e-5, `${what}[${i}] score ${a[i].score} vs ${b[i].score}`);
    for (let k = 0; k < 4; k++)
      assert.ok(
        Math.abs(a[i].box[k] - b[i].box[k]) <= tol,
        `${what}[${i}].box[${k}] ${a[i].box[k]} vs ${b[i].box[k]}`,
      );
  }
}

describe('with the boxes and heads exports of one model', () => {
  let boxes: Detector;
  let heads: Detector;
  const images: Buffer[] = [];
  before(async () => {
    [boxes, heads] = await Promise.all([createDetector(m.boxes), createDetector(m.heads)]);
    images.push(await noiseImage(200, 100, 1), await noiseImage(96, 128, 2), await noiseImage(64, 64, 3));
  });
  after(async () => {
    await Promise.all([boxes.close(), heads.close()]);
  });

  test('reports spec, output form, precision and provider', () => {
    assert.deepEqual(boxes.spec, m.spec);
    assert.equal(boxes.outputs, 'boxes');
    assert.equal(heads.outputs, 'heads');
    assert.equal(boxes.precision, 'fp32');
    assert.equal(boxes.provider, 'cpu');
  });

  test('heads decoded in TS give the boxes of the in-graph decode (within 1e-3 px)', async () => {
    const [rb, rh] = await Promise.all([boxes.detectImages(images), heads.detectImages(images)]);
    let total = 0;
    for (let i = 0; i < images.length; i++) {
      assertSameDetections(rh[i].detections, rb[i].detections, 1e-3, `image ${i}`);
      total += rb[i].detections.length;
    }
    assert.ok(total > 10, `the fixture should produce detections, got ${total}`);
  });

  test('the same holds for a two-class model', async () => {
    const two = writeTestModels(
      mkdtempSync(join(tmpdir(), 'edgekd-two-')),
      { classes: ['person', 'bike'] },
      { seed: 7 },
    );
    const [b2, h2] = await Promise.all([createDetector(two.boxes), createDetector(two.heads)]);
    try {
      const [rb, rh] = await Promise.all([b2.detectImages(images), h2.detectImages(images)]);
      const classes = new Set<number>();
      for (let i = 0; i < images.length; i++) {
        assertSameDetections(rh[i].detections, rb[i].detections, 1e-3, `image ${i}`);
        for (const d of rb[i].detections) classes.add(d.classId);
      }
      assert.deepEqual([...classes].sort(), [0, 1]);
    } finally {
      await Promise.all([b2.close(), h2.close()]);
    }
  });

  test('a batch of 3 images gives the results of 3 single calls', async () => {
    const batch = await boxes.detectImages(images);
    for (let i = 0; i < images.length; i++) {
      const single = await boxes.detectImage(images[i]);
      assertSameDetections(batch[i].detections, single.detections, 1e-3, `image ${i}`);
      assert.equal(batch[i].width, single.width);
    }
    assert.deepEqual(
      batch.map((r) => [r.width, r.height]),
      [
        [200, 100],
        [96, 128],
        [64, 64],
      ],
    );
    // one session.run for the batch: every image carries the batch's timings
    assert.deepEqual(batch[0].timings, batch[2].timings);
    for (const k of ['preMs', 'inferMs', 'postMs', 'totalMs'] as const) assert.ok(batch[0].timings[k] >= 0);
    assert.ok(batch[0].timings.totalMs >= batch[0].timings.inferMs);
  });

  test('boxes lie inside the source image, scores above the threshold, at most topK', async () => {
    const [r] = await heads.detectImages([images[0]]);
    assert.ok(r.detections.length <= m.spec.decode.topK);
    for (const d of r.detections) {
      assert.ok(d.score >= m.spec.decode.scoreThreshold);
      assert.ok(d.box[0] >= 0 && d.box[1] >= 0 && d.box[2] <= 200 && d.box[3] <= 100, `${d.box}`);
      assert.ok(d.box[2] > d.box[0] && d.box[3] > d.box[1]);
    }
  });

  test('prepared frames (video path) reuse one input tensor per batch size', async () => {
    const { width: W, height: H } = m.spec.input;
    const frames: PreparedFrame[] = [0, 1].map((k) => ({
      rgb: new Uint8Array(W * H * 3).map((_, i) => (i * (7 + k)) & 255),
      transform: letterboxTransform(W, H, H, W),
    }));
    const d = boxes as Detector & { inputAllocations: number };
    await boxes.detectPrepared(frames);
    const before = d.inputAllocations;
    for (let i = 0; i < 5; i++) await boxes.detectPrepared(frames);
    assert.equal(d.inputAllocations, before);
    assert.deepEqual(await boxes.detectPrepared([]), []);
    await assert.rejects(
      boxes.detectPrepared([{ rgb: new Uint8Array(10), transform: letterboxTransform(10, 10, 32, 32) }]),
      { name: 'RangeError', message: /model takes 64x64/ },
    );
  });

  test('rejects an undecodable image with DataFormatError', async () => {
    await assert.rejects(heads.detectImage(Buffer.from('not an image')), {
      name: 'DataFormatError',
      code: 'ERR_IMAGE_DECODE',
    });
    await assert.rejects(heads.detectImage(join(dir, 'missing.png')), { code: 'ERR_FILE_NOT_FOUND' });
  });
});

describe('a hand-made plain ONNX model with a sidecar spec', () => {
  // Rows in network pixels (64x64 input): x1, y1, x2, y2, score, class.
  const rows = [
    [16, 24, 48, 40, 0.9, 0],
    [0, 0, 8, 8, 0.2, 0], // below the threshold
    [40, 30, 60, 50, 0.8, 1],
    [0, 0, 10, 10, 0.7, 0], // entirely in the letterbox padding of a 200x100 source
  ];
  const model = join(dir, 'constant.onnx');
  writeConstantDetector(model, rows);
  const spec = (resize: 'letterbox' | 'stretch') => {
    const p = join(dir, `constant-${resize}.json`);
    writeFileSync(
      p,
      JSON.stringify(
        parseModelSpec({
          ...microSpec('constant'),
          classes: ['person', 'bike'],
          input: { height: 64, width: 64, resize },
          decode: { topK: 4, scoreThreshold: 0.3 },
        }),
      ),
    );
    return p;
  };

  test('maps hand-placed boxes back to a 200x100 source (letterbox and stretch)', async () => {
    const img = await noiseImage(200, 100, 5);
    const lb = await createDetector(model, { specPath: spec('letterbox') });
    try {
      assert.equal(lb.outputs, 'boxes');
      assert.equal(lb.precision, 'unknown');
      const r = await lb.detectImage(img);
      // scale 0.32, pad 16 px above: x / 0.32, (y - 16) / 0.32, clipped to 200x100
      assert.deepEqual(
        r.detections.map((d) => [d.box.map((v) => Number(v.toFixed(4))), d.classId]),
        [
          [[50, 25, 150, 75], 0],
          [[125, 43.75, 187.5, 100], 1],
        ],
      );
    } finally {
      await lb.close();
    }
    const st = await createDetector(model, { specPath: spec('stretch'), classes: [0], scoreThreshold: 0.5 });
    try {
      const r = await st.detectImage(img);
      // x / (64 / 200), y / (64 / 100)
      assert.deepEqual(
        r.detections.map((d) => d.box.map((v) => Number(v.toFixed(4)))),
        [
          [50, 37.5, 150, 62.5],
          [0, 0, 31.25, 15.625],
        ],
      );
    } finally {
      await st.close();
    }
  });

  test('the plain heads model with its sidecar spec detects like the edgekd export', async () => {
    const img = await noiseImage(120, 90, 9);
    const [plain, exported] = await Promise.all([
      createDetector(m.plain, { specPath: m.specPath }),
      createDetector(m.heads),
    ]);
    try {
      assert.equal(plain.outputs, 'heads');
      const [a, b] = await Promise.all([plain.detectImage(img), exported.detectImage(img)]);
      assertSameDetections(a.detections, b.detections, 1e-6, 'plain vs export');
    } finally {
      await Promise.all([plain.close(), exported.close()]);
    }
  });
});

describe('providers and bad input', () => {
  test("providers ['cuda', 'cpu'] end on cpu with the reason for cuda recorded and logged", async () => {
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    try {
      const det = await createDetector(m.boxes, { providers: ['tensorrt', 'cuda', 'cpu'] });
      try {
        assert.equal(det.provider, 'cpu');
        assert.deepEqual(
          det.fallbacks.map((f) => f.provider),
          ['tensorrt', 'cuda'],
        );
        for (const f of det.fallbacks) assert.ok(f.reason.length > 10, f.reason);
        assert.ok(lines.some((l) => /warn: execution provider 'cuda' skipped: /.test(l)));
        const r = await det.detectImage(await noiseImage(64, 64, 4));
        assert.ok(Array.isArray(r.detections));
      } finally {
        await det.close();
      }
    } finally {
      setLogSink((l) => process.stderr.write(l + '\n'));
    }
  });

  test('rejects when no listed provider works', async () => {
    await assert.rejects(createDetector(m.boxes, { providers: ['cuda'] }), {
      name: 'ProviderUnavailableError',
      code: 'ERR_PROVIDER_UNAVAILABLE',
      message: /\[cuda\]/,
    });
  });

  test('rejects an unknown provider name with ConfigError listing the valid ones', async () => {
    await assert.rejects(createDetector(m.boxes, { providers: ['cuda', 'gpu' as 'cuda'] }), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /unknown execution provider 'gpu'.*valid providers: tensorrt, cuda, webgpu, cpu/,
    });
  });

  test('rejects an ONNX model without spec, a corrupt and a missing file', async () => {
    await assert.rejects(createDetector(m.plain), {
      name: 'ModelFormatError',
      code: 'ERR_MODEL_FORMAT',
      message: /no edgekd\.spec metadata/,
    });
    const corrupt = join(dir, 'corrupt.onnx');
    writeFileSync(corrupt, readFileSync(m.boxes).subarray(0, 1000));
    await assert.rejects(createDetector(corrupt), { name: 'ModelFormatError', code: 'ERR_MODEL_FORMAT' });
    await assert.rejects(createDetector(join(dir, 'missing.onnx')), {
      name: 'ConfigError',
      code: 'ERR_FILE_NOT_FOUND',
    });
  });

  test('rejects a sidecar spec whose input size the model does not take', async () => {
    const wrong = join(dir, 'wrong-size.json');
    writeFileSync(wrong, JSON.stringify({ ...m.spec, input: { ...m.spec.input, height: 96, width: 96 } }));
    await assert.rejects(createDetector(m.plain, { specPath: wrong }), {
      name: 'ModelFormatError',
      message: /cannot run the model/,
    });
  });

  test('rejects options out of range, naming them', async () => {
    await assert.rejects(createDetector(m.boxes, { workers: 0 }), {
      name: 'RangeError',
      message: /'workers'/,
    });
    await assert.rejects(createDetector(m.boxes, { scoreThreshold: 2 }), {
      name: 'RangeError',
      message: /'scoreThreshold'/,
    });
    await assert.rejects(createDetector(m.boxes, { classes: [1] }), {
      name: 'RangeError',
      message: /'classes' must hold class ids in \[0, 1\) \(person\)/,
    });
  });
});

describe('threads', () => {
  test('the main thread keeps ticking while a large batch runs in the worker', async () => {
    const big = writeTestModels(mkdtempSync(join(tmpdir(), 'edgekd-big-')), {
      input: { height: 256, width: 256 },
      backbone: {
        stemChannels: 32,
        stages: [
          { channels: 32, depth: 2, expansion: 4 },
          { channels: 32, depth: 2, expansion: 4 },
          { channels: 64, depth: 2, expansion: 4 },
          { channels: 64, depth: 1, expansion: 4 },
        ],
      },
      neck: { channels: 32 },
      head: { channels: 32 },
    });
    const det = await createDetector(big.boxes, { intraOpThreads: 1 });
    try {
      const frames: PreparedFrame[] = Array.from({ length: 12 }, (_, k) => ({
        rgb: new Uint8Array(256 * 256 * 3).map((_, i) => (i * (k + 3)) & 255),
        transform: letterboxTransform(256, 256, 256, 256),
      }));
      let ticks = 0;
      let maxGap = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
        ticks++;
      }, 5);
      let r;
      try {
        [r] = await det.detectPrepared(frames);
      } finally {
        clearInterval(timer);
      }
      const infer = r.timings.inferMs;
      assert.ok(infer > 60, `the batch should take a while in session.run, took ${infer.toFixed(0)} ms`);
      // Had session.run blocked this thread, one gap would span the whole inference.
      assert.ok(
        maxGap < infer * 0.6,
        `longest event-loop gap ${maxGap.toFixed(0)} ms vs inference ${infer.toFixed(0)} ms`,
      );
      assert.ok(ticks >= 3, `${ticks} ticks`);
    } finally {
      await det.close();
    }
  });

  test('two workers serve concurrent calls with the results of sequential ones', async () => {
    const det = await createDetector(m.boxes, { workers: 2, intraOpThreads: 1 });
    try {
      const imgs = await Promise.all([1, 2, 3, 4].map((s) => noiseImage(80, 60, s)));
      const seq = [];
      for (const im of imgs) seq.push(await det.detectImage(im));
      const par = await Promise.all(imgs.map((im) => det.detectImage(im)));
      for (let i = 0; i < imgs.length; i++)
        assertSameDetections(par[i].detections, seq[i].detections, 1e-4, `${i}`);
    } finally {
      await det.close();
    }
  });

  test('close() ends the workers: calls after it reject, a second close is fine, the process exits', async () => {
    const det = await createDetector(m.boxes);
    await det.close();
    await det.close();
    await assert.rejects(det.detectImage(await noiseImage(64, 64, 1)), /closed/);
    // In a child process: without an explicit exit it ends only if no worker is left.
    const script = `
      import { createDetector } from ${JSON.stringify(new URL('../../runtime/detector.js', import.meta.url).href)};
      const det = await createDetector(${JSON.stringify(m.boxes)}, { workers: 2 });
      const f = { rgb: new Uint8Array(64 * 64 * 3), transform: { srcWidth: 64, srcHeight: 64, width: 64, height: 64, scaleX: 1, scaleY: 1, padX: 0, padY: 0 } };
      await det.detectPrepared([f]);
      await det.close();
      console.log('closed');
    `;
    const t0 = Date.now();
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      timeout: 10_000,
      encoding: 'utf8',
    });
    assert.equal(child.status, 0, `child exited with ${child.status} / ${child.signal}: ${child.stderr}`);
    assert.match(child.stdout, /closed/);
    assert.ok(Date.now() - t0 < 10_000);
  });
});
