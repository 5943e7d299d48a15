/**
 * Video pipeline benchmark: does the pipeline overlap its stages? For each clip, in one run, on
 * the default student (ped-nano, 320x320, `boxes` outputs) and one detector:
 *
 * - decode-only fps: the real VideoSource (ffmpeg decode + letterbox to the model size in ffmpeg,
 *   frames reassembled from the pipe), no inference. The frames it yields are kept in memory;
 * - inference-only fps: `detector.detectPrepared` over those in-memory frames, `--batch` frames
 *   per call, one call at a time (pack + session.run in the worker + decode/mapping);
 * - end-to-end fps: `runVideoPipeline` in file mode (every frame) with tracking on and a JSONL
 *   sink writing to a null stream;
 * - e2e / min(decode, infer): 1.0 means the slower stage alone sets the pace (the aim is >= 0.9);
 *   e2e / serial: against 1 / (1/decode + 1/infer), the rate if the stages took turns (> 1 means
 *   they overlap);
 * - overhead: median per inference call of StageTimings totalMs - inferMs (packing, the thread
 *   hop, post-processing: everything outside session.run), in the inference-only run and in the
 *   pipeline (the aim is < 2 ms at 320x320).
 *
 * Clips: vtest.avi (Debian opencv-doc, 768x576 MS-MPEG4 at 10 fps; skipped with a message when
 * absent) and a 1920x1080 H.264 testsrc2 clip at 30 fps written by ffmpeg into a temp folder.
 * Rates are steady-state: (frames - 1) / (last frame time - first frame time), so ffmpeg and
 * session start-up are not counted in any of them.
 *
 *   npm run bench:video -- [--frames 300] [--batch 1] [--checkpoint runs/x/best.safetensors]
 *     [--spec train/configs/ped-nano.spec.json]
 *
 * Without --checkpoint the student is random-initialised (speed does not depend on weight
 * values; the number of boxes does, slightly, through post-processing and tracking). On a
 * machine that is busy with other jobs the stages compete with them for cores and the figures
 * are noisy: the load average is printed with the table.
 */
import { writeInitCheckpoint } from './init-checkpoint.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { intFlag } from './int-flag.js';
import { exportOnnx } from '../export/export-model.js';
import { ExportConfigSchema } from '../export/config.js';
import { createDetector } from '../runtime/detector.js';
import type { Detector, PreparedFrame } from '../runtime/types.js';
import { findFfmpeg } from '../runtime/video/ffmpeg.js';
import { runVideoPipeline, type FrameResult, type VideoSink } from '../runtime/video/pipeline.js';
import { JsonlSink } from '../runtime/video/sinks.js';
import { VideoSource } from '../runtime/video/source.js';

const VTEST = '/usr/share/doc/opencv-doc/examples/data/vtest.avi';

const { values: args } = parseArgs({
  options: {
    frames: { type: 'string', default: '300' },
    batch: { type: 'string', default: '1' },
    checkpoint: { type: 'string' },
    spec: { type: 'string', default: 'train/configs/ped-nano.spec.json' },
  },
  strict: true,
});
const frameLimit = intFlag('frames', args.frames, 2);
const batch = intFlag('batch', args.batch, 1);

const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** Steady-state rate from per-frame completion times (ms): (n - 1) / span. */
const steadyFps = (times: number[]): number =>
  times.length < 2 ? NaN : ((times.length - 1) * 1000) / (times[times.length - 1] - times[0]);

interface Row {
  clip: string;
  source: string;
  frames: number;
  decodeFps: number;
  inferFps: number;
  e2eFps: number;
  overheadInferMs: number;
  overheadE2eMs: number;
  dropped: number;
}

/** Decode-only: the real source, no inference; returns the rate and the frames it produced. */
async function decodeOnly(path: string, det: Detector): Promise<{ fps: number; frames: PreparedFrame[] }> {
  const { width, height, resize } = det.spec.input;
  const src = await VideoSource.open(path, { input: { width, height, resize }, maxFrames: frameLimit });
  const times: number[] = [];
  const frames: PreparedFrame[] = [];
  await src.run((f) => {
    times.push(performance.now());
    frames.push({ rgb: f.rgb, transform: f.transform });
  });
  return { fps: steadyFps(times), frames };
}

/** Inference-only over frames held in memory, `batch` per call, one call at a time. */
async function inferenceOnly(
  det: Detector,
  frames: PreparedFrame[],
): Promise<{ fps: number; overheadMs: number }> {
  for (let i = 0; i < 5; i++) await det.detectPrepared(frames.slice(0, batch)); // warm-up
  const times: number[] = [performance.now()];
  const overhead: number[] = [];
  for (let i = 0; i < frames.length; i += batch) {
    const chunk = frames.slice(i, i + batch);
    const [r] = await det.detectPrepared(chunk);
    overhead.push(r.timings.totalMs - r.timings.inferMs);
    const t = performance.now();
    for (let k = 0; k < chunk.length; k++) times.push(t);
  }
  // times[0] is the start: frames / elapsed, the same as a steady rate over the calls.
  return { fps: steadyFps(times), overheadMs: median(overhead) };
}

/** End-to-end: the pipeline in file mode with tracking and a JSONL sink to a null stream. */
async function endToEnd(
  path: string,
  det: Detector,
): Promise<{ fps: number; overheadMs: number; processed: number; dropped: number }> {
  const times: number[] = [];
  const overhead: number[] = [];
  let lastCall: FrameResult['timings'] | null = null;
  const timing: VideoSink = {
    name: 'bench-timing',
    write(r: FrameResult) {
      times.push(performance.now());
      // The frames of a batch share one timings object: count each call once.
      if (r.timings !== lastCall) overhead.push(r.timings.totalMs - r.timings.inferMs);
      lastCall = r.timings;
    },
    close: async () => {},
  };
  const devNull = new Writable({ write: (_c, _e, cb) => cb() });
  const summary = await runVideoPipeline({
    source: path,
    detector: det,
    sinks: [new JsonlSink(devNull), timing],
    live: false,
    batch,
    maxFrames: frameLimit,
    statsIntervalMs: 0,
  });
  return {
    fps: steadyFps(times),
    overheadMs: median(overhead),
    processed: summary.processed,
    dropped: summary.dropped,
  };
}

function table(rows: Row[]): string {
  const head = [
    'clip',
    'source',
    'frames',
    'decode fps',
    'infer fps',
    'e2e fps',
    'e2e/min',
    'e2e/serial',
    'overhead ms (infer)',
    'overhead ms (e2e)',
  ];
  const body = rows.map((r) => {
    const min = Math.min(r.decodeFps, r.inferFps);
    const serial = 1 / (1 / r.decodeFps + 1 / r.inferFps);
    return [
      r.clip,
      r.source,
      String(r.frames),
      r.decodeFps.toFixed(1),
      r.inferFps.toFixed(1),
      r.e2eFps.toFixed(1),
      (r.e2eFps / min).toFixed(2),
      (r.e2eFps / serial).toFixed(2),
      r.overheadInferMs.toFixed(2),
      r.overheadE2eMs.toFixed(2),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const dir = mkdtempSync(join(tmpdir(), 'edgekd-bench-video-'));
let det: Detector | undefined;
try {
  // The model: exported by the project's exporter, from a checkpoint or from initial weights.
  let checkpoint = args.checkpoint;
  if (!checkpoint) checkpoint = writeInitCheckpoint(args.spec, dir);
  const exported = await exportOnnx(
    ExportConfigSchema.parse({ checkpoint, out: join(dir, 'model.onnx'), outputs: 'boxes', verify: false }),
  );
  det = await createDetector(exported.model);
  const { width: W, height: H } = det.spec.input;

  const bin = await findFfmpeg();
  const clips: { name: string; path: string; source: string }[] = [];
  if (existsSync(VTEST)) clips.push({ name: 'vtest.avi', path: VTEST, source: '768x576 msmpeg4v3 10fps' });
  else console.log(`vtest.avi skipped: ${VTEST} not found (Debian/Ubuntu: apt-get install opencv-doc)`);
  const hd = join(dir, 'testsrc2-1080p.mp4');
  const seconds = Math.ceil(frameLimit / 30) + 1;
  let t0 = performance.now();
  execFileSync(
    bin.ffmpeg,
    [
      ...['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi'],
      ...['-i', 'testsrc2=size=1920x1080:rate=30', '-t', String(seconds)],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', hd],
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  clips.push({ name: 'testsrc2.mp4', path: hd, source: '1920x1080 h264 30fps' });

  console.log(
    `video bench: ${det.spec.name} ${W}x${H} (${args.checkpoint ?? 'random init'}, ${exported.modelCard.precision}, boxes) ` +
      `on ${det.provider}, batch ${batch}, up to ${frameLimit} frames per clip; ` +
      `${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()}, load average ${loadavg()
        .map((v) => v.toFixed(1))
        .join(
          ' ',
        )}; ${bin.versionLine.replace(/ Copyright.*/, '')}; 1080p clip encoded in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  const rows: Row[] = [];
  for (const clip of clips) {
    t0 = performance.now();
    const dec = await decodeOnly(clip.path, det);
    const inf = await inferenceOnly(det, dec.frames);
    const e2e = await endToEnd(clip.path, det);
    if (e2e.processed !== dec.frames.length)
      console.log(
        `warning: ${clip.name}: pipeline processed ${e2e.processed} frames, the source gave ${dec.frames.length}`,
      );
    rows.push({
      clip: clip.name,
      source: clip.source,
      frames: dec.frames.length,
      decodeFps: dec.fps,
      inferFps: inf.fps,
      e2eFps: e2e.fps,
      overheadInferMs: inf.overheadMs,
      overheadE2eMs: e2e.overheadMs,
      dropped: e2e.dropped,
    });
    console.log(`${clip.name}: measured in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  console.log('');
  console.log(table(rows));
  console.log('');
  for (const r of rows) {
    const min = Math.min(r.decodeFps, r.inferFps);
    const bound = r.decodeFps < r.inferFps ? 'decode' : 'inference';
    console.log(
      `${r.clip}: end-to-end ${r.e2eFps.toFixed(1)} fps = ${((100 * r.e2eFps) / min).toFixed(0)}% of min(decode, inference) ` +
        `(${bound}-bound; aim >= 90%), ${r.e2eFps > 1 / (1 / r.decodeFps + 1 / r.inferFps) ? 'faster' : 'not faster'} than the stages taking turns; ` +
        `overhead outside session.run ${r.overheadE2eMs.toFixed(2)} ms per call in the pipeline, ${r.overheadInferMs.toFixed(2)} ms alone (aim < 2 ms); dropped ${r.dropped}`,
    );
  }
  const busy = loadavg()[0] > availableParallelism() * 0.5;
  console.log(
    busy
      ? `note: load average ${loadavg()[0].toFixed(1)} on ${availableParallelism()} cores: other jobs share the cores, so these figures are noisy and the stages compete for CPU with them`
      : `note: decode and inference share ${availableParallelism()} cores on the CPU provider; a GPU provider or a hardware decoder frees them`,
  );
} finally {
  await det?.close();
  rmSync(dir, { recursive: true, force: true });
}
