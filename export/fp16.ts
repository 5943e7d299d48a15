/**
 * FP32 -> FP16 conversion of an exported ONNX model: weights and compute in float16, float32
 * graph inputs and outputs (a Cast after each float input and before each float output), so a
 * caller feeds and reads the same tensors as with the FP32 model.
 *
 * Target providers: CUDA, TensorRT, WebGPU (float16 halves weight bytes and memory traffic and
 * uses tensor cores). ONNX Runtime's CPU provider is *not* a target. Measured with
 * onnxruntime-node 1.30 on x64 (see {@link CPU_FP16_NOTE}): the model loads and runs, because
 * ORT's InsertCastTransformer wraps every float16 node that has no CPU kernel (here all of them:
 * Conv, Relu, Clip, Add, Resize, Sigmoid, Transpose, MaxPool, TopK, ...) in Casts to float32 and
 * then removes the back-to-back casts, so compute is float32 on float16-rounded weights; it is
 * slower than the FP32 model (the casts also break the NCHWc conv + activation fusions).
 *
 * What stays float32, and why:
 * - graph inputs/outputs (API contract);
 * - inputs whose ONNX type is not the data type `T`: Resize `roi`/`scales` (tensor(float)),
 *   Upsample `scales`. Constants that feed only those slots stay float32; a computed value gets a
 *   Cast to FLOAT in front of the slot;
 * - nodes whose op type is listed in {@link Fp16Options.keepFloat32Ops}: they get Casts around
 *   them (for ops with weak float16 kernels on a given provider).
 * Everything else that is float becomes float16, including Clip min/max and Pad values (they must
 * match the data type), float Cast targets and ConstantOfShape values. Integer tensors (shapes,
 * TopK's K, indices) are untouched. Values beyond the float16 range (|x| > 65504) are clamped.
 */
import { onnx, type OnnxTypes } from './onnx-proto.js';
import { setFloat16, getFloat16 } from '@petamoriken/float16';
import { ModelFormatError } from '../models/core/errors.js';

type ModelProto = OnnxTypes.ModelProto;
type NodeProto = OnnxTypes.NodeProto;
type TensorProto = OnnxTypes.TensorProto;
type ValueInfoProto = OnnxTypes.ValueInfoProto;
type AttributeProto = OnnxTypes.AttributeProto;

/**
 * A decoded graph with its repeated fields typed as decoded class instances (protobufjs types
 * them as the looser `I*` interfaces; `decode` always fills them with class instances).
 */
export interface DecodedGraph {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
}

const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

/** Largest finite float16 value. */
const FP16_MAX = 65504;

/**
 * What onnxruntime-node 1.30's CPU provider does with an FP16 model on x64 (AVX-512 VNNI CPU),
 * measured by the FP16 tests and `bench/export.ts`.
 */
export const CPU_FP16_NOTE =
  'the onnxruntime-node CPU provider (x64) has no float16 kernels for these ops: it runs an FP16 model by casting ' +
  'every node back to float32 (InsertCastTransformer), so compute is float32 and slower than the FP32 model; ' +
  'FP16 is for the CUDA, TensorRT and WebGPU providers';

/** Options of {@link toFp16}. */
export interface Fp16Options {
  /**
   * Op types that keep float32 compute: their float inputs are cast to FLOAT and their float
   * outputs back to FLOAT16. Default: none (every op in the edgekd family has float16 kernels on
   * CUDA/TensorRT/WebGPU).
   */
  keepFloat32Ops?: readonly string[];
}

/** Input slots that ONNX types independently of the data type `T` and that must stay float32. */
const FLOAT32_SLOTS: Record<string, readonly number[]> = {
  Resize: [1, 2],
  Upsample: [1],
};

function toNum(x: number | { toNumber(): number }): number {
  return typeof x === 'number' ? x : x.toNumber();
}

/** Float32 values of a FLOAT tensor (raw_data little-endian or float_data). */
export function floatValues(t: TensorProto): Float32Array {
  if (t.dataType !== DT.FLOAT)
    throw new ModelFormatError('ERR_MODEL_FORMAT', `tensor '${t.name}' is not FLOAT (type ${t.dataType})`);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `tensor '${t.name}' uses external data, which is not supported`,
    );
  if (t.rawData && t.rawData.length > 0) {
    const n = t.rawData.length >> 2;
    const out = new Float32Array(n);
    const dv = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  return Float32Array.from(t.floatData);
}

/** Little-endian float16 bytes of `values`, clamped to the finite float16 range. */
export function toHalfBytes(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 2);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    setFloat16(dv, i * 2, v > FP16_MAX ? FP16_MAX : v < -FP16_MAX ? -FP16_MAX : v, true);
  }
  return bytes;
}

/** Float32 values of little-endian float16 bytes (for tests and diagnostics). */
export function fromHalfBytes(bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = getFloat16(dv, i * 2, true);
  return out;
}

function halfTensor(t: TensorProto, name = t.name): TensorProto {
  return onnx.TensorProto.create({
    name,
    dims: t.dims,
    dataType: DT.FLOAT16,
    rawData: toHalfBytes(floatValues(t)),
    docString: t.docString,
  });
}

function castNode(name: string, input: string, output: string, to: number): NodeProto {
  return onnx.NodeProto.create({
    name,
    opType: 'Cast',
    input: [input],
    output: [output],
    attribute: [onnx.AttributeProto.create({ name: 'to', type: AT.INT, i: to })],
  });
}

function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name) as AttributeProto | undefined;
}

/**
 * Element types of every tensor of `graph` (top level), propagated in node order from the graph
 * inputs and initializers. Covers the ops the edgekd exporter writes and the common ONNX ops;
 * for an op it does not know, outputs take the type of the first input.
 */
export function inferElemTypes(graph: DecodedGraph): Map<string, number> {
  const types = new Map<string, number>();
  for (const i of graph.input) types.set(i.name, i.type?.tensorType?.elemType ?? DT.UNDEFINED);
  for (const t of graph.initializer) types.set(t.name, t.dataType);
  const typeOf = (n: string): number => types.get(n) ?? DT.UNDEFINED;
  for (const node of graph.node) {
    const in0 = typeOf(node.input.find((s) => s !== '') ?? '');
    const out: number[] = [];
    switch (node.opType) {
      case 'Cast':
        out.push(toNum(attr(node, 'to')?.i ?? 0));
        break;
      case 'Constant': {
        const v = attr(node, 'value');
        if (v?.t) out.push(v.t.dataType ?? DT.UNDEFINED);
        else if (attr(node, 'value_float') || attr(node, 'value_floats')) out.push(DT.FLOAT);
        else out.push(DT.INT64);
        break;
      }
      case 'ConstantOfShape':
        out.push(attr(node, 'value')?.t?.dataType ?? DT.FLOAT);
        break;
      case 'Shape':
      case 'Size':
      case 'NonZero':
      case 'ArgMax':
      case 'ArgMin':
        out.push(DT.INT64);
        break;
      case 'Equal':
      case 'Less':
      case 'LessOrEqual':
      case 'Greater':
      case 'GreaterOrEqual':
      case 'Not':
      case 'And':
      case 'Or':
      case 'Xor':
      case 'IsNaN':
      case 'IsInf':
        out.push(DT.BOOL);
        break;
      case 'TopK':
      case 'MaxPool':
        out.push(in0, DT.INT64);
        break;
      case 'Where':
        out.push(typeOf(node.input[1]));
        break;
      case 'QuantizeLinear':
        out.push(node.input[2] ? typeOf(node.input[2]) : DT.UINT8);
        break;
      case 'DequantizeLinear':
        out.push(typeOf(node.input[1]));
        break;
      case 'QLinearConv':
        out.push(typeOf(node.input[7]));
        break;
      default:
        out.push(in0);
    }
    node.output.forEach((o, k) => {
      if (o !== '') types.set(o, out[Math.min(k, out.length - 1)]);
    });
  }
  return types;
}

/**
 * Converts an FP32 model to float16 weights and compute with float32 I/O. The input model is not
 * modified. See the module comment for what stays float32.
 *
 * @param model - FP32 model, e.g. from the edgekd ONNX writer (opset >= 13).
 * @param opts - {@link Fp16Options}.
 * @returns a new model: same input/output names, types and shapes; initializers FLOAT16.
 * @throws {ModelFormatError} when the graph has subgraphs or external data.
 *
 * @example
 * ```ts
 * const half = toFp16(fp32Model);
 * half.graph.input[0].type.tensorType.elemType; // 1 (FLOAT): callers still feed float32
 * ```
 */
export function toFp16(model: ModelProto, opts: Fp16Options = {}): ModelProto {
  const out = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = out.graph as unknown as DecodedGraph | null;
  if (!g) throw new ModelFormatError('ERR_MODEL_FORMAT', 'model has no graph');
  for (const n of g.node)
    if (n.attribute.some((a) => a.type === AT.GRAPH || a.type === AT.GRAPHS))
      throw new ModelFormatError(
        'ERR_MODEL_FORMAT',
        `node '${n.name}' (${n.opType}) has a subgraph: not supported`,
      );

  const keepOps = new Set(opts.keepFloat32Ops ?? []);
  const before = inferElemTypes(g);
  const isFloat = (name: string): boolean => name !== '' && before.get(name) === DT.FLOAT;

  // Which constants (and graph inputs) feed only float32 slots: they stay FLOAT.
  const constProducer = new Map<string, NodeProto>();
  for (const n of g.node) if (n.opType === 'Constant') constProducer.set(n.output[0], n);
  const pinnedUse = new Map<string, { pinned: number; other: number }>();
  const use = (name: string, pinned: boolean): void => {
    const u = pinnedUse.get(name) ?? { pinned: 0, other: 0 };
    if (pinned) u.pinned++;
    else u.other++;
    pinnedUse.set(name, u);
  };
  for (const n of g.node) {
    const slots = FLOAT32_SLOTS[n.opType] ?? [];
    const blocked = keepOps.has(n.opType);
    n.input.forEach((s, k) => s && use(s, blocked || slots.includes(k)));
  }
  const stayFloat = new Set<string>();
  const graphInputs = new Set(g.input.map((i) => i.name));
  const constants = new Set([...g.initializer.map((t) => t.name), ...constProducer.keys(), ...graphInputs]);
  for (const [name, u] of pinnedUse)
    if (u.other === 0 && isFloat(name) && constants.has(name)) stayFloat.add(name);

  // 1. Initializers and Constant values.
  g.initializer = g.initializer.map((t) =>
    t.dataType === DT.FLOAT && !stayFloat.has(t.name) ? halfTensor(t) : t,
  );
  const newNodes: NodeProto[] = [];
  // 2. Graph inputs: Cast to FLOAT16 once, consumers read the cast.
  const inputAlias = new Map<string, string>();
  for (const i of g.input) {
    if (i.type?.tensorType?.elemType !== DT.FLOAT || stayFloat.has(i.name)) continue;
    const alias = `${i.name}.fp16`;
    inputAlias.set(i.name, alias);
    newNodes.push(castNode(`${i.name}.cast_fp16`, i.name, alias, DT.FLOAT16));
  }
  const after = new Map(before);
  for (const [name, t] of before) if (t === DT.FLOAT && !stayFloat.has(name)) after.set(name, DT.FLOAT16);
  for (const i of g.input) after.set(i.name, i.type?.tensorType?.elemType ?? DT.UNDEFINED);
  const readName = (s: string): string => inputAlias.get(s) ?? s;

  let castId = 0;
  for (const n of g.node) {
    const slots = FLOAT32_SLOTS[n.opType] ?? [];
    const blocked = keepOps.has(n.opType);
    // Inputs: redirect graph inputs; float32 slots and blocked nodes read float32.
    n.input = n.input.map((s, k) => {
      if (s === '') return s;
      const wantF32 = blocked ? isFloat(s) : slots.includes(k);
      if (wantF32 && !stayFloat.has(s) && (isFloat(s) || graphInputs.has(s))) {
        if (graphInputs.has(s)) return s; // graph inputs are float32 already
        const c = `${s}.fp32_${castId++}`;
        newNodes.push(castNode(`${c}.cast`, s, c, DT.FLOAT));
        return c;
      }
      return readName(s);
    });
    if (n.opType === 'Cast' && !blocked) {
      const to = attr(n, 'to');
      if (to && toNum(to.i) === DT.FLOAT && !stayFloat.has(n.output[0])) to.i = DT.FLOAT16;
    }
    if ((n.opType === 'Constant' || n.opType === 'ConstantOfShape') && !blocked) {
      const v = attr(n, 'value');
      if (v?.t && v.t.dataType === DT.FLOAT && !stayFloat.has(n.output[0]))
        v.t = halfTensor(v.t as TensorProto);
      const vf = attr(n, 'value_float');
      if (vf && !stayFloat.has(n.output[0])) {
        n.attribute = n.attribute.filter((a) => a !== vf);
        n.attribute.push(
          onnx.AttributeProto.create({
            name: 'value',
            type: AT.TENSOR,
            t: halfTensor(onnx.TensorProto.create({ dataType: DT.FLOAT, floatData: [vf.f] })),
          }),
        );
      }
      if (attr(n, 'value_floats') && !stayFloat.has(n.output[0]))
        throw new ModelFormatError('ERR_MODEL_FORMAT', `Constant '${n.name}' value_floats is not supported`);
    }
    if (blocked) {
      // Outputs computed in float32: cast float outputs back to FLOAT16.
      const post: NodeProto[] = [];
      n.output = n.output.map((o) => {
        if (!isFloat(o)) return o;
        const f = `${o}.fp32`;
        post.push(castNode(`${o}.cast_fp16`, f, o, DT.FLOAT16));
        return f;
      });
      newNodes.push(n, ...post);
    } else newNodes.push(n);
  }

  // 3. Graph outputs: back to FLOAT.
  const outputRename = new Map<string, string>();
  for (const o of g.output) {
    if (o.type?.tensorType?.elemType !== DT.FLOAT || after.get(o.name) !== DT.FLOAT16) continue;
    if (graphInputs.has(o.name)) continue;
    outputRename.set(o.name, `${o.name}.fp16`);
  }
  if (outputRename.size > 0) {
    for (const n of newNodes) {
      n.input = n.input.map((s) => outputRename.get(s) ?? s);
      n.output = n.output.map((s) => outputRename.get(s) ?? s);
    }
    for (const [name, half] of outputRename)
      newNodes.push(castNode(`${name}.cast_fp32`, half, name, DT.FLOAT));
  }
  g.node = newNodes;

  // 4. value_info: float tensors that are now float16.
  for (const vi of g.valueInfo) {
    const tt = vi.type?.tensorType;
    if (tt && tt.elemType === DT.FLOAT && after.get(vi.name) === DT.FLOAT16 && !outputRename.has(vi.name))
      tt.elemType = DT.FLOAT16;
  }
  return out;
}
