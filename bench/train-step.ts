/**
 * Training-step benchmark: images/s of a full data-parallel step (forward, CenterNet losses,
 * backward, gradient sum over replicas, plain-JS AdamW update) of a student spec, through the
 * trainer's real ReplicaPool, on wasm with N replicas, wasm with 1, and the cpu backend.
 *
 *   npm run bench:train-step -- [--spec train/configs/ped-nano.spec.json] [--steps 3] [--warmup 1]
 *     [--batch 16] [--micro 4] [--replicas 2] [--cpu-batch 1] [--cpu-warmup 0] [--cpu-steps 1] [--skip-cpu]
 *
 * The cpu backend (~100 s per 320x320 image here) runs `--cpu-batch` images per step, no warm-up by default.
 * Synthetic data (seeded random images, two boxes per image) prepared before timing; each timed
 * step is `pool.step` + `optimizerStep`. Reports the median of `--steps` after `--warmup` steps.
 */
import { parseArgs } from 'node:util';
import { intFlag } from './int-flag.js';
import { availableParallelism } from 'node:os';
import { readModelSpec, type ModelSpec } from '../models/core/spec.js';
import { buildGraph, graphCost, initialWeights } from '../models/arch/graph.js';
import { trainableLayout } from '../train/trainer/param-layout.js';
import {
  createOptimizerState,
  decayMask,
  optimizerStep,
  type OptimizerConfig,
} from '../train/trainer/optimizer.js';
import { ReplicaPool } from '../train/trainer/replica-pool.js';
import { buildTargets } from '../train/targets.js';
import { batchNormalizers, type LossWeights, type MicroBatch } from '../train/step.js';
import { TrainConfigSchema } from '../train/config.js';

const { values: args } = parseArgs({
  options: {
    spec: { type: 'string', default: 'train/configs/ped-nano.spec.json' },
    steps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    batch: { type: 'string', default: '16' },
    micro: { type: 'string', default: '4' },
    replicas: { type: 'string', default: String(Math.max(2, Math.min(availableParallelism(), 8))) },
    'cpu-batch': { type: 'string', default: '1' },
    'cpu-warmup': { type: 'string', default: '0' },
    'cpu-steps': { type: 'string', default: '1' },
    'skip-cpu': { type: 'boolean', default: false },
  },
  strict: true,
});

const int = intFlag;

const steps = int('steps', args.steps, 1);
const warmup = int('warmup', args.warmup, 0);
const batch = int('batch', args.batch, 1);
const micro = int('micro', args.micro, 1);
const replicas = int('replicas', args.replicas, 1);
const cpuBatch = int('cpu-batch', args['cpu-batch'], 1);
const cpuSteps = int('cpu-steps', args['cpu-steps'], 1);
const cpuWarmup = int('cpu-warmup', args['cpu-warmup'], 0);

// The trainer's default loss terms (focal + L1 + dense GIoU), from the one place defaults live.
const LOSS: LossWeights = TrainConfigSchema.shape.loss.parse(undefined);
const OPT: OptimizerConfig = {
  kind: 'adamw',
  lr: 2e-3,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  weightDecay: 5e-4,
};

/** Seeded synthetic micro-batches: `images` split over `reps` replicas, `micro` per micro-batch. */
function makeShards(spec: ModelSpec, images: number, reps: number, mb: number, seed: number): MicroBatch[][] {
  const { height: h, width: w } = spec.input;
  let s = seed;
  const rnd = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const per = Math.ceil(images / reps);
  return Array.from({ length: reps }, (_, r) => {
    const out: MicroBatch[] = [];
    const end = Math.min(images, (r + 1) * per);
    for (let i = r * per; i < end; i += mb) {
      const n = Math.min(mb, end - i);
      const anns = Array.from({ length: n }, () =>
        Array.from({ length: 2 }, () => {
          const x = rnd() * (w - 60);
          const y = rnd() * (h - 120);
          return {
            box: [x, y, x + 12 + rnd() * 40, y + 30 + rnd() * 80] as [number, number, number, number],
            classId: 0,
          };
        }),
      );
      out.push({
        batch: n,
        height: h,
        width: w,
        imagesNhwc: Float32Array.from({ length: n * h * w * 3 }, rnd),
        targets: buildTargets(anns, h, w, 4, spec.classes.length),
        annotations: anns,
      });
    }
    return out;
  });
}

interface Row {
  label: string;
  images: number;
  ms: number;
  all: number[];
  detail: string;
}

async function measure(
  spec: ModelSpec,
  label: string,
  backend: 'wasm' | 'cpu',
  reps: number,
  images: number,
  mb: number,
  nSteps: number,
  warmup: number,
): Promise<Row> {
  const graph = buildGraph(spec);
  const layout = trainableLayout(graph);
  const init = initialWeights(graph, 0);
  const params = new Float32Array(layout.total);
  for (const slot of layout.slots) params.set(init.get(slot.name)!, slot.offset);
  const opt = createOptimizerState(OPT, layout.total);
  const decay = decayMask(layout);
  const shards = makeShards(spec, images, reps, mb, 12345);
  const norm = batchNormalizers(shards.flat());
  const pool = await ReplicaPool.start(spec, reps, backend, LOSS);
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + nSteps; i++) {
      const t0 = performance.now();
      const r = await pool.step(params, shards, norm);
      optimizerStep(OPT, opt, params, r.grads, decay, OPT.lr);
      const ms = performance.now() - t0;
      process.stderr.write(
        `  ${label} step ${i + 1}/${warmup + nSteps}${i < warmup ? ' (warm-up)' : ''}: ${ms.toFixed(0)} ms, loss ${r.losses.total.toFixed(3)}\n`,
      );
      if (i >= warmup) times.push(ms);
    }
  } finally {
    await pool.close();
  }
  const sorted = [...times].sort((a, b) => a - b);
  const ms = sorted[Math.floor((sorted.length - 1) / 2)];
  return { label, images, ms, all: times, detail: pool.info.detail.split(';')[0] + ')' };
}

const spec = readModelSpec(args.spec!);
const cost = graphCost(spec);
console.log(
  `train-step bench: ${spec.name} ${spec.input.height}x${spec.input.width}, ${(cost.params / 1e6).toFixed(3)} M params, ` +
    `${(cost.macs / 1e9).toFixed(3)} GMAC/img; batch ${batch}, micro-batch ${micro}, ${warmup} warm-up + ${steps} timed steps (median); ` +
    `step = forward + focal/L1/GIoU losses + backward + gradient sum + AdamW (plain JS); ${availableParallelism()} cores`,
);
const rows: Row[] = [];
rows.push(await measure(spec, `wasm x${replicas} replicas`, 'wasm', replicas, batch, micro, steps, warmup));
rows.push(await measure(spec, 'wasm x1 replica', 'wasm', 1, batch, micro, steps, warmup));
if (!args['skip-cpu'])
  rows.push(
    await measure(
      spec,
      `cpu x1 (batch ${cpuBatch})`,
      'cpu',
      1,
      cpuBatch,
      Math.min(micro, cpuBatch),
      cpuSteps,
      cpuWarmup,
    ),
  );

const ips = (r: Row): number => (r.images * 1000) / r.ms;
console.log('');
console.log(`| configuration              | images/step | ms/step  | img/s  | steps (ms)`);
console.log(`|----------------------------|-------------|----------|--------|-----------`);
for (const r of rows) {
  console.log(
    `| ${r.label.padEnd(26)} | ${String(r.images).padStart(11)} | ${r.ms.toFixed(0).padStart(8)} | ${ips(r).toFixed(2).padStart(6)} | ${r.all.map((t) => t.toFixed(0)).join(', ')}`,
  );
}
console.log('');
console.log(`wasm x${replicas} / wasm x1: ${(ips(rows[0]) / ips(rows[1])).toFixed(2)}x`);
if (rows[2]) {
  console.log(
    `wasm x1 / cpu: ${(ips(rows[1]) / ips(rows[2])).toFixed(1)}x; wasm x${replicas} / cpu: ${(ips(rows[0]) / ips(rows[2])).toFixed(1)}x (cpu: ${cpuBatch} image(s)/step, ${cpuWarmup} warm-up: ${(rows[2].ms / rows[2].images / 1000).toFixed(0)} s per image, too slow for ${batch})`,
  );
}
console.log(`backend: ${rows[0].detail}`);
