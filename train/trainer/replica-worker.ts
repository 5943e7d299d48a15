/**
 * Replica worker: one tfjs backend (wasm runs single-threaded under Node, so one replica per
 * core is how training uses every core), one copy of the student, gradients on request.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { Student } from '../../models/arch/student.js';
import { selectBackend } from '../backend/index.js';
import { microStep, type LossWeights } from '../step.js';
import { KdRuntime } from '../distill/kd-runtime.js';
import { kdLayout } from '../distill/kd-params.js';
import { statsLayout, trainableLayout, type ParamLayout } from './param-layout.js';
import type { ReplicaRequest, ReplicaResponse } from './replica-protocol.js';

if (!parentPort) throw new Error('replica-worker must run in a worker thread');
const port = parentPort;

let student: Student | undefined;
let trainable: ParamLayout;
let stats: ParamLayout;
let lossWeights: LossWeights;
let kd: KdRuntime | undefined;
/** Student trainables followed by the KD 'student'-group parameters. */
let combined: ParamLayout;

function send(msg: ReplicaResponse, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function loadFlat(layout: ParamLayout, flat: Float32Array): void {
  for (const slot of layout.slots) {
    const v = student!.params.get(slot.name)!;
    tf.tidy(() =>
      v.assign(tf.tensor(flat.subarray(slot.offset, slot.offset + slot.length), slot.shape, 'float32')),
    );
  }
}

async function handle(msg: ReplicaRequest): Promise<void> {
  switch (msg.type) {
    case 'init': {
      const sel = await selectBackend(msg.backend);
      student = new Student(msg.spec, 0);
      trainable = trainableLayout(student.graph);
      stats = statsLayout(student.graph);
      lossWeights = msg.lossWeights;
      combined = trainable;
      if (msg.distill) {
        kd = await KdRuntime.create(msg.distill, msg.spec);
        const extra = kdLayout(kd.specs, 'student', trainable.total);
        combined = { slots: [...trainable.slots, ...extra.slots], total: trainable.total + extra.total };
      }
      send({
        type: 'ready',
        backend: sel.name,
        detail: sel.detail,
        fallbacks: sel.fallbacks,
        kdSpecs: kd?.specs,
      });
      return;
    }
    case 'step': {
      const t0 = performance.now();
      loadFlat(trainable, msg.trainable);
      const kdOn = kd !== undefined && msg.kd?.active === true;
      if (kd && kdOn) {
        kd.loadFlat('student', msg.trainable.subarray(trainable.total));
        kd.loadFlat('discriminator', msg.kd!.disc);
      }
      const layout = kdOn ? combined : trainable;
      const grads = new Float32Array(msg.trainable.length);
      const discGrads = kdOn && msg.kd!.disc.length ? new Float32Array(msg.kd!.disc.length) : undefined;
      const statsWeighted = new Float32Array(stats.total);
      const losses: Record<string, number> = {};
      let images = 0;
      let teacherMs = 0;
      for (const mb of msg.microBatches) {
        let teachers;
        if (kd && kdOn) {
          const tt = performance.now();
          teachers = await kd.teacherOutputs(mb.imagesNhwc, mb.batch, mb.cacheKeys);
          teacherMs += performance.now() - tt;
        }
        let r;
        try {
          r = microStep(
            student!,
            layout,
            mb,
            msg.norm,
            lossWeights,
            kd && teachers ? { runtime: kd, teachers, step: msg.kd!.step, ramp: msg.kd!.ramp } : undefined,
          );
        } finally {
          if (teachers)
            for (const t of teachers)
              tf.dispose([...t.neck.values(), ...t.backbone.values(), ...(t.headProb ? [t.headProb] : [])]);
        }
        for (let i = 0; i < r.grads.length; i++) grads[i] += r.grads[i];
        if (discGrads && r.discGrads)
          for (let i = 0; i < discGrads.length; i++) discGrads[i] += r.discGrads[i];
        for (const [k, v] of Object.entries(r.losses)) losses[k] = (losses[k] ?? 0) + v;
        for (const slot of stats.slots) {
          // Stats slots come in pairs per BN node: '<bn>.movingMean' then '<bn>.movingVariance'.
          const bn = slot.name.slice(0, slot.name.lastIndexOf('.'));
          const s = r.bnStats.get(bn);
          if (!s) continue;
          const src = slot.name.endsWith('.movingMean') ? s.mean : s.variance;
          for (let i = 0; i < slot.length; i++) statsWeighted[slot.offset + i] += src[i] * mb.batch;
        }
        images += mb.batch;
      }
      send(
        {
          type: 'step-done',
          id: msg.id,
          grads,
          losses,
          statsWeighted,
          images,
          ms: performance.now() - t0,
          discGrads,
          teacherMs,
          cache: kd?.cacheStats(),
        },
        [grads.buffer as ArrayBuffer, statsWeighted.buffer as ArrayBuffer],
      );
      return;
    }
    case 'predict': {
      loadFlat(trainable, msg.trainable);
      loadFlat(stats, msg.stats);
      const { height, width } = student!.spec.input;
      const [hm, sz, off] = tf.tidy(() => {
        const x = tf.tensor4d(msg.imagesNhwc, [msg.batch, height, width, 3]);
        const out = student!.apply(x, { training: false });
        return [tf.sigmoid(out.heatmap), out.size, out.offset];
      });
      const heatmap = hm.dataSync() as Float32Array;
      const size = sz.dataSync() as Float32Array;
      const offset = off.dataSync() as Float32Array;
      const [, h, w] = hm.shape;
      tf.dispose([hm, sz, off]);
      send({ type: 'predict-done', id: msg.id, heatmap, size, offset, h, w }, [
        heatmap.buffer as ArrayBuffer,
        size.buffer as ArrayBuffer,
        offset.buffer as ArrayBuffer,
      ]);
      return;
    }
  }
}

// Requests are handled strictly in order; a failure is reported, never thrown into the void.
let queue = Promise.resolve();
port.on('message', (msg: ReplicaRequest) => {
  queue = queue.then(() =>
    handle(msg).catch((e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      send({
        type: 'error',
        id: 'id' in msg ? msg.id : undefined,
        name: err.name,
        code: (err as { code?: string }).code,
        message: err.message,
        stack: err.stack,
      });
    }),
  );
});
