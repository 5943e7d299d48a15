import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { buildOnnxModel, encodeModel } from '../../../export/onnx-graph.js';
import { onnx } from '../../../export/onnx-proto.js';
import { buildGraph } from '../../../models/arch/graph.js';
import { deployWeights, loadCheckpoint } from '../../../models/core/checkpoint.js';
import { TeacherConfigSchema } from '../../../train/distill/config.js';
import { createTeacher, type OnnxTeacherConfig } from '../../../train/teachers/index.js';
import { maxAbsDiff, randomImages, teacherSpec, tempDir, writeTeacherCheckpoint } from './teacher-fixture.js';

await tf.setBackend('cpu');

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
const spec = teacherSpec(['person', 'car']);
const ckptPath = writeTeacherCheckpoint(dir, spec, 3);
const onnxPath = join(dir, 'heads.onnx');
writeFileSync(
  onnxPath,
  encodeModel(buildOnnxModel(spec, deployWeights(loadCheckpoint(ckptPath)), { outputs: 'heads', opset: 17 })),
);
const graph = buildGraph(spec);
const taps = graph.taps;

const onnxCfg = (extra: Record<string, unknown> = {}): OnnxTeacherConfig =>
  TeacherConfigSchema.parse({
    kind: 'onnx',
    path: onnxPath,
    input: { height: 64, width: 64 },
    features: { '4': taps.P2, '8': taps.P3 },
    ...extra,
  }) as OnnxTeacherConfig;

test('the P2/P3 taps are internal nodes of the exported heads graph', () => {
  const g = onnx.ModelProto.decode(
    encodeModel(
      buildOnnxModel(spec, deployWeights(loadCheckpoint(ckptPath)), { outputs: 'heads', opset: 17 }),
    ),
  ).graph!;
  const outputs = (g.output ?? []).map((o) => o.name);
  const nodeOutputs = (g.node ?? []).flatMap((n) => n.output ?? []);
  for (const name of [taps.P2, taps.P3]) {
    assert.ok(!outputs.includes(name), `${name} is not a graph output`);
    assert.ok(nodeOutputs.includes(name), `${name} is a node output`);
  }
});

test('internal-node taps of the ONNX export equal the edgekd teacher P2/P3 and sigmoid head (1e-4)', async (tt) => {
  const ref = await createTeacher(
    { kind: 'edgekd', name: 'ref', weight: 1, checkpoint: ckptPath },
    { classes: ['car', 'person'] },
  );
  const ox = await createTeacher(
    onnxCfg({
      // The internal NCHW logits (before the graph's own Sigmoid), activated by the adapter.
      heatmap: {
        output: graph.outputs.heatmap,
        stride: 4,
        layout: 'nchw',
        activation: 'sigmoid',
        classes: { car: [1], person: [0] },
      },
    }),
    { classes: ['car', 'person'] },
  );
  try {
    assert.deepEqual(
      [...ox.neckChannels],
      [
        [4, 8],
        [8, 8],
      ],
    );
    assert.deepEqual(ox.backboneChannels.size, 0);
    assert.deepEqual(ox.headClasses, ['car', 'person']);
    // 128x128 exercises the same bilinear resize on both sides; batch 3 exercises the batch axis.
    for (const [n, size] of [
      [3, 64],
      [2, 128],
    ]) {
      const img = randomImages(n, size, size, n);
      const a = await ref.run(img, n, size, size);
      const b = await ox.run(img, n, size, size);
      for (const s of [4, 8]) {
        assert.deepEqual(b.neck.get(s)!.shape, a.neck.get(s)!.shape);
        const d = maxAbsDiff(a.neck.get(s)!.data, b.neck.get(s)!.data);
        tt.diagnostic(`stride ${s} at ${size}px: max |tfjs - onnx| = ${d.toExponential(2)}`);
        assert.ok(d < 1e-4, `stride ${s} at ${size}px: max |diff| ${d}`);
      }
      assert.equal(b.headProb!.stride, 4);
      assert.deepEqual(b.headProb!.map.shape, a.headProb!.map.shape);
      assert.ok(maxAbsDiff(a.headProb!.map.data, b.headProb!.map.data) < 1e-4);
    }
  } finally {
    ref.dispose();
    ox.dispose();
  }
});

test('reads a graph output as is (NHWC probabilities, activation none) and backbone taps', async () => {
  // `heatmap` is already a graph output holding probabilities, so no output is appended for it;
  // person = max over both teacher classes.
  const t = await createTeacher(
    onnxCfg({
      features: { '4': taps.P2 },
      backbone: { '8': taps.C3 },
      heatmap: {
        output: 'heatmap',
        stride: 4,
        layout: 'nhwc',
        activation: 'none',
        classes: { person: [0, 1] },
      },
    }),
    { classes: ['person', 'car'] },
  );
  try {
    assert.deepEqual(t.headClasses, ['person']);
    assert.deepEqual([...t.backboneChannels], [[8, 12]]);
    const out = await t.run(randomImages(1, 64, 64), 1, 64, 64);
    assert.deepEqual(out.backbone.get(8)!.shape, [1, 8, 8, 12]);
    assert.deepEqual(out.headProb!.map.shape, [1, 16, 16, 1]);
    assert.ok(out.headProb!.map.data.every((v) => v >= 0 && v <= 1));
    assert.match(t.fingerprint, /^onnx:[0-9a-f]{16}$/);
  } finally {
    t.dispose();
  }
});

test('rejects an unknown node name, listing available node outputs', async () => {
  await assert.rejects(
    createTeacher(onnxCfg({ features: { '4': 'neck.smooth2.nope' } }), { classes: ['person'] }),
    {
      name: 'ConfigError',
      code: 'ERR_CONFIG_INVALID',
      message: /'neck\.smooth2\.nope'.*node outputs include: .*neck\.smooth2/,
    },
  );
});

test('rejects a tap whose size does not match its configured stride', async () => {
  await assert.rejects(createTeacher(onnxCfg({ features: { '8': taps.P2 } }), { classes: ['person'] }), {
    name: 'ConfigError',
    code: 'ERR_CONFIG_INVALID',
    message: /not stride 8/,
  });
});

test('rejects a missing model file with ERR_FILE_NOT_FOUND and detect() with ConfigError', async () => {
  await assert.rejects(createTeacher(onnxCfg({ path: join(dir, 'missing.onnx') }), { classes: ['person'] }), {
    name: 'ConfigError',
    code: 'ERR_FILE_NOT_FOUND',
    message: /missing\.onnx/,
  });
  const t = await createTeacher(onnxCfg(), { classes: ['person'] });
  try {
    await assert.rejects(t.detect(randomImages(1, 64, 64), 1, 64, 64, { scoreThreshold: 0.3 }), {
      name: 'ConfigError',
      message: /cannot decode boxes/,
    });
  } finally {
    t.dispose();
  }
});

test('rejects a heatmap class that is not a student class', async () => {
  await assert.rejects(
    createTeacher(
      onnxCfg({ heatmap: { output: 'heatmap', stride: 4, layout: 'nhwc', classes: { pedestrian: [0] } } }),
      { classes: ['person'] },
    ),
    { name: 'ConfigError', code: 'ERR_CONFIG_INVALID', message: /'pedestrian' is not a student class/ },
  );
});
