/**
 * Execution providers: the catalog, parsing of a preference list (`--ep tensorrt,cuda,cpu`), the
 * session options each provider gets, and the try-in-order loop that records why a provider was
 * skipped. Nothing here loads onnxruntime-node (types only): the loop runs inside a session
 * worker, which passes in the binding's `listSupportedBackends()` and a session factory.
 *
 * What onnxruntime-node 1.30 can be told from JS (js/node/src/session_options_helper.cc):
 * for `cuda` and `tensorrt` the binding copies only `deviceId` into the provider options. There
 * is no way to ask for TensorRT FP16/INT8 kernels or an engine cache, so precision travels inside
 * the model (FP16 weights from `edgekd export --precision fp16`, QDQ INT8 from `--precision int8`,
 * which TensorRT runs as INT8). Engine caching (`trt_engine_cache_enable`) needs either an
 * onnxruntime-node built from source with those options wired in, or serving the model from
 * Triton (`edgekd export --triton DIR`, whose onnxruntime backend takes TensorRT accelerator
 * parameters in config.pbtxt). On linux-x64 the CUDA / TensorRT provider libraries are fetched by
 * the package's install script (skipped when ONNXRUNTIME_NODE_INSTALL=skip / onnxruntime-node-install=skip); on linux-arm64
 * (Jetson) the npm package is CPU-only.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import { ConfigError, ModelFormatError, ProviderUnavailableError } from '../models/core/errors.js';
import { didYouMean } from '../models/core/config.js';
import type { ProviderName } from './types.js';

/** Every provider name edgekd accepts, best first (the order `--ep` lists are usually written in). */
export const PROVIDERS: readonly ProviderName[] = Object.freeze(['tensorrt', 'cuda', 'webgpu', 'cpu']);

/** One entry of the binding's `listSupportedBackends()`. */
export interface SupportedBackend {
  name: string;
  /** false: the provider library is a separate download (cuda, tensorrt on linux-x64). */
  bundled: boolean;
}

/** Settings that shape every session of a detector. */
export interface ProviderSettings {
  /** CUDA / TensorRT device id. */
  deviceId: number;
  /** ORT intra-op threads (CPU kernels, and CPU fallback nodes of GPU providers). */
  intraOpThreads: number;
  /**
   * Whether idle intra-op threads spin after a run. ORT spins by default, which steals the cores
   * of another session or of the main thread's pre/post-processing: measured here, two sessions
   * of 2 threads run alternately on 2 cores took 23-31 ms per run with spinning, 13 ms without
   * (10 ms alone). So spinning is turned off whenever sessions share cores.
   */
  allowSpinning: boolean;
}

/** A provider that was skipped, and why. */
export interface ProviderFallback {
  provider: ProviderName;
  reason: string;
}

/**
 * Parses a provider preference list: `'tensorrt,cuda,cpu'` or `['cuda', 'cpu']`. Names are
 * case-insensitive, duplicates are dropped (first wins).
 * @throws {ConfigError} `ERR_CONFIG_INVALID` naming an unknown provider and listing the valid
 *   ones, or when the list is empty.
 */
export function parseProviders(value: string | readonly string[]): ProviderName[] {
  const names = (typeof value === 'string' ? value.split(',') : [...value]).map((s) =>
    String(s).trim().toLowerCase(),
  );
  const out: ProviderName[] = [];
  for (const n of names) {
    if (n === '') continue;
    if (!(PROVIDERS as readonly string[]).includes(n)) {
      const hint = didYouMean(n, [...PROVIDERS]);
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `unknown execution provider '${n}'${hint ? ` (did you mean '${hint}'?)` : ''}; valid providers: ${PROVIDERS.join(', ')}`,
      );
    }
    if (!out.includes(n as ProviderName)) out.push(n as ProviderName);
  }
  if (out.length === 0)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `the execution provider list is empty; valid providers: ${PROVIDERS.join(', ')}`,
    );
  return out;
}

/** File names of a provider's shared library (and the bridge it needs) on this platform. */
function providerLibraries(provider: 'cuda' | 'tensorrt'): string[] {
  if (process.platform === 'win32')
    return ['onnxruntime_providers_shared.dll', `onnxruntime_providers_${provider}.dll`];
  if (process.platform === 'darwin') return [];
  return ['libonnxruntime_providers_shared.so', `libonnxruntime_providers_${provider}.so`];
}

/**
 * Why a provider cannot work in this build, decided without creating a session (so no native
 * error spam for a provider that is simply not installed); undefined when it is worth trying.
 * @param supported - the binding's `listSupportedBackends()`
 * @param libDir - the folder holding `onnxruntime_binding.node`
 */
export function precheckProvider(
  provider: ProviderName,
  supported: readonly SupportedBackend[],
  libDir: string,
): string | undefined {
  if (provider === 'cpu') return undefined;
  const entry = supported.find((b) => b.name === provider);
  if (!entry)
    return `not in this onnxruntime-node build (it has: ${supported.map((b) => b.name).join(', ')})`;
  if (entry.bundled || provider === 'webgpu') return undefined;
  const missing = providerLibraries(provider).filter((f) => !existsSync(join(libDir, f)));
  if (missing.length)
    return `${missing.join(' and ')} not found in ${libDir}: onnxruntime-node's install script fetches the ${provider.toUpperCase()} provider libraries on linux-x64 (skipped when ONNXRUNTIME_NODE_INSTALL=skip / onnxruntime-node-install=skip or offline); install them, or use a custom onnxruntime build`;
  return undefined;
}

/**
 * The default preference list: every GPU provider this build can load (TensorRT, then CUDA),
 * then cpu. WebGPU is left out of the default although the linux-x64 build bundles it: ORT marks
 * it experimental, and on a machine without a GPU adapter it takes ~2 s and prints Dawn
 * diagnostics to stderr before failing; ask for it with `--ep webgpu,cpu`.
 */
export function defaultProviders(supported: readonly SupportedBackend[], libDir: string): ProviderName[] {
  const gpu = (['tensorrt', 'cuda'] as const).filter(
    (p) => precheckProvider(p, supported, libDir) === undefined,
  );
  return [...gpu, 'cpu'];
}

/**
 * Session options for one provider. TensorRT also lists CUDA so that nodes TensorRT rejects run
 * on the GPU rather than on the CPU; every session falls back to ORT's CPU kernels per node.
 */
export function sessionOptionsFor(
  provider: ProviderName,
  s: ProviderSettings,
): InferenceSession.SessionOptions {
  const eps: InferenceSession.ExecutionProviderConfig[] =
    provider === 'tensorrt'
      ? [
          { name: 'tensorrt', deviceId: s.deviceId },
          { name: 'cuda', deviceId: s.deviceId },
        ]
      : provider === 'cuda'
        ? [{ name: 'cuda', deviceId: s.deviceId }]
        : provider === 'webgpu'
          ? [{ name: 'webgpu' }] // the binding rejects unknown keys (deviceId) for webgpu
          : [{ name: 'cpu' }];
  return {
    executionProviders: eps,
    intraOpNumThreads: s.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    ...(s.allowSpinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
}

/** First line of an error message, without ORT's source-location prefix. */
export function shortReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const line = msg.split('\n').find((l) => l.trim() !== '') ?? msg;
  return line.replace(/^\/\S+:\d+ \S.*?\) /, '').trim();
}

/**
 * Tries each provider in order until one yields a working session (created and, through `create`,
 * checked with a test run). A provider that fails is recorded with its reason; ORT's CPU provider
 * failing means the model itself is at fault.
 * @param create - makes and checks a session for a provider; throws on failure
 * @returns the session, the provider it runs on and the providers skipped before it
 * @throws {ModelFormatError} when the cpu provider (tried) fails: the model cannot run
 * @throws {ProviderUnavailableError} when no listed provider works (cpu not listed)
 */
export async function createWithFallback<S>(
  providers: readonly ProviderName[],
  supported: readonly SupportedBackend[],
  libDir: string,
  create: (provider: ProviderName) => Promise<S>,
): Promise<{ session: S; provider: ProviderName; fallbacks: ProviderFallback[] }> {
  const fallbacks: ProviderFallback[] = [];
  for (const provider of providers) {
    const skip = precheckProvider(provider, supported, libDir);
    if (skip) {
      fallbacks.push({ provider, reason: skip });
      continue;
    }
    try {
      return { session: await create(provider), provider, fallbacks };
    } catch (e) {
      if (provider === 'cpu')
        throw new ModelFormatError(
          'ERR_MODEL_FORMAT',
          `ONNX Runtime cannot run the model: ${shortReason(e)}`,
          {
            cause: e,
          },
        );
      fallbacks.push({ provider, reason: shortReason(e) });
    }
  }
  throw new ProviderUnavailableError(
    'ERR_PROVIDER_UNAVAILABLE',
    `no requested execution provider works: ${fallbacks.map((f) => `[${f.provider}] ${f.reason}`).join('; ')}; add 'cpu' to the list to fall back`,
  );
}
