/**
 * Calling wasm kernels from inside an edgekd kernel.
 *
 * A tfjs kernel receives raw `TensorInfo`s and must return `TensorInfo`s the backend owns, so it
 * cannot use `tf.*` ops (those would create engine-tracked tensors inside a kernel). Instead, like
 * the wasm backend's own kernels, an edgekd kernel calls other registered kernel functions
 * directly and frees its intermediates with `backend.disposeData`. {@link KernelScope} does that
 * bookkeeping. It always calls the wasm backend's *built-in* implementation of a kernel, even when
 * edgekd overrides it (see {@link overrideWasmKernel}), so overrides never recurse into themselves.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type KernelConfig = tf.KernelConfig;
type TensorInfo = tf.TensorInfo;

/** Built-in wasm kernels that edgekd replaced, by kernel name. */
const BUILT_IN = new Map<string, KernelConfig>();
/** Kernel functions that edgekd registered (so re-registration is idempotent). */
const OURS = new WeakSet<object>();

/** Attribute values accepted by kernels (a loose version of tfjs' `NamedAttrMap`). */
export type KernelAttrs = Record<string, unknown>;

/**
 * Registers `config` for the wasm backend, replacing a built-in kernel of the same name if there
 * is one. The built-in stays reachable through {@link KernelScope} and keeps its `setupFunc`
 * (its `cwrap` bindings), so a wasm backend initialised later still sets it up.
 *
 * @param config - an edgekd kernel with `backendName: 'wasm'`.
 * @returns `'added'` for a kernel wasm lacked, `'replaced'` for an override, `'kept'` when the
 *   same edgekd kernel was already registered.
 */
export function overrideWasmKernel(config: KernelConfig): 'added' | 'replaced' | 'kept' {
  const current = tf.getKernel(config.kernelName, 'wasm') as KernelConfig | undefined;
  if (current !== undefined && OURS.has(current.kernelFunc)) return 'kept';
  OURS.add(config.kernelFunc);
  if (current === undefined) {
    tf.registerKernel(config);
    return 'added';
  }
  BUILT_IN.set(config.kernelName, current);
  tf.unregisterKernel(config.kernelName, 'wasm');
  tf.registerKernel({ ...config, setupFunc: current.setupFunc });
  return 'replaced';
}

/** The built-in wasm implementation of `kernelName`, bypassing edgekd overrides. */
export function builtInWasmKernel(kernelName: string): KernelConfig {
  const config = BUILT_IN.get(kernelName) ?? (tf.getKernel(kernelName, 'wasm') as KernelConfig | undefined);
  if (config === undefined || OURS.has(config.kernelFunc)) {
    throw new TypeError(`'kernelName' must name a built-in wasm kernel, got ${kernelName}`);
  }
  return config;
}

/**
 * Runs kernels on one wasm backend and frees every intermediate on {@link dispose}, except the
 * outputs handed to {@link keep}. Use one scope per kernel invocation, in a try/finally.
 */
export class KernelScope {
  private readonly owned: TensorInfo[] = [];

  /** @param backend - the wasm backend the calling kernel received. */
  constructor(readonly backend: BackendWasm) {}

  /** Runs the built-in wasm kernel `name` and tracks its (single) output. */
  run(name: string, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: KernelAttrs = {}): TensorInfo {
    const config = builtInWasmKernel(name);
    const out = config.kernelFunc({
      inputs: inputs as tf.NamedTensorInfoMap,
      backend: this.backend,
      attrs: attrs as tf.NamedAttrMap,
    }) as TensorInfo | TensorInfo[];
    const info = Array.isArray(out) ? out[0] : out;
    this.owned.push(info);
    return info;
  }

  /** `x` viewed with another shape (no copy; shares the data and bumps its ref count). */
  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  /** A float32 tensor holding `values` (host data copied into the wasm heap). */
  constant(shape: number[], values: Float32Array): TensorInfo {
    const info = this.backend.makeOutput(shape, 'float32', undefined, values);
    this.owned.push(info);
    return info;
  }

  /** `[rows, cols]` 2-D matrix product `a @ b` through XNNPACK (no transposes: those are slow). */
  matMul(a: TensorInfo, b: TensorInfo): TensorInfo {
    return this.run('BatchMatMul', { a, b }, { transposeA: false, transposeB: false });
  }

  /** Concatenation along `axis` (a single part is returned as is). */
  concat(parts: TensorInfo[], axis: number): TensorInfo {
    return parts.length === 1 ? parts[0] : this.run('Concat', parts, { axis });
  }

  /** 2-D transpose. */
  transpose2d(x: TensorInfo): TensorInfo {
    return this.run('Transpose', { x }, { perm: [1, 0] });
  }

  /** Removes `info` from the scope so {@link dispose} leaves it to the caller (the kernel output). */
  keep(info: TensorInfo): TensorInfo {
    const i = this.owned.lastIndexOf(info);
    if (i >= 0) this.owned.splice(i, 1);
    return info;
  }

  /** Frees every tracked intermediate. */
  dispose(): void {
    for (const info of this.owned) this.backend.disposeData(info.dataId);
    this.owned.length = 0;
  }
}

/**
 * Runs `body` in a fresh {@link KernelScope} and returns its result, freeing all intermediates
 * but the result (which may also be an input's view; then it is ref-counted like tfjs' Reshape).
 */
export function withScope(backend: unknown, body: (scope: KernelScope) => TensorInfo): TensorInfo {
  const scope = new KernelScope(backend as BackendWasm);
  try {
    return scope.keep(body(scope));
  } finally {
    scope.dispose();
  }
}
