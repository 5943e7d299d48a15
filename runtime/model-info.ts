/**
 * What the runtime needs to know about a model file before it creates a session: the model spec
 * (input size, normalisation, classes, decode settings), the output form and the precision.
 *
 * edgekd's exporter (export/onnx-graph.ts, export/export-model.ts) writes them to the ONNX
 * `metadata_props`: `edgekd.spec` (the validated spec as JSON), `edgekd.outputs` (`heads` |
 * `boxes`), `edgekd.precision` (`fp32` | `fp16` | `int8`), plus informative keys (`edgekd.input`,
 * `edgekd.io`, `edgekd.classes`, ...). onnxruntime-node does not expose metadata_props, and
 * decoding the whole protobuf would copy every weight, so {@link readOnnxMetadata} walks the
 * top-level ModelProto fields with a minimal protobuf wire reader and skips the graph.
 *
 * A plain ONNX detector (no `edgekd.spec`) needs a sidecar spec JSON (`specPath`): a model spec,
 * or an edgekd model card whose `spec` field is used. Its output form is then read from the
 * session's output names (`detections` -> boxes; `heatmap`/`size`/`offset` -> heads).
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, ModelFormatError } from '../models/core/errors.js';
import { parseModelSpec, type ModelSpec } from '../models/core/spec.js';

/** What {@link readModelInfo} found. */
export interface ModelInfo {
  path: string;
  spec: ModelSpec;
  /** Where the spec came from. */
  specSource: 'metadata' | 'sidecar';
  /** From `edgekd.outputs`; undefined for a plain ONNX model (decided from the output names). */
  outputs?: 'boxes' | 'heads';
  /** From `edgekd.precision`; `'unknown'` for a plain ONNX model. */
  precision: string;
  /** Every metadata_props entry. */
  metadata: Record<string, string>;
  /** ModelProto producer_name (e.g. `edgekd`, `pytorch`). */
  producer: string;
  sizeBytes: number;
}

// ModelProto field numbers (onnx.proto3).
const F_IR_VERSION = 1;
const F_PRODUCER_NAME = 2;
const F_GRAPH = 7;
const F_METADATA_PROPS = 14;

class WireError extends Error {}

/** A forward-only protobuf wire-format reader over one message's bytes. */
class Wire {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly end = buf.length,
  ) {}

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** Reads a length-delimited field and returns its [start, end). */
  bytes(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw new WireError(`field of ${len} bytes runs past the end`);
    this.pos = start + len;
    return [start, start + len];
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.advance(8);
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.advance(4);
    else throw new WireError(`unsupported wire type ${wireType}`);
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new WireError('truncated fixed-size field');
    this.pos += n;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads `metadata_props`, `producer_name` and whether a graph is present from ONNX ModelProto
 * bytes, skipping the graph itself.
 * @throws {ModelFormatError} `ERR_MODEL_FORMAT` when the bytes are not a protobuf ModelProto with
 *   an ir_version and a graph (e.g. a truncated or corrupt file, or another file type)
 */
export function readOnnxMetadata(
  bytes: Uint8Array,
  name = 'model',
): { metadata: Record<string, string>; producer: string } {
  const r = new Wire(bytes);
  const metadata: Record<string, string> = {};
  let producer = '';
  let irVersion = 0;
  let hasGraph = false;
  try {
    while (r.pos < r.end) {
      const tag = r.varint();
      const field = Math.floor(tag / 8);
      const wireType = tag & 7;
      if (field === 0) throw new WireError('field number 0');
      if (field === F_IR_VERSION && wireType === 0) irVersion = r.varint();
      else if (field === F_PRODUCER_NAME && wireType === 2)
        producer = utf8.decode(bytes.subarray(...r.bytes()));
      else if (field === F_GRAPH && wireType === 2) {
        r.bytes();
        hasGraph = true;
      } else if (field === F_METADATA_PROPS && wireType === 2) {
        const [s, e] = r.bytes();
        const entry = new Wire(bytes, e);
        entry.pos = s;
        let key = '';
        let value = '';
        while (entry.pos < e) {
          const t = entry.varint();
          if (t === (1 << 3) + 2) key = utf8.decode(bytes.subarray(...entry.bytes()));
          else if (t === (2 << 3) + 2) value = utf8.decode(bytes.subarray(...entry.bytes()));
          else entry.skip(t & 7);
        }
        metadata[key] = value;
      } else r.skip(wireType);
    }
  } catch (e) {
    const why = e instanceof WireError || e instanceof TypeError ? e.message : String(e);
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `${name} is not a valid ONNX model (protobuf decoding failed at byte ${r.pos}: ${why}); is the file truncated or of another type?`,
      { cause: e },
    );
  }
  if (!irVersion || !hasGraph)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `${name} is not a valid ONNX model (${!irVersion ? 'no ir_version' : 'no graph'})`,
    );
  return { metadata, producer };
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError('ERR_FILE_NOT_FOUND', `cannot read ${what} '${path}'`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError('ERR_MODEL_FORMAT', `${what} '${path}' is not valid JSON`, { cause: e });
  }
}

/**
 * Reads a model file's spec, output form and precision.
 * @param specPath - sidecar spec JSON (a model spec or an edgekd model card); required when the
 *   model has no `edgekd.spec` metadata, and preferred over the metadata when given
 * @throws {ConfigError} `ERR_FILE_NOT_FOUND` when the model or the sidecar cannot be read
 * @throws {ModelFormatError} `ERR_MODEL_FORMAT` when the file is not an ONNX model, when a plain
 *   ONNX model comes without `specPath`, or when a spec is invalid
 */
export async function readModelInfo(path: string, specPath?: string): Promise<ModelInfo> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new ConfigError(
      'ERR_FILE_NOT_FOUND',
      code === 'ENOENT'
        ? `model file not found: '${path}'`
        : `cannot read model file '${path}' (${code ?? e})`,
      { cause: e },
    );
  }
  if (bytes.length === 0) throw new ModelFormatError('ERR_MODEL_FORMAT', `model file '${path}' is empty`);
  const { metadata, producer } = readOnnxMetadata(bytes, `'${path}'`);
  let spec: ModelSpec;
  let specSource: ModelInfo['specSource'];
  if (specPath !== undefined) {
    const json = await readJson(specPath, 'spec file');
    const card =
      typeof json === 'object' &&
      json !== null &&
      (json as { format?: unknown }).format === 'edgekd-model-card';
    spec = parseModelSpec(
      card ? (json as { spec?: unknown }).spec : json,
      card ? `spec in model card '${specPath}'` : `model spec '${specPath}'`,
    );
    specSource = 'sidecar';
  } else if (metadata['edgekd.spec'] !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(metadata['edgekd.spec']);
    } catch (e) {
      throw new ModelFormatError('ERR_MODEL_FORMAT', `edgekd.spec metadata in '${path}' is not valid JSON`, {
        cause: e,
      });
    }
    spec = parseModelSpec(json, `edgekd.spec metadata in '${path}'`);
    specSource = 'metadata';
  } else {
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `'${path}' has no edgekd.spec metadata (producer '${producer || 'unknown'}'): it is not an edgekd export, so pass its model spec as a sidecar JSON (specPath / --spec FILE)`,
    );
  }
  const o = metadata['edgekd.outputs'];
  if (o !== undefined && o !== 'heads' && o !== 'boxes')
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `edgekd.outputs metadata in '${path}' must be 'heads' or 'boxes', got '${o}'`,
    );
  return {
    path,
    spec,
    specSource,
    outputs: o as ModelInfo['outputs'],
    precision: metadata['edgekd.precision'] ?? 'unknown',
    metadata,
    producer,
    sizeBytes: bytes.length,
  };
}
