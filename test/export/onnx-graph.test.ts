import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { onnx } from '../../export/onnx-proto.js';
import { buildOnnxModel, encodeModel } from '../../export/onnx-graph.js';
import { checkOnnxModel } from '../../export/onnx-check.js';
import { buildGraph } from '../../models/arch/graph.js';
import { randomWeights, tinySpec } from './export-fixture.js';

const spec = tinySpec();
const weights = randomWeights(spec);
const meta = (m: ReturnType<typeof buildOnnxModel>) =>
  Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key, p.value]));
const dims = (v: {
  type?: {
    tensorType?: {
      shape?: { dim?: Array<{ dimValue?: unknown; dimParam?: string | null }> | null } | null;
    } | null;
  } | null;
}) => (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));

for (const outputs of ['heads', 'boxes'] as const) {
  test(`${outputs} graph passes the checker rules (topological order, defined inputs, unique names, shapes, metadata)`, () => {
    const m = buildOnnxModel(spec, weights, { outputs, opset: 17 });
    assert.deepEqual(checkOnnxModel(m), []);
    // Re-check after a protobuf round trip: what a consumer reads.
    const decoded = onnx.ModelProto.decode(encodeModel(m));
    assert.deepEqual(checkOnnxModel(decoded), []);
    assert.equal(Number(decoded.irVersion), 8);
    assert.deepEqual(
      decoded.opsetImport.map((o) => [o.domain, Number(o.version)]),
      [['', 17]],
    );
    assert.equal(decoded.producerName, 'edgekd');
    const md = meta(decoded);
    assert.deepEqual(JSON.parse(md['edgekd.spec']!), spec);
    assert.equal(md['edgekd.outputs'], outputs);
    assert.equal(JSON.parse(md['edgekd.input']!).layout, 'NCHW');
    const g = decoded.graph!;
    assert.deepEqual(
      g.input!.map((i) => [i.name, dims(i)]),
      [['images', ['batch', 3, 64, 64]]],
    );
    const outs = g.output!.map((o) => [o.name, dims(o)]);
    if (outputs === 'heads')
      assert.deepEqual(outs, [
        ['heatmap', ['batch', 16, 16, 2]],
        ['size', ['batch', 16, 16, 2]],
        ['offset', ['batch', 16, 16, 2]],
      ]);
    else assert.deepEqual(outs, [['detections', ['batch', 50, 6]]]);
  });
}

test('BN is folded away: one Conv per IR conv, no BatchNormalization, depthwise as grouped conv', () => {
  const m = buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 });
  const ops = m.graph!.node!.map((n) => n.opType);
  assert.ok(!ops.includes('BatchNormalization'));
  const irConvs = buildGraph(spec).nodes.filter((n) => n.op === 'conv');
  assert.equal(ops.filter((o) => o === 'Conv').length, irConvs.length);
  const stem = m.graph!.node!.find((n) => n.name === 'backbone.stem.conv')!;
  const attr = (n: typeof stem, k: string) => n.attribute!.find((a) => a.name === k)!;
  // TF 'same' with stride 2 on an even input pads 0 before and 1 after.
  assert.deepEqual(attr(stem, 'pads').ints!.map(Number), [0, 0, 1, 1]);
  const dw = m.graph!.node!.find((n) => n.name === 'backbone.c2.block0.dw.conv')!;
  assert.equal(Number(attr(dw, 'group').i), 16);
  const w = m.graph!.initializer!.find((t) => t.name === 'backbone.c2.block0.dw.conv.weight')!;
  assert.deepEqual(w.dims!.map(Number), [16, 1, 3, 3]);
});

test('the checker catches out-of-order nodes, undefined inputs and duplicate names', () => {
  const m = onnx.ModelProto.decode(
    encodeModel(buildOnnxModel(spec, weights, { outputs: 'heads', opset: 17 })),
  );
  const nodes = m.graph!.node!;
  [nodes[0], nodes[1]] = [nodes[1], nodes[0]];
  assert.ok(checkOnnxModel(m).some((p) => /reads 'backbone\.stem\.bn'/.test(p)));
  [nodes[0], nodes[1]] = [nodes[1], nodes[0]];
  nodes[2].name = nodes[1].name;
  assert.ok(checkOnnxModel(m).some((p) => /used twice/.test(p)));
  nodes[2].name = 'x';
  m.metadataProps = [];
  assert.deepEqual(checkOnnxModel(m), ["metadata_props lacks 'edgekd.spec'"]);
});

test('onnxruntime-node loads and runs both forms with a dynamic batch, at opset 17 and 18', async () => {
  for (const opset of [17, 18] as const)
    for (const outputs of ['heads', 'boxes'] as const) {
      const s = await ort.InferenceSession.create(
        encodeModel(buildOnnxModel(spec, weights, { outputs, opset })),
      );
      try {
        assert.deepEqual(s.inputNames, ['images']);
        const x = new ort.Tensor('float32', new Float32Array(3 * 3 * 64 * 64).fill(0.5), [3, 3, 64, 64]);
        const r = await s.run({ images: x });
        if (outputs === 'heads') assert.deepEqual(r.heatmap.dims, [3, 16, 16, 2]);
        else {
          assert.deepEqual(r.detections.dims, [3, 50, 6]);
          const d = r.detections.data as Float32Array;
          for (let k = 1; k < 50; k++)
            assert.ok(d[k * 6 + 4] <= d[(k - 1) * 6 + 4], 'rows are sorted by score');
        }
      } finally {
        await s.release();
      }
    }
});

test('rejects weights that do not match the spec, naming the parameter', () => {
  const missing = new Map(weights);
  missing.delete('neck.lateral3.weight');
  assert.throws(() => buildOnnxModel(spec, missing, { outputs: 'heads', opset: 17 }), {
    name: 'ModelFormatError',
    code: 'ERR_CHECKPOINT',
    message: /missing parameter 'neck\.lateral3\.weight'/,
  });
  const bad = new Map(weights);
  bad.set('head.size.out.bias', { shape: [3], data: new Float32Array(3) });
  assert.throws(() => buildOnnxModel(spec, bad, { outputs: 'heads', opset: 17 }), {
    name: 'ModelFormatError',
    message: /'head\.size\.out\.bias' has shape \[3\], the model spec needs \[2\]/,
  });
  const nan = new Map(weights);
  const v = weights.get('backbone.stem.bn.movingVariance')!;
  nan.set('backbone.stem.bn.movingVariance', {
    shape: v.shape,
    data: v.data.map((x, i) => (i === 2 ? NaN : x)),
  });
  assert.throws(() => buildOnnxModel(spec, nan, { outputs: 'heads', opset: 17 }), {
    message: /'backbone\.stem\.bn\.movingVariance' holds a non-finite value/,
  });
  const extra = new Map(weights);
  extra.set('teacher.adapter.weight', { shape: [1], data: new Float32Array(1) });
  assert.throws(() => buildOnnxModel(spec, extra, { outputs: 'heads', opset: 17 }), {
    message: /not in the model spec: teacher\.adapter\.weight/,
  });
});
