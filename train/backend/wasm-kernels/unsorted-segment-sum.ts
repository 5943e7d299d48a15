/**
 * `UnsortedSegmentSum` for the wasm backend (tfjs-backend-wasm 4.22 has none, so `tf.gather`
 * had no gradient there). `out[s, ...] = sum over i with segmentIds[i] == s of x[i, ...]`, as the
 * product `oneHot(segmentIds)^T @ x` on XNNPACK (the one-hot matrix is built on the host).
 * Segment ids outside `[0, numSegments)` are dropped, as in TensorFlow.
 */
import * as tf from '@tensorflow/tfjs';
import { withScope } from './kernel-scope.js';

/** Kernel function: inputs `x` `[n, ...]` float32, `segmentIds` `[n]` int32; returns `[numSegments, ...]`. */
export function unsortedSegmentSum(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = args.attrs as { numSegments: number };
  if (x.dtype !== 'float32') {
    throw new TypeError(`UnsortedSegmentSum on wasm: 'x' must be float32, got ${x.dtype}`);
  }
  const n = tf.util.sizeFromShape(segmentIds.shape);
  const rest = x.shape.slice(segmentIds.shape.length);
  const cols = tf.util.sizeFromShape(rest);
  return withScope(args.backend, (scope) => {
    const ids = scope.backend.typedArrayFromHeap(segmentIds);
    const oneHotT = new Float32Array(numSegments * n);
    for (let i = 0; i < n; i++) {
      const s = ids[i];
      if (s >= 0 && s < numSegments) oneHotT[s * n + i] = 1;
    }
    const r = scope.matMul(scope.constant([numSegments, n], oneHotT), scope.reshape(x, [n, cols]));
    return scope.reshape(r, [numSegments, ...rest]);
  });
}

/** Registered by {@link registerWasmGradKernels}. */
export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
};
