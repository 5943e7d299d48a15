/** Provider lists, pre-checks, session options and the try-in-order loop (pure parts, no session). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PROVIDERS,
  createWithFallback,
  defaultProviders,
  parseProviders,
  precheckProvider,
  sessionOptionsFor,
} from '../../runtime/providers.js';

test('parses a preference list: case, spaces and duplicates', () => {
  assert.deepEqual(parseProviders('TensorRT, cuda,cpu'), ['tensorrt', 'cuda', 'cpu']);
  assert.deepEqual(parseProviders(['cpu', 'cpu']), ['cpu']);
  assert.deepEqual([...PROVIDERS], ['tensorrt', 'cuda', 'webgpu', 'cpu']);
});

test('rejects an unknown provider name with ConfigError listing the valid ones', () => {
  assert.throws(() => parseProviders('cdua,cpu'), {
    name: 'ConfigError',
    code: 'ERR_CONFIG_INVALID',
    message:
      /unknown execution provider 'cdua' \(did you mean 'cuda'\?\); valid providers: tensorrt, cuda, webgpu, cpu/,
  });
  assert.throws(() => parseProviders(' , '), { name: 'ConfigError', message: /empty/ });
});

const supported = [
  { name: 'cpu', bundled: true },
  { name: 'webgpu', bundled: true },
  { name: 'cuda', bundled: false },
  { name: 'tensorrt', bundled: false },
];

test('pre-check: a provider missing from the build or without its library is skipped with a reason', () => {
  const empty = mkdtempSync(join(tmpdir(), 'edgekd-libs-'));
  assert.equal(precheckProvider('cpu', [], empty), undefined);
  assert.match(
    precheckProvider('cuda', [{ name: 'cpu', bundled: true }], empty)!,
    /not in this onnxruntime-node build \(it has: cpu\)/,
  );
  if (process.platform === 'linux') {
    assert.match(precheckProvider('cuda', supported, empty)!, /libonnxruntime_providers_cuda\.so/);
    assert.deepEqual(defaultProviders(supported, empty), ['cpu']);
    const full = mkdtempSync(join(tmpdir(), 'edgekd-libs-'));
    for (const f of ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'])
      writeFileSync(join(full, f), '');
    assert.equal(precheckProvider('cuda', supported, full), undefined);
    assert.deepEqual(defaultProviders(supported, full), ['cuda', 'cpu']);
  }
  // webgpu is bundled but never in the default list (experimental, noisy without an adapter).
  assert.ok(!defaultProviders(supported, empty).includes('webgpu'));
});

test('session options: device id for GPU providers, CUDA behind TensorRT, spinning off when sharing cores', () => {
  const s = { deviceId: 1, intraOpThreads: 2, allowSpinning: false };
  const trt = sessionOptionsFor('tensorrt', s);
  assert.deepEqual(trt.executionProviders, [
    { name: 'tensorrt', deviceId: 1 },
    { name: 'cuda', deviceId: 1 },
  ]);
  assert.equal(trt.intraOpNumThreads, 2);
  assert.deepEqual(trt.extra, { session: { intra_op: { allow_spinning: '0' } } });
  assert.deepEqual(sessionOptionsFor('webgpu', s).executionProviders, [{ name: 'webgpu' }]);
  const cpu = sessionOptionsFor('cpu', { ...s, allowSpinning: true });
  assert.deepEqual(cpu.executionProviders, [{ name: 'cpu' }]);
  assert.equal(cpu.extra, undefined);
});

test('tries providers in order and records each failure', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-libs-'));
  const tried: string[] = [];
  const r = await createWithFallback(['webgpu', 'cpu'], supported, dir, async (p) => {
    tried.push(p);
    if (p === 'webgpu')
      throw new Error('/src/webgpu_context.cc:136 Init() Failed to get a WebGPU adapter\nmore');
    return `session-${p}`;
  });
  assert.deepEqual(tried, ['webgpu', 'cpu']);
  assert.equal(r.provider, 'cpu');
  assert.equal(r.session, 'session-cpu');
  assert.equal(r.fallbacks.length, 1);
  assert.equal(r.fallbacks[0].provider, 'webgpu');
  assert.match(r.fallbacks[0].reason, /Failed to get a WebGPU adapter/);
});

test('rejects with ModelFormatError when cpu fails, ProviderUnavailableError when nothing listed works', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-libs-'));
  const fail = async (): Promise<never> => {
    throw new Error('bad model');
  };
  await assert.rejects(createWithFallback(['cpu'], supported, dir, fail), {
    name: 'ModelFormatError',
    code: 'ERR_MODEL_FORMAT',
    message: /bad model/,
  });
  await assert.rejects(createWithFallback(['cuda', 'webgpu'], supported, dir, fail), {
    name: 'ProviderUnavailableError',
    code: 'ERR_PROVIDER_UNAVAILABLE',
    message: /\[webgpu\] bad model.*add 'cpu'/,
  });
});
