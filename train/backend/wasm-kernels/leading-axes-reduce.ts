/**
 * Reductions over leading axes (`sum(x, [0, 1, 2])` of an NHWC map: bias and BatchNorm
 * gradients, batch moments) as one product `x[P, C]^T @ ones[P, 1]` (wasm's transposed-A matrix
 * product streams over `x`). wasm's own Sum/Mean first transpose the reduced axes to the end:
 * 8.9 ms against 4.3 ms for a fresh 160x160x96 map. (`ones[1, P] @ x` on XNNPACK is 20 ms: it packs
 * `x` with a transposing copy; wasm caches that per tensor, so micro-benchmarks that reuse one
 * tensor are misleading.)
 */
import * as tf from '@tensorflow/tfjs';
import { builtInWasmKernel, withScope } from './kernel-scope.js';

interface ReduceAttrs {
  axis: number | number[];
  keepDims: boolean;
}

/**
 * Number of leading axes `axis` reduces, or 0 when it is not a leading prefix `[0, ..., k-1]`
 * (then the built-in kernel is used).
 */
export function leadingAxesCount(axis: number | number[], shape: number[]): number {
  const axes = [...tf.util.parseAxisParam(axis, shape)].sort((a, b) => a - b);
  return axes.every((a, i) => a === i) ? axes.length : 0;
}

function makeReduce(kernelName: 'Sum' | 'Mean') {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: unknown }): tf.TensorInfo => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = args.attrs as ReduceAttrs;
    const k = x.dtype === 'float32' ? leadingAxesCount(axis, x.shape) : 0;
    const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
    if (k === 0 || rows < 2) {
      return builtInWasmKernel(kernelName).kernelFunc(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    }
    const rest = x.shape.slice(k);
    const cols = tf.util.sizeFromShape(rest);
    const outShape = keepDims ? [...x.shape.slice(0, k).map(() => 1), ...rest] : rest;
    return withScope(args.backend, (scope) => {
      const value = kernelName === 'Mean' ? 1 / rows : 1;
      const ones = scope.run('Fill', {}, { shape: [rows, 1], value, dtype: 'float32' });
      const r = scope.run(
        'BatchMatMul',
        { a: scope.reshape(x, [rows, cols]), b: ones },
        { transposeA: true, transposeB: false },
      );
      return scope.reshape(r, outShape);
    });
  };
}

/** Replaces wasm's Sum: leading-axes float32 reductions via XNNPACK, the rest unchanged. */
export const sumConfig: tf.KernelConfig = {
  kernelName: 'Sum',
  backendName: 'wasm',
  kernelFunc: makeReduce('Sum') as unknown as tf.KernelFunc,
};

/** Replaces wasm's Mean: leading-axes float32 reductions via XNNPACK, the rest unchanged. */
export const meanConfig: tf.KernelConfig = {
  kernelName: 'Mean',
  backendName: 'wasm',
  kernelFunc: makeReduce('Mean') as unknown as tf.KernelFunc,
};
