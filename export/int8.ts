/**
 * Static INT8 quantisation of an exported FP32 model into QDQ form (QuantizeLinear /
 * DequantizeLinear pairs in an otherwise float graph), the form both ONNX Runtime's graph
 * optimiser (which fuses DQ -> Conv -> Q into QLinearConv, DQ -> Add -> Q into QLinearAdd and
 * drops the pair around Resize) and TensorRT's explicit-precision INT8 mode consume.
 *
 * Layout (the same as onnxruntime's Python quantizer in QDQ format, written from its documented
 * behaviour):
 * - activations: one Q -> DQ pair per tensor that enters or leaves a quantised op (Conv, Add,
 *   Resize, and Relu/Clip when they are not folded), per-tensor scale from calibration; a DQ with
 *   several consumers is shared (ORT duplicates it per node unit itself);
 * - weights: stored as INT8, per output channel (axis 0 of OIHW), symmetric in [-127, 127]
 *   (zero point 0), then one DequantizeLinear(axis = 0);
 * - bias: stored as INT32 with scale `x_scale * w_scale[o]` and zero point 0, then a
 *   DequantizeLinear(axis = 0), so the integer kernel adds it exactly in its accumulator;
 * - Resize: its output shares its input's scale and zero point (ORT runs Resize on the 8-bit
 *   values only when they are equal);
 * - `uint8` activations: a Relu or Clip(0, max) right after a Conv is removed, and the Conv's
 *   quantised output takes the activation's range: with zero point at 0 the saturating
 *   QuantizeLinear is the ReLU (and the calibrated max <= the Clip max), so the Conv becomes one
 *   QLinearConv with nothing in float between convs;
 * - `int8` activations (symmetric, zero point 0: what TensorRT requires): activations stay as
 *   nodes with Q/DQ on both sides (a zero point of 0 in int8 cannot express the ReLU floor).
 * The rest of the graph, e.g. the in-graph decode of a `boxes` model (Sigmoid, MaxPool, TopK,
 * box assembly), is left in float: it reads the DQ outputs of the head convs.
 */
import { onnx, type OnnxTypes } from './onnx-proto.js';
import { ModelFormatError } from '../models/core/errors.js';
import { collectRanges, imageInputOf, checkBatches, type TensorRange } from './calibration.js';
import { floatValues, type DecodedGraph } from './fp16.js';

type ModelProto = OnnxTypes.ModelProto;
type NodeProto = OnnxTypes.NodeProto;
type TensorProto = OnnxTypes.TensorProto;

const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

/** Options of {@link quantizeInt8}. */
export interface Int8Options {
  /** How activation ranges are measured on the calibration set. */
  method: 'minmax' | 'percentile';
  /** Share of values kept by `percentile`, in percent (default 99.99). */
  percentile?: number;
  /** Weights are always quantised per output channel; the flag documents it at call sites. */
  perChannel: true;
  /**
   * Activation type. `uint8` (default): asymmetric, ReLU/ReLU6 folded into the conv output; the
   * fastest on onnxruntime's CPU provider (see bench/export.ts). `int8`: symmetric with zero point
   * 0 for TensorRT (which accepts only symmetric quantisation); also runs on the CPU provider.
   */
  activations?: 'uint8' | 'int8';
  /**
   * Conv nodes (by name) left in float32. The detection heads' last 1x1 convs turn features into
   * scores and box sizes: quantising their output costs AP for almost no speed (32 -> 1-2
   * channels), so edgekd exports keep them float ({@link HEAD_OUTPUT_CONVS}).
   */
  floatNodes?: readonly string[];
}

/** The heads' final convs in an edgekd graph (see models/arch/graph.ts naming). */
export const HEAD_OUTPUT_CONVS = ['head.heatmap.out', 'head.size.out', 'head.offset.out'] as const;

/** What {@link planQdq} decided: the rewritten float graph and the tensors that need a range. */
export interface QdqPlan {
  /** Clone of the input model with foldable activations removed (still FP32, no Q/DQ yet). */
  model: ModelProto;
  /** Tensors that get a Q -> DQ pair and need a calibrated range (names of the input model). */
  tensors: string[];
  /** Tensor -> tensor whose quantisation parameters it shares (Resize output -> its input). */
  shared: Map<string, string>;
  /** Names of the Conv nodes that are quantised. */
  convs: string[];
  /** Names of the activation nodes folded into the preceding conv (`uint8` only). */
  folded: string[];
  /** Names of the nodes removed because no graph output depends on them. */
  dead: string[];
}

/** Scale and zero point of one activation tensor. */
export interface QuantParams {
  scale: number;
  zeroPoint: number;
  type: 'uint8' | 'int8';
}

function clone(model: ModelProto): ModelProto {
  return onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
}

function graphOf(model: ModelProto): DecodedGraph {
  const g = model.graph as unknown as DecodedGraph | null;
  if (!g) throw new ModelFormatError('ERR_MODEL_FORMAT', 'model has no graph');
  return g;
}

/** Removes, in place, nodes that no graph output depends on; returns their names. */
function removeDeadNodes(g: DecodedGraph): string[] {
  const live = new Set(g.output.map((o) => o.name));
  const keep = new Set<NodeProto>();
  for (let i = g.node.length - 1; i >= 0; i--) {
    const n = g.node[i];
    if (!n.output.some((o) => live.has(o))) continue;
    keep.add(n);
    for (const s of n.input) live.add(s);
  }
  const dead = g.node.filter((n) => !keep.has(n)).map((n) => n.name);
  g.node = g.node.filter((n) => keep.has(n));
  const used = new Set(g.node.flatMap((n) => n.input));
  g.initializer = g.initializer.filter((t) => used.has(t.name) || g.output.some((o) => o.name === t.name));
  return dead;
}

/**
 * A copy of `model` without the nodes that no graph output depends on (and their initializers).
 * {@link quantizeInt8} does this too; benchmarks use it for a like-for-like FP32 baseline.
 */
export function pruneDeadNodes(model: ModelProto): ModelProto {
  const m = clone(model);
  removeDeadNodes(graphOf(m));
  return m;
}

function scalarOf(t: TensorProto | undefined): number | undefined {
  if (!t || t.dataType !== DT.FLOAT) return undefined;
  const v = floatValues(t);
  return v.length === 1 ? v[0] : undefined;
}

/**
 * Decides which nodes are quantised. The quantised region starts at every Conv with constant
 * FLOAT weights and grows through Relu/Clip, Add (both inputs in the region) and Resize; nothing
 * downstream of a non-region op (e.g. the decode) is quantised.
 *
 * @param model - FP32 model (opset >= 13).
 * @param activations - activation type, see {@link Int8Options.activations}.
 */
export function planQdq(
  model: ModelProto,
  activations: 'uint8' | 'int8' = 'uint8',
  floatNodes: readonly string[] = [],
): QdqPlan {
  const keepFloat = new Set(floatNodes);
  const opset = model.opsetImport.find((o) => !o.domain)?.version;
  if (opset !== undefined && opset !== null && Number(opset) < 13)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `per-channel QDQ needs opset >= 13, model has ${Number(opset)}`,
    );
  const m = clone(model);
  const g = graphOf(m);
  // Dead nodes (e.g. FPN levels only used as distillation taps) would otherwise each get a DQ +
  // layout Transpose after fusion.
  const dead = removeDeadNodes(g);
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const graphOutputs = new Set(g.output.map((o) => o.name));
  const consumers = new Map<string, NodeProto[]>();
  for (const n of g.node) for (const s of n.input) if (s) consumers.set(s, [...(consumers.get(s) ?? []), n]);
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output) producer.set(o, n);

  const region = new Set<string>();
  const quant = new Set<NodeProto>();
  for (const n of g.node) {
    let q = false;
    switch (n.opType) {
      case 'Conv': {
        const w = inits.get(n.input[1]);
        const b = n.input[2] ? inits.get(n.input[2]) : undefined;
        q =
          !n.domain &&
          !keepFloat.has(n.name) &&
          !inits.has(n.input[0]) &&
          w?.dataType === DT.FLOAT &&
          w.dims.length === 4 &&
          (!n.input[2] || b?.dataType === DT.FLOAT);
        break;
      }
      case 'Relu':
        q = region.has(n.input[0]);
        break;
      case 'Clip':
        q =
          region.has(n.input[0]) &&
          (!n.input[1] || scalarOf(inits.get(n.input[1])) !== undefined) &&
          (!n.input[2] || scalarOf(inits.get(n.input[2])) !== undefined);
        break;
      case 'Add':
        q = n.input.length === 2 && region.has(n.input[0]) && region.has(n.input[1]);
        break;
      case 'Resize':
        q = region.has(n.input[0]);
        break;
    }
    if (q) {
      quant.add(n);
      region.add(n.output[0]);
    }
  }
  // Backward: a non-conv op stays quantised only when its output feeds a quantised op, so the
  // region ends at the last convs (the heads) and e.g. an Add of two head outputs in the decode
  // stays float. A Relu/Clip right after a conv is kept in uint8 mode (it folds into the conv).
  const needed = new Set<string>();
  for (let i = g.node.length - 1; i >= 0; i--) {
    const n = g.node[i];
    if (!quant.has(n)) continue;
    const foldable =
      activations === 'uint8' &&
      (n.opType === 'Relu' || n.opType === 'Clip') &&
      producer.get(n.input[0])?.opType === 'Conv';
    if (n.opType !== 'Conv' && !needed.has(n.output[0]) && !foldable) {
      quant.delete(n);
      continue;
    }
    needed.add(n.input[0]);
    if (n.opType === 'Add') needed.add(n.input[1]);
  }

  const folded = new Set<NodeProto>();
  if (activations === 'uint8') {
    for (const n of quant) {
      if (n.opType !== 'Relu' && n.opType !== 'Clip') continue;
      const p = producer.get(n.input[0]);
      if (!p || p.opType !== 'Conv' || !quant.has(p)) continue;
      if ((consumers.get(n.input[0]) ?? []).length !== 1 || graphOutputs.has(n.input[0])) continue;
      // Clip folds only with a floor of exactly 0 (the zero point); its max is respected by the
      // calibrated range of its output, which never exceeds it.
      if (n.opType === 'Clip' && (n.input[1] ? scalarOf(inits.get(n.input[1])) : -Infinity) !== 0) continue;
      p.output[0] = n.output[0];
      folded.add(n);
    }
    g.node = g.node.filter((n) => !folded.has(n));
  }

  const tensors: string[] = [];
  const seen = new Set<string>();
  const shared = new Map<string, string>();
  const want = (t: string): void => {
    if (t && !seen.has(t)) {
      seen.add(t);
      tensors.push(t);
    }
  };
  for (const n of g.node) {
    if (!quant.has(n)) continue;
    if (n.opType === 'Conv') want(n.input[0]);
    else if (n.opType === 'Add') {
      want(n.input[0]);
      want(n.input[1]);
    } else if (n.opType === 'Resize') {
      want(n.input[0]);
      shared.set(n.output[0], n.input[0]);
      continue;
    } else want(n.input[0]);
    want(n.output[0]);
  }
  return {
    model: m,
    tensors: tensors.filter((t) => !shared.has(t)),
    shared,
    convs: g.node.filter((n) => quant.has(n) && n.opType === 'Conv').map((n) => n.name),
    folded: [...folded].map((n) => n.name),
    dead,
  };
}

/**
 * Scale and zero point for a calibrated range. `uint8`: asymmetric over [min(lo, 0), max(hi, 0)]
 * in [0, 255]; `int8`: symmetric, `scale = max(|lo|, |hi|) / 127`, zero point 0.
 */
export function activationParams(r: TensorRange, type: 'uint8' | 'int8'): QuantParams {
  const lo = Math.min(r.min, 0);
  const hi = Math.max(r.max, 0);
  if (type === 'int8') {
    const a = Math.max(-lo, hi);
    return { scale: a > 0 ? a / 127 : 1, zeroPoint: 0, type };
  }
  if (hi - lo <= 0) return { scale: 1, zeroPoint: 0, type };
  const scale = (hi - lo) / 255;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint, type };
}

/**
 * Per-output-channel symmetric INT8 quantisation of an OIHW weight:
 * `scale[o] = max |w[o]| / 127` (1 for an all-zero channel), `q = clamp(round(w / scale), -127, 127)`.
 */
export function quantizeWeightPerChannel(
  w: Float32Array,
  outChannels: number,
): { q: Int8Array; scale: Float32Array } {
  const per = w.length / outChannels;
  if (!Number.isInteger(per))
    throw new RangeError(`'w' length ${w.length} is not a multiple of ${outChannels}`);
  const q = new Int8Array(w.length);
  const scale = new Float32Array(outChannels);
  for (let o = 0; o < outChannels; o++) {
    let a = 0;
    for (let i = o * per; i < (o + 1) * per; i++) a = Math.max(a, Math.abs(w[i]));
    const s = a > 0 ? a / 127 : 1;
    scale[o] = s;
    for (let i = o * per; i < (o + 1) * per; i++) q[i] = Math.max(-127, Math.min(127, Math.round(w[i] / s)));
  }
  return { q, scale };
}

function tensor(name: string, dataType: number, dims: number[], bytes: ArrayBufferView): TensorProto {
  return onnx.TensorProto.create({
    name,
    dataType,
    dims,
    rawData: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength).slice(),
  });
}

function qdqNode(
  op: 'QuantizeLinear' | 'DequantizeLinear',
  name: string,
  inputs: string[],
  output: string,
  axis?: number,
): NodeProto {
  return onnx.NodeProto.create({
    name,
    opType: op,
    input: inputs,
    output: [output],
    attribute:
      axis === undefined ? [] : [onnx.AttributeProto.create({ name: 'axis', type: AT.INT, i: axis })],
  });
}

/**
 * Inserts the Q/DQ nodes of a plan with the given activation ranges and quantises conv weights
 * and biases. Synchronous and deterministic: {@link quantizeInt8} is this after calibration.
 *
 * @param plan - from {@link planQdq}.
 * @param ranges - a range for every tensor in `plan.tensors`.
 * @param activations - must match the one the plan was made for.
 * @returns the QDQ model (a new object; `plan.model` is consumed).
 * @throws {ModelFormatError} when a range is missing.
 */
export function insertQdq(
  plan: QdqPlan,
  ranges: ReadonlyMap<string, TensorRange>,
  activations: 'uint8' | 'int8' = 'uint8',
): ModelProto {
  const m = plan.model;
  const g = graphOf(m);
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const graphInputs = new Set(g.input.map((i) => i.name));
  const zpType = activations === 'uint8' ? DT.UINT8 : DT.INT8;
  const newInits: TensorProto[] = [];

  const params = new Map<string, QuantParams>();
  for (const t of plan.tensors) {
    const r = ranges.get(t);
    if (!r) throw new ModelFormatError('ERR_MODEL_FORMAT', `no calibrated range for tensor '${t}'`);
    params.set(t, activationParams(r, activations));
    newInits.push(tensor(`${t}_scale`, DT.FLOAT, [], new Float32Array([params.get(t)!.scale])));
    const zp = activations === 'uint8' ? new Uint8Array([params.get(t)!.zeroPoint]) : new Int8Array([0]);
    newInits.push(tensor(`${t}_zero_point`, zpType, [], zp));
  }
  const paramName = (t: string): string => plan.shared.get(t) ?? t;
  const quantised = new Set([...plan.tensors, ...plan.shared.keys()]);

  // Q -> DQ pairs: a graph input keeps its name (consumers read `<t>_dequantized`); a node output
  // is renamed `<t>_prequant` at its producer and the DQ writes `<t>`, so consumers, graph
  // outputs and value_info keep their names.
  const pair = (t: string, src: string, dst: string): NodeProto[] => {
    const p = paramName(t);
    return [
      qdqNode(
        'QuantizeLinear',
        `${t}_QuantizeLinear`,
        [src, `${p}_scale`, `${p}_zero_point`],
        `${t}_quantized`,
      ),
      qdqNode(
        'DequantizeLinear',
        `${t}_DequantizeLinear`,
        [`${t}_quantized`, `${p}_scale`, `${p}_zero_point`],
        dst,
      ),
    ];
  };
  const head: NodeProto[] = [];
  const inputAlias = new Map<string, string>();
  for (const t of quantised)
    if (graphInputs.has(t)) {
      inputAlias.set(t, `${t}_dequantized`);
      head.push(...pair(t, t, `${t}_dequantized`));
    }

  // Weights and biases of the quantised convs.
  const convs = new Set(plan.convs);
  const weightDone = new Map<string, Float32Array>();
  const used = new Set<string>();
  for (const n of g.node) {
    if (!convs.has(n.name) || n.opType !== 'Conv') continue;
    const wName = n.input[1];
    let wScale = weightDone.get(wName);
    if (!wScale) {
      const w = inits.get(wName)!;
      const out = Number(w.dims[0]);
      const { q, scale } = quantizeWeightPerChannel(floatValues(w), out);
      newInits.push(tensor(`${wName}_quantized`, DT.INT8, w.dims.map(Number), q));
      newInits.push(tensor(`${wName}_scale`, DT.FLOAT, [out], scale));
      newInits.push(tensor(`${wName}_zero_point`, DT.INT8, [out], new Int8Array(out)));
      head.push(
        qdqNode(
          'DequantizeLinear',
          `${wName}_DequantizeLinear`,
          [`${wName}_quantized`, `${wName}_scale`, `${wName}_zero_point`],
          `${wName}_dequantized`,
          0,
        ),
      );
      weightDone.set(wName, scale);
      wScale = scale;
    }
    n.input[1] = `${wName}_dequantized`;
    if (n.input[2]) {
      const bName = n.input[2];
      const b = floatValues(inits.get(bName)!);
      const xs = params.get(paramName(n.input[0]))!.scale;
      const bScale = new Float32Array(b.length);
      const bq = new Int32Array(b.length);
      for (let o = 0; o < b.length; o++) {
        bScale[o] = xs * wScale[o];
        bq[o] = Math.max(-2147483647, Math.min(2147483647, Math.round(b[o] / bScale[o])));
      }
      const base = `${bName}_${n.name}`;
      newInits.push(tensor(`${base}_quantized`, DT.INT32, [b.length], bq));
      newInits.push(tensor(`${base}_scale`, DT.FLOAT, [b.length], bScale));
      newInits.push(tensor(`${base}_zero_point`, DT.INT32, [b.length], new Int32Array(b.length)));
      head.push(
        qdqNode(
          'DequantizeLinear',
          `${base}_DequantizeLinear`,
          [`${base}_quantized`, `${base}_scale`, `${base}_zero_point`],
          `${base}_dequantized`,
          0,
        ),
      );
      n.input[2] = `${base}_dequantized`;
    }
  }

  const body: NodeProto[] = [];
  for (const n of g.node) {
    n.input = n.input.map((s) => inputAlias.get(s) ?? s);
    const after: NodeProto[] = [];
    n.output = n.output.map((o) => {
      if (!quantised.has(o)) return o;
      after.push(...pair(o, `${o}_prequant`, o));
      return `${o}_prequant`;
    });
    body.push(n, ...after);
  }
  g.node = [...head, ...body];
  for (const n of g.node) for (const s of n.input) used.add(s);
  g.initializer = [...g.initializer.filter((t) => used.has(t.name)), ...newInits];
  return m;
}

/**
 * Static INT8 quantisation in QDQ form with a calibration set.
 *
 * @param model - FP32 model from the edgekd ONNX writer: NCHW image input `[N, 3, H, W]`
 *   (N dynamic or matching the batches), opset >= 13.
 * @param batches - network-ready NCHW float32 batches `[n, 3, H, W]` (see `imagesToBatches` in
 *   calibration.ts); a few dozen images that look like deployment data are enough.
 * @param opts - range method, percentile, activation type.
 * @returns the QDQ model; run it with ORT's `graphOptimizationLevel: 'all'` (or 'extended') so
 *   the Q/DQ groups fuse into integer kernels.
 * @throws {ConfigError} `ERR_CONFIG_INVALID` when the calibration set is empty.
 * @throws {ModelFormatError} when the model has no NCHW image input or an unsupported layout.
 *
 * @example
 * ```ts
 * const q = await quantizeInt8(fp32, batches, { method: 'percentile', percentile: 99.99, perChannel: true });
 * q.graph.node.filter((n) => n.opType === 'QuantizeLinear').length; // one per quantised tensor
 * ```
 */
export async function quantizeInt8(
  model: ModelProto,
  batches: readonly Float32Array[],
  opts: Int8Options,
): Promise<ModelProto> {
  const activations = opts.activations ?? 'uint8';
  if (activations !== 'uint8' && activations !== 'int8')
    throw new RangeError(`'activations' must be one of uint8, int8, got ${String(activations)}`);
  checkBatches(batches, imageInputOf(model).chw);
  const plan = planQdq(model, activations, opts.floatNodes);
  const ranges = await collectRanges(model, plan.tensors, batches, {
    method: opts.method,
    percentile: opts.percentile,
    symmetric: activations === 'int8',
  });
  return insertQdq(plan, ranges, activations);
}
