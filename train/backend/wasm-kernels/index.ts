/**
 * edgekd's wasm kernels: the gradient kernels tfjs-backend-wasm 4.22 lacks, plus replacements
 * for built-ins that dominate a training step. Each is checked against the cpu backend in
 * `test/train/backend/`.
 */
import { batchNormActConfig, batchNormActGradConfig } from './batch-norm-act.js';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { conv2DBackpropInputConfig } from './conv2d-backprop-input.js';
import { depthwiseConv2dNativeBackpropFilterConfig } from './depthwise-conv2d-native-backprop-filter.js';
import { depthwiseConv2dNativeBackpropInputConfig } from './depthwise-conv2d-native-backprop-input.js';
import { identityConfig } from './identity.js';
import { overrideWasmKernel } from './kernel-scope.js';
import { meanConfig, sumConfig } from './leading-axes-reduce.js';
import { tileConfig } from './tile.js';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.js';

/** Every kernel edgekd registers for wasm, in registration order. */
export const WASM_KERNELS = [
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
  unsortedSegmentSumConfig,
  sumConfig,
  meanConfig,
  tileConfig,
  identityConfig,
  batchNormActConfig,
  batchNormActGradConfig,
] as const;

/** What {@link registerWasmGradKernels} did, by kernel name. */
export interface WasmKernelRegistration {
  /** Kernels wasm lacked. */
  added: string[];
  /** Built-in kernels replaced by faster ones. */
  replaced: string[];
}

/**
 * Registers edgekd's wasm kernels (idempotent; safe in every worker_thread, each of which has its
 * own registry). Call it after `tf.setBackend('wasm')` or before: replaced built-ins keep their
 * setup either way.
 *
 * @returns the kernels added and replaced (both lists are full on a repeated call).
 */
export function registerWasmGradKernels(): WasmKernelRegistration {
  const added: string[] = [];
  const replaced: string[] = [];
  for (const config of WASM_KERNELS) {
    const r = overrideWasmKernel(config);
    (r === 'replaced' || (r === 'kept' && BUILT_IN_NAMES.has(config.kernelName)) ? replaced : added).push(
      config.kernelName,
    );
  }
  return { added, replaced };
}

const BUILT_IN_NAMES = new Set(['Conv2DBackpropInput', 'Sum', 'Mean', 'Tile', 'Identity']);

export { builtInWasmKernel, overrideWasmKernel, KernelScope } from './kernel-scope.js';
