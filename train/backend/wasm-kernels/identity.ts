/**
 * `Identity` for the wasm backend, replacing the built-in one, which copies the data. tfjs calls
 * Identity (through `engine.clone`) for every tensor it saves for the backward pass, so the copy
 * cost ~400 calls and ~50 ms per profiled training step and doubled the memory those tensors
 * hold. Tensors are immutable (a variable's `assign` swaps its data id), so sharing the data with
 * a bumped ref count, as the cpu backend and wasm's own Reshape do, is equivalent.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { builtInWasmKernel } from './kernel-scope.js';

/** Kernel function: `x` itself under a new tensor (shared data, ref-counted). */
export function identity(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype === 'string')
    return builtInWasmKernel('Identity').kernelFunc(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  (args.backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Registered by {@link registerWasmGradKernels} in place of the built-in kernel. */
export const identityConfig: tf.KernelConfig = {
  kernelName: 'Identity',
  backendName: 'wasm',
  kernelFunc: identity as unknown as tf.KernelFunc,
};
