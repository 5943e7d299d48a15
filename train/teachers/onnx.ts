/**
 * Teacher adapter for any ONNX model (bring-your-own teacher, e.g. exported from PyTorch), run by
 * onnxruntime-node on the CPU execution provider. Feature taps are named per stride in the
 * config; a name that is not a graph output but the output of an internal node is exposed by
 * appending it to the graph outputs (decoded and re-encoded in memory with onnx-proto, the file
 * is left as is). Maps come back NHWC whatever the model's layout.
 */
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import * as tf from '@tensorflow/tfjs';
import type { Detection } from '../../models/core/detection.js';
import { ConfigError, ModelFormatError } from '../../models/core/errors.js';
import { log } from '../../models/core/log.js';
import type { TeacherConfig } from '../distill/config.js';
import {
  applyClassMap,
  checkImages,
  concatBatch,
  nchwToNhwc,
  prepareInput,
  readFileOrThrow,
  resolveClassMap,
  type ResolvedClassMap,
} from './maps.js';
import type { FeatureMap, Teacher, TeacherDetectOptions, TeacherOutput } from './types.js';

export type OnnxTeacherConfig = Extract<TeacherConfig, { kind: 'onnx' }>;

const onnx = onnxProto.onnx;

/** One output the adapter fetches: where its map goes and how it is laid out. */
interface Tap {
  role: 'neck' | 'backbone' | 'heatmap';
  stride: number;
  name: string;
  layout: 'nchw' | 'nhwc';
}

/**
 * Up to `n` of `names`, those sharing the most name tokens with `want` first (graph order
 * otherwise), for "did you mean" messages.
 */
function similarNames(want: string, names: string[], n = 8): string[] {
  const tokens = want
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((t) => t.length > 1);
  const score = (s: string): number => tokens.filter((t) => s.toLowerCase().includes(t)).length;
  return [...names].sort((a, b) => score(b) - score(a)).slice(0, n);
}

/** A ValueInfoProto for exposing `name` as a graph output: its value_info when the graph has one. */
function outputInfo(g: OnnxTypes.IGraphProto, name: string): OnnxTypes.IValueInfoProto {
  const known = g.valueInfo?.find((v) => v.name === name);
  if (known) return known;
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({ elemType: onnx.TensorProto.DataType.FLOAT }),
    }),
  });
}

/** NHWC FeatureMap of an ORT output. */
function toMap(t: ort.Tensor, layout: 'nchw' | 'nhwc', name: string): FeatureMap {
  if (t.type !== 'float32' || t.dims.length !== 4)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `ONNX teacher output '${name}' must be a 4-D float32 map, got ${t.type} [${t.dims.join(', ')}]`,
    );
  const data = t.data as Float32Array;
  const [a, b, c, d] = t.dims.map(Number);
  return layout === 'nchw'
    ? nchwToNhwc(data, a, b, c, d)
    : { shape: [a, b, c, d], data: new Float32Array(data) };
}

/** What a session run needs. */
interface Network {
  cfg: OnnxTeacherConfig;
  session: ort.InferenceSession;
  inputName: string;
  /** Images per session run: 1 when the model's batch axis is fixed at 1, else 0 (whole batch). */
  chunk: number;
  taps: Tap[];
  /** Applied to the heatmap tap (with its activation); undefined: heatmap returned raw. */
  classMap?: ResolvedClassMap;
}

/**
 * Preprocesses a batch and runs the session.
 * @returns each tap's NHWC map, in `net.taps` order (the heatmap as mapped probabilities when
 *   `net.classMap` is set)
 */
async function runNetwork(
  net: Network,
  images: Float32Array,
  batch: number,
  height: number,
  width: number,
): Promise<FeatureMap[]> {
  const { input } = net.cfg;
  const x = tf.tidy(() => {
    const y = prepareInput(tf.tensor4d(images, [batch, height, width, 3]), input);
    return input.layout === 'nchw' ? tf.transpose(y, [0, 3, 1, 2]) : y;
  });
  let data: Float32Array;
  try {
    data = (await x.data()) as Float32Array;
  } finally {
    x.dispose();
  }
  const dims = input.layout === 'nchw' ? [3, input.height, input.width] : [input.height, input.width, 3];
  const per = dims[0] * dims[1] * dims[2];
  const step = net.chunk || batch;
  const parts: FeatureMap[][] = net.taps.map(() => []);
  for (let b = 0; b < batch; b += step) {
    const n = Math.min(step, batch - b);
    const feed = new ort.Tensor('float32', data.slice(b * per, (b + n) * per), [n, ...dims]);
    const res = await net.session.run(
      { [net.inputName]: feed },
      net.taps.map((t) => t.name),
    );
    try {
      net.taps.forEach((t, i) => parts[i].push(toMap(res[t.name], t.layout, t.name)));
    } finally {
      for (const v of Object.values(res)) v.dispose();
      feed.dispose();
    }
  }
  return parts.map((p, i) => {
    let m = p.length === 1 ? p[0] : concatBatch(p);
    if (net.taps[i].role === 'heatmap' && net.classMap) {
      if (net.cfg.heatmap?.activation === 'sigmoid')
        for (let j = 0; j < m.data.length; j++) m.data[j] = 1 / (1 + Math.exp(-m.data[j]));
      m = applyClassMap(m, net.classMap);
    }
    return m;
  });
}

/** An ONNX model run as a teacher. Create with {@link createOnnxTeacher}. */
export class OnnxTeacher implements Teacher {
  readonly name: string;
  readonly fingerprint: string;
  readonly neckChannels: ReadonlyMap<number, number>;
  readonly backboneChannels: ReadonlyMap<number, number>;
  readonly headClasses: readonly string[];

  /** @internal use {@link createOnnxTeacher} */
  constructor(
    private readonly net: Network,
    fingerprint: string,
    channels: { neck: Map<number, number>; backbone: Map<number, number> },
  ) {
    this.name = net.cfg.name;
    this.fingerprint = fingerprint;
    this.neckChannels = channels.neck;
    this.backboneChannels = channels.backbone;
    this.headClasses = net.classMap?.classes ?? [];
  }

  async run(images: Float32Array, batch: number, height: number, width: number): Promise<TeacherOutput> {
    checkImages(images, batch, height, width);
    const maps = await runNetwork(this.net, images, batch, height, width);
    const out: TeacherOutput = { neck: new Map(), backbone: new Map() };
    this.net.taps.forEach((t, i) => {
      if (t.role === 'heatmap') out.headProb = { stride: t.stride, map: maps[i] };
      else out[t.role].set(t.stride, maps[i]);
    });
    return out;
  }

  /** @throws {ConfigError} always: an arbitrary ONNX graph has no known box decoding. */
  detect(
    _images: Float32Array,
    _batch: number,
    _height: number,
    _width: number,
    _opts: TeacherDetectOptions,
  ): Promise<Detection[][]> {
    return Promise.reject(
      new ConfigError(
        'ERR_CONFIG_INVALID',
        `teacher '${this.name}' (onnx) cannot decode boxes: there is no generic decoder for an arbitrary ONNX graph; label with an 'edgekd' or 'centernet' teacher`,
      ),
    );
  }

  dispose(): void {
    this.net.session.release().catch((e: unknown) => {
      log.warn(`teacher '${this.name}': releasing the ONNX session failed: ${String(e)}`);
    });
  }
}

/**
 * Opens an ONNX model as a teacher: exposes the configured internal nodes as outputs, creates a
 * CPU session, and probes it once on a blank image to check each tap's stride and learn its
 * channels.
 * @param cfg - the teacher's config block (`kind: 'onnx'`)
 * @param opts - `classes`: the student's class names (`cfg.heatmap.classes` maps them)
 * @throws {ConfigError} `ERR_FILE_NOT_FOUND` for a missing file; `ERR_CONFIG_INVALID` for a node
 *   name that is neither a graph output nor a node output (listing similar names), an unknown
 *   input name, a tap whose size does not match its stride, or an unknown class
 * @throws {ModelFormatError} when the file is not an ONNX model or an output is not a 4-D float map
 *
 * @example
 * ```ts
 * const t = await createOnnxTeacher(
 *   TeacherConfigSchema.parse({ kind: 'onnx', path: 'fpn.onnx', input: { height: 512, width: 512 },
 *     features: { '8': '/fpn/p3/Conv_output_0', '16': '/fpn/p4/Conv_output_0' } }),
 *   { classes: ['person'] });
 * const out = await t.run(pixels, 2, 512, 512); // out.neck.get(8).shape = [2, 64, 64, C]
 * ```
 */
export async function createOnnxTeacher(
  cfg: OnnxTeacherConfig,
  opts: { classes: readonly string[] },
): Promise<OnnxTeacher> {
  const src = `teacher '${cfg.name}'`;
  const bytes = readFileOrThrow(cfg.path, `${src} ONNX model`);
  let model: OnnxTypes.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelFormatError('ERR_MODEL_FORMAT', `'${cfg.path}' is not an ONNX model`, { cause: e });
  }
  const g = model.graph;
  if (!g) throw new ModelFormatError('ERR_MODEL_FORMAT', `'${cfg.path}' has no graph`);
  g.output ??= [];
  const graphNodes = g.node ?? [];

  const taps: Tap[] = [
    ...Object.entries(cfg.features).map(([s, name]): Tap => ({
      role: 'neck',
      stride: Number(s),
      name,
      layout: cfg.featureLayout,
    })),
    ...Object.entries(cfg.backbone).map(([s, name]): Tap => ({
      role: 'backbone',
      stride: Number(s),
      name,
      layout: cfg.featureLayout,
    })),
  ];
  if (taps.some((t) => !(t.stride >= 1)))
    throw new ConfigError('ERR_CONFIG_RANGE', `${src}: feature strides must be integers >= 1`);
  if (cfg.heatmap)
    taps.push({
      role: 'heatmap',
      stride: cfg.heatmap.stride,
      name: cfg.heatmap.output,
      layout: cfg.heatmap.layout,
    });

  const graphOutputs = new Set(g.output.map((o) => o.name));
  const nodeOutputs: string[] = [];
  for (const n of graphNodes) for (const o of n.output ?? []) if (o) nodeOutputs.push(o);
  const nodeOutputSet = new Set(nodeOutputs);
  let exposed = false;
  for (const t of taps) {
    if (graphOutputs.has(t.name)) continue;
    if (!nodeOutputSet.has(t.name))
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `${src}: '${t.name}' (${t.role} at stride ${t.stride}) is neither a graph output nor a node output of '${cfg.path}'; node outputs include: ${similarNames(t.name, nodeOutputs).join(', ')} (${nodeOutputs.length} in all)`,
      );
    g.output.push(outputInfo(g, t.name) as OnnxTypes.ValueInfoProto);
    graphOutputs.add(t.name);
    exposed = true;
  }
  const sessionBytes = exposed ? onnx.ModelProto.encode(model).finish() : bytes;

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(sessionBytes, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    throw new ModelFormatError('ERR_MODEL_FORMAT', `${src}: onnxruntime cannot load '${cfg.path}'`, {
      cause: e,
    });
  }
  try {
    const inputName = cfg.input.name ?? (session.inputNames.length === 1 ? session.inputNames[0] : undefined);
    if (inputName === undefined || !session.inputNames.includes(inputName))
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `${src}: ${cfg.input.name === undefined ? 'input.name is required: the model has several inputs' : `the model has no input '${cfg.input.name}'`}; its inputs are: ${session.inputNames.join(', ')}`,
      );

    // Batch axis and spatial size as declared by the graph input (fixed dims are checked).
    const dimOf = (d: OnnxTypes.TensorShapeProto.IDimension | undefined): number | undefined =>
      d && d.dimValue !== undefined && d.dimValue !== null && !d.dimParam && Number(d.dimValue) > 0
        ? Number(d.dimValue)
        : undefined;
    const declared = (g.input ?? []).find((i) => i.name === inputName)?.type?.tensorType?.shape?.dim ?? [];
    const { height: H, width: W, layout } = cfg.input;
    const want = layout === 'nchw' ? [undefined, 3, H, W] : [undefined, H, W, 3];
    declared.forEach((d, i) => {
      const v = dimOf(d);
      if (i > 0 && v !== undefined && v !== want[i])
        throw new ConfigError(
          'ERR_CONFIG_INVALID',
          `${src}: input '${inputName}' is [${declared.map((x) => dimOf(x) ?? '?').join(', ')}], the config says ${layout} ${H}x${W}`,
        );
    });
    const chunk = dimOf(declared[0]) === 1 ? 1 : 0;

    const net: Network = { cfg, session, inputName, chunk, taps };
    // Probe on a blank image: check every tap's size against its stride, read channels.
    const probe = await runNetwork(net, new Float32Array(H * W * 3), 1, H, W);
    const neck = new Map<number, number>();
    const backbone = new Map<number, number>();
    taps.forEach((t, i) => {
      const [, h, w, c] = probe[i].shape;
      if (h !== Math.ceil(H / t.stride) || w !== Math.ceil(W / t.stride))
        throw new ConfigError(
          'ERR_CONFIG_INVALID',
          `${src}: '${t.name}' (${t.role}) is ${w}x${h} (${t.layout}) for a ${W}x${H} input, which is not stride ${t.stride} (expected ${Math.ceil(W / t.stride)}x${Math.ceil(H / t.stride)}); check the stride and featureLayout`,
        );
      if (t.role === 'heatmap')
        net.classMap = resolveClassMap(cfg.heatmap!.classes, opts.classes, c, `${src} heatmap.classes`);
      else (t.role === 'neck' ? neck : backbone).set(t.stride, c);
    });
    const fp = createHash('sha256')
      .update(createHash('sha256').update(bytes).digest('hex'))
      .update(
        JSON.stringify({
          input: cfg.input,
          features: cfg.features,
          backbone: cfg.backbone,
          featureLayout: cfg.featureLayout,
          heatmap: cfg.heatmap ?? null,
          classes: net.classMap ?? null,
        }),
      )
      .digest('hex');
    return new OnnxTeacher(net, `onnx:${fp.slice(0, 16)}`, { neck, backbone });
  } catch (e) {
    await session.release();
    throw e;
  }
}
