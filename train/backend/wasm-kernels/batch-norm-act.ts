/**
 * Training-mode BatchNorm fused with its activation, forward and backward, for the wasm backend
 * (kernels `EdgekdBatchNormAct` / `EdgekdBatchNormActGrad`, which `models/arch/batch-norm.ts`
 * uses when they are registered for the active backend).
 *
 * Through plain ops, one BN + ReLU6 cost ~10 full passes over the map forward and ~12 backward
 * (reshape, mean, sub, square, mean, mul, add; the ReLU6 gradient's LessEqual/Step/Cast/Multiply
 * alone was ~9% of a step). Here: forward = column sum, centred column sum of squares, one fused
 * normalise+activate pass; backward = one pass for `sum(d)` and `sum(d * xhat)` and one for `dx`,
 * where `d` is `dy` masked by the activation's gradient recomputed from `x` (so the BN output is
 * never stored). Column sums run in chunks of rows in float32 SIMD and are added in float64.
 * Same formulas as `batchNormTrain` (see batch-norm.ts); requires C % 4 == 0.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BN_ACT_GRAD_KERNEL, BN_ACT_KERNEL, type BnActivation } from '../../../models/arch/batch-norm.js';
import { HeapScratch, ptrOf, simdLoops } from '../wasm-simd/simd-module.js';

/** Rows per float32 partial sum (then accumulated in float64). */
const CHUNK = 256;

function geometry(kernel: string, x: tf.TensorInfo): { c: number; rows: number; cb: number } {
  const c = x.shape[x.shape.length - 1];
  if (x.dtype !== 'float32' || c % 4 !== 0) {
    throw new RangeError(
      `${kernel}: 'x' must be float32 with channels a multiple of 4, got ${x.dtype} [${x.shape.join(', ')}]`,
    );
  }
  return { c, rows: tf.util.sizeFromShape(x.shape) / c, cb: c * 4 };
}

/** Column sums of a `[rows, C]` region in chunks: `step(rowOffsetBytes, nRows, accPtr)` adds into acc. */
function chunkedSum(
  scratch: HeapScratch,
  rows: number,
  c: number,
  cb: number,
  step: (off: number, n: number, acc: number) => void,
): Float64Array {
  const total = new Float64Array(c);
  const acc = scratch.alloc(c);
  for (let r0 = 0; r0 < rows; r0 += CHUNK) {
    scratch.view(acc, c).fill(0);
    step(r0 * cb, Math.min(CHUNK, rows - r0), acc);
    const v = scratch.view(acc, c);
    for (let i = 0; i < c; i++) total[i] += v[i];
  }
  return total;
}

/**
 * Kernel function: inputs `x` `[..., C]`, `gamma`, `beta` `[C]`; attrs `epsilon`, `activation`.
 * @returns `[y, mean, variance, invStd]` (variance biased, invStd = rsqrt(variance + epsilon)).
 */
export function batchNormAct(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo[] {
  const { x, gamma, beta } = args.inputs as Record<'x' | 'gamma' | 'beta', tf.TensorInfo>;
  const { epsilon, activation } = args.attrs as { epsilon: number; activation: BnActivation };
  const backend = args.backend as BackendWasm;
  const { c, rows, cb } = geometry(BN_ACT_KERNEL, x);
  const loops = simdLoops(backend);
  const y = backend.makeOutput(x.shape, 'float32');
  const mean = backend.makeOutput([c], 'float32');
  const variance = backend.makeOutput([c], 'float32');
  const invStd = backend.makeOutput([c], 'float32');
  const scratch = new HeapScratch(backend);
  try {
    const xp = ptrOf(backend, x);
    const sum = chunkedSum(scratch, rows, c, cb, (off, n, acc) => loops.colSum(xp + off, acc, n, cb));
    const meanP = ptrOf(backend, mean);
    scratch.view(meanP, c).set(sum.map((s) => s / rows));
    const sq = chunkedSum(scratch, rows, c, cb, (off, n, acc) => loops.colSq(xp + off, meanP, acc, n, cb));
    const varV = scratch.view(ptrOf(backend, variance), c);
    const invV = scratch.view(ptrOf(backend, invStd), c);
    for (let i = 0; i < c; i++) {
      varV[i] = sq[i] / rows;
      invV[i] = 1 / Math.sqrt(Math.fround(varV[i] + epsilon));
    }
    loops.bnFwd[activation](
      xp,
      meanP,
      ptrOf(backend, invStd),
      ptrOf(backend, gamma),
      ptrOf(backend, beta),
      ptrOf(backend, y),
      rows,
      cb,
    );
  } finally {
    scratch.dispose();
  }
  return [y, mean, variance, invStd];
}

/**
 * Kernel function: inputs `dy`, `x` `[..., C]`, `gamma`, `beta`, `mean`, `invStd` `[C]`; attr
 * `activation`. @returns `[dx, dgamma, dbeta]`.
 */
export function batchNormActGrad(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo[] {
  const t = args.inputs as Record<'dy' | 'x' | 'gamma' | 'beta' | 'mean' | 'invStd', tf.TensorInfo>;
  const { activation } = args.attrs as { activation: BnActivation };
  const backend = args.backend as BackendWasm;
  const { c, rows, cb } = geometry(BN_ACT_GRAD_KERNEL, t.x);
  const loops = simdLoops(backend);
  const dx = backend.makeOutput(t.x.shape, 'float32');
  const dgamma = backend.makeOutput([c], 'float32');
  const dbeta = backend.makeOutput([c], 'float32');
  const scratch = new HeapScratch(backend);
  try {
    const [xp, dyp, mp, ip, gp, bp] = [t.x, t.dy, t.mean, t.invStd, t.gamma, t.beta].map((q) =>
      ptrOf(backend, q),
    );
    const sdyx = scratch.alloc(c);
    const totalDyx = new Float64Array(c);
    const sumDy = chunkedSum(scratch, rows, c, cb, (off, n, acc) => {
      scratch.view(sdyx, c).fill(0);
      loops.bnBwdSum[activation](xp + off, dyp + off, mp, ip, gp, bp, acc, sdyx, n, cb);
      const v = scratch.view(sdyx, c);
      for (let i = 0; i < c; i++) totalDyx[i] += v[i];
    });
    const g = scratch.view(gp, c);
    const inv = scratch.view(ip, c);
    const k1 = Float32Array.from(sumDy, (s) => s / rows);
    const k2 = Float32Array.from(totalDyx, (s) => s / rows);
    const k3 = Float32Array.from(g, (gi, i) => gi * inv[i]);
    const [k1p, k2p, k3p] = [k1, k2, k3].map((k) => scratch.from(k));
    scratch.view(ptrOf(backend, dgamma), c).set(totalDyx);
    scratch.view(ptrOf(backend, dbeta), c).set(sumDy);
    loops.bnBwdDx[activation](xp, dyp, mp, ip, gp, bp, k1p, k2p, k3p, ptrOf(backend, dx), rows, cb);
  } finally {
    scratch.dispose();
  }
  return [dx, dgamma, dbeta];
}

/** Registered by {@link registerWasmGradKernels}. */
export const batchNormActConfig: tf.KernelConfig = {
  kernelName: BN_ACT_KERNEL,
  backendName: 'wasm',
  kernelFunc: batchNormAct as unknown as tf.KernelFunc,
};

/** Registered by {@link registerWasmGradKernels}. */
export const batchNormActGradConfig: tf.KernelConfig = {
  kernelName: BN_ACT_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: batchNormActGrad as unknown as tf.KernelFunc,
};
