/**
 * A pool of session workers (runtime/session-worker.ts), each owning one ONNX Runtime session of
 * the same model. Requests queue here, in the main thread, and go to the first idle worker; a
 * worker runs one request at a time. The main thread only packs tensors and posts messages, so it
 * stays free for I/O (HTTP, ffmpeg pipes) while sessions run.
 *
 * Provider selection happens once, in the first worker (preference list, fallbacks recorded);
 * the other workers are created directly on the provider it settled on.
 */
import { Worker } from 'node:worker_threads';
import {
  ConfigError,
  EdgekdError,
  ModelFormatError,
  ProviderUnavailableError,
  type ErrorCode,
} from '../models/core/errors.js';
import type { ProviderFallback, ProviderSettings } from './providers.js';
import type { ProviderName } from './types.js';

/** ORT's own log level inside the workers (its messages go to stderr, not through edgekd's log). */
export type OrtLogLevel = 'verbose' | 'info' | 'warning' | 'error' | 'fatal';

export interface InitMessage {
  type: 'init';
  modelPath: string;
  /** Preference list; null: the build's default (see providers.ts defaultProviders). */
  providers: ProviderName[] | null;
  settings: ProviderSettings;
  /** Input dims without the batch axis: [3, H, W]. */
  inputDims: [number, number, number];
  ortLogLevel: OrtLogLevel;
}

/** Messages to a session worker. */
export type ToWorker =
  InitMessage | { type: 'run'; id: number; input: ArrayBuffer; batch: number } | { type: 'close' };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/** One output tensor, its data transferred. */
export interface WorkerOutput {
  name: string;
  dims: number[];
  data: ArrayBuffer;
}

/** Graph output as the session describes it (`batch` or another symbol for dynamic axes). */
export interface OutputInfo {
  name: string;
  shape: (number | string)[];
  type: string;
}

/** Messages from a session worker. */
export type FromWorker =
  | {
      type: 'ready';
      provider: ProviderName;
      providersTried: ProviderName[];
      fallbacks: ProviderFallback[];
      inputName: string;
      outputs: OutputInfo[];
    }
  | { type: 'init-error'; error: SerializedError }
  | { type: 'result'; id: number; input: ArrayBuffer; outputs: WorkerOutput[]; inferMs: number }
  | { type: 'run-error'; id: number; input: ArrayBuffer; error: SerializedError };

export interface SessionPoolOptions {
  modelPath: string;
  /** Preference list; undefined: the build's default. */
  providers?: ProviderName[];
  settings: ProviderSettings;
  /** Number of sessions (worker threads), >= 1. */
  workers: number;
  /** Input dims without the batch axis: [3, H, W]. */
  inputDims: [number, number, number];
  /** Default 'error': provider probing failures are reported through `fallbacks` instead. */
  ortLogLevel?: OrtLogLevel;
}

/** The outputs of one run. */
export interface RunResult {
  /** Output tensors by name (float32; dims include the batch axis). */
  outputs: Map<string, { dims: number[]; data: Float32Array }>;
  /** Milliseconds inside the worker's `session.run`. */
  inferMs: number;
  /** Milliseconds from posting the request to receiving the result, queueing excluded. */
  roundTripMs: number;
  /** The input buffer, back from the worker: hand it to the next batch of the same size. */
  input: ArrayBuffer;
}

interface Pending {
  id: number;
  input: ArrayBuffer;
  batch: number;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
  sentAt: number;
}

interface Slot {
  worker: Worker;
  busy?: Pending;
  alive: boolean;
  exited: Promise<void>;
}

const ERRORS: Record<string, new (code: ErrorCode, message: string) => EdgekdError> = {
  ModelFormatError,
  ProviderUnavailableError,
  ConfigError,
};

/** Rebuilds an error posted by a worker (edgekd error classes keep their class and code). */
function revive(e: SerializedError): Error {
  const C = ERRORS[e.name];
  if (C && e.code) return new C(e.code as ErrorCode, e.message);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** The parent's node flags minus those a worker rejects (`node --input-type=module -e ...`). */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--input-type') i++;
    else if (!argv[i].startsWith('--input-type=')) out.push(argv[i]);
  }
  return out;
}

function spawn(): Slot {
  const worker = new Worker(new URL('./session-worker.js', import.meta.url), { execArgv: workerExecArgv() });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return { worker, alive: true, exited };
}

/** Sends `init` and waits for `ready`; the worker is terminated when it fails. */
function initialise(slot: Slot, msg: InitMessage): Promise<Extract<FromWorker, { type: 'ready' }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromWorker) => {
      cleanup();
      if (m.type === 'ready') resolve(m);
      else if (m.type === 'init-error') {
        void slot.worker.terminate();
        reject(revive(m.error));
      }
    };
    const onError = (e: Error) => {
      cleanup();
      void slot.worker.terminate();
      reject(new Error(`session worker failed to start: ${e.message}`, { cause: e }));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new Error(`session worker exited during start-up (code ${code})`));
    };
    const cleanup = () => {
      slot.worker.off('message', onMessage);
      slot.worker.off('error', onError);
      slot.worker.off('exit', onExit);
    };
    slot.worker.on('message', onMessage);
    slot.worker.on('error', onError);
    slot.worker.on('exit', onExit);
    slot.worker.postMessage(msg);
  });
}

/** See the file comment. Create with {@link SessionPool.create}; always {@link SessionPool.close}. */
export class SessionPool {
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  private closing?: Promise<void>;

  private constructor(
    private readonly slots: Slot[],
    readonly provider: ProviderName,
    readonly providersTried: ProviderName[],
    readonly fallbacks: ProviderFallback[],
    readonly inputName: string,
    readonly outputs: OutputInfo[],
  ) {
    for (const s of slots) this.watch(s);
  }

  /**
   * Starts the workers: the first one picks the provider, the others follow it.
   * @throws {ModelFormatError} when the model cannot run; {@link ProviderUnavailableError} when no
   *   listed provider works
   */
  static async create(o: SessionPoolOptions): Promise<SessionPool> {
    if (!(Number.isInteger(o.workers) && o.workers >= 1))
      throw new RangeError(`'workers' must be an integer >= 1, got ${o.workers}`);
    const base: InitMessage = {
      type: 'init',
      modelPath: o.modelPath,
      providers: o.providers ?? null,
      settings: o.settings,
      inputDims: o.inputDims,
      ortLogLevel: o.ortLogLevel ?? 'error',
    };
    const first = spawn();
    const slots = [first];
    try {
      const ready = await initialise(first, base);
      const rest = Array.from({ length: o.workers - 1 }, () => spawn());
      slots.push(...rest);
      await Promise.all(rest.map((s) => initialise(s, { ...base, providers: [ready.provider] })));
      return new SessionPool(
        slots,
        ready.provider,
        ready.providersTried,
        ready.fallbacks,
        ready.inputName,
        ready.outputs,
      );
    } catch (e) {
      await Promise.all(slots.map((s) => s.worker.terminate()));
      throw e;
    }
  }

  /** Number of sessions. */
  get size(): number {
    return this.slots.length;
  }

  /** Requests waiting for a free worker. */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Runs one batch. The input's buffer is transferred (detached here) and comes back in the result.
   * @param input - `[batch, 3, H, W]` float32, its own whole buffer
   */
  run(input: Float32Array, batch: number): Promise<RunResult> {
    if (this.closed) return Promise.reject(new Error('the detector is closed'));
    if (input.byteOffset !== 0 || input.byteLength !== input.buffer.byteLength)
      return Promise.reject(new RangeError("'input' must span its whole ArrayBuffer (it is transferred)"));
    return new Promise((resolve, reject) => {
      this.queue.push({
        id: this.nextId++,
        input: input.buffer as ArrayBuffer,
        batch,
        resolve,
        reject,
        sentAt: 0,
      });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.alive || slot.busy) continue;
      const p = this.queue.shift()!;
      slot.busy = p;
      p.sentAt = performance.now();
      const msg: ToWorker = { type: 'run', id: p.id, input: p.input, batch: p.batch };
      slot.worker.postMessage(msg, [p.input]);
    }
    if (this.queue.length && !this.slots.some((s) => s.alive)) {
      const err = new Error('every session worker has exited');
      for (const p of this.queue.splice(0)) p.reject(err);
    }
  }

  private watch(slot: Slot): void {
    slot.worker.on('message', (m: FromWorker) => {
      const p = slot.busy;
      if (!p || (m.type !== 'result' && m.type !== 'run-error') || m.id !== p.id) return;
      slot.busy = undefined;
      if (m.type === 'result') {
        const outputs = new Map<string, { dims: number[]; data: Float32Array }>();
        for (const o of m.outputs) outputs.set(o.name, { dims: o.dims, data: new Float32Array(o.data) });
        p.resolve({
          outputs,
          inferMs: m.inferMs,
          roundTripMs: performance.now() - p.sentAt,
          input: m.input,
        });
      } else {
        p.reject(revive(m.error));
      }
      this.dispatch();
    });
    slot.worker.on('error', (e: Error) => {
      slot.alive = false;
      const p = slot.busy;
      slot.busy = undefined;
      p?.reject(new Error(`session worker crashed: ${e.message}`, { cause: e }));
      this.dispatch();
    });
    slot.worker.on('exit', (code) => {
      slot.alive = false;
      const p = slot.busy;
      slot.busy = undefined;
      if (!this.closed) p?.reject(new Error(`session worker exited unexpectedly (code ${code})`));
      this.dispatch();
    });
  }

  /**
   * Rejects queued requests, lets running ones finish, releases every session and ends the
   * workers. Safe to call twice.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      const err = new Error('the detector is closed');
      for (const p of this.queue.splice(0)) p.reject(err);
      await Promise.all(
        this.slots.map(async (s) => {
          if (s.alive) {
            // The worker handles `close` after its current run (one message at a time).
            s.worker.postMessage({ type: 'close' } satisfies ToWorker);
            const timer = setTimeout(() => void s.worker.terminate(), 5000);
            await s.exited;
            clearTimeout(timer);
          }
        }),
      );
    })();
    return this.closing;
  }
}
