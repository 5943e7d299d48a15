/**
 * Teacher adapter for the pretrained COCO CenterNet-MobileNetV3 that the npm package
 * `@vladmandic/human` ships (`models/centernet.json` + `centernet.bin`, a tfjs graph model
 * converted from github.com/610265158/mobilenetv3_centernet). Loaded from the files only (no
 * network) and run with `model.execute(inputs, nodeNames)`.
 *
 * Facts about the graph, checked on human 3.3.6 (see test/train/teachers/centernet.test.ts):
 * - input `tower_0/images` is fixed at [1, 512, 512, 3], RGB 0..255 (no normalisation needed);
 *   the batch axis is fixed at 1 (execute rejects [2, ...]) and the FPN upsampling sizes are
 *   constants, so other input sizes cannot run: images are fed one at a time at 512x512.
 * - neck taps `tower_0/CenternetHead/Relu_2` [1,128,128,128] (stride 4), `Relu_1`
 *   [1,64,64,192] (stride 8), `Relu` [1,32,32,256] (stride 16).
 * - backbone taps: the last block output of each MobileNetV3 stage (linear bottlenecks, before
 *   the next stage's expansion): `expanded_conv_2/add` [..,24] (stride 4), `expanded_conv_5/add`
 *   [..,32] (8), `expanded_conv_11/add` [..,88] (16), `expanded_conv_14/add` [..,120] (32).
 * - `tower_0/keypoints` [1,128,128,80] is Identity(Sigmoid(logits)): already probabilities
 *   (class 0 = COCO person).
 * - `tower_0/detections` [1,100,6]: top-100 3x3-max-pool peaks over all classes, best first,
 *   rows = x1, y1, x2, y2 (input pixels, 0..512; cell * 4 -/+ the `wh` distances), score, class.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BoxXyxy, Detection } from '../../models/core/detection.js';
import { ConfigError, ModelFormatError } from '../../models/core/errors.js';
import type { TeacherConfig } from '../distill/config.js';
import {
  applyClassMap,
  checkImages,
  concatBatch,
  readFileOrThrow,
  resolveClassMap,
  toFeatureMap,
  type ResolvedClassMap,
} from './maps.js';
import type { FeatureMap, Teacher, TeacherDetectOptions, TeacherOutput } from './types.js';

export type CenterNetTeacherConfig = Extract<TeacherConfig, { kind: 'centernet' }>;

/** Node names the adapter reads; maps are keyed by stride in the 512x512 input. */
export interface CenterNetNodes {
  input: string;
  neck: Record<number, string>;
  backbone: Record<number, string>;
  /** Sigmoid class probabilities [1, h, w, 80]. */
  heatmap: string;
  /** Decoded top-K rows [1, K, 6]: x1, y1, x2, y2, score, class. */
  detections: string;
}

/** The node names of `@vladmandic/human`'s centernet.json. */
export const CENTERNET_NODES: Readonly<CenterNetNodes> = Object.freeze({
  input: 'tower_0/images',
  neck: {
    4: 'tower_0/CenternetHead/Relu_2',
    8: 'tower_0/CenternetHead/Relu_1',
    16: 'tower_0/CenternetHead/Relu',
  },
  backbone: {
    4: 'tower_0/MobilenetV3/expanded_conv_2/add',
    8: 'tower_0/MobilenetV3/expanded_conv_5/add',
    16: 'tower_0/MobilenetV3/expanded_conv_11/add',
    32: 'tower_0/MobilenetV3/expanded_conv_14/add',
  },
  heatmap: 'tower_0/keypoints',
  detections: 'tower_0/detections',
});

const INSTALL_HINT =
  "install the package with 'npm install @vladmandic/human@3.3.6' or set the teacher's modelDir to a folder holding centernet.json and centernet.bin";

/**
 * The `models/` folder of the installed `@vladmandic/human` package, or undefined. The package's
 * `exports` map exposes neither `package.json` nor `models/` (resolving
 * `@vladmandic/human/package.json` fails with ERR_PACKAGE_PATH_NOT_EXPORTED), so the folder is
 * found by walking Node's resolution paths.
 */
export function humanModelsDir(): string | undefined {
  const req = createRequire(import.meta.url);
  for (const base of req.resolve.paths('@vladmandic/human') ?? []) {
    const dir = join(base, '@vladmandic', 'human');
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'models');
  }
  return undefined;
}

interface GraphJson {
  modelTopology: { node: Array<{ name: string; op: string; attr?: Record<string, unknown> }> };
  weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
}

type ShapeAttr = { shape?: { dim?: Array<{ size?: string }> } };

/** The COCO CenterNet run as a teacher. Create with {@link createCenterNetTeacher}. */
export class CenterNetTeacher implements Teacher {
  readonly name: string;
  readonly fingerprint: string;
  readonly neckChannels: ReadonlyMap<number, number>;
  readonly backboneChannels: ReadonlyMap<number, number>;
  readonly headClasses: readonly string[];
  /** Side of the square network input, pixels. */
  readonly inputSize: number;
  /** Stride of the heatmap (headProb) in the network input. */
  readonly headStride: number;

  /** @internal use {@link createCenterNetTeacher} */
  constructor(
    name: string,
    fingerprint: string,
    private readonly model: tf.GraphModel,
    private readonly nodes: CenterNetNodes,
    private readonly classMap: ResolvedClassMap,
    probe: {
      inputSize: number;
      neck: Map<number, number>;
      backbone: Map<number, number>;
      headStride: number;
    },
  ) {
    this.name = name;
    this.fingerprint = fingerprint;
    this.inputSize = probe.inputSize;
    this.neckChannels = probe.neck;
    this.backboneChannels = probe.backbone;
    this.headStride = probe.headStride;
    this.headClasses = classMap.classes;
  }

  /** Runs the graph on image `b` (resized to the input square), returning the named outputs. */
  private execute(
    images: Float32Array,
    b: number,
    height: number,
    width: number,
    names: string[],
  ): tf.Tensor[] {
    const n = height * width * 3;
    const S = this.inputSize;
    return tf.tidy(() => {
      let x: tf.Tensor4D = tf.tensor4d(images.subarray(b * n, (b + 1) * n), [1, height, width, 3]);
      if (height !== S || width !== S) x = tf.image.resizeBilinear(x, [S, S], false, true);
      return model(this.model, { [this.nodes.input]: x }, names);
    });
  }

  async run(images: Float32Array, batch: number, height: number, width: number): Promise<TeacherOutput> {
    checkImages(images, batch, height, width);
    const neckStrides = [...this.neckChannels.keys()];
    const bbStrides = [...this.backboneChannels.keys()];
    const withHead = this.classMap.classes.length > 0;
    const names = [
      ...neckStrides.map((s) => this.nodes.neck[s]),
      ...bbStrides.map((s) => this.nodes.backbone[s]),
      ...(withHead ? [this.nodes.heatmap] : []),
    ];
    const per: FeatureMap[][] = names.map(() => []);
    for (let b = 0; b < batch; b++) {
      const outs = this.execute(images, b, height, width, names);
      try {
        for (let i = 0; i < outs.length; i++) {
          const m = await toFeatureMap(outs[i]);
          per[i].push(withHead && i === names.length - 1 ? applyClassMap(m, this.classMap) : m);
        }
      } finally {
        tf.dispose(outs);
      }
    }
    const neck = new Map(neckStrides.map((s, i) => [s, concatBatch(per[i])]));
    const backbone = new Map(bbStrides.map((s, i) => [s, concatBatch(per[neckStrides.length + i])]));
    const out: TeacherOutput = { neck, backbone };
    if (withHead) out.headProb = { stride: this.headStride, map: concatBatch(per[names.length - 1]) };
    return out;
  }

  async detect(
    images: Float32Array,
    batch: number,
    height: number,
    width: number,
    opts: TeacherDetectOptions,
  ): Promise<Detection[][]> {
    checkImages(images, batch, height, width);
    const S = this.inputSize;
    const sx = width / S;
    const sy = height / S;
    const result: Detection[][] = [];
    for (let b = 0; b < batch; b++) {
      const [t] = this.execute(images, b, height, width, [this.nodes.detections]);
      let rows: Float32Array;
      try {
        rows = (await t.data()) as Float32Array;
      } finally {
        t.dispose();
      }
      const dets: Detection[] = [];
      for (let r = 0; r + 6 <= rows.length; r += 6) {
        const score = rows[r + 4];
        if (!(score >= opts.scoreThreshold)) continue;
        const cls = Math.round(rows[r + 5]);
        const box: BoxXyxy = [
          Math.min(Math.max(rows[r] * sx, 0), width),
          Math.min(Math.max(rows[r + 1] * sy, 0), height),
          Math.min(Math.max(rows[r + 2] * sx, 0), width),
          Math.min(Math.max(rows[r + 3] * sy, 0), height),
        ];
        if (box[2] <= box[0] || box[3] <= box[1]) continue;
        this.classMap.teacherIds.forEach((ids, j) => {
          if (ids.includes(cls)) dets.push({ box: [...box], score, classId: this.classMap.studentIds[j] });
        });
      }
      dets.sort((a, c) => c.score - a.score);
      result.push(dets.slice(0, opts.maxDetections ?? rows.length / 6));
    }
    return result;
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** `model.execute` with a list of names, always returning an array. */
function model(m: tf.GraphModel, feeds: tf.NamedTensorMap, names: string[]): tf.Tensor[] {
  const out = m.execute(feeds, names);
  return Array.isArray(out) ? out : [out];
}

/**
 * Loads the COCO CenterNet teacher from `cfg.modelDir` (default: the installed
 * `@vladmandic/human` package's `models/`), checks the node names, and probes the graph once on
 * a blank image to learn each tap's stride and channels.
 * @param cfg - the teacher's config block (`kind: 'centernet'`)
 * @param opts - `classes`: the student's class names (`cfg.classes` maps them to COCO indices);
 *   `nodes`: node-name overrides for a differently exported graph
 * @throws {ConfigError} `ERR_FILE_NOT_FOUND` (with the install hint) when the files are missing;
 *   `ERR_CONFIG_INVALID` naming a node the graph lacks or an unknown class; `ERR_CONFIG_RANGE`
 *   when `cfg.inputSize` differs from the graph's fixed input size
 * @throws {ModelFormatError} when centernet.json is not a tfjs graph model
 *
 * @example
 * ```ts
 * const t = await createCenterNetTeacher(cfg, { classes: ['person'] });
 * const out = await t.run(letterboxed512, 1, 512, 512);
 * // out.neck: 4 -> [1,128,128,128], 8 -> [1,64,64,192], 16 -> [1,32,32,256]; out.headProb.stride = 4
 * ```
 */
export async function createCenterNetTeacher(
  cfg: CenterNetTeacherConfig,
  opts: { classes: readonly string[]; nodes?: Partial<CenterNetNodes> },
): Promise<CenterNetTeacher> {
  const nodes: CenterNetNodes = { ...CENTERNET_NODES, ...opts.nodes };
  const dir = cfg.modelDir ?? humanModelsDir();
  if (dir === undefined)
    throw new ConfigError(
      'ERR_FILE_NOT_FOUND',
      `teacher '${cfg.name}': the package @vladmandic/human is not installed; ${INSTALL_HINT}`,
    );
  const jsonPath = join(dir, 'centernet.json');
  const jsonBytes = readFileOrThrow(jsonPath, `teacher '${cfg.name}' model`, INSTALL_HINT);
  let graph: GraphJson;
  try {
    graph = JSON.parse(jsonBytes.toString('utf8')) as GraphJson;
    if (!Array.isArray(graph.modelTopology?.node) || !Array.isArray(graph.weightsManifest))
      throw new TypeError('modelTopology.node or weightsManifest is missing');
  } catch (e) {
    throw new ModelFormatError('ERR_MODEL_FORMAT', `'${jsonPath}' is not a tfjs graph model JSON`, {
      cause: e,
    });
  }

  // Node names first: a wrong name is a cheap, clear error before 4 MB of weights load.
  const byName = new Map(graph.modelTopology.node.map((n) => [n.name, n]));
  const wanted: Array<[string, string]> = [
    ['input', nodes.input],
    ...Object.entries(nodes.neck).map(([s, n]): [string, string] => [`neck[${s}]`, n]),
    ...Object.entries(nodes.backbone).map(([s, n]): [string, string] => [`backbone[${s}]`, n]),
    ['heatmap', nodes.heatmap],
    ['detections', nodes.detections],
  ];
  for (const [role, name] of wanted)
    if (!byName.has(name.replace(/:\d+$/, '')))
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `teacher '${cfg.name}': '${jsonPath}' has no node '${name}' (${role}); is this the CenterNet-MobileNetV3 graph of @vladmandic/human?`,
      );
  const dims = ((byName.get(nodes.input)!.attr?.shape ?? {}) as ShapeAttr).shape?.dim ?? [];
  const fixed = dims.slice(1, 3).map((d) => Number(d.size ?? -1));
  if (fixed.some((d) => d > 0 && d !== cfg.inputSize))
    throw new ConfigError(
      'ERR_CONFIG_RANGE',
      `teacher '${cfg.name}': inputSize must be ${fixed.join('x')} (the graph's input '${nodes.input}' has a fixed size and constant upsampling sizes), got ${cfg.inputSize}`,
    );

  const hash = createHash('sha256');
  hash.update(createHash('sha256').update(jsonBytes).digest('hex'));
  const bins: Buffer[] = [];
  for (const group of graph.weightsManifest)
    for (const p of group.paths) {
      const buf = readFileOrThrow(join(dir, p), `teacher '${cfg.name}' weights`, INSTALL_HINT);
      hash.update(createHash('sha256').update(buf).digest('hex'));
      bins.push(buf);
    }
  const all = Buffer.concat(bins);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const weightSpecs = graph.weightsManifest.flatMap((g) => g.weights);
  const expected = weightSpecs.reduce((a, w) => {
    const n = w.shape.reduce((x, y) => x * y, 1);
    const bytes = w.quantization ? ({ uint8: 1, float16: 2, uint16: 2 } as const)[w.quantization.dtype] : 4;
    return a + n * bytes;
  }, 0);
  if (expected !== all.byteLength)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `teacher '${cfg.name}': the weight files in '${dir}' hold ${all.byteLength} bytes, centernet.json describes ${expected}`,
    );

  const gm = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: graph.modelTopology as unknown as tf.io.ModelArtifacts['modelTopology'],
      weightSpecs,
      weightData,
    }),
  );
  try {
    // One probe run on a blank image: strides and channels of every tap, and the class count.
    const S = cfg.inputSize;
    const neckS = Object.keys(nodes.neck).map(Number);
    const bbS = Object.keys(nodes.backbone).map(Number);
    const names = [...neckS.map((s) => nodes.neck[s]), ...bbS.map((s) => nodes.backbone[s]), nodes.heatmap];
    const outs = tf.tidy(() => model(gm, { [nodes.input]: tf.zeros([1, S, S, 3]) }, names));
    const shapes = outs.map((t) => t.shape as number[]);
    tf.dispose(outs);
    const strideOf = (i: number): number => {
      const [, h, w] = shapes[i];
      if (shapes[i].length !== 4 || S % h !== 0 || h !== w)
        throw new ModelFormatError(
          'ERR_MODEL_FORMAT',
          `teacher '${cfg.name}': node '${names[i]}' has shape [${shapes[i].join(', ')}], not a square NHWC map dividing ${S}`,
        );
      return S / h;
    };
    const check = (i: number, role: string, stride: number): void => {
      if (strideOf(i) !== stride)
        throw new ConfigError(
          'ERR_CONFIG_INVALID',
          `teacher '${cfg.name}': ${role} node '${names[i]}' has stride ${strideOf(i)}, configured as ${stride}`,
        );
    };
    neckS.forEach((s, i) => check(i, 'neck', s));
    bbS.forEach((s, i) => check(neckS.length + i, 'backbone', s));
    const hi = names.length - 1;
    const classMap = resolveClassMap(
      cfg.classes,
      opts.classes,
      shapes[hi][3],
      `teacher '${cfg.name}' classes`,
    );
    hash.update(JSON.stringify({ S, classes: classMap, nodes }));
    return new CenterNetTeacher(
      cfg.name,
      `centernet:${hash.digest('hex').slice(0, 16)}`,
      gm,
      nodes,
      classMap,
      {
        inputSize: S,
        neck: new Map(neckS.map((s, i) => [s, shapes[i][3]])),
        backbone: new Map(bbS.map((s, i) => [s, shapes[neckS.length + i][3]])),
        headStride: strideOf(hi),
      },
    );
  } catch (e) {
    gm.dispose();
    throw e;
  }
}
