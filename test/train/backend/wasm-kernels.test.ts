import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tileLayout } from '../../../train/backend/wasm-kernels/tile.js';
import { randomHost, relMaxDiff, runKernelOn, setupBackends, type HostTensor } from './kernel-harness.js';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  batch: number;
  size: [number, number];
  k: [number, number];
  stride: number;
  pad: Pad;
  cin: number;
  /** output channels (conv) or channel multiplier (depthwise) */
  cout: number;
}

const CASES: ConvCase[] = [
  { batch: 1, size: [9, 9], k: [3, 3], stride: 1, pad: 'same', cin: 5, cout: 7 },
  { batch: 3, size: [8, 10], k: [3, 3], stride: 2, pad: 'same', cin: 4, cout: 6 },
  { batch: 1, size: [11, 7], k: [3, 3], stride: 2, pad: 'valid', cin: 6, cout: 3 },
  { batch: 3, size: [7, 8], k: [3, 3], stride: 1, pad: 'valid', cin: 3, cout: 33 },
  { batch: 1, size: [12, 12], k: [1, 1], stride: 1, pad: 'same', cin: 16, cout: 8 },
  { batch: 3, size: [9, 6], k: [1, 1], stride: 2, pad: 'valid', cin: 8, cout: 16 },
  { batch: 1, size: [10, 9], k: [5, 3], stride: 2, pad: 'same', cin: 3, cout: 4 },
  {
    batch: 3,
    size: [6, 7],
    k: [3, 3],
    stride: 1,
    pad: [
      [0, 0],
      [2, 0],
      [1, 2],
      [0, 0],
    ],
    cin: 4,
    cout: 5,
  },
  { batch: 1, size: [9, 9], k: [3, 3], stride: 3, pad: 'same', cin: 2, cout: 3 },
  // SIMD paths (channels multiples of 4): 4x16 and 4-wide register tiles, contiguous 1x1 rows,
  // strided/padded tap rows, and the transposed path for 2-channel heads.
  { batch: 2, size: [9, 11], k: [1, 1], stride: 1, pad: 'same', cin: 24, cout: 40 },
  { batch: 2, size: [10, 9], k: [3, 3], stride: 2, pad: 'same', cin: 12, cout: 20 },
  { batch: 2, size: [7, 6], k: [1, 1], stride: 1, pad: 'valid', cin: 20, cout: 2 },
  { batch: 2, size: [23, 21], k: [1, 1], stride: 1, pad: 'valid', cin: 8, cout: 16 },
];

function outSize(n: number, k: number, s: number, pad: Pad, axis: 0 | 1): number {
  if (pad === 'same') return Math.ceil(n / s);
  if (pad === 'valid') return Math.ceil((n - k + 1) / s);
  const [lo, hi] = pad[axis + 1];
  return Math.floor((n + lo + hi - k) / s) + 1;
}

function label(c: ConvCase): string {
  return `b${c.batch} ${c.size.join('x')} k${c.k.join('x')} s${c.stride} ${typeof c.pad === 'string' ? c.pad : 'explicit'} ${c.cin}->${c.cout}`;
}

async function compare(
  name: string,
  inputs: Record<string, HostTensor>,
  attrs: Record<string, unknown>,
): Promise<void> {
  const want = await runKernelOn('cpu', name, inputs, attrs);
  const got = await runKernelOn('wasm', name, inputs, attrs);
  assert.deepEqual(got.shape, want.shape);
  const d = relMaxDiff(got.data, want.data);
  assert.ok(d <= 1e-4, `${name}: relative max diff ${d}`);
}

describe('edgekd wasm kernels match the cpu backend', () => {
  before(setupBackends);

  for (const [i, c] of CASES.entries()) {
    const [h, w] = c.size;
    const oh = outSize(h, c.k[0], c.stride, c.pad, 0);
    const ow = outSize(w, c.k[1], c.stride, c.pad, 1);
    const conv = {
      strides: [c.stride, c.stride],
      pad: c.pad,
      dataFormat: 'NHWC',
      dimRoundingMode: undefined,
    };
    const dw = { strides: [c.stride, c.stride], pad: c.pad, dilations: [1, 1], dimRoundingMode: undefined };
    const x = randomHost([c.batch, h, w, c.cin], 11 + i);
    const dyConv = randomHost([c.batch, oh, ow, c.cout], 23 + i);
    const wConv = randomHost([c.k[0], c.k[1], c.cin, c.cout], 37 + i);
    const m = c.cout > 3 ? 1 : c.cout; // depthwise channel multiplier: mostly 1, sometimes 2-3
    const dyDw = randomHost([c.batch, oh, ow, c.cin * m], 41 + i);
    const wDw = randomHost([c.k[0], c.k[1], c.cin, m], 53 + i);

    test(`Conv2DBackpropFilter ${label(c)}`, () =>
      compare('Conv2DBackpropFilter', { x, dy: dyConv }, { ...conv, filterShape: wConv.shape }));
    test(`Conv2DBackpropInput ${label(c)}`, () =>
      compare('Conv2DBackpropInput', { dy: dyConv, filter: wConv }, { ...conv, inputShape: x.shape }));
    test(`DepthwiseConv2dNativeBackpropFilter ${label(c)} m${m}`, () =>
      compare('DepthwiseConv2dNativeBackpropFilter', { x, dy: dyDw }, { ...dw, filterShape: wDw.shape }));
    test(`DepthwiseConv2dNativeBackpropInput ${label(c)} m${m}`, () =>
      compare(
        'DepthwiseConv2dNativeBackpropInput',
        { dy: dyDw, filter: wDw },
        { ...dw, inputShape: x.shape },
      ));
  }

  test('UnsortedSegmentSum (gather gradient), out-of-range ids dropped', () =>
    compare(
      'UnsortedSegmentSum',
      {
        x: randomHost([7, 3, 2], 5),
        segmentIds: { shape: [7], data: Int32Array.from([0, 4, 2, 0, 4, 9, -1]) },
      },
      { numSegments: 5 },
    ));

  for (const [shape, axis, keepDims] of [
    [[3, 6, 5, 4], [0, 1, 2], false],
    [[1, 7, 9, 3], [2, 0, 1], true],
    [[5, 4], 0, false],
    [[4, 5, 6], [1], false],
    [[4, 5, 6], -1, true],
    [[3, 4], [0, 1], false],
  ] as const) {
    for (const name of ['Sum', 'Mean']) {
      test(`${name} over ${JSON.stringify(axis)} of [${shape}] keepDims=${keepDims}`, () =>
        compare(name, { x: randomHost([...shape], 3) }, { axis, keepDims }));
    }
  }

  for (const [shape, reps] of [
    [
      [1, 1, 1, 5],
      [3, 4, 6, 1],
    ],
    [
      [2, 3],
      [2, 2],
    ],
    [
      [4, 1, 3],
      [1, 5, 1],
    ],
    [
      [2, 2],
      [1, 1],
    ],
  ] as const) {
    test(`Tile [${shape}] x [${reps}]`, () => compare('Tile', { x: randomHost([...shape], 9) }, { reps }));
  }

  test('tileLayout merges repeated and data axes', () => {
    assert.deepEqual(tileLayout([1, 1, 1, 5], [3, 4, 6, 1]), { full: [72, 5], xView: [1, 5] });
    assert.deepEqual(tileLayout([2, 3], [1, 1]), { full: [6], xView: [6] });
  });

  test('rejects dilation 2 with a RangeError naming the kernel', async () => {
    await setupBackends();
    await assert.rejects(
      runKernelOn(
        'wasm',
        'DepthwiseConv2dNativeBackpropFilter',
        { x: randomHost([1, 5, 5, 2], 1), dy: randomHost([1, 5, 5, 2], 2) },
        {
          strides: [1, 1],
          pad: 'same',
          dilations: [2, 2],
          filterShape: [3, 3, 2, 1],
        },
      ),
      { name: 'RangeError', message: /DepthwiseConv2dNativeBackpropFilter.*'dilations'/ },
    );
  });
});
