/**
 * `exportOnnx`: checkpoint -> ONNX model + model card, the public entry point of export/.
 *
 * Steps: load the checkpoint (EMA weights + BN statistics) -> build the FP32 graph with BN folded
 * -> check it against the ONNX checker rules -> parity with the tfjs student (onnxruntime-node,
 * CPU) -> precision conversion (fp16 / int8) -> write `<out>` and `<name>.json` atomically
 * (temp file + rename; a failure leaves neither).
 */
import { accessSync, constants, existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import sharp from 'sharp';
import { createHash } from 'node:crypto';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { onnx, type OnnxTypes } from './onnx-proto.js';
import {
  buildOnnxModel,
  describeIo,
  encodeModel,
  producerVersion,
  type OutputDescription,
} from './onnx-graph.js';
import { assertValidOnnx } from './onnx-check.js';
import { writeTritonRepository } from './triton.js';
import { syntheticScene, verifyParity, type ParityReport } from './verify.js';
import { toFp16, CPU_FP16_NOTE } from './fp16.js';
import { HEAD_OUTPUT_CONVS, pruneDeadNodes, quantizeInt8 } from './int8.js';
import { imagesToBatches, type RgbBuffer } from './calibration.js';
import seedrandom from 'seedrandom';
import type { ExportConfig } from './config.js';
import { deployWeights, loadCheckpoint } from '../models/core/checkpoint.js';
import { ConfigError, ModelFormatError } from '../models/core/errors.js';
import { writeFileAtomic } from '../models/core/safetensors.js';
import { buildGraph, graphCost } from '../models/arch/graph.js';
import { parseModelSpec, type ModelSpec } from '../models/core/spec.js';
import type { ProgressEvent } from '../models/core/events.js';

/** Progress of an export (the export members of the shared {@link ProgressEvent} union). */
export type ExportEvent = Extract<ProgressEvent, { kind: 'export-op' | 'export-done' }>;

/** The model card written beside the model as `<name>.json`. */
export interface ModelCard {
  format: 'edgekd-model-card';
  version: 1;
  name: string;
  /** Model file name, relative to the card. */
  model: string;
  sha256: string;
  sizeBytes: number;
  createdAt: string;
  producer: { name: 'edgekd'; version: string };
  checkpoint: string;
  spec: ModelSpec;
  /** Set when exported with --input-size: the input size the checkpoint was trained at. */
  trainedInput?: { width: number; height: number };
  opset: number;
  irVersion: number;
  precision: ExportConfig['precision'];
  /** INT8 only: how it was quantised (weights are always per-channel symmetric int8). */
  quantization?: {
    activations: 'uint8' | 'int8';
    method: 'minmax' | 'percentile';
    calibration: string;
    /** Convs left in float32 (the heads' last convs by default). */
    floatNodes: string[];
  };
  outputs: ExportConfig['outputs'];
  /** Graph input and outputs: names, shapes (`batch` = dynamic), layouts, meaning. */
  io: { input: OutputDescription; outputs: OutputDescription[] };
  /** Whether `spec.input.normalization` is inside the graph (never, in this version). */
  normalizationInGraph: false;
  /** Trainable parameters (BN moving statistics excluded; after folding they vanish). */
  params: number;
  /** Multiply-accumulates per image at the spec's input size (convs). */
  macs: number;
  macsByPart: Record<string, number>;
  /** FP32 graph vs tfjs; null when `verify` was off. `note` explains a precision it could not run. */
  parity: (ParityReport & { of: 'fp32'; note?: string }) | null;
}

export interface ExportResult {
  model: string;
  card: string;
  sizeBytes: number;
  seconds: number;
  parity: ParityReport | null;
  modelCard: ModelCard;
  /** Triton model folder, when `triton` was set. */
  triton?: string;
}

/** Card path for a model path: `dir/ped-nano.onnx` -> `dir/ped-nano.json`. */
export function cardPathFor(out: string): string {
  const ext = extname(out);
  return join(dirname(out), `${basename(out, ext === '.onnx' ? ext : '')}.json`);
}

/** `1.9 MB` (MiB, one decimal), as ultralytics prints export sizes. */
function formatSize(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MB`;
}

/** Fails fast, before minutes of work, when the output folder cannot take the file. */
function checkWritable(out: string): void {
  const dir = dirname(resolve(out));
  let ok: boolean;
  try {
    ok = statSync(dir).isDirectory();
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new ConfigError(
      'ERR_FILE_WRITE',
      `cannot write '${out}': folder '${dir}' is missing or not writable`,
      {
        cause: e,
      },
    );
  }
  if (!ok) throw new ConfigError('ERR_FILE_WRITE', `cannot write '${out}': '${dir}' is not a folder`);
  if (existsSync(out) && statSync(out).isDirectory())
    throw new ConfigError('ERR_FILE_WRITE', `cannot write '${out}': it is a folder`);
}

function setMetadata(model: OnnxTypes.IModelProto, key: string, value: string): void {
  const props = (model.metadataProps ??= []);
  const p = props.find((e) => e.key === key);
  if (p) p.value = value;
  else props.push(onnx.StringStringEntryProto.create({ key, value }));
}

/**
 * INT8 calibration batches (NCHW, normalised like `images`) from `config.calibration`.
 * `synthetic:COUNT[:SEED]` uses procedural pedestrian-like scenes (the parity scenes).
 * @throws {ConfigError} when missing, malformed, or a source not wired here yet
 */
const CALIBRATION_IMAGE_EXTS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff']);

/**
 * Decodes every image of a folder (sorted by name, at most `limit`) to RGB with sharp.
 * @throws {ConfigError} when the folder is missing or holds no readable image; a single corrupt
 *   image is an error naming the file (calibrating on fewer images than asked would be silent)
 */
async function readImageFolder(dir: string, limit: number): Promise<RgbBuffer[]> {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => CALIBRATION_IMAGE_EXTS.has(extname(n).toLowerCase()))
      .sort()
      .slice(0, limit);
  } catch (e) {
    throw new ConfigError('ERR_FILE_NOT_FOUND', `calibration folder '${dir}' cannot be read`, { cause: e });
  }
  if (names.length === 0)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `calibration folder '${dir}' holds no images (${[...CALIBRATION_IMAGE_EXTS].join(', ')})`,
    );
  return decodeCalibrationImages(names.map((n) => join(dir, n)));
}

/**
 * The images a COCO annotation file lists (`images[].file_name`, looked up in `images/` beside
 * the JSON, then beside it), in file order, at most `limit`: calibrate on the training set.
 * @throws {ConfigError} when the file is not COCO JSON, lists no images, or an image is missing
 */
async function readCocoImages(json: string, limit: number): Promise<RgbBuffer[]> {
  let files: string[];
  try {
    const coco = JSON.parse(readFileSync(json, 'utf8')) as { images?: { file_name?: unknown }[] };
    if (!Array.isArray(coco.images)) throw new Error("no 'images' array");
    files = coco.images.slice(0, limit).map((im, i) => {
      if (typeof im.file_name !== 'string') throw new Error(`images[${i}].file_name is not a string`);
      return im.file_name;
    });
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_INVALID', `calibration COCO file '${json}': ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (files.length === 0)
    throw new ConfigError('ERR_CONFIG_INVALID', `calibration COCO file '${json}' lists no images`);
  const base = dirname(json);
  return decodeCalibrationImages(
    files.map((f) => (existsSync(join(base, 'images', f)) ? join(base, 'images', f) : join(base, f))),
  );
}

async function decodeCalibrationImages(files: string[]): Promise<RgbBuffer[]> {
  const out: RgbBuffer[] = [];
  for (const file of files) {
    try {
      const { data, info } = await sharp(file)
        .removeAlpha()
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      out.push({
        data: new Uint8Array(data.buffer, data.byteOffset, data.length),
        width: info.width,
        height: info.height,
      });
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_INVALID', `calibration image '${file}' cannot be decoded`, {
        cause: e,
      });
    }
  }
  return out;
}

/**
 * Calibration batches for int8: `synthetic:COUNT[:SEED]` (procedural scenes) or a folder of
 * images (`--calibration DIR`, up to `calibrationLimit` images, e.g. frames of the target camera).
 */
async function calibrationBatches(config: ExportConfig, spec: ModelSpec): Promise<Float32Array[]> {
  const src = config.calibration;
  if (!src)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      "'precision' int8 needs 'calibration' (e.g. --calibration synthetic:64 or --calibration frames/)",
    );
  const m = /^synthetic:(\d+)(?::(-?\d+))?$/.exec(src);
  if (!m) {
    if (src.toLowerCase().endsWith('.json') && existsSync(src) && statSync(src).isFile())
      return imagesToBatches(await readCocoImages(src, config.calibrationLimit), spec.input, 8);
    if (!existsSync(src) || !statSync(src).isDirectory()) {
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `'calibration' must be synthetic:COUNT[:SEED], a folder of images or a COCO JSON file, got '${src}' (a video: extract frames with \`edgekd data frames\` first)`,
      );
    }
    return imagesToBatches(await readImageFolder(src, config.calibrationLimit), spec.input, 8);
  }
  const count = Number(m[1]);
  if (count < 1)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      'the calibration set is empty: give synthetic:COUNT with COUNT >= 1',
    );
  const rng = seedrandom(`edgekd-calibration-${m[2] ?? 0}`);
  const { height, width } = spec.input;
  const images: RgbBuffer[] = [];
  for (let i = 0; i < count; i++)
    images.push({
      data: Uint8Array.from(syntheticScene(height, width, rng), (v) => Math.round(v)),
      width,
      height,
    });
  return imagesToBatches(images, spec.input, 8);
}

/**
 * The fp16 / int8 hook: converts the verified FP32 model to the requested precision.
 * @throws {ConfigError} for a precision that is not available yet
 */
async function convertPrecision(
  model: OnnxTypes.ModelProto,
  config: ExportConfig,
  spec: ModelSpec,
): Promise<OnnxTypes.ModelProto> {
  switch (config.precision) {
    case 'fp32':
      return model;
    case 'fp16':
      return toFp16(model);
    case 'int8': {
      const batches = await calibrationBatches(config, spec);
      return quantizeInt8(model, batches, {
        method: config.calibrationMethod,
        perChannel: true,
        activations: config.int8Activations,
        floatNodes: config.int8FloatHeads ? HEAD_OUTPUT_CONVS : [],
      });
    }
  }
}

/**
 * Exports a checkpoint to ONNX with its model card.
 * @param config - parsed {@link ExportConfig}
 * @param onEvent - receives progress and the final `export-done` line
 * @returns paths, size, parity report and the card
 * @throws {ConfigError} `ERR_FILE_WRITE` when the output cannot be written, `ERR_FILE_NOT_FOUND`
 *   for a missing checkpoint; {@link ModelFormatError} when the checkpoint does not match its spec
 *   (naming the parameter) or parity exceeds the bound
 *
 * @example
 * ```ts
 * const r = await exportOnnx(ExportConfigSchema.parse({ checkpoint: 'runs/tiny/last.safetensors', out: 'tiny.onnx' }));
 * r.parity?.maxAbsDiff; // { heatmap: 3.9e-7, size: 1.7e-6, offset: 9.8e-7 }
 * // files: tiny.onnx, tiny.json; event line: "export onnx ok 1.4s tiny.onnx (0.3 MB)"
 * ```
 */
/**
 * The spec with its input size replaced (`N` or `WxH`), validated like any spec (multiples of 32).
 * @throws {ConfigError} naming --input-size when the size is not allowed
 */
export function withInputSize(spec: ModelSpec, size: string | undefined): ModelSpec {
  if (!size) return spec;
  const [w, h = w] = size.split('x').map(Number);
  try {
    return parseModelSpec({ ...spec, input: { ...spec.input, width: w, height: h } });
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_RANGE', `--input-size ${size}: ${(e as Error).message}`);
  }
}

export async function exportOnnx(
  config: ExportConfig,
  onEvent?: (e: ExportEvent) => void,
): Promise<ExportResult> {
  const t0 = performance.now();
  const secs = () => (performance.now() - t0) / 1000;
  const step = (name: Extract<ExportEvent, { kind: 'export-op' }>['step'], detail: string): void =>
    onEvent?.({ kind: 'export-op', step: name, detail });
  try {
    checkWritable(config.out);
    step('load', config.checkpoint);
    const ckpt = loadCheckpoint(config.checkpoint);
    const spec = withInputSize(ckpt.spec, config.inputSize);
    const weights = deployWeights(ckpt);

    step('build', `${config.outputs} outputs, opset ${config.opset}`);
    // The P3..P5 smoothing convs feed distillation taps only: no output depends on them.
    const fp32 = pruneDeadNodes(
      buildOnnxModel(spec, weights, {
        outputs: config.outputs,
        opset: config.opset,
        precision: 'fp32',
      }),
    );
    step('check', 'ONNX checker rules');
    assertValidOnnx(fp32);

    let parity: ParityReport | null = null;
    if (config.verify) {
      step('verify', 'onnxruntime-node (cpu) vs tfjs on random and synthetic inputs');
      parity = await verifyParity(fp32, spec, weights, { batch: config.parityBatch });
      if (!parity.ok) {
        const d = parity.maxAbsDiff;
        const boxes = parity.boxes?.mismatches.length ? `; boxes: ${parity.boxes.mismatches.join('; ')}` : '';
        throw new ModelFormatError(
          'ERR_MODEL_FORMAT',
          `parity check failed: max abs diff heatmap ${d.heatmap.toExponential(2)}, size ${d.size.toExponential(2)}, offset ${d.offset.toExponential(2)} (bound ${parity.tolerance.heads} x max(1, |value|))${boxes}`,
        );
      }
    }

    if (config.precision !== 'fp32') step('convert', config.precision);
    const model = await convertPrecision(fp32, config, spec);
    setMetadata(model, 'edgekd.precision', config.precision);
    const bytes = encodeModel(model);

    const cost = graphCost(spec, buildGraph(spec));
    const card: ModelCard = {
      format: 'edgekd-model-card',
      version: 1,
      name: spec.name,
      model: basename(config.out),
      sha256: createHash('sha256').update(bytes).digest('hex'),
      sizeBytes: bytes.length,
      createdAt: new Date().toISOString(),
      producer: { name: 'edgekd', version: producerVersion() },
      checkpoint: config.checkpoint,
      spec,
      ...(config.inputSize
        ? { trainedInput: { width: ckpt.spec.input.width, height: ckpt.spec.input.height } }
        : {}),
      opset: config.opset,
      irVersion: Number(model.irVersion),
      precision: config.precision,
      ...(config.precision === 'int8'
        ? {
            quantization: {
              activations: config.int8Activations,
              method: config.calibrationMethod,
              calibration: config.calibration ?? '',
              floatNodes: config.int8FloatHeads ? [...HEAD_OUTPUT_CONVS] : [],
            },
          }
        : {}),
      outputs: config.outputs,
      io: describeIo(spec, config.outputs),
      normalizationInGraph: false,
      params: cost.params,
      macs: cost.macs,
      macsByPart: cost.macsByPart,
      parity: parity
        ? { ...parity, of: 'fp32', ...(config.precision === 'fp16' ? { note: CPU_FP16_NOTE } : {}) }
        : null,
    };

    const cardPath = cardPathFor(config.out);
    step('write', `${config.out} + ${cardPath}`);
    writeFileAtomic(config.out, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    try {
      writeFileAtomic(cardPath, `${JSON.stringify(card, null, 2)}\n`);
    } catch (e) {
      rmSync(config.out, { force: true }); // no model without its card
      throw e;
    }
    let triton: string | undefined;
    if (config.triton) {
      step('write', `Triton repository under ${config.triton}`);
      const preferred: number[] = [];
      for (let b = 2; b <= config.tritonMaxBatch; b *= 2) preferred.push(b);
      triton = writeTritonRepository(config.triton, model, bytes, {
        name: basename(config.out).replace(/\.onnx$/i, ''),
        maxBatchSize: config.tritonMaxBatch,
        preferredBatchSizes: preferred.length ? preferred : [1],
        maxQueueDelayUs: 2000,
        instanceKind: 'KIND_GPU',
        instanceCount: 1,
        overwrite: true,
      });
    }
    const seconds = secs();
    onEvent?.({
      kind: 'export-done',
      ok: true,
      seconds,
      line: `export onnx ok ${seconds.toFixed(1)}s ${basename(config.out)} (${formatSize(bytes.length)})`,
      model: config.out,
      sizeBytes: bytes.length,
    });
    return {
      model: config.out,
      card: cardPath,
      sizeBytes: bytes.length,
      seconds,
      parity,
      modelCard: card,
      triton,
    };
  } catch (e) {
    const seconds = secs();
    onEvent?.({
      kind: 'export-done',
      ok: false,
      seconds,
      line: `export onnx failed ${seconds.toFixed(1)}s: ${e instanceof Error ? e.message : String(e)}`,
    });
    throw e;
  }
}
