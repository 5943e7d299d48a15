/**
 * `DepthwiseConv2dNativeBackpropInput` for the wasm backend (tfjs-backend-wasm 4.22 has none).
 *
 * `dx = depthwiseConv2d(dilate(dy, stride), flip(W))`, stride 1, "full" explicit padding, on
 * XNNPACK's depthwise convolution. With a channel multiplier `m > 1` the flipped filter is laid out
 * block-diagonally as a `[fh, fw, c*m, c]` regular convolution (rare in detector backbones).
 */
import * as tf from '@tensorflow/tfjs';
import { convGeometry, type ConvAttrs } from './conv-geometry.js';
import { dilateDy } from './dilated-dy.js';
import { withScope } from './kernel-scope.js';

interface Attrs extends ConvAttrs {
  inputShape: [number, number, number, number];
}

/** Kernel function: inputs `dy` `[b, oh, ow, c*m]`, `filter` `[fh, fw, c, m]`; returns `[b, h, w, c]`. */
export function depthwiseConv2dNativeBackpropInput(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo {
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as Attrs;
  const g = convGeometry('DepthwiseConv2dNativeBackpropInput', attrs.inputShape, filter.shape, attrs, true);
  const [fh, fw, c, m] = filter.shape;
  return withScope(args.backend, (scope) => {
    const flipped = fh === 1 && fw === 1 ? filter : scope.run('Reverse', { x: filter }, { dims: [0, 1] });
    const d = dilateDy(scope, dy, g);
    const convAttrs = {
      strides: [1, 1],
      pad: d.pad,
      dilations: [1, 1],
      dataFormat: 'NHWC',
      dimRoundingMode: undefined,
    };
    if (m === 1) return scope.run('DepthwiseConv2dNative', { x: d.dy, filter: flipped }, convAttrs);
    const mask = new Float32Array(c * m * c);
    for (let ch = 0; ch < c; ch++) for (let q = 0; q < m; q++) mask[(ch * m + q) * c + ch] = 1;
    const column = scope.reshape(flipped, [fh, fw, c * m, 1]);
    const blockDiag = scope.run('Multiply', { a: column, b: scope.constant([1, 1, c * m, c], mask) });
    return scope.run('Conv2D', { x: d.dy, filter: blockDiag }, convAttrs);
  });
}

/** Registered by {@link registerWasmGradKernels}. */
export const depthwiseConv2dNativeBackpropInputConfig: tf.KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropInput as unknown as tf.KernelFunc,
};
