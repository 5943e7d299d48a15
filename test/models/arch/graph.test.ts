import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGraph, graphCost, initialWeights, samePads } from '../../../models/arch/graph.js';
import { parseModelSpec } from '../../../models/core/spec.js';

const tinySpec = () =>
  parseModelSpec({
    name: 't',
    classes: ['person', 'bike'],
    input: { height: 64, width: 96 },
    backbone: {
      stemChannels: 4,
      stages: [
        { channels: 8, depth: 1, expansion: 1 },
        { channels: 8, depth: 2, expansion: 2 },
        { channels: 8, depth: 1, expansion: 1 },
        { channels: 8, depth: 1, expansion: 1 },
      ],
    },
    neck: { channels: 4 },
    head: { channels: 4 },
    decode: {},
  });

test('samePads matches TensorFlow same padding', () => {
  assert.deepEqual(samePads(64, 3, 2), [0, 1]);
  assert.deepEqual(samePads(65, 3, 2), [1, 1]);
  assert.deepEqual(samePads(64, 3, 1), [1, 1]);
  assert.deepEqual(samePads(64, 1, 1), [0, 0]);
});

test('taps have strides 4..32 and the head sits on P2', () => {
  const spec = tinySpec();
  const g = buildGraph(spec);
  const cost = graphCost(spec, g);
  assert.deepEqual(cost.tapShapes.C2, [16, 24, 8]);
  assert.deepEqual(cost.tapShapes.C5, [2, 3, 8]);
  assert.deepEqual(cost.tapShapes.P2, [16, 24, 4]);
  assert.deepEqual(cost.tapShapes.P5, [2, 3, 4]);
  const hm = g.nodes.find((n) => n.name === g.outputs.heatmap)!;
  assert.equal(hm.out.stride, 4);
  assert.equal(hm.out.channels, 2);
});

test('counts the stem exactly: 3x3x3x4 params, 32x48 outputs', () => {
  const spec = tinySpec();
  const g = buildGraph(spec);
  const stem = g.params.find((p) => p.name === 'backbone.stem.conv.weight')!;
  assert.deepEqual(stem.shape, [3, 3, 3, 4]);
  const cost = graphCost(spec, g);
  // Stem MACs alone: 32*48 outputs * 3*3*3 * 4 = 165,888; the total must include it.
  assert.ok(cost.macs > 165888);
  const manual = g.nodes.reduce((s, n) => {
    if (n.op !== 'conv') return s;
    const hw = Math.ceil(64 / n.out.stride) * Math.ceil(96 / n.out.stride);
    return s + hw * n.kernel * n.kernel * (n.depthwise ? n.outChannels : n.inChannels * n.outChannels);
  }, 0);
  assert.equal(cost.macs, manual);
  const trainable = g.params
    .filter((p) => p.trainable)
    .reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  assert.equal(cost.params, trainable);
});

test('initial weights are deterministic per seed and the heatmap bias encodes the prior', () => {
  const g = buildGraph(tinySpec());
  const a = initialWeights(g, 1);
  const b = initialWeights(g, 1);
  const c = initialWeights(g, 2);
  assert.deepEqual(a.get('backbone.stem.conv.weight'), b.get('backbone.stem.conv.weight'));
  assert.notDeepEqual(a.get('backbone.stem.conv.weight'), c.get('backbone.stem.conv.weight'));
  const bias = a.get(`${g.outputs.heatmap}.bias`)!;
  assert.ok(Math.abs(1 / (1 + Math.exp(-bias[0])) - 0.05) < 1e-6);
});

test('rejects a spec whose input is not a multiple of 32, naming the field', () => {
  assert.throws(
    () => parseModelSpec({ ...JSON.parse(JSON.stringify(tinySpec())), input: { height: 70, width: 96 } }),
    {
      name: 'ModelFormatError',
      code: 'ERR_MODEL_FORMAT',
      message: /input\.height/,
    },
  );
});
