/**
 * Accuracy cost of INT8 (and FP16) export, measured with the real eval code: exports a trained
 * checkpoint to ONNX `boxes` models (FP32, INT8 calibrated on training-split synthetic images,
 * FP16), runs each with onnxruntime-node's CPU provider on held-out synthetic images, maps the
 * detections back to source pixels and prints COCO AP / AP50 / MR^-2 side by side.
 *
 *   npm run build && node dist/bench/export-accuracy.js --checkpoint runs/tiny/best.safetensors
 *
 * Flags: --images 200 (eval images, seed 9001), --calib 64 (calibration images, seed 1: the
 * training split), --method minmax|percentile.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { deployWeights, loadCheckpoint } from '../models/core/checkpoint.js';
import { buildOnnxModel, encodeModel } from '../export/onnx-graph.js';
import { HEAD_OUTPUT_CONVS, pruneDeadNodes, quantizeInt8 } from '../export/int8.js';
import { toFp16 } from '../export/fp16.js';
import { evalBatches } from '../train/data/loader.js';
import { syntheticDataset } from '../train/data/synthetic.js';
import { evaluateOnnxModel, openOnnxModel } from '../train/eval-onnx.js';
import { nhwcToNchw } from '../models/core/layout.js';
import type { EvalBatch } from '../train/data/types.js';

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    images: { type: 'string', default: '200' },
    calib: { type: 'string', default: '64' },
    method: { type: 'string', default: 'minmax' },
  },
});
if (!args.checkpoint) {
  console.error(
    'usage: node dist/bench/export-accuracy.js --checkpoint FILE [--images 200] [--calib 64] [--method minmax|percentile]',
  );
  process.exit(2);
}
const ckpt = loadCheckpoint(args.checkpoint);
const spec = ckpt.spec;
const { height: H, width: W } = spec.input;
const nEval = Number(args.images);
const nCalib = Number(args.calib);
const method = args.method === 'percentile' ? 'percentile' : 'minmax';
const scoreFloor = 0.01;

async function batchesOf(count: number, seed: number): Promise<EvalBatch[]> {
  const ds = syntheticDataset({ count, seed, width: W, height: H, classes: spec.classes });
  const out: EvalBatch[] = [];
  for await (const b of evalBatches(ds, { spec, batchSize: 8 })) out.push(b);
  return out;
}

const fp32 = pruneDeadNodes(buildOnnxModel(spec, deployWeights(ckpt), { outputs: 'boxes', opset: 17 }));
const calib = (await batchesOf(nCalib, 1)).map((b) => nhwcToNchw(b.imagesNhwc, b.size, H, W));
const evalSet = syntheticDataset({ count: nEval, seed: 9001, width: W, height: H, classes: spec.classes });
const dir = mkdtempSync(join(tmpdir(), 'edgekd-export-accuracy-'));
const variants = [
  { name: 'fp32', model: fp32 },
  {
    name: 'int8',
    // As `edgekd export` does by default (--int8-float-heads).
    model: await quantizeInt8(fp32, calib, { method, perChannel: true, floatNodes: HEAD_OUTPUT_CONVS }),
  },
  {
    name: 'int8-all',
    model: await quantizeInt8(fp32, calib, { method, perChannel: true }),
  },
  { name: 'fp16', model: toFp16(fp32) },
];

console.log(
  `export accuracy: ${spec.name} ${H}x${W} (${args.checkpoint}); ${nEval} held-out synthetic images (seed 9001); int8 calibrated on ${nCalib} training-split images (${method}); onnxruntime-node ${ort.env.versions.common} cpu`,
);
console.log('| precision | AP     | AP50   | APsmall | MR2    | MR2Reasonable |');
console.log('|-----------|--------|--------|---------|--------|---------------|');
const results: Record<string, Record<string, number>> = {};
for (const v of variants) {
  // Through the same path as `edgekd eval --model`: file on disk, spec from its metadata.
  const file = join(dir, `${v.name}.onnx`);
  writeFileSync(file, encodeModel(v.model));
  const model = await openOnnxModel(file);
  const m = await evaluateOnnxModel(model, evalSet, { scoreThreshold: scoreFloor, maxDetections: 100 });
  await model.session.release();
  results[v.name] = m;
  const f = (x: number) => x.toFixed(4);
  console.log(
    `| ${v.name.padEnd(9)} | ${f(m.AP)} | ${f(m.AP50)} | ${f(m.APsmall).padEnd(7)} | ${f(m.MR2)} | ${f(m.MR2Reasonable).padEnd(13)} |`,
  );
}
rmSync(dir, { recursive: true, force: true });
const drop = (name: string) => ((results.fp32.AP50 - results[name].AP50) * 100).toFixed(2);
console.log(
  `AP50 drop vs fp32 (points): int8 ${drop('int8')} (heads' last convs float), int8-all ${drop('int8-all')}, fp16 ${drop('fp16')} (aim for int8: <= 1 point)`,
);
