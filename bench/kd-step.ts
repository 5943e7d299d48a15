/**
 * Distillation step cost: one data-parallel training step (teacher outputs + student forward,
 * detection and KD losses, backward, gradient sum, AdamW) with no KD, with KD running the teacher
 * every step, and with KD reading the teacher-output cache, measured side by side in one run
 * through the trainer's real ReplicaPool.
 *
 *   npm run bench:kd-step -- [--student train/configs/ped-tiny.spec.json]
 *     [--teacher runs/teacher-tiny/last.safetensors | centernet | TEACHER.json]
 *     [--batch 16] [--micro 8] [--steps 3] [--warmup 1] [--replicas N] [--project 0]
 *
 * KD = the combined default recipe (RM + PFI, HMKD matching + fg/bg, HPL relations). Synthetic
 * seeded images; the cached mode fills the cache in an untimed pass, then times cache hits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { intFlag } from './int-flag.js';
import { readModelSpec, type ModelSpec } from '../models/core/spec.js';
import { buildGraph, initialWeights } from '../models/arch/graph.js';
import { readJsonFile } from '../models/core/config.js';
import { trainableLayout } from '../train/trainer/param-layout.js';
import { createOptimizerState, decayMask, optimizerStep } from '../train/trainer/optimizer.js';
import { ReplicaPool } from '../train/trainer/replica-pool.js';
import { buildTargets } from '../train/targets.js';
import { batchNormalizers, type LossWeights, type MicroBatch } from '../train/step.js';
import { TrainConfigSchema } from '../train/config.js';
import { DEFAULT_RECIPE, DistillConfigSchema, type TeacherConfig } from '../train/distill/config.js';
import { kdInitialFlat, kdLayout } from '../train/distill/kd-params.js';

const { values: args } = parseArgs({
  options: {
    student: { type: 'string', default: 'train/configs/ped-tiny.spec.json' },
    teacher: { type: 'string', default: 'runs/teacher-tiny/last.safetensors' },
    batch: { type: 'string', default: '16' },
    micro: { type: 'string', default: '8' },
    steps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    replicas: { type: 'string', default: String(Math.max(1, Math.min(availableParallelism(), 8))) },
    project: { type: 'string', default: '0' },
  },
  strict: true,
});
const steps = intFlag('steps', args.steps, 1);
const warmup = intFlag('warmup', args.warmup, 0);
const batch = intFlag('batch', args.batch, 1);
const micro = intFlag('micro', args.micro, 1);
const replicas = intFlag('replicas', args.replicas, 1);
const project = intFlag('project', args.project, 0);

const LOSS: LossWeights = TrainConfigSchema.shape.loss.parse(undefined);
const OPT = { kind: 'adamw', lr: 2e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 5e-4 } as const;

function teacherConfig(arg: string): TeacherConfig {
  if (arg === 'centernet')
    return { kind: 'centernet', name: 'centernet', weight: 1, inputSize: 512, classes: { person: [0] } };
  if (arg.endsWith('.json')) return readJsonFile(arg) as TeacherConfig;
  return { kind: 'edgekd', name: 'teacher', weight: 1, checkpoint: arg };
}

/** Seeded micro-batches with boxes and per-image cache keys. */
function makeShards(spec: ModelSpec, step: number): MicroBatch[][] {
  const { height: h, width: w } = spec.input;
  let s = 777 + step;
  const rnd = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const per = Math.ceil(batch / replicas);
  return Array.from({ length: replicas }, (_, r) => {
    const out: MicroBatch[] = [];
    const end = Math.min(batch, (r + 1) * per);
    for (let i = r * per; i < end; i += micro) {
      const n = Math.min(micro, end - i);
      const anns = Array.from({ length: n }, () =>
        Array.from({ length: 3 }, () => {
          const x = rnd() * (w - w / 4);
          const y = rnd() * (h - h / 2);
          const bw = w / 16 + (rnd() * w) / 8;
          return { box: [x, y, x + bw, y + 2.5 * bw] as [number, number, number, number], classId: 0 };
        }),
      );
      out.push({
        batch: n,
        height: h,
        width: w,
        imagesNhwc: Float32Array.from({ length: n * h * w * 3 }, rnd),
        targets: buildTargets(anns, h, w, 4, spec.classes.length),
        annotations: anns,
        cacheKeys: Array.from({ length: n }, (_, j) => `bench|step${step}|img${i + j}`),
      });
    }
    return out;
  });
}

interface Row {
  label: string;
  ms: number;
  teacherMs: number;
  all: number[];
}

async function measure(spec: ModelSpec, mode: 'none' | 'kd' | 'kd-cache', cacheDir: string): Promise<Row> {
  const distill =
    mode === 'none'
      ? undefined
      : DistillConfigSchema.parse({
          teachers: [teacherConfig(args.teacher!)],
          ...DEFAULT_RECIPE,
          projectChannels: project,
          ...(mode === 'kd-cache' ? { cache: { dir: cacheDir, variants: 1 } } : {}),
        });
  const graph = buildGraph(spec);
  const layout = trainableLayout(graph);
  const init = initialWeights(graph, 0);
  const pool = await ReplicaPool.start(spec, replicas, 'wasm', LOSS, distill);
  const specs = pool.info.kdSpecs ?? [];
  const kdS = kdLayout(specs, 'student', layout.total);
  const full = { slots: [...layout.slots, ...kdS.slots], total: layout.total + kdS.total };
  const params = new Float32Array(full.total);
  for (const slot of layout.slots) params.set(init.get(slot.name)!, slot.offset);
  params.set(kdInitialFlat(specs, 'student', 0), layout.total);
  const disc = kdInitialFlat(specs, 'discriminator', 0);
  const opt = createOptimizerState(OPT, full.total);
  const decay = decayMask(full);
  const all = Array.from({ length: warmup + steps }, (_, i) => makeShards(spec, i));
  const times: number[] = [];
  const teacherTimes: number[] = [];
  try {
    const kd = distill ? { step: 100, ramp: 1, active: true, disc } : undefined;
    if (mode === 'kd-cache')
      for (const shards of all) await pool.step(params, shards, batchNormalizers(shards.flat()), kd);
    for (let i = 0; i < all.length; i++) {
      const t0 = performance.now();
      const r = await pool.step(params, all[i], batchNormalizers(all[i].flat()), kd);
      optimizerStep(OPT, opt, params, r.grads, decay, OPT.lr);
      const ms = performance.now() - t0;
      process.stderr.write(
        `  ${mode} step ${i + 1}/${all.length}${i < warmup ? ' (warm-up)' : ''}: ${ms.toFixed(0)} ms (teacher ${r.teacherMs.toFixed(0)} ms), loss ${r.losses.total.toFixed(3)}${r.cache ? `, cache ${r.cache.hits} hits / ${r.cache.misses} misses` : ''}\n`,
      );
      if (i >= warmup) {
        times.push(ms);
        teacherTimes.push(r.teacherMs);
      }
    }
  } finally {
    await pool.close();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  return { label: mode, ms: median(times), teacherMs: median(teacherTimes), all: times };
}

const spec = readModelSpec(args.student!);
const cacheDir = mkdtempSync(join(tmpdir(), 'edgekd-kdbench-'));
console.log(
  `kd-step bench: student ${spec.name} ${spec.input.height}x${spec.input.width}, teacher ${args.teacher}, batch ${batch}, ` +
    `micro-batch ${micro}, ${replicas} replica(s), ${warmup} warm-up + ${steps} timed steps (median); KD = combined default recipe` +
    (project > 0 ? `, teacher features projected to ${project} channels` : ''),
);
try {
  const rows = [
    await measure(spec, 'none', cacheDir),
    await measure(spec, 'kd', cacheDir),
    await measure(spec, 'kd-cache', cacheDir),
  ];
  console.log('');
  console.log('| mode                     | ms/step | teacher ms | x no-KD | steps (ms)');
  console.log('|--------------------------|---------|------------|---------|-----------');
  const names = { none: 'no KD', kd: 'KD, teacher every step', 'kd-cache': 'KD, cached teacher' };
  for (const r of rows)
    console.log(
      `| ${names[r.label as keyof typeof names].padEnd(24)} | ${r.ms.toFixed(0).padStart(7)} | ${r.teacherMs.toFixed(0).padStart(10)} | ${(r.ms / rows[0].ms).toFixed(2).padStart(7)} | ${r.all.map((t) => t.toFixed(0)).join(', ')}`,
    );
  console.log('');
  console.log(
    `KD step / no-KD step: ${(rows[1].ms / rows[0].ms).toFixed(2)}x without the cache, ${(rows[2].ms / rows[0].ms).toFixed(2)}x with it (aim <= 1.5x)`,
  );
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
