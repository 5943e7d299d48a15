import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { onnx, type OnnxTypes } from '../../export/onnx-proto.js';
import { buildOnnxModel, encodeModel } from '../../export/onnx-graph.js';
import { floatValues, type DecodedGraph } from '../../export/fp16.js';
import {
  activationParams,
  HEAD_OUTPUT_CONVS,
  insertQdq,
  planQdq,
  quantizeInt8,
  quantizeWeightPerChannel,
} from '../../export/int8.js';
import { collectRanges, imagesToBatches } from '../../export/calibration.js';
import { generateSyntheticScene } from '../../train/data/synthetic.js';
import { calibrateBn, randomWeights, tinySpec } from './export-fixture.js';
import { buildTinyDetector } from './quant-fixture.js';

await tf.setBackend('cpu');
const DT = onnx.TensorProto.DataType;

/**
 * Parity bounds of INT8 vs FP32 on 8 held-out synthetic scenes (calibration on 16 other scenes)
 * for the tiny test student (8-16 channels, random weights, BN statistics from synthetic scenes so
 * activations have trained-like scales). Narrow random layers are a worst case for 8-bit
 * activations; measured here (minmax / percentile 99.99): heatmap probabilities max 0.49 / 0.43,
 * mean 0.029 / 0.027, correlation 0.951 / 0.959; size and offset mean |diff| 1.3-1.9% of their
 * FP32 range, max 25-29%, correlation >= 0.979. Bounds leave ~20% headroom over those figures.
 * (A trained ped-tiny checkpoint does much better: see bench/export.ts.)
 */
const BOUNDS = {
  /** Heatmap probabilities: absolute. */
  heatmap: { max: 0.6, mean: 0.04 },
  /** size / offset: fraction of max(1, max |fp32|) of the head. */
  relMax: 0.35,
  relMean: 0.03,
  /** Pearson correlation of every head with FP32. */
  corr: 0.93,
  /** Detection score at equal rank, absolute. */
  score: 0.15,
};

const spec = tinySpec();
const weights = calibrateBn(spec, randomWeights(spec, 11, -1), 11, 4);
const { height: H, width: W } = spec.input;
const scenes = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => generateSyntheticScene(`${prefix}/${i}`, W, H).image);
const calib = imagesToBatches(scenes('calib', 16), spec.input, 8);
const held = imagesToBatches(scenes('held', 8), spec.input, 8)[0];

const graphOf = (m: OnnxTypes.ModelProto) => m.graph as unknown as DecodedGraph;

async function run(model: OnnxTypes.ModelProto, x: Float32Array, optimizedModelFilePath?: string) {
  const s = await ort.InferenceSession.create(encodeModel(model), {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...(optimizedModelFilePath ? { optimizedModelFilePath } : {}),
  });
  try {
    const out = await s.run({ images: new ort.Tensor('float32', x, [x.length / (3 * H * W), 3, H, W]) });
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
  } finally {
    await s.release();
  }
}

/** Max and mean absolute difference, the FP32 range and the Pearson correlation of two outputs. */
function diff(a: Float32Array, b: Float32Array) {
  let max = 0;
  let sum = 0;
  let range = 0;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    max = Math.max(max, d);
    sum += d;
    range = Math.max(range, Math.abs(a[i]));
    ma += a[i];
    mb += b[i];
  }
  ma /= a.length;
  mb /= b.length;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return { max, mean: sum / a.length, range, corr: sab / Math.sqrt(saa * sbb) };
}

for (const method of ['minmax', 'percentile'] as const) {
  test(`INT8 (${method}) heads stay within the stated bounds of FP32 on held-out scenes`, async (t) => {
    const fp32 = buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 });
    const q = await quantizeInt8(fp32, calib, { method, percentile: 99.99, perChannel: true });
    const ref = await run(fp32, held);
    const got = await run(q, held);
    for (const k of ['heatmap', 'size', 'offset']) {
      const d = diff(ref[k], got[k]);
      t.diagnostic(
        `${k}: max ${d.max.toFixed(4)} mean ${d.mean.toFixed(4)} corr ${d.corr.toFixed(4)} (|fp32| max ${d.range.toFixed(3)})`,
      );
      if (k === 'heatmap') {
        assert.ok(d.max <= BOUNDS.heatmap.max, `${k} max diff ${d.max}`);
        assert.ok(d.mean <= BOUNDS.heatmap.mean, `${k} mean diff ${d.mean}`);
      } else {
        assert.ok(d.max <= BOUNDS.relMax * Math.max(1, d.range), `${k} max diff ${d.max}`);
        assert.ok(d.mean <= BOUNDS.relMean * Math.max(1, d.range), `${k} mean diff ${d.mean}`);
      }
      assert.ok(d.corr >= BOUNDS.corr, `${k} correlation ${d.corr}`);
    }
  });
}

test('weights are per-channel symmetric int8 and biases int32 at x_scale * w_scale (checked by hand)', async () => {
  const fp32 = buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 });
  const q = await quantizeInt8(fp32, calib, { method: 'minmax', perChannel: true });
  const g32 = graphOf(fp32);
  const g8 = graphOf(q);
  const conv = g32.node.filter((n) => n.opType === 'Conv')[1];
  const wName = conv.input[1];
  const w = floatValues(g32.initializer.find((t) => t.name === wName)!);
  const O = Number(g32.initializer.find((t) => t.name === wName)!.dims[0]);
  const wq = g8.initializer.find((t) => t.name === `${wName}_quantized`)!;
  const ws = floatValues(g8.initializer.find((t) => t.name === `${wName}_scale`)!);
  const wz = g8.initializer.find((t) => t.name === `${wName}_zero_point`)!;
  assert.equal(wq.dataType, DT.INT8);
  assert.equal(wz.dataType, DT.INT8);
  assert.deepEqual(wq.dims.map(Number), g32.initializer.find((t) => t.name === wName)!.dims.map(Number));
  assert.equal(ws.length, O);
  assert.ok(wz.rawData.every((v) => v === 0));
  const qv = new Int8Array(wq.rawData.buffer, wq.rawData.byteOffset, wq.rawData.byteLength);
  const per = w.length / O;
  for (const o of [0, O - 1]) {
    let a = 0;
    for (let i = o * per; i < (o + 1) * per; i++) a = Math.max(a, Math.abs(w[i]));
    assert.ok(Math.abs(ws[o] - a / 127) <= 1e-7 * a, `scale[${o}] ${ws[o]} vs ${a / 127}`);
    for (let i = o * per; i < (o + 1) * per; i++) assert.equal(qv[i], Math.round(w[i] / ws[o]));
  }
  // the weight DQ is per output channel
  const dq = g8.node.find((n) => n.opType === 'DequantizeLinear' && n.input[0] === `${wName}_quantized`)!;
  assert.equal(Number(dq.attribute.find((a) => a.name === 'axis')!.i), 0);
  // bias: int32, scale = x_scale * w_scale[o]
  const qConv = g8.node.find((n) => n.name === conv.name)!;
  const bDq = g8.node.find((n) => n.output[0] === qConv.input[2])!;
  const bq = g8.initializer.find((t) => t.name === bDq.input[0])!;
  assert.equal(bq.dataType, DT.INT32);
  const bs = floatValues(g8.initializer.find((t) => t.name === bDq.input[1])!);
  const xDq = g8.node.find((n) => n.output[0] === qConv.input[0])!;
  const xs = floatValues(g8.initializer.find((t) => t.name === xDq.input[1])!)[0];
  for (let o = 0; o < O; o++) assert.ok(Math.abs(bs[o] - xs * ws[o]) <= 1e-6 * bs[o]);
  const b = floatValues(g32.initializer.find((t) => t.name === conv.input[2])!);
  const bv = new Int32Array(bq.rawData.slice().buffer);
  for (let o = 0; o < O; o++) assert.equal(bv[o], Math.round(b[o] / bs[o]));
});

test('quantizeWeightPerChannel: scale max|w|/127 per output channel, zero channel gets scale 1', () => {
  const { q, scale } = quantizeWeightPerChannel(new Float32Array([0.5, -1, 0.25, 0, 0, 0]), 2);
  assert.deepEqual([...scale], [Math.fround(1 / 127), 1]);
  assert.deepEqual([...q], [64, -127, 32, 0, 0, 0]);
});

test('activationParams: uint8 asymmetric keeps 0 exact; int8 is symmetric with zero point 0', () => {
  const u = activationParams({ min: 0, max: 6 }, 'uint8');
  assert.equal(u.zeroPoint, 0);
  assert.ok(Math.abs(u.scale - 6 / 255) < 1e-12);
  const a = activationParams({ min: -1, max: 3 }, 'uint8');
  assert.equal(a.zeroPoint, Math.round(1 / (4 / 255)));
  const s = activationParams({ min: -1, max: 3 }, 'int8');
  assert.deepEqual(s, { scale: 3 / 127, zeroPoint: 0, type: 'int8' });
});

test('the optimised INT8 graph runs integer kernels: every Conv becomes QLinearConv', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-int8-'));
  try {
    const fp32 = buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 });
    const q = await quantizeInt8(fp32, calib, { method: 'minmax', perChannel: true });
    const path = join(dir, 'opt.onnx');
    await run(q, held.subarray(0, 3 * H * W), path);
    const ops = new Map<string, number>();
    for (const n of onnx.ModelProto.decode(readFileSync(path)).graph!.node!)
      ops.set(n.opType!, (ops.get(n.opType!) ?? 0) + 1);
    t.diagnostic(`optimised: ${[...ops].map(([k, v]) => `${k}:${v}`).join(' ')}`);
    assert.ok((ops.get('QLinearConv') ?? 0) > 10, 'no QLinearConv: the QDQ groups did not fuse');
    assert.equal(ops.get('Conv') ?? 0, 0, 'a float Conv is left');
    assert.ok((ops.get('QLinearAdd') ?? 0) > 0, 'residual Adds did not fuse');
    // Q/DQ left only at the graph edges: one Q for the input, one DQ per head
    assert.equal(ops.get('QuantizeLinear') ?? 0, 1);
    assert.ok((ops.get('DequantizeLinear') ?? 0) <= 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('boxes model: the decode after the heads stays float and the detections track FP32', async (t) => {
  const fp32 = buildOnnxModel(spec, weights, { outputs: 'boxes', opset: 17 });
  const q = await quantizeInt8(fp32, calib, { method: 'percentile', perChannel: true });
  const g = graphOf(q);
  const producer = new Map(g.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
  for (const n of g.node.filter((x) => x.opType === 'QuantizeLinear')) {
    const p = producer.get(n.input[0]);
    assert.ok(
      !p || ['Conv', 'Add', 'Resize', 'Relu', 'Clip'].includes(p.opType),
      `decode tensor '${n.input[0]}' (${p?.opType}) is quantised`,
    );
  }
  for (const op of ['TopK', 'MaxPool', 'Sigmoid'])
    for (const n of g.node.filter((x) => x.opType === op))
      for (const s of n.input) assert.ok(!s.endsWith('_quantized'), `${op} reads a quantised tensor`);
  const ref = await run(fp32, held);
  const got = await run(q, held);
  const key = Object.keys(ref)[0];
  // sorted score columns (robust to rank swaps of near-equal peaks)
  const scores = (d: Float32Array) => Array.from({ length: d.length / 6 }, (_, i) => d[i * 6 + 4]);
  const a = scores(ref[key]);
  const b = scores(got[key]);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  t.diagnostic(`detections: worst score diff at equal rank ${worst.toFixed(4)}`);
  assert.equal(got[key].length, ref[key].length);
  assert.ok(worst <= BOUNDS.score, `score diff ${worst}`);
});

test('int8 (symmetric) activations: every activation zero point is 0 and the model runs', async () => {
  const m = buildTinyDetector({ size: 32 });
  const x = [new Float32Array(2 * 3 * 32 * 32).map((_, i) => (i % 97) / 97)];
  const q = await quantizeInt8(m, x, { method: 'minmax', perChannel: true, activations: 'int8' });
  const g = graphOf(q);
  const zps = g.initializer.filter((t) => t.name.endsWith('_zero_point'));
  assert.ok(zps.length > 0);
  for (const z of zps)
    assert.ok(
      z.rawData.every((v) => v === 0),
      `${z.name} is not 0`,
    );
  assert.ok(
    g.node.some((n) => n.opType === 'Relu'),
    'int8 mode must keep activations as nodes',
  );
  const s = await ort.InferenceSession.create(encodeModel(q));
  const out = await s.run({ images: new ort.Tensor('float32', x[0], [2, 3, 32, 32]) });
  assert.deepEqual(out.heatmap.dims, [2, 1, 8, 8]);
  await s.release();
});

test('uint8 mode folds Relu / Clip(0, 6) that follow a conv into its quantised output', () => {
  const plan = planQdq(buildTinyDetector({ size: 32 }), 'uint8');
  assert.equal(plan.folded.length, 7);
  assert.ok(!graphOf(plan.model).node.some((n) => n.opType === 'Relu' || n.opType === 'Clip'));
  assert.equal(plan.shared.size, 1, 'the Resize output shares its input parameters');
  const ranges = new Map(plan.tensors.map((n) => [n, { min: -1, max: 1 }]));
  assert.throws(() => insertQdq(plan, new Map()), { name: 'ModelFormatError' });
  assert.ok(graphOf(insertQdq(planQdq(buildTinyDetector({ size: 32 })), ranges)).node.length > 0);
});

test('percentile ranges lie inside min-max ranges and include 0', async () => {
  const m = buildTinyDetector({ size: 32 });
  const x = [new Float32Array(4 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.37) * 0.5 + 0.5)];
  const names = planQdq(m).tensors;
  const mm = await collectRanges(m, names, x, { method: 'minmax' });
  const pc = await collectRanges(m, names, x, { method: 'percentile', percentile: 99 });
  let tighter = 0;
  for (const n of names) {
    const a = mm.get(n)!;
    const b = pc.get(n)!;
    assert.ok(a.min <= 0 && a.max >= 0 && b.min <= 0 && b.max >= 0);
    assert.ok(b.min >= a.min - 1e-6 && b.max <= a.max + 1e-6, `${n}: ${JSON.stringify([a, b])}`);
    if (b.max < a.max - 1e-6 || b.min > a.min + 1e-6) tighter++;
  }
  assert.ok(tighter > names.length / 2, `percentile 99 tightened only ${tighter} of ${names.length} ranges`);
});

test('rejects an empty calibration set with ConfigError', async () => {
  const m = buildTinyDetector({ size: 32 });
  for (const batches of [[], [new Float32Array(0)]])
    await assert.rejects(quantizeInt8(m, batches, { method: 'minmax', perChannel: true }), {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /calibration set is empty/,
    });
  assert.throws(() => imagesToBatches([], spec.input), { name: 'ConfigError', code: 'ERR_CONFIG_INVALID' });
});

test('rejects a batch that is not a whole number of images with RangeError naming it', async () => {
  const m = buildTinyDetector({ size: 32 });
  await assert.rejects(quantizeInt8(m, [new Float32Array(100)], { method: 'minmax', perChannel: true }), {
    name: 'RangeError',
    message: /'batches\[0\]'/,
  });
});

test('imagesToBatches letterboxes with pad 114 and normalises per the spec', () => {
  const input = { ...spec.input, height: 32, width: 32, resize: 'letterbox' as const };
  const img = { width: 32, height: 16, data: new Uint8Array(32 * 16 * 3).fill(255) };
  const [b] = imagesToBatches([img], input);
  assert.equal(b.length, 3 * 32 * 32);
  assert.ok(Math.abs(b[0] - 114 / 255) < 1e-6, 'top rows are padding');
  assert.ok(Math.abs(b[16 * 32 + 5] - 1) < 1e-6, 'middle rows are the image');
  const bgr = imagesToBatches(
    [{ width: 32, height: 32, data: new Uint8Array(32 * 32 * 3).map((_, i) => (i % 3 === 0 ? 255 : 0)) }],
    { ...input, channelOrder: 'bgr', normalization: { kind: 'raw' } },
  )[0];
  assert.equal(bgr[0], 0, 'channel 0 is blue');
  assert.equal(bgr[2 * 32 * 32], 255, 'channel 2 is red');
});

test('latency of FP32 vs INT8 on the CPU provider is reported (no timing assertion)', async (t) => {
  const fp32 = buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 });
  const q = await quantizeInt8(fp32, calib, { method: 'minmax', perChannel: true });
  for (const n of [1, 8]) {
    const feeds = { images: new ort.Tensor('float32', held.subarray(0, n * 3 * H * W), [n, 3, H, W]) };
    const ms: Record<string, number> = {};
    for (const [name, m] of [
      ['fp32', fp32],
      ['int8', q],
    ] as const) {
      const s = await ort.InferenceSession.create(encodeModel(m), { graphOptimizationLevel: 'all' });
      for (let i = 0; i < 3; i++) await s.run(feeds);
      const ts: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        await s.run(feeds);
        ts.push(performance.now() - t0);
      }
      await s.release();
      ms[name] = ts.sort((a, b) => a - b)[5];
    }
    t.diagnostic(
      `batch ${n} (64x64 tiny student): fp32 ${ms.fp32.toFixed(2)} ms, int8 ${ms.int8.toFixed(2)} ms ` +
        `(tiny layers are overhead-bound; the 320x320 student's ratio is in bench/export.ts)`,
    );
  }
});

test('floatNodes: the heads last convs stay float32 (their weights unquantised), everything else is QDQ, and ORT runs it', async () => {
  const fp32 = buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 });
  const q = await quantizeInt8(fp32, calib, {
    method: 'minmax',
    perChannel: true,
    floatNodes: HEAD_OUTPUT_CONVS,
  });
  const g8 = graphOf(q);
  const convs = g8.node.filter((n) => n.opType === 'Conv');
  for (const name of HEAD_OUTPUT_CONVS) {
    const n = convs.find((c) => c.name === name);
    assert.ok(n, `${name} is still a Conv`);
    const w = g8.initializer.find((t) => t.name === n.input[1]);
    assert.ok(w && w.dataType === DT.FLOAT, `${name} keeps float32 weights`);
  }
  const quantised = g8.initializer.filter((t) => t.name.endsWith('_quantized') && t.dataType === DT.INT8);
  const all = await quantizeInt8(fp32, calib, { method: 'minmax', perChannel: true });
  const quantisedAll = graphOf(all).initializer.filter(
    (t) => t.name.endsWith('_quantized') && t.dataType === DT.INT8,
  );
  assert.equal(
    quantised.length,
    quantisedAll.length - HEAD_OUTPUT_CONVS.length,
    'only the three head convs differ',
  );
  const session = await ort.InferenceSession.create(encodeModel(q));
  const { height: H, width: W } = spec.input;
  const n = calib[0].length / (3 * H * W);
  const out = await session.run({
    [session.inputNames[0]]: new ort.Tensor('float32', calib[0], [n, 3, H, W]),
  });
  assert.ok(Object.values(out).every((t) => (t.data as Float32Array).every(Number.isFinite)));
  await session.release();
});
