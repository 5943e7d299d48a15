/**
 * The student network as a small graph IR built from the model spec alone. One IR feeds
 * three consumers so they can never disagree: the tfjs executor (training), the MAC/param
 * counter (`edgekd model info`) and the ONNX writer (export). No tfjs here.
 *
 * Layout is NHWC throughout. Convolutions use TensorFlow 'same' padding (for stride 2 on an
 * even input that pads 0 before and 1 after); {@link samePads} gives the explicit pads.
 */
import seedrandom from 'seedrandom';
import type { ModelSpec } from '../core/spec.js';
import { LEVEL_STRIDES } from '../core/spec.js';

export type TapName = 'C2' | 'C3' | 'C4' | 'C5' | 'P2' | 'P3' | 'P4' | 'P5';
export const TAP_NAMES: readonly TapName[] = ['C2', 'C3', 'C4', 'C5', 'P2', 'P3', 'P4', 'P5'];

/** Shape of a node's output for one image: height/width as input size divided by `stride`. */
export interface NodeShape {
  stride: number;
  channels: number;
}

interface NodeBase {
  /** Unique name; also the name of the node's output tensor. */
  name: string;
  out: NodeShape;
}

export type GraphNode =
  | (NodeBase & {
      op: 'conv';
      input: string;
      kernel: number;
      stride: 1 | 2;
      inChannels: number;
      outChannels: number;
      /** Depthwise (groups = inChannels, channel multiplier 1) when true. */
      depthwise: boolean;
      bias: boolean;
    })
  | (NodeBase & { op: 'bn'; input: string; channels: number; epsilon: number })
  | (NodeBase & { op: 'relu' | 'relu6'; input: string })
  | (NodeBase & { op: 'add'; inputs: [string, string] })
  | (NodeBase & { op: 'upsample2x'; input: string });

export type ConvNode = Extract<GraphNode, { op: 'conv' }>;
export type BnNode = Extract<GraphNode, { op: 'bn' }>;

/** How a parameter is initialised. */
export type ParamInit =
  | { kind: 'he-normal'; fanIn: number }
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number };

/** One parameter tensor of the network. Kernels: conv [k, k, in, out], depthwise [k, k, in, 1]. */
export interface ParamSpec {
  name: string;
  shape: number[];
  init: ParamInit;
  /** False for batch-norm moving statistics. */
  trainable: boolean;
}

export interface ModelGraph {
  /** Name of the graph input (NHWC, spec.input.height x width x 3). */
  input: 'image';
  nodes: GraphNode[];
  /** Feature taps for distillation: tap name -> node name. */
  taps: Record<TapName, string>;
  /** Raw head outputs (no activation): heatmap logits [C], size [2] (log-stride), offset [2]. */
  outputs: { heatmap: string; size: string; offset: string };
  params: ParamSpec[];
}

export const BN_EPSILON = 1e-3;

class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly params: ParamSpec[] = [];
  private readonly shapes = new Map<string, NodeShape>([['image', { stride: 1, channels: 3 }]]);

  shape(name: string): NodeShape {
    const s = this.shapes.get(name);
    if (!s) throw new Error(`graph builder: unknown node '${name}'`);
    return s;
  }

  private push(node: GraphNode): string {
    if (this.shapes.has(node.name)) throw new Error(`graph builder: duplicate node '${node.name}'`);
    this.nodes.push(node);
    this.shapes.set(node.name, node.out);
    return node.name;
  }

  conv(
    name: string,
    input: string,
    outChannels: number,
    kernel: number,
    stride: 1 | 2,
    opts: { depthwise?: boolean; bias?: boolean } = {},
  ): string {
    const inShape = this.shape(input);
    const depthwise = opts.depthwise ?? false;
    const bias = opts.bias ?? false;
    if (depthwise && outChannels !== inShape.channels)
      throw new Error(`graph builder: depthwise '${name}' must keep channels`);
    const fanIn = kernel * kernel * (depthwise ? 1 : inShape.channels);
    this.params.push({
      name: `${name}.weight`,
      shape: [kernel, kernel, inShape.channels, depthwise ? 1 : outChannels],
      init: { kind: 'he-normal', fanIn },
      trainable: true,
    });
    if (bias)
      this.params.push({
        name: `${name}.bias`,
        shape: [outChannels],
        init: { kind: 'zeros' },
        trainable: true,
      });
    return this.push({
      op: 'conv',
      name,
      input,
      kernel,
      stride,
      inChannels: inShape.channels,
      outChannels,
      depthwise,
      bias,
      out: { stride: inShape.stride * stride, channels: outChannels },
    });
  }

  bn(name: string, input: string): string {
    const s = this.shape(input);
    const c = s.channels;
    this.params.push(
      { name: `${name}.gamma`, shape: [c], init: { kind: 'ones' }, trainable: true },
      { name: `${name}.beta`, shape: [c], init: { kind: 'zeros' }, trainable: true },
      { name: `${name}.movingMean`, shape: [c], init: { kind: 'zeros' }, trainable: false },
      { name: `${name}.movingVariance`, shape: [c], init: { kind: 'ones' }, trainable: false },
    );
    return this.push({ op: 'bn', name, input, channels: c, epsilon: BN_EPSILON, out: s });
  }

  act(name: string, input: string, op: 'relu' | 'relu6'): string {
    return this.push({ op, name, input, out: this.shape(input) });
  }

  add(name: string, a: string, b: string): string {
    const sa = this.shape(a);
    const sb = this.shape(b);
    if (sa.stride !== sb.stride || sa.channels !== sb.channels)
      throw new Error(`graph builder: add '${name}' shape mismatch`);
    return this.push({ op: 'add', name, inputs: [a, b], out: sa });
  }

  upsample(name: string, input: string): string {
    const s = this.shape(input);
    return this.push({ op: 'upsample2x', name, input, out: { stride: s.stride / 2, channels: s.channels } });
  }

  /** conv (no bias) + BN + activation. */
  convBnAct(
    name: string,
    input: string,
    out: number,
    k: number,
    stride: 1 | 2,
    act: 'relu' | 'relu6' | null,
    depthwise = false,
  ): string {
    const c = this.conv(`${name}.conv`, input, out, k, stride, { depthwise });
    const b = this.bn(`${name}.bn`, c);
    return act ? this.act(`${name}.${act}`, b, act) : b;
  }
}

/**
 * MobileNetV2 inverted residual: 1x1 expand (skipped when expansion is 1), 3x3 depthwise
 * (carries the stride), 1x1 linear projection; identity shortcut when shapes allow.
 */
function invertedResidual(
  g: GraphBuilder,
  name: string,
  input: string,
  out: number,
  stride: 1 | 2,
  expansion: number,
): string {
  const inC = g.shape(input).channels;
  const hidden = inC * expansion;
  let x = input;
  if (expansion !== 1) x = g.convBnAct(`${name}.expand`, x, hidden, 1, 1, 'relu6');
  x = g.convBnAct(`${name}.dw`, x, hidden, 3, stride, 'relu6', true);
  x = g.convBnAct(`${name}.project`, x, out, 1, 1, null);
  return stride === 1 && inC === out ? g.add(`${name}.add`, input, x) : x;
}

/** Depthwise-separable 3x3 conv + BN + ReLU: the cheap smoothing/head block. */
function separable(g: GraphBuilder, name: string, input: string, out: number): string {
  const c = g.shape(input).channels;
  const dw = g.convBnAct(`${name}.dw`, input, c, 3, 1, 'relu', true);
  return g.convBnAct(`${name}.pw`, dw, out, 1, 1, 'relu');
}

/**
 * Builds the CenterNet-FPN graph of a spec.
 * @param spec - validated model spec
 * @returns the graph IR with its parameter list
 */
export function buildGraph(spec: ModelSpec): ModelGraph {
  const g = new GraphBuilder();
  const bb = spec.backbone;
  let x = g.convBnAct('backbone.stem', 'image', bb.stemChannels, 3, 2, 'relu6');
  const cTaps: string[] = [];
  bb.stages.forEach((stage, i) => {
    for (let d = 0; d < stage.depth; d++) {
      x = invertedResidual(
        g,
        `backbone.c${i + 2}.block${d}`,
        x,
        stage.channels,
        d === 0 ? 2 : 1,
        stage.expansion,
      );
    }
    cTaps.push(x);
  });

  // FPN top-down: lateral 1x1 (with bias), nearest 2x upsample, add, separable 3x3 smoothing.
  const nc = spec.neck.channels;
  const laterals = cTaps.map((c, i) => g.conv(`neck.lateral${i + 2}`, c, nc, 1, 1, { bias: true }));
  const pTaps: string[] = new Array(4);
  let top = laterals[3];
  pTaps[3] = separable(g, 'neck.smooth5', top, nc);
  for (let i = 2; i >= 0; i--) {
    const up = g.upsample(`neck.up${i + 2}`, top);
    top = g.add(`neck.merge${i + 2}`, laterals[i], up);
    pTaps[i] = separable(g, `neck.smooth${i + 2}`, top, nc);
  }

  // Head on P2: one separable block then a 1x1 projection per branch.
  const p = pTaps[spec.head.level - 2];
  const hc = spec.head.channels;
  const branch = (name: string, outC: number): string => {
    const h = separable(g, `head.${name}.block`, p, hc);
    return g.conv(`head.${name}.out`, h, outC, 1, 1, { bias: true });
  };
  const heatmap = branch('heatmap', spec.classes.length);
  const size = branch('size', 2);
  const offset = branch('offset', 2);
  // Focal-loss prior: start every cell at heatmapPriorProb so early loss is not dominated by negatives.
  const prior = spec.head.heatmapPriorProb;
  const hb = g.params.find((q) => q.name === `${heatmap}.bias`);
  if (hb) hb.init = { kind: 'constant', value: Math.log(prior / (1 - prior)) };

  const taps = {
    C2: cTaps[0],
    C3: cTaps[1],
    C4: cTaps[2],
    C5: cTaps[3],
    P2: pTaps[0],
    P3: pTaps[1],
    P4: pTaps[2],
    P5: pTaps[3],
  } satisfies Record<TapName, string>;
  for (const [lvl, name] of Object.entries(taps)) {
    const want = LEVEL_STRIDES[Number(lvl.slice(1)) as 2 | 3 | 4 | 5];
    if (g.shape(name).stride !== want)
      throw new Error(`graph builder: tap ${lvl} has stride ${g.shape(name).stride}, want ${want}`);
  }
  return { input: 'image', nodes: g.nodes, taps, outputs: { heatmap, size, offset }, params: g.params };
}

/**
 * TensorFlow 'same' padding for one spatial axis: returns [before, after].
 * @param inSize - input extent in pixels
 */
export function samePads(inSize: number, kernel: number, stride: number): [number, number] {
  const out = Math.ceil(inSize / stride);
  const total = Math.max((out - 1) * stride + kernel - inSize, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

export interface GraphCost {
  /** Trainable parameter count (BN moving stats excluded). */
  params: number;
  /** Multiply-accumulates for one image at the spec's input size (convs only). */
  macs: number;
  /** MACs by top-level part: backbone, neck, head. */
  macsByPart: Record<string, number>;
  /** Feature-tap shapes [h, w, c] at the spec's input size. */
  tapShapes: Record<TapName, [number, number, number]>;
}

/** Counts params and MACs of a graph at the spec's input size. */
export function graphCost(spec: ModelSpec, graph: ModelGraph = buildGraph(spec)): GraphCost {
  const H = spec.input.height;
  const W = spec.input.width;
  let macs = 0;
  const macsByPart: Record<string, number> = {};
  for (const n of graph.nodes) {
    if (n.op !== 'conv') continue;
    const oh = Math.ceil(H / n.out.stride);
    const ow = Math.ceil(W / n.out.stride);
    const perPixel = n.kernel * n.kernel * (n.depthwise ? n.outChannels : n.inChannels * n.outChannels);
    const m = oh * ow * perPixel;
    macs += m;
    const part = n.name.split('.')[0];
    macsByPart[part] = (macsByPart[part] ?? 0) + m;
  }
  const params = graph.params
    .filter((p) => p.trainable)
    .reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const tapShapes = {} as Record<TapName, [number, number, number]>;
  for (const t of TAP_NAMES) {
    const n = byName.get(graph.taps[t])!;
    tapShapes[t] = [Math.ceil(H / n.out.stride), Math.ceil(W / n.out.stride), n.out.channels];
  }
  return { params, macs, macsByPart, tapShapes };
}

/** Gaussian sample from a seeded uniform source (Box-Muller). */
function gaussian(rng: () => number): number {
  const u = Math.max(rng(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

function initValues(p: ParamSpec, rng: () => number): Float32Array {
  const size = p.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  switch (p.init.kind) {
    case 'zeros':
      break;
    case 'ones':
      out.fill(1);
      break;
    case 'constant':
      out.fill(p.init.value);
      break;
    case 'he-normal': {
      const std = Math.sqrt(2 / p.init.fanIn);
      for (let i = 0; i < size; i++) out[i] = gaussian(rng) * std;
      break;
    }
  }
  return out;
}

/**
 * Initial values of every parameter, deterministic for a seed (plain arrays, no tfjs, so the
 * trainer's main thread can initialise without a backend).
 */
export function initialWeights(graph: ModelGraph, seed: number): Map<string, Float32Array> {
  const rng = seedrandom(`edgekd-init-${seed}`);
  return new Map(graph.params.map((p) => [p.name, initValues(p, rng)]));
}
