/**
 * Builds the ONNX model of a student from its spec and weights (no Python, no tfjs): the graph
 * IR of `models/arch/graph.ts` is walked node by node, BN is folded into the preceding conv,
 * and the protobuf is produced by onnx-proto's generated classes.
 *
 * Contract of the exported model (also written to `metadata_props` and the model card):
 * - input `images`: float32 NCHW `[batch, 3, H, W]`, dynamic batch (symbol `batch`), already
 *   letterboxed, channel-ordered and normalised per `spec.input` (normalisation is NOT baked in:
 *   the runtime owns pre-processing, so one model serves every normalisation the spec names and
 *   the same preprocessed tensor feeds tfjs and ONNX in parity checks).
 * - `outputs: 'heads'`: `heatmap` `[batch, h, w, C]` (sigmoid applied, probabilities), `size`
 *   `[batch, h, w, 2]` (log(w / stride), log(h / stride)), `offset` `[batch, h, w, 2]` (x, y, in
 *   cells), with h = H / stride, w = W / stride. NHWC, like the tfjs heads and what
 *   `models/core/decode.ts` reads, so a runtime decodes them without transposing.
 * - `outputs: 'boxes'`: `detections` `[batch, K, 6]` = x1, y1, x2, y2 (network-input pixels),
 *   score, class id (as a float), K = min(spec.decode.topK, h*w*C), best first. Decoding matches
 *   `decodeCenterNet`: a cell is a peak when it equals the max of its poolSize window; ties in
 *   score keep the lower (cell, class) index first. All K rows are always returned: rows that are
 *   not peaks have score 0, and consumers keep rows with score >= `edgekd.decode.scoreThreshold`
 *   (metadata) themselves, which also lets them pick a lower threshold without re-exporting.
 */
import { packageVersion } from '../models/core/version.js';
import { onnx, type OnnxTypes } from './onnx-proto.js';
import { foldBatchNorm, kernelToOihw } from './bn-fold.js';
import { ModelFormatError } from '../models/core/errors.js';
import { buildGraph, samePads, type ModelGraph, type ConvNode, type BnNode } from '../models/arch/graph.js';
import { headStride, type ModelSpec } from '../models/core/spec.js';
import type { NamedTensor } from '../models/core/safetensors.js';

/** Output form of the exported graph (see the file comment). */
export type OutputForm = 'heads' | 'boxes';

export interface OnnxGraphOptions {
  outputs: OutputForm;
  /** ONNX default-domain opset; every op used is unchanged between 17 and 18. */
  opset: 17 | 18;
  /** Written to metadata as `edgekd.precision` (the converters of fp16/int8 update it). */
  precision?: string;
}

/** Name of the graph input. */
export const INPUT_NAME = 'images';
/** Symbolic name of the dynamic batch axis. */
export const BATCH_DIM = 'batch';

const F = onnx.TensorProto.DataType.FLOAT;
const I64 = onnx.TensorProto.DataType.INT64;
const BOOL = onnx.TensorProto.DataType.BOOL;
type Dim = number | string;

/** The package version, for `producer_version`. */
export const producerVersion = packageVersion;

/**
 * Checks a weight map against the graph of a spec: every parameter present, exact shapes,
 * finite values, nothing extra.
 * @throws {ModelFormatError} `ERR_CHECKPOINT`, naming the first offending parameter
 */
export function checkWeights(
  graph: ModelGraph,
  weights: Map<string, NamedTensor>,
  source = 'checkpoint',
): void {
  for (const p of graph.params) {
    const w = weights.get(p.name);
    if (!w)
      throw new ModelFormatError(
        'ERR_CHECKPOINT',
        `${source}: missing parameter '${p.name}' required by the model spec`,
      );
    if (w.shape.length !== p.shape.length || w.shape.some((d, i) => d !== p.shape[i]))
      throw new ModelFormatError(
        'ERR_CHECKPOINT',
        `${source}: parameter '${p.name}' has shape [${w.shape.join(', ')}], the model spec needs [${p.shape.join(', ')}]`,
      );
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (w.data.length !== n)
      throw new ModelFormatError(
        'ERR_CHECKPOINT',
        `${source}: parameter '${p.name}' has ${w.data.length} values, its shape needs ${n}`,
      );
    for (let i = 0; i < w.data.length; i++)
      if (!Number.isFinite(w.data[i]))
        throw new ModelFormatError(
          'ERR_CHECKPOINT',
          `${source}: parameter '${p.name}' holds a non-finite value (${w.data[i]}) at index ${i}`,
        );
  }
  const known = new Set(graph.params.map((p) => p.name));
  const extra = [...weights.keys()].filter((k) => !known.has(k));
  if (extra.length)
    throw new ModelFormatError(
      'ERR_CHECKPOINT',
      `${source}: parameters not in the model spec: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}`,
    );
}

type AttrValue = number | number[] | string | { float: number };

/** Accumulates nodes, initializers and value infos in emission (topological) order. */
class OnnxBuilder {
  readonly nodes: OnnxTypes.INodeProto[] = [];
  readonly initializers: OnnxTypes.ITensorProto[] = [];
  readonly valueInfo: OnnxTypes.IValueInfoProto[] = [];
  private readonly defined = new Set<string>();
  private readonly nodeNames = new Set<string>();

  private define(name: string): void {
    if (this.defined.has(name)) throw new Error(`onnx builder: tensor '${name}' defined twice`);
    this.defined.add(name);
  }

  input(name: string): void {
    this.define(name);
  }

  /** Float32 initializer. */
  f32(name: string, dims: number[], data: Float32Array | number[]): string {
    const arr = data instanceof Float32Array ? data : Float32Array.from(data);
    this.define(name);
    this.initializers.push(
      onnx.TensorProto.create({
        name,
        dims,
        dataType: F,
        rawData: new Uint8Array(arr.buffer.slice(arr.byteOffset, arr.byteOffset + arr.byteLength)),
      }),
    );
    return name;
  }

  /** Int64 initializer. */
  i64(name: string, dims: number[], data: number[]): string {
    const arr = BigInt64Array.from(data.map((v) => BigInt(v)));
    this.define(name);
    this.initializers.push(
      onnx.TensorProto.create({ name, dims, dataType: I64, rawData: new Uint8Array(arr.buffer) }),
    );
    return name;
  }

  /**
   * Adds a node. Each output gets a value_info with `elemType` and `dims` (graph outputs are
   * described separately and skipped here by the caller passing `io: true`).
   */
  node(
    opType: string,
    name: string,
    inputs: string[],
    outputs: Array<{ name: string; dims: Dim[]; elemType?: number; io?: boolean }>,
    attrs: Record<string, AttrValue> = {},
  ): string[] {
    if (this.nodeNames.has(name)) throw new Error(`onnx builder: node '${name}' added twice`);
    this.nodeNames.add(name);
    for (const i of inputs)
      if (i !== '' && !this.defined.has(i))
        throw new Error(`onnx builder: node '${name}' reads '${i}' before it is defined`);
    for (const o of outputs) {
      this.define(o.name);
      if (!o.io) this.valueInfo.push(valueInfo(o.name, o.elemType ?? F, o.dims));
    }
    this.nodes.push(
      onnx.NodeProto.create({
        name,
        opType,
        input: inputs,
        output: outputs.map((o) => o.name),
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return outputs.map((o) => o.name);
  }
}

function attribute(name: string, v: AttrValue): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return onnx.AttributeProto.create({ name, type: T.INT, i: v });
  if (typeof v === 'string')
    return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: T.INTS, ints: v });
  return onnx.AttributeProto.create({ name, type: T.FLOAT, f: v.float });
}

/** A tensor value_info with a (possibly symbolic) shape. */
export function valueInfo(name: string, elemType: number, dims: Dim[]): OnnxTypes.ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        shape: onnx.TensorShapeProto.create({
          dim: dims.map((d) =>
            typeof d === 'number'
              ? onnx.TensorShapeProto.Dimension.create({ dimValue: d })
              : onnx.TensorShapeProto.Dimension.create({ dimParam: d }),
          ),
        }),
      }),
    }),
  });
}

/** Describes one graph output for the model card. */
export interface OutputDescription {
  name: string;
  dtype: 'float32';
  /** Shape with `'batch'` for the dynamic axis. */
  shape: Dim[];
  layout: string;
  meaning: string;
}

/** Describes the graph input and outputs of a spec in a given output form (model card, docs). */
export function describeIo(
  spec: ModelSpec,
  outputs: OutputForm,
): { input: OutputDescription; outputs: OutputDescription[] } {
  const { height: H, width: W } = spec.input;
  const s = headStride(spec);
  const h = H / s;
  const w = W / s;
  const C = spec.classes.length;
  const input: OutputDescription = {
    name: INPUT_NAME,
    dtype: 'float32',
    shape: [BATCH_DIM, 3, H, W],
    layout: 'NCHW',
    meaning: `${spec.input.channelOrder.toUpperCase()} image, letterboxed to ${W}x${H} and normalised per spec.input.normalization (${spec.input.normalization.kind}); normalisation is not part of the graph`,
  };
  if (outputs === 'heads')
    return {
      input,
      outputs: [
        {
          name: 'heatmap',
          dtype: 'float32',
          shape: [BATCH_DIM, h, w, C],
          layout: 'NHWC',
          meaning: 'per-class centre probability (sigmoid applied) per cell',
        },
        {
          name: 'size',
          dtype: 'float32',
          shape: [BATCH_DIM, h, w, 2],
          layout: 'NHWC',
          meaning: `log(w / ${s}), log(h / ${s}) per cell (box size = exp(value) * ${s} input pixels)`,
        },
        {
          name: 'offset',
          dtype: 'float32',
          shape: [BATCH_DIM, h, w, 2],
          layout: 'NHWC',
          meaning: `centre offset (x, y) within the cell, in cells (centre = (cell + offset) * ${s})`,
        },
      ],
    };
  const k = Math.min(spec.decode.topK, h * w * C);
  return {
    input,
    outputs: [
      {
        name: 'detections',
        dtype: 'float32',
        shape: [BATCH_DIM, k, 6],
        layout: 'NKD',
        meaning: `top-${k} peaks, best first: x1, y1, x2, y2 (network-input pixels), score, class id; all ${k} rows are returned, keep rows with score >= ${spec.decode.scoreThreshold}`,
      },
    ],
  };
}

/**
 * Builds the ONNX model of a spec with the given (deploy) weights.
 * @param spec - validated model spec
 * @param weights - every graph parameter by name, tfjs layouts (EMA weights + BN statistics)
 * @param opts - output form and opset
 * @returns an `onnx.ModelProto` (encode with `onnx.ModelProto.encode(m).finish()`)
 * @throws {ModelFormatError} when the weights do not match the spec (naming the parameter), or
 *   when the graph holds a construct the writer cannot express
 */
export function buildOnnxModel(
  spec: ModelSpec,
  weights: Map<string, NamedTensor>,
  opts: OnnxGraphOptions,
): OnnxTypes.ModelProto {
  const graph = buildGraph(spec);
  checkWeights(graph, weights);
  const { height: H, width: W } = spec.input;
  const b = new OnnxBuilder();
  b.input(INPUT_NAME);
  const dimsOf = (stride: number, channels: number): Dim[] => [
    BATCH_DIM,
    channels,
    Math.ceil(H / stride),
    Math.ceil(W / stride),
  ];
  const w = (name: string): NamedTensor => weights.get(name)!;

  // Which BN folds into which conv: a BN whose input is a conv consumed by nothing else.
  const uses = new Map<string, number>();
  const use = (n: string): void => void uses.set(n, (uses.get(n) ?? 0) + 1);
  for (const n of graph.nodes) {
    if ('inputs' in n) n.inputs.forEach(use);
    else use(n.input);
  }
  Object.values(graph.outputs).forEach(use);
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const foldedBn = new Map<string, BnNode>(); // conv name -> BN
  for (const n of graph.nodes) {
    if (n.op !== 'bn') continue;
    const src = byName.get(n.input);
    if (src?.op !== 'conv' || uses.get(src.name) !== 1)
      throw new ModelFormatError(
        'ERR_MODEL_FORMAT',
        `unsupported layer: BN '${n.name}' does not directly follow a conv it can be folded into`,
      );
    foldedBn.set(src.name, n);
  }

  /** IR node name -> ONNX tensor name holding its value (a folded BN maps to its conv). */
  const tensorOf = new Map<string, string>([[graph.input, INPUT_NAME]]);
  const t = (irName: string): string => {
    const v = tensorOf.get(irName);
    if (v === undefined) throw new Error(`onnx writer: '${irName}' used before it is produced`);
    return v;
  };
  const zero = b.f32('const.zero', [], [0]);
  const six = b.f32('const.six', [], [6]);

  const emitConv = (n: ConvNode): void => {
    const { data, dims } = kernelToOihw(w(`${n.name}.weight`), n.depthwise);
    const bn = foldedBn.get(n.name);
    let weight = data;
    let bias: Float32Array = n.bias ? w(`${n.name}.bias`).data : new Float32Array(n.outChannels);
    if (bn) {
      const f = foldBatchNorm(weight, n.bias ? bias : undefined, {
        gamma: w(`${bn.name}.gamma`).data,
        beta: w(`${bn.name}.beta`).data,
        movingMean: w(`${bn.name}.movingMean`).data,
        movingVariance: w(`${bn.name}.movingVariance`).data,
        epsilon: bn.epsilon,
      });
      weight = f.weight;
      bias = f.bias;
    }
    const inStride = n.out.stride / n.stride;
    const [pt, pb] = samePads(Math.ceil(H / inStride), n.kernel, n.stride);
    const [pl, pr] = samePads(Math.ceil(W / inStride), n.kernel, n.stride);
    const outName = bn ? bn.name : n.name;
    b.node(
      'Conv',
      n.name,
      [t(n.input), b.f32(`${n.name}.weight`, dims, weight), b.f32(`${n.name}.bias`, [n.outChannels], bias)],
      [{ name: outName, dims: dimsOf(n.out.stride, n.out.channels) }],
      {
        kernel_shape: [n.kernel, n.kernel],
        strides: [n.stride, n.stride],
        pads: [pt, pl, pb, pr],
        dilations: [1, 1],
        group: n.depthwise ? n.inChannels : 1,
      },
    );
    tensorOf.set(n.name, outName);
    if (bn) tensorOf.set(bn.name, outName);
  };

  for (const n of graph.nodes) {
    const out = [{ name: n.name, dims: dimsOf(n.out.stride, n.out.channels) }];
    switch (n.op) {
      case 'conv':
        emitConv(n);
        continue;
      case 'bn':
        continue; // folded into its conv (checked above)
      case 'relu':
        b.node('Relu', n.name, [t(n.input)], out);
        break;
      case 'relu6':
        b.node('Clip', n.name, [t(n.input), zero, six], out);
        break;
      case 'add':
        b.node('Add', n.name, [t(n.inputs[0]), t(n.inputs[1])], out);
        break;
      case 'upsample2x': {
        // = tf.image.resizeNearestNeighbor(alignCorners=false, halfPixelCenters=false):
        // src = floor(dst * 0.5), i.e. asymmetric coordinates with floor rounding.
        const scales = b.f32(`${n.name}.scales`, [4], [1, 1, 2, 2]);
        b.node('Resize', n.name, [t(n.input), '', scales], out, {
          mode: 'nearest',
          coordinate_transformation_mode: 'asymmetric',
          nearest_mode: 'floor',
        });
        break;
      }
    }
    tensorOf.set(n.name, n.name);
  }

  const stride = headStride(spec);
  const h = H / stride;
  const wd = W / stride;
  const C = spec.classes.length;
  const isHeads = opts.outputs === 'heads';
  const nhwc = [0, 2, 3, 1];
  // Heads, NHWC; in the boxes form they stay internal (the verifier can still expose them by name).
  b.node(
    'Sigmoid',
    'heatmap.sigmoid',
    [t(graph.outputs.heatmap)],
    [{ name: 'heatmap.nchw', dims: [BATCH_DIM, C, h, wd] }],
  );
  b.node(
    'Transpose',
    'heatmap.nhwc',
    ['heatmap.nchw'],
    [{ name: 'heatmap', dims: [BATCH_DIM, h, wd, C], io: isHeads }],
    { perm: nhwc },
  );
  b.node(
    'Transpose',
    'size.nhwc',
    [t(graph.outputs.size)],
    [{ name: 'size', dims: [BATCH_DIM, h, wd, 2], io: isHeads }],
    { perm: nhwc },
  );
  b.node(
    'Transpose',
    'offset.nhwc',
    [t(graph.outputs.offset)],
    [{ name: 'offset', dims: [BATCH_DIM, h, wd, 2], io: isHeads }],
    { perm: nhwc },
  );

  if (!isHeads) emitDecode(b, spec, { h, w: wd, C, stride });

  const io = describeIo(spec, opts.outputs);
  const inputs = [valueInfo(INPUT_NAME, F, io.input.shape)];
  const outputs = io.outputs.map((o) => valueInfo(o.name, F, o.shape));
  const g = onnx.GraphProto.create({
    name: spec.name,
    node: b.nodes,
    initializer: b.initializers,
    input: inputs,
    output: outputs,
    valueInfo: b.valueInfo,
    docString: `edgekd ${spec.architecture} student '${spec.name}', ${opts.outputs} outputs`,
  });
  const meta: Record<string, string> = {
    'edgekd.spec': JSON.stringify(spec),
    'edgekd.outputs': opts.outputs,
    'edgekd.precision': opts.precision ?? 'fp32',
    'edgekd.input': JSON.stringify({
      name: INPUT_NAME,
      layout: 'NCHW',
      height: H,
      width: W,
      channelOrder: spec.input.channelOrder,
      normalization: spec.input.normalization,
      normalizationInGraph: false,
      resize: spec.input.resize,
    }),
    'edgekd.io': JSON.stringify(io.outputs),
    'edgekd.decode.scoreThreshold': String(spec.decode.scoreThreshold),
    'edgekd.classes': JSON.stringify(spec.classes),
  };
  return onnx.ModelProto.create({
    irVersion: onnx.Version.IR_VERSION,
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: opts.opset })],
    producerName: 'edgekd',
    producerVersion: producerVersion(),
    domain: 'ai.edgekd',
    modelVersion: 1,
    docString: `edgekd export of '${spec.name}' (${spec.classes.join(', ')})`,
    graph: g,
    metadataProps: Object.entries(meta).map(([key, value]) =>
      onnx.StringStringEntryProto.create({ key, value }),
    ),
  });
}

/**
 * In-graph CenterNet decode on the NHWC `heatmap` / `size` / `offset` tensors, producing
 * `detections` [batch, K, 6]; see the file comment for the contract.
 */
function emitDecode(
  b: OnnxBuilder,
  spec: ModelSpec,
  g: { h: number; w: number; C: number; stride: number },
): void {
  const { h, w, C, stride } = g;
  const N = BATCH_DIM;
  const L = h * w * C;
  const K = Math.min(spec.decode.topK, L);
  const k = spec.decode.poolSize;
  const r = (k - 1) / 2;
  // Peaks: max-pool (stride 1, same pads; ONNX MaxPool ignores padded cells) in NCHW, then
  // compared in NHWC so the flattened index is (cell * C + class), the TS decode's tie order.
  b.node('MaxPool', 'decode.pool', ['heatmap.nchw'], [{ name: 'decode.pool', dims: [N, C, h, w] }], {
    kernel_shape: [k, k],
    strides: [1, 1],
    pads: [r, r, r, r],
  });
  b.node(
    'Transpose',
    'decode.pool.nhwc',
    ['decode.pool'],
    [{ name: 'decode.pool.nhwc', dims: [N, h, w, C] }],
    {
      perm: [0, 2, 3, 1],
    },
  );
  b.node(
    'Equal',
    'decode.is_peak',
    ['heatmap', 'decode.pool.nhwc'],
    [{ name: 'decode.is_peak', dims: [N, h, w, C], elemType: BOOL }],
  );
  const zero = 'const.zero';
  b.node(
    'Where',
    'decode.peaks',
    ['decode.is_peak', 'heatmap', zero],
    [{ name: 'decode.peaks', dims: [N, h, w, C] }],
  );
  // TopK along axis 1 of [N, L, 1] yields the [N, K, 1] columns the rows are built from, with
  // no Reshape/Unsqueeze after it (see the WebGPU note below).
  b.i64('decode.flat_shape', [3], [0, -1, 1]);
  b.node(
    'Reshape',
    'decode.flat',
    ['decode.peaks', 'decode.flat_shape'],
    [{ name: 'decode.flat', dims: [N, L, 1] }],
  );
  b.i64('decode.k', [1], [K]);
  b.node(
    'TopK',
    'decode.topk',
    ['decode.flat', 'decode.k'],
    [
      { name: 'decode.scores.k1', dims: [N, K, 1] },
      { name: 'decode.index', dims: [N, K, 1], elemType: I64 },
    ],
    { axis: 1, largest: 1, sorted: 1 },
  );
  // index = cell * C + class; cell = y * w + x. The arithmetic is int32 (exact: L < 2^31) in
  // [N, K, 1] columns: onnxruntime-web's WebGPU EP mishandles the int64 path (Div/Mod on int64,
  // then Unsqueeze of the Cast results came back as another tensor's data, every box at cell 0),
  // and float index arithmetic would round once the fp16 converter turns it into float16.
  const F32 = onnx.TensorProto.DataType.FLOAT;
  const I32 = onnx.TensorProto.DataType.INT32;
  if (L >= 2 ** 31) throw new Error(`decode: ${L} heatmap values do not fit int32 indices`);
  b.node(
    'Cast',
    'decode.index.k1',
    ['decode.index'],
    [{ name: 'decode.index.k1', dims: [N, K, 1], elemType: I32 }],
    { to: I32 },
  );
  // int32 scalars, as Casts of int64 initializers (ORT folds them when the session loads).
  const i32 = (name: string, v: number) => {
    b.i64(`${name}_i64`, [], [v]);
    b.node('Cast', name, [`${name}_i64`], [{ name, dims: [], elemType: I32 }], { to: I32 });
    return name;
  };
  const col = (op: string, name: string, a: string, c: string) =>
    b.node(op, name, [a, c], [{ name, dims: [N, K, 1], elemType: I32 }]);
  i32('decode.num_classes', C);
  i32('decode.width', w);
  // Non-negative operands, so Div is floor division; x = cell - y * w instead of Mod.
  col('Div', 'decode.cell', 'decode.index.k1', 'decode.num_classes');
  col('Mul', 'decode.cell_start', 'decode.cell', 'decode.num_classes');
  col('Sub', 'decode.class_i', 'decode.index.k1', 'decode.cell_start');
  col('Div', 'decode.y_i', 'decode.cell', 'decode.width');
  col('Mul', 'decode.row_start', 'decode.y_i', 'decode.width');
  col('Sub', 'decode.x_i', 'decode.cell', 'decode.row_start');
  for (const v of ['class', 'x', 'y'])
    b.node('Cast', `decode.${v}.k1`, [`decode.${v}_i`], [{ name: `decode.${v}.k1`, dims: [N, K, 1] }], {
      to: F32,
    });
  b.node('Concat', 'decode.xy', ['decode.x.k1', 'decode.y.k1'], [{ name: 'decode.xy', dims: [N, K, 2] }], {
    axis: 2,
  });
  // Gather size/offset at the cells: [N, h*w, 2] with indices [N, K, 2].
  b.node(
    'Concat',
    'decode.cell.k2',
    ['decode.cell', 'decode.cell'],
    [{ name: 'decode.cell.k2', dims: [N, K, 2], elemType: I32 }],
    { axis: 2 },
  );
  b.i64('decode.cells_shape', [3], [0, h * w, 2]);
  for (const v of ['size', 'offset']) {
    b.node(
      'Reshape',
      `decode.${v}.cells`,
      [v, 'decode.cells_shape'],
      [{ name: `decode.${v}.cells`, dims: [N, h * w, 2] }],
    );
    b.node(
      'GatherElements',
      `decode.${v}.at`,
      [`decode.${v}.cells`, 'decode.cell.k2'],
      [{ name: `decode.${v}.at`, dims: [N, K, 2] }],
      { axis: 1 },
    );
  }
  // centre = (cell + offset) * stride; half = exp(size) * stride / 2 (input pixels).
  b.f32('decode.stride', [], [stride]);
  b.f32('decode.half_stride', [], [stride / 2]);
  b.node(
    'Add',
    'decode.centre_cells',
    ['decode.xy', 'decode.offset.at'],
    [{ name: 'decode.centre_cells', dims: [N, K, 2] }],
  );
  b.node(
    'Mul',
    'decode.centre',
    ['decode.centre_cells', 'decode.stride'],
    [{ name: 'decode.centre', dims: [N, K, 2] }],
  );
  b.node('Exp', 'decode.size_cells', ['decode.size.at'], [{ name: 'decode.size_cells', dims: [N, K, 2] }]);
  b.node(
    'Mul',
    'decode.half',
    ['decode.size_cells', 'decode.half_stride'],
    [{ name: 'decode.half', dims: [N, K, 2] }],
  );
  b.node('Sub', 'decode.x1y1', ['decode.centre', 'decode.half'], [{ name: 'decode.x1y1', dims: [N, K, 2] }]);
  b.node('Add', 'decode.x2y2', ['decode.centre', 'decode.half'], [{ name: 'decode.x2y2', dims: [N, K, 2] }]);
  b.node(
    'Concat',
    'decode.detections',
    ['decode.x1y1', 'decode.x2y2', 'decode.scores.k1', 'decode.class.k1'],
    [{ name: 'detections', dims: [N, K, 6], io: true }],
    { axis: 2 },
  );
}

/** Serialises a model to protobuf bytes. */
export function encodeModel(model: OnnxTypes.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}
