/**
 * Triton Inference Server model repository for an exported model:
 *   <dir>/<name>/config.pbtxt      platform onnxruntime_onnx, dynamic batching, I/O from the graph
 *   <dir>/<name>/1/model.onnx
 * For users who outgrow one machine: Triton batches requests from many clients onto a GPU and
 * runs the TensorRT / CUDA providers with options (engine cache, FP16) that onnxruntime-node's
 * binding cannot pass. config.pbtxt is protobuf text format; the handful of fields it needs is
 * written directly (no protobuf-text library is maintained for Node).
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { onnx, type OnnxTypes } from './onnx-proto.js';
import { ConfigError, ModelFormatError } from '../models/core/errors.js';

export interface TritonOptions {
  /** Model name in the repository (folder name); letters, digits, '_', '-', '.'. */
  name: string;
  /** Largest batch Triton may form; the graph's first axis must be dynamic. */
  maxBatchSize: number;
  /** Batch sizes the scheduler prefers to form (each <= maxBatchSize). */
  preferredBatchSizes: number[];
  /** How long a request may wait for others to batch with, in microseconds. */
  maxQueueDelayUs: number;
  /** Where instances run. */
  instanceKind: 'KIND_GPU' | 'KIND_CPU';
  instanceCount: number;
  /** Replace an existing `<dir>/<name>` folder. */
  overwrite: boolean;
}

const TRITON_TYPES: Partial<Record<number, string>> = {
  [onnx.TensorProto.DataType.FLOAT]: 'TYPE_FP32',
  [onnx.TensorProto.DataType.FLOAT16]: 'TYPE_FP16',
  [onnx.TensorProto.DataType.DOUBLE]: 'TYPE_FP64',
  [onnx.TensorProto.DataType.INT8]: 'TYPE_INT8',
  [onnx.TensorProto.DataType.UINT8]: 'TYPE_UINT8',
  [onnx.TensorProto.DataType.INT32]: 'TYPE_INT32',
  [onnx.TensorProto.DataType.INT64]: 'TYPE_INT64',
  [onnx.TensorProto.DataType.BOOL]: 'TYPE_BOOL',
};

interface TensorIo {
  name: string;
  dataType: string;
  /** Dims without the batch axis; -1 for a dynamic one. */
  dims: number[];
}

/** Reads a graph input/output: Triton type, and dims without the (dynamic) batch axis. */
function ioOf(v: OnnxTypes.IValueInfoProto, where: string): TensorIo {
  const t = v.type?.tensorType;
  const name = v.name ?? '';
  if (!t || t.elemType == null)
    throw new ModelFormatError('ERR_MODEL_FORMAT', `${where} '${name}' is not a tensor`);
  const dataType = TRITON_TYPES[t.elemType];
  if (!dataType)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `${where} '${name}' has element type ${t.elemType}, which Triton's ONNX backend does not take`,
    );
  const dims = (t.shape?.dim ?? []).map((d) =>
    d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : -1,
  );
  if (dims.length === 0 || dims[0] !== -1) {
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `${where} '${name}' needs a dynamic first (batch) axis for Triton batching, got [${dims.join(', ')}]`,
    );
  }
  return { name, dataType, dims: dims.slice(1) };
}

/** Renders config.pbtxt (protobuf text format of Triton's ModelConfig). */
export function tritonConfig(model: OnnxTypes.IModelProto, opts: TritonOptions): string {
  const g = model.graph;
  if (!g) throw new ModelFormatError('ERR_MODEL_FORMAT', 'the ONNX model has no graph');
  const initNames = new Set((g.initializer ?? []).map((i) => i.name));
  const inputs = (g.input ?? []).filter((i) => !initNames.has(i.name)).map((i) => ioOf(i, 'input'));
  const outputs = (g.output ?? []).map((o) => ioOf(o, 'output'));
  const io = (t: TensorIo) =>
    `  {\n    name: "${t.name}"\n    data_type: ${t.dataType}\n    dims: [ ${t.dims.join(', ')} ]\n  }`;
  return [
    `name: "${opts.name}"`,
    'platform: "onnxruntime_onnx"',
    `max_batch_size: ${opts.maxBatchSize}`,
    `input [\n${inputs.map(io).join(',\n')}\n]`,
    `output [\n${outputs.map(io).join(',\n')}\n]`,
    `dynamic_batching {\n  preferred_batch_size: [ ${opts.preferredBatchSizes.join(', ')} ]\n  max_queue_delay_microseconds: ${opts.maxQueueDelayUs}\n}`,
    `instance_group [\n  {\n    kind: ${opts.instanceKind}\n    count: ${opts.instanceCount}\n  }\n]`,
    '',
  ].join('\n');
}

/**
 * Writes `<dir>/<name>/config.pbtxt` and `<dir>/<name>/1/model.onnx`. The folder is assembled
 * beside its final place and renamed in, so a failure leaves no half-written model.
 * @param modelBytes - the serialised ONNX model (exactly what is written as model.onnx)
 * @returns the model folder
 * @throws {ConfigError} bad options, existing folder without `overwrite`, unwritable dir
 * @throws {ModelFormatError} a graph Triton cannot batch (static batch axis, unsupported type)
 */
export function writeTritonRepository(
  dir: string,
  model: OnnxTypes.IModelProto,
  modelBytes: Uint8Array,
  opts: TritonOptions,
): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(opts.name))
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `triton: model name must use letters, digits, '_', '-', '.', got '${opts.name}'`,
    );
  if (!Number.isInteger(opts.maxBatchSize) || opts.maxBatchSize < 1)
    throw new ConfigError(
      'ERR_CONFIG_RANGE',
      `triton: maxBatchSize must be an integer >= 1, got ${opts.maxBatchSize}`,
    );
  const bad = opts.preferredBatchSizes.find((b) => !Number.isInteger(b) || b < 1 || b > opts.maxBatchSize);
  if (bad !== undefined)
    throw new ConfigError(
      'ERR_CONFIG_RANGE',
      `triton: preferred batch size ${bad} must be in [1, ${opts.maxBatchSize}]`,
    );
  const config = tritonConfig(model, opts);
  const final = join(dir, opts.name);
  if (existsSync(final) && !opts.overwrite)
    throw new ConfigError('ERR_FILE_WRITE', `triton: '${final}' exists (pass overwrite to replace it)`);
  const tmp = join(dir, `.${opts.name}.tmp-${process.pid}`);
  try {
    mkdirSync(join(tmp, '1'), { recursive: true });
    writeFileSync(join(tmp, 'config.pbtxt'), config);
    writeFileSync(join(tmp, '1', 'model.onnx'), modelBytes);
    if (existsSync(final)) rmSync(final, { recursive: true });
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new ConfigError('ERR_FILE_WRITE', `triton: cannot write the repository under '${dirname(final)}'`, {
      cause: e,
    });
  }
  return final;
}
