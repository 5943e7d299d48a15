/**
 * Training backend selection. `auto` tries `tensorflow` (tfjs-node-gpu, then tfjs-node: optional
 * packages whose install downloads libtensorflow, so usually absent here) → `wasm` (with edgekd's
 * gradient kernels registered) → `cpu`, and records why each skipped backend could not load.
 * Works inside a `worker_threads` Worker: each thread has its own tfjs engine, wasm instance and
 * kernel registry, which is how the trainer runs one backend per core.
 */
import * as tf from '@tensorflow/tfjs';
import { ProviderUnavailableError } from '../../models/core/errors.js';
import { registerWasmGradKernels } from './wasm-kernels/index.js';

/** A backend edgekd can train on. */
export type TrainBackendName = 'tensorflow' | 'wasm' | 'cpu';

/** Result of {@link selectBackend}. */
export interface BackendSelection {
  name: TrainBackendName;
  /** One line for the start-of-run banner, e.g. `wasm (simd, 1 thread; edgekd kernels: ...)`. */
  detail: string;
  /** Backends tried before `name` and why each was skipped (empty for an explicit choice). */
  fallbacks: { name: TrainBackendName; reason: string }[];
}

const ORDER: TrainBackendName[] = ['tensorflow', 'wasm', 'cpu'];

function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return `${typeof code === 'string' ? code + ': ' : ''}${err.message.split('\n')[0]}`;
  }
  return String(err);
}

async function tryTensorflow(): Promise<string> {
  const reasons: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      // A variable specifier keeps TypeScript from resolving these optional packages.
      const specifier: string = pkg;
      await import(specifier);
      if (!(await tf.setBackend('tensorflow')))
        throw new Error(`tf.setBackend('tensorflow') failed after loading ${pkg}`);
      return `tensorflow (${pkg})`;
    } catch (err) {
      reasons.push(`${pkg}: ${reasonOf(err)}`);
    }
  }
  throw new Error(reasons.join('; '));
}

async function tryWasm(): Promise<string> {
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm')))
    throw new Error("tf.setBackend('wasm') returned false (wasm module failed to initialise)");
  const { added, replaced } = registerWasmGradKernels();
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const threads = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true;
  return `wasm (${simd ? 'simd' : 'no simd'}, ${threads ? 'multi-thread' : '1 thread'}; edgekd kernels added: ${added.join(', ')}; replaced: ${replaced.join(', ')})`;
}

async function tryCpu(): Promise<string> {
  if (!(await tf.setBackend('cpu'))) throw new Error("tf.setBackend('cpu') returned false");
  return 'cpu (tfjs-backend-cpu, plain JavaScript: slow)';
}

const LOADERS: Record<TrainBackendName, () => Promise<string>> = {
  tensorflow: tryTensorflow,
  wasm: tryWasm,
  cpu: tryCpu,
};

/**
 * Selects and initialises the tfjs backend for training; the chosen backend is active on return.
 *
 * @param pref - `'auto'` (first that loads of tensorflow → wasm → cpu) or one backend by name.
 * @returns the backend, a one-line description, and the skipped backends with reasons.
 * @throws {ProviderUnavailableError} `ERR_BACKEND_UNAVAILABLE` when the requested backend (or,
 *   for `'auto'`, every backend) cannot load; the message lists `[name] reason` for each.
 * @throws {RangeError} for an unknown `pref`.
 *
 * @example
 * ```ts
 * const b = await selectBackend('auto');
 * // b.name === 'wasm'; b.fallbacks[0] = { name: 'tensorflow', reason: "@tensorflow/tfjs-node-gpu: ERR_MODULE_NOT_FOUND: ..." }
 * ```
 */
export async function selectBackend(pref: 'auto' | TrainBackendName): Promise<BackendSelection> {
  if (pref !== 'auto' && !ORDER.includes(pref)) {
    throw new RangeError(`'pref' must be one of auto, ${ORDER.join(', ')}, got ${String(pref)}`);
  }
  const candidates = pref === 'auto' ? ORDER : [pref];
  const fallbacks: BackendSelection['fallbacks'] = [];
  for (const name of candidates) {
    try {
      const detail = await LOADERS[name]();
      return { name, detail, fallbacks };
    } catch (err) {
      fallbacks.push({ name, reason: reasonOf(err) });
    }
  }
  const list = fallbacks.map((f) => `[${f.name}] ${f.reason}`).join(', ');
  throw new ProviderUnavailableError(
    'ERR_BACKEND_UNAVAILABLE',
    pref === 'auto' ? `no training backend could load: ${list}` : `backend '${pref}' unavailable: ${list}`,
  );
}

export { registerWasmGradKernels, WASM_KERNELS, type WasmKernelRegistration } from './wasm-kernels/index.js';
