/**
 * A tiny FP32 ONNX detector built directly with onnx-proto, shaped like the exported student
 * (NCHW `images` with a dynamic batch axis, convs with folded-BN biases, Relu / Clip(0,6),
 * a depthwise conv, a residual Add, a nearest 2x Resize + Add as in the FPN, three head convs),
 * so the FP16 and INT8 converters can be tested without depending on the ONNX writer.
 * With `boxes: true` a small float decode tail (Sigmoid, MaxPool, Flatten, TopK) is appended,
 * standing for the in-graph decode that INT8 must leave in float.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type ModelProto = InstanceType<typeof onnx.ModelProto>;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

/** Deterministic normal(0, 1) generator (mulberry32 + Box-Muller). */
export function normalRng(seed: number): () => number {
  let a = seed >>> 0;
  const uni = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uni() + 1e-12)) * Math.cos(2 * Math.PI * uni());
}

function floatInit(name: string, dims: number[], data: Float32Array) {
  return onnx.TensorProto.create({
    name,
    dims,
    dataType: FLOAT,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
}

function attrInts(name: string, ints: number[]) {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints });
}
function attrInt(name: string, i: number) {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
}
function attrStr(name: string, s: string) {
  return onnx.AttributeProto.create({
    name,
    type: onnx.AttributeProto.AttributeType.STRING,
    s: new TextEncoder().encode(s),
  });
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

/** Options of {@link buildTinyDetector}. */
export interface TinyDetectorOptions {
  /** Input height and width (multiple of 8; default 64). */
  size?: number;
  seed?: number;
  /** Append a float decode tail and output `scores` / `indices` instead of raw heads. */
  boxes?: boolean;
}

/**
 * Builds the tiny detector. Outputs (heads): `heatmap` [N,1,H/4,W/4] logits, `size` and `offset`
 * [N,2,H/4,W/4]; (boxes): `scores` [N,K] and `indices` [N,K] (int64).
 */
export function buildTinyDetector(opts: TinyDetectorOptions = {}): ModelProto {
  const size = opts.size ?? 64;
  const rnd = normalRng(opts.seed ?? 1);
  const nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  const inits: InstanceType<typeof onnx.TensorProto>[] = [];
  let n = 0;

  const conv = (x: string, cin: number, cout: number, k: number, stride: number, group = 1): string => {
    const name = `conv${n++}`;
    const fanIn = (cin / group) * k * k;
    const w = new Float32Array(cout * (cin / group) * k * k).map(() => rnd() * Math.sqrt(2 / fanIn));
    const b = new Float32Array(cout).map(() => rnd() * 0.1);
    inits.push(floatInit(`${name}.weight`, [cout, cin / group, k, k], w));
    inits.push(floatInit(`${name}.bias`, [cout], b));
    const p = (k - 1) >> 1;
    nodes.push(
      onnx.NodeProto.create({
        name,
        opType: 'Conv',
        input: [x, `${name}.weight`, `${name}.bias`],
        output: [`${name}.out`],
        attribute: [
          attrInts('kernel_shape', [k, k]),
          attrInts('strides', [stride, stride]),
          attrInts('pads', [p, p, p, p]),
          attrInt('group', group),
        ],
      }),
    );
    return `${name}.out`;
  };
  const relu = (x: string): string => {
    nodes.push(
      onnx.NodeProto.create({ name: `relu${n}`, opType: 'Relu', input: [x], output: [`${x}.relu`] }),
    );
    return `${x}.relu`;
  };
  const relu6 = (x: string): string => {
    nodes.push(
      onnx.NodeProto.create({
        name: `clip${n}`,
        opType: 'Clip',
        input: [x, 'clip.min', 'clip.max'],
        output: [`${x}.relu6`],
      }),
    );
    return `${x}.relu6`;
  };
  const add = (a: string, b: string): string => {
    const out = `add${n++}.out`;
    nodes.push(onnx.NodeProto.create({ name: out, opType: 'Add', input: [a, b], output: [out] }));
    return out;
  };
  inits.push(floatInit('clip.min', [], new Float32Array([0])));
  inits.push(floatInit('clip.max', [], new Float32Array([6])));
  inits.push(floatInit('resize.scales', [4], new Float32Array([1, 1, 2, 2])));

  const c1 = relu(conv('images', 3, 16, 3, 2)); // stride 2
  const e = relu6(conv(c1, 16, 48, 1, 1));
  const d = relu6(conv(e, 48, 48, 3, 1, 48));
  const proj = conv(d, 48, 16, 1, 1);
  const r1 = add(proj, c1);
  const c2 = relu6(conv(r1, 16, 24, 3, 2)); // stride 4
  const c3 = relu(conv(c2, 24, 32, 3, 2)); // stride 8
  const lat3 = conv(c3, 32, 24, 1, 1);
  const up = 'resize.out';
  nodes.push(
    onnx.NodeProto.create({
      name: 'resize',
      opType: 'Resize',
      input: [lat3, '', 'resize.scales'],
      output: [up],
      attribute: [
        attrStr('mode', 'nearest'),
        attrStr('nearest_mode', 'floor'),
        attrStr('coordinate_transformation_mode', 'asymmetric'),
      ],
    }),
  );
  const p2 = relu(conv(add(up, conv(c2, 24, 24, 1, 1)), 24, 24, 3, 1));
  const hh = relu(conv(p2, 24, 16, 3, 1));
  const heat = conv(hh, 16, 1, 1, 1);
  const sz = conv(hh, 16, 2, 1, 1);
  const off = conv(hh, 16, 2, 1, 1);

  const hw = size / 4;
  const outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  const rename = (from: string, to: string): void => {
    for (const nd of nodes) nd.output = nd.output.map((o) => (o === from ? to : o));
  };
  if (!opts.boxes) {
    rename(heat, 'heatmap');
    rename(sz, 'size');
    rename(off, 'offset');
    outputs.push(valueInfo('heatmap', FLOAT, ['N', 1, hw, hw]));
    outputs.push(valueInfo('size', FLOAT, ['N', 2, hw, hw]));
    outputs.push(valueInfo('offset', FLOAT, ['N', 2, hw, hw]));
  } else {
    const k = 8;
    inits.push(
      onnx.TensorProto.create({
        name: 'topk.k',
        dims: [1],
        dataType: INT64,
        rawData: new Uint8Array(new BigInt64Array([BigInt(k)]).buffer),
      }),
    );
    nodes.push(
      onnx.NodeProto.create({ name: 'sig', opType: 'Sigmoid', input: [heat], output: ['heat.sig'] }),
      onnx.NodeProto.create({
        name: 'pool',
        opType: 'MaxPool',
        input: ['heat.sig'],
        output: ['heat.pool'],
        attribute: [attrInts('kernel_shape', [3, 3]), attrInts('pads', [1, 1, 1, 1])],
      }),
      onnx.NodeProto.create({
        name: 'eq',
        opType: 'Equal',
        input: ['heat.sig', 'heat.pool'],
        output: ['peak'],
      }),
      onnx.NodeProto.create({
        name: 'peakf',
        opType: 'Cast',
        input: ['peak'],
        output: ['peak.f'],
        attribute: [attrInt('to', FLOAT)],
      }),
      onnx.NodeProto.create({
        name: 'mul',
        opType: 'Mul',
        input: ['heat.sig', 'peak.f'],
        output: ['heat.peaks'],
      }),
      onnx.NodeProto.create({
        name: 'flat',
        opType: 'Flatten',
        input: ['heat.peaks'],
        output: ['heat.flat'],
        attribute: [attrInt('axis', 1)],
      }),
      onnx.NodeProto.create({
        name: 'topk',
        opType: 'TopK',
        input: ['heat.flat', 'topk.k'],
        output: ['scores', 'indices'],
        attribute: [attrInt('axis', 1)],
      }),
    );
    // size/offset feed a float Add so that they are part of the graph (a stand-in for box assembly).
    nodes.push(
      onnx.NodeProto.create({ name: 'sizeoff', opType: 'Add', input: [sz, off], output: ['sizeoff'] }),
    );
    outputs.push(valueInfo('scores', FLOAT, ['N', k]));
    outputs.push(valueInfo('indices', INT64, ['N', k]));
    outputs.push(valueInfo('sizeoff', FLOAT, ['N', 2, hw, hw]));
  }

  return onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'edgekd-test',
    graph: {
      name: 'tiny',
      node: nodes,
      initializer: inits,
      input: [valueInfo('images', FLOAT, ['N', 3, size, size])],
      output: outputs,
    },
  });
}

/** Encodes a model to bytes for `InferenceSession.create`. */
export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}
