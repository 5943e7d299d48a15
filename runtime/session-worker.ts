/**
 * One ONNX Runtime session in a worker thread. onnxruntime-node's `session.run` does its native
 * work on the calling thread (js/node/lib/backend.ts runs it inside a setImmediate), so a run on
 * the main thread would block its event loop for the whole inference; here it blocks only this
 * worker. The worker handles one request at a time (the pool queues the rest) and moves tensors
 * as transferred ArrayBuffers: the input buffer goes back with the result for reuse.
 *
 * Protocol: see {@link ToWorker} / {@link FromWorker} in session-pool.ts.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import {
  createWithFallback,
  defaultProviders,
  sessionOptionsFor,
  type SupportedBackend,
} from './providers.js';
import type { FromWorker, InitMessage, SerializedError, ToWorker, WorkerOutput } from './session-pool.js';
import type { ProviderName } from './types.js';

const port = parentPort;
if (!port) throw new Error('session-worker.js must run in a worker thread');

/** Folder of `onnxruntime_binding.node` (dist/binding.js loads `../bin/napi-v6/<platform>/<arch>`). */
function bindingDir(): string {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  return join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

function serialize(e: unknown): SerializedError {
  if (e instanceof Error)
    return { name: e.name, message: e.message, code: (e as { code?: string }).code, stack: e.stack };
  return { name: 'Error', message: String(e) };
}

let session: ort.InferenceSession | undefined;
/** The run in progress: `close` waits for it before releasing the session. */
let current: Promise<void> = Promise.resolve();
let inputName = 'images';
let inputDims: [number, number, number] = [3, 0, 0];

async function init(m: InitMessage): Promise<FromWorker> {
  ort.env.logLevel = m.ortLogLevel;
  const supported = ort.listSupportedBackends() as SupportedBackend[];
  const libDir = bindingDir();
  inputDims = m.inputDims;
  const providers: ProviderName[] = m.providers ?? defaultProviders(supported, libDir);
  const r = await createWithFallback(providers, supported, libDir, async (provider) => {
    const s = await ort.InferenceSession.create(m.modelPath, sessionOptionsFor(provider, m.settings));
    try {
      const name = s.inputNames.includes('images') ? 'images' : s.inputNames[0];
      if (s.inputNames.length !== 1 && name !== 'images')
        throw new Error(`the model has inputs ${s.inputNames.join(', ')} and none is named 'images'`);
      // A test run with a zero image: a provider that creates a session but cannot run the model
      // falls back here rather than on the first frame, and lazy initialisation is paid now.
      const zero = new ort.Tensor('float32', new Float32Array(inputDims[0] * inputDims[1] * inputDims[2]), [
        1,
        ...inputDims,
      ]);
      const out = await s.run({ [name]: zero });
      for (const v of Object.values(out)) (v as ort.Tensor).dispose?.();
      inputName = name;
      return s;
    } catch (e) {
      await s.release();
      throw e;
    }
  });
  session = r.session;
  return {
    type: 'ready',
    provider: r.provider,
    providersTried: providers,
    fallbacks: r.fallbacks,
    inputName,
    outputs: r.session.outputMetadata.map((o) => ({
      name: o.name,
      shape: o.isTensor ? [...o.shape] : [],
      type: o.isTensor ? o.type : 'non-tensor',
    })),
  };
}

function toFloat32(t: ort.Tensor): Float32Array {
  const d = t.data;
  if (d instanceof Float32Array) return d;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float32Array.from(d, Number);
  if (typeof d === 'object' && d !== null && 'length' in d) return Float32Array.from(d as ArrayLike<number>);
  throw new TypeError(`output of type ${t.type} cannot be read as numbers`);
}

async function run(id: number, input: ArrayBuffer, batch: number): Promise<void> {
  if (!session) throw new Error('session worker is not initialised');
  const t0 = performance.now();
  const out = await session.run({
    [inputName]: new ort.Tensor('float32', new Float32Array(input), [batch, ...inputDims]),
  });
  const inferMs = performance.now() - t0;
  const outputs: WorkerOutput[] = [];
  const transfer: ArrayBuffer[] = [input];
  for (const [name, v] of Object.entries(out)) {
    const t = v as ort.Tensor;
    let data = toFloat32(t);
    // Transfer the ORT-owned buffer when the view covers it exactly; copy otherwise.
    if (
      data.byteOffset !== 0 ||
      data.byteLength !== data.buffer.byteLength ||
      !(data.buffer instanceof ArrayBuffer)
    )
      data = data.slice();
    const buf = data.buffer as ArrayBuffer;
    outputs.push({ name, dims: [...t.dims], data: buf });
    if (!transfer.includes(buf)) transfer.push(buf);
  }
  const msg: FromWorker = { type: 'result', id, input, outputs, inferMs };
  port!.postMessage(msg, transfer);
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'init') {
    init(m).then(
      (ready) => port.postMessage(ready),
      (e: unknown) => port.postMessage({ type: 'init-error', error: serialize(e) } satisfies FromWorker),
    );
  } else if (m.type === 'run') {
    current = run(m.id, m.input, m.batch).catch((e: unknown) => {
      const msg: FromWorker = { type: 'run-error', id: m.id, input: m.input, error: serialize(e) };
      // The input may already be detached if the failure came after posting; send what is left.
      port.postMessage(msg, m.input.byteLength ? [m.input] : []);
    });
  } else if (m.type === 'close') {
    void current
      .then(async () => {
        const s = session;
        session = undefined;
        await s?.release();
      })
      .finally(() => {
        port.close();
        process.exit(0);
      });
  }
});
