/**
 * Teacher vs shipped student, speed on the same frames in one run: the CenterNet teacher
 * (TensorFlow.js, the fastest backend this machine loads — wasm here — 512x512 letterbox, batch
 * 1) against the student ONNX model (onnxruntime-node CPU provider through the runtime detector,
 * which also letterboxes with sharp), per image, on JPEG frames of vtest.avi's evaluation split
 * (or generated scenes when those frames were not extracted).
 *
 *   npm run build && node dist/bench/teacher-student.js [--model models/zoo/ped-pico.onnx]
 *     [--frames runs/vtest/eval/images] [--images 30] [--warmup 3]
 *
 * Prints ms per image (median) and images/s of each, the speed ratio, and both models' MACs.
 * The two runtimes differ (tfjs wasm vs ONNX Runtime), so the ratio is what a user of this
 * toolkit sees, not a property of the networks alone; the MACs ratio is that.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { createDetector } from '../runtime/detector.js';
import { selectBackend } from '../train/backend/index.js';
import { decodeImage, letterbox, LETTERBOX_PAD } from '../train/data/image.js';
import { generateSyntheticScene } from '../train/data/synthetic.js';
import { TeacherConfigSchema } from '../train/distill/config.js';
import { createTeacher } from '../train/teachers/index.js';
import { intFlag } from './int-flag.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/zoo/ped-pico.onnx' },
    frames: { type: 'string', default: 'runs/vtest/eval/images' },
    images: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '3' },
  },
});
const count = intFlag('images', args.images, 1);
const warmup = intFlag('warmup', args.warmup, 0);
const TEACHER_SIZE = 512;
// Counted over the graph model's convolutions in session 2 (docs/distillation.md).
const TEACHER_GMAC = 1.3;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function frames(): Promise<{ jpegs: Buffer[]; source: string }> {
  if (existsSync(args.frames)) {
    const names = readdirSync(args.frames)
      .filter((n) => /\.(jpe?g|png)$/i.test(n))
      .sort()
      .slice(0, count);
    if (names.length)
      return { jpegs: names.map((n) => readFileSync(join(args.frames, n))), source: args.frames };
  }
  const jpegs: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const s = generateSyntheticScene(`teacher-student/${i}`, 768, 576);
    jpegs.push(
      await sharp(Buffer.from(s.image.data), { raw: { width: 768, height: 576, channels: 3 } })
        .jpeg({ quality: 92 })
        .toBuffer(),
    );
  }
  return { jpegs, source: 'generated 768x576 scenes' };
}

const { jpegs, source } = await frames();
const load0 = loadavg()[0];

// Student: the runtime detector, as `edgekd detect` / the server run it (decode + letterbox + run).
const detector = await createDetector(args.model, { providers: ['cpu'] });
const studentMs: number[] = [];
for (let i = 0; i < jpegs.length + warmup; i++) {
  const t0 = performance.now();
  await detector.detectImage(jpegs[i % jpegs.length]);
  if (i >= warmup) studentMs.push(performance.now() - t0);
}
const studentMacs = (
  JSON.parse(readFileSync(args.model.replace(/\.onnx$/, '.json'), 'utf8')) as { macs: number }
).macs;
await detector.close();

// Teacher: decode + letterbox to 512 + CenterNet detect, one image per call (its graph is fixed at batch 1).
const backend = await selectBackend('auto');
const teacher = await createTeacher(TeacherConfigSchema.parse({ kind: 'centernet' }), {
  classes: ['person'],
});
const teacherMs: number[] = [];
for (let i = 0; i < jpegs.length + warmup; i++) {
  const t0 = performance.now();
  const img = await decodeImage(jpegs[i % jpegs.length]);
  const lb = letterbox(img, TEACHER_SIZE, TEACHER_SIZE, { pad: LETTERBOX_PAD });
  await teacher.detect(Float32Array.from(lb.image.data), 1, TEACHER_SIZE, TEACHER_SIZE, {
    scoreThreshold: 0.3,
    maxDetections: 100,
  });
  if (i >= warmup) teacherMs.push(performance.now() - t0);
}
teacher.dispose();

const s = median(studentMs);
const t = median(teacherMs);
console.log(
  `frames: ${source} (${jpegs.length} images, ${warmup} warm-up); ${availableParallelism()} cores, load ${load0.toFixed(2)} -> ${loadavg()[0].toFixed(2)}`,
);
console.log('');
console.log('| model | runtime | input | GMAC | ms/image (median) | images/s |');
console.log('|---|---|---|---|---|---|');
console.log(
  `| teacher CenterNet-MobileNetV3 | tfjs ${backend.name} | ${TEACHER_SIZE}x${TEACHER_SIZE} | ${TEACHER_GMAC.toFixed(2)} | ${t.toFixed(1)} | ${(1000 / t).toFixed(1)} |`,
);
console.log(
  `| student ${args.model} | onnxruntime-node cpu | ${detector.spec.input.width}x${detector.spec.input.height} | ${(studentMacs / 1e9).toFixed(3)} | ${s.toFixed(1)} | ${(1000 / s).toFixed(1)} |`,
);
console.log('');
console.log(
  `student / teacher: ${(t / s).toFixed(1)}x faster per image, ${(TEACHER_GMAC / (studentMacs / 1e9)).toFixed(1)}x fewer MACs (both include JPEG decode and letterbox)`,
);
