/** Test helpers: run one kernel on a named backend from host data, compare with a tolerance. */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmGradKernels } from '../../../train/backend/wasm-kernels/index.js';

/** Host-side tensor. */
export interface HostTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

let ready: Promise<void> | undefined;

/** Initialises cpu and wasm once and registers edgekd's wasm kernels. */
export function setupBackends(): Promise<void> {
  ready ??= (async () => {
    await tf.setBackend('cpu');
    await tf.setBackend('wasm');
    registerWasmGradKernels();
  })();
  return ready;
}

/** Seeded uniform random values in [-1, 1). */
export function randomHost(shape: number[], seed: number): HostTensor {
  let s = seed >>> 0 || 1;
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return { shape, data };
}

/** Runs kernel `name` on `backend` and returns its output values and shape. */
export async function runKernelOn(
  backend: 'cpu' | 'wasm',
  name: string,
  inputs: Record<string, HostTensor>,
  attrs: Record<string, unknown>,
): Promise<HostTensor> {
  await tf.setBackend(backend);
  const ts: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(inputs))
    ts[k] = tf.tensor(v.data, v.shape, v.data instanceof Int32Array ? 'int32' : 'float32');
  const out = tf.engine().runKernel(name, ts as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;
  const data = (await out.data()) as Float32Array;
  const shape = out.shape;
  out.dispose();
  for (const t of Object.values(ts)) t.dispose();
  return { shape, data };
}

/** Max |a - b| divided by max |b| (1 when b is all zeros). */
export function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let mag = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    mag = Math.max(mag, Math.abs(b[i]));
  }
  return diff / (mag || 1);
}
