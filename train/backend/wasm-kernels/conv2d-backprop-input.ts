/**
 * `Conv2DBackpropInput` for the wasm backend, replacing the built-in one.
 *
 * The built-in kernel is a scalar C++ loop (about 27% of a profiled training step). Here
 * `dx = conv2d(dilate(dy, stride), W')` with `W'[kh, kw, co, ci] = W[fh-1-kh, fw-1-kw, ci, co]`
 * (spatially flipped, in/out transposed), stride 1 and "full" explicit padding, which runs on
 * XNNPACK's forward convolution (a plain GEMM for 1x1 filters). Measurements: see
 * `train/backend/README.md`.
 */
import * as tf from '@tensorflow/tfjs';
import { convGeometry, type ConvAttrs } from './conv-geometry.js';
import { dilateDy } from './dilated-dy.js';
import { withScope } from './kernel-scope.js';

interface Attrs extends ConvAttrs {
  inputShape: [number, number, number, number];
}

/** Kernel function: inputs `dy` `[b, oh, ow, co]`, `filter` `[fh, fw, ci, co]`; returns `[b, h, w, ci]`. */
export function conv2DBackpropInput(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo {
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as Attrs;
  const g = convGeometry('Conv2DBackpropInput', attrs.inputShape, filter.shape, attrs, false);
  return withScope(args.backend, (scope) => {
    const flipped =
      g.filterHeight === 1 && g.filterWidth === 1
        ? filter
        : scope.run('Reverse', { x: filter }, { dims: [0, 1] });
    const w = scope.run('Transpose', { x: flipped }, { perm: [0, 1, 3, 2] });
    const d = dilateDy(scope, dy, g);
    return scope.run(
      'Conv2D',
      { x: d.dy, filter: w },
      { strides: [1, 1], pad: d.pad, dilations: [1, 1], dataFormat: 'NHWC', dimRoundingMode: undefined },
    );
  });
}

/** Registered by {@link registerWasmGradKernels} in place of the built-in kernel. */
export const conv2DBackpropInputConfig: tf.KernelConfig = {
  kernelName: 'Conv2DBackpropInput',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput as unknown as tf.KernelFunc,
};
