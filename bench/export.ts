/**
 * Export precision benchmark: latency of the default student (ped-nano, 320x320) exported as FP32,
 * INT8 QDQ (uint8 and int8-symmetric activations) and FP16, on onnxruntime-node's CPU provider
 * (graphOptimizationLevel 'all'), at batch 1 and batch 8, plus the INT8/FP32 speed ratio and the
 * head parity of each precision against FP32 on synthetic scenes.
 *
 *   npm run build && node dist/bench/export.js [--checkpoint runs/x/best.safetensors]
 *     [--spec train/configs/ped-nano.spec.json] [--runs 20] [--warmup 3] [--calib 32]
 *     [--method minmax|percentile] [--percentile 99.99] [--threads 0]
 *
 * Without --checkpoint the student is random-initialised (he-normal, BN at identity statistics):
 * latency does not depend on weight values. Calibration uses `--calib` synthetic scenes
 * (train/data/synthetic.ts, seeds `calib/i`); parity uses 8 other scenes (`eval/i`). Each
 * latency is the median of `--runs` timed runs after `--warmup` runs. The optimised INT8 graph is
 * saved by ORT (optimizedModelFilePath) and its op types are printed, so an unfused Q/DQ shows.
 */
import { parseArgs } from 'node:util';
import { intFlag } from './int-flag.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readModelSpec, type ModelSpec } from '../models/core/spec.js';
import { buildGraph, initialWeights } from '../models/arch/graph.js';
import { deployWeights, loadCheckpoint } from '../models/core/checkpoint.js';
import type { NamedTensor } from '../models/core/safetensors.js';
import { buildOnnxModel, encodeModel } from '../export/onnx-graph.js';
import { onnx, type OnnxTypes } from '../export/onnx-proto.js';
import { toFp16 } from '../export/fp16.js';
import { HEAD_OUTPUT_CONVS, pruneDeadNodes, quantizeInt8 } from '../export/int8.js';
import { imagesToBatches } from '../export/calibration.js';
import { generateSyntheticScene } from '../train/data/synthetic.js';

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    spec: { type: 'string', default: 'train/configs/ped-nano.spec.json' },
    runs: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    calib: { type: 'string', default: '32' },
    method: { type: 'string', default: 'minmax' },
    percentile: { type: 'string', default: '99.99' },
    threads: { type: 'string', default: '0' },
  },
  strict: true,
});

const int = intFlag;
const runs = int('runs', args.runs, 1);
const warmup = int('warmup', args.warmup, 0);
const calibCount = int('calib', args.calib, 1);
const threads = int('threads', args.threads, 0);
const method = args.method === 'percentile' ? 'percentile' : 'minmax';
if (args.method !== 'minmax' && args.method !== 'percentile')
  throw new RangeError(`'--method' must be one of minmax, percentile, got ${args.method}`);
const percentile = Number(args.percentile);

let spec: ModelSpec;
let weights: Map<string, NamedTensor>;
if (args.checkpoint) {
  const ckpt = loadCheckpoint(args.checkpoint);
  spec = ckpt.spec;
  weights = deployWeights(ckpt);
} else {
  spec = readModelSpec(args.spec);
  const graph = buildGraph(spec);
  const init = initialWeights(graph, 1);
  weights = new Map(graph.params.map((p) => [p.name, { shape: p.shape.slice(), data: init.get(p.name)! }]));
}
const { height: H, width: W } = spec.input;
const per = 3 * H * W;

console.log(
  `export bench: ${spec.name} ${H}x${W} (${args.checkpoint ?? 'random init'}), ` +
    `${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()}, onnxruntime-node ${ort.env.versions.node ?? '?'}`,
);

let t0 = performance.now();
const fp32 = buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 });
console.log(`fp32 written in ${(performance.now() - t0).toFixed(0)} ms`);

const scenes = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => generateSyntheticScene(`${prefix}/${i}`, W, H).image);
t0 = performance.now();
const calib = imagesToBatches(scenes('calib', calibCount), spec.input, 4);
const evalBatch = imagesToBatches(scenes('eval', 8), spec.input, 8)[0];
console.log(
  `${calibCount} calibration + 8 eval scenes rendered in ${(performance.now() - t0).toFixed(0)} ms`,
);

const pruned = pruneDeadNodes(fp32);
const deadCount = (fp32.graph?.node?.length ?? 0) - (pruned.graph?.node?.length ?? 0);
const variants: { name: string; model: OnnxTypes.ModelProto }[] = [{ name: 'fp32', model: fp32 }];
// quantizeInt8 drops nodes no output depends on (the writer keeps the P3..P5 smoothing used only as
// distillation taps); 'fp32-pruned' is the like-for-like FP32 baseline for the INT8 ratio.
if (deadCount > 0) variants.push({ name: 'fp32-pruned', model: pruned });
for (const activations of ['uint8', 'int8'] as const) {
  t0 = performance.now();
  const q = await quantizeInt8(fp32, calib, {
    method,
    percentile,
    perChannel: true,
    activations,
    // As `edgekd export` does by default (--int8-float-heads).
    floatNodes: HEAD_OUTPUT_CONVS,
  });
  console.log(
    `int8 (${activations} activations, ${method}${method === 'percentile' ? ` ${percentile}` : ''}) ` +
      `calibrated + quantised in ${(performance.now() - t0).toFixed(0)} ms`,
  );
  variants.push({ name: `int8-${activations === 'uint8' ? 'u8s8' : 's8s8'}`, model: q });
}
variants.push({ name: 'fp16', model: toFp16(fp32) });

const dir = mkdtempSync(join(tmpdir(), 'edgekd-bench-export-'));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Row {
  name: string;
  mb: number;
  b1: number;
  b8: number;
  ops: string;
  diffs: string;
}
interface Live {
  name: string;
  mb: number;
  session: ort.InferenceSession;
  ops: string;
  diffs: string;
  times: { 1: number[]; 8: number[] };
}
const feedsOf = (n: number): Record<string, ort.Tensor> => {
  const x = new Float32Array(n * per);
  for (let i = 0; i < n; i++) x.set(evalBatch.subarray((i % 8) * per, ((i % 8) + 1) * per), i * per);
  return { images: new ort.Tensor('float32', x, [n, 3, H, W]) };
};
const live: Live[] = [];
let ref: ort.InferenceSession.OnnxValueMapType | undefined;
try {
  for (const v of variants) {
    const bytes = encodeModel(v.model);
    const optPath = join(dir, `${v.name}.opt.onnx`);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        graphOptimizationLevel: 'all',
        optimizedModelFilePath: optPath,
        logSeverityLevel: 3,
        ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
      });
    } catch (e) {
      console.log(`${v.name}: the CPU provider cannot run it: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    const opt = onnx.ModelProto.decode(readFileSync(optPath));
    const hist = new Map<string, number>();
    for (const n of opt.graph?.node ?? []) hist.set(n.opType ?? '', (hist.get(n.opType ?? '') ?? 0) + 1);
    const ops = [...hist]
      .sort((a, b) => b[1] - a[1])
      .map(([k, c]) => `${k}:${c}`)
      .join(' ');
    const out = await session.run(feedsOf(8));
    let diffs = '';
    if (!ref) ref = out;
    else
      diffs = Object.keys(ref)
        .map((k) => {
          const a = ref![k].data as Float32Array;
          const b = out[k].data as Float32Array;
          let d = 0;
          let sum = 0;
          let m = 0;
          for (let i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
            sum += Math.abs(a[i] - b[i]);
            m = Math.max(m, Math.abs(a[i]));
          }
          return `${k} max ${d.toExponential(2)} mean ${(sum / a.length).toExponential(2)} (|fp32| max ${m.toFixed(2)})`;
        })
        .join(', ');
    live.push({ name: v.name, mb: bytes.length / 1e6, session, ops, diffs, times: { 1: [], 8: [] } });
  }
  // Round-robin: each round runs every variant once, so load from other processes on this
  // machine hits all variants alike; medians per variant.
  for (const n of [1, 8] as const) {
    const feeds = feedsOf(n);
    for (let r = 0; r < warmup + runs; r++)
      for (const l of live) {
        const s = performance.now();
        await l.session.run(feeds);
        if (r >= warmup) l.times[n].push(performance.now() - s);
      }
  }
} finally {
  for (const l of live) await l.session.release();
  rmSync(dir, { recursive: true, force: true });
}
const rows: Row[] = live.map((l) => ({
  name: l.name,
  mb: l.mb,
  b1: median(l.times[1]),
  b8: median(l.times[8]),
  ops: l.ops,
  diffs: l.diffs,
}));

console.log('\nprecision  size MB  batch1 ms  batch8 ms  img/s@8  x fp32 (b1, b8)');
const base = rows.find((r) => r.name === 'fp32')!;
for (const r of rows)
  console.log(
    `${r.name.padEnd(10)} ${r.mb.toFixed(2).padStart(7)}  ${r.b1.toFixed(2).padStart(9)}  ${r.b8.toFixed(2).padStart(9)}  ` +
      `${((8 * 1000) / r.b8).toFixed(1).padStart(7)}  ${(base.b1 / r.b1).toFixed(2)}x, ${(base.b8 / r.b8).toFixed(2)}x`,
  );
console.log('\nhead parity vs fp32 (|diff| over 8 held-out synthetic scenes):');
for (const r of rows) if (r.diffs) console.log(`  ${r.name}: ${r.diffs}`);
console.log('\noptimised graph op types (ORT, level all):');
for (const r of rows) console.log(`  ${r.name}: ${r.ops}`);
const fair = rows.find((r) => r.name === 'fp32-pruned');
if (fair) console.log(`\n(the FP32 export has ${deadCount} nodes no output depends on; INT8 drops them)`);
for (const r of rows.filter((x) => x.name.startsWith('int8'))) {
  console.log(
    `INT8/FP32 speed ratio (${r.name}): batch1 ${(base.b1 / r.b1).toFixed(2)}x, batch8 ${(base.b8 / r.b8).toFixed(2)}x (aim >= 1.7x)`,
  );
  if (fair)
    console.log(
      `  vs fp32-pruned: batch1 ${(fair.b1 / r.b1).toFixed(2)}x, batch8 ${(fair.b8 / r.b8).toFixed(2)}x`,
    );
}
const fp16 = rows.find((r) => r.name === 'fp16');
if (fp16)
  console.log(
    "\nfp16 note: the CPU provider runs it only through ORT's InsertCastTransformer (float16 nodes without " +
      'a CPU kernel are cast to float32), so its CPU latency is FP32 compute plus casts, not a float16 speed-up; ' +
      'FP16 targets CUDA / TensorRT / WebGPU.',
  );
