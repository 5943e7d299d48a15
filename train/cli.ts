/** Commands of the training side: `edgekd train`, `edgekd eval`, `edgekd data synth`. */
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { readVideoFrames } from './data/video-frames.js';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { deployWeights, loadCheckpoint } from '../models/core/checkpoint.js';
import { helpText, parseCli, readJsonFile } from '../models/core/config.js';
import { writeFileAtomic } from '../models/core/safetensors.js';
import { evaluateOnnxModel, openOnnxModel } from './eval-onnx.js';
import { ConfigError } from '../models/core/errors.js';
import { buildGraph } from '../models/arch/graph.js';
import { TrainConfigSchema, type DataSource } from './config.js';
import { openDataset } from './datasets.js';
import { writeSyntheticCoco } from './data/synthetic.js';
import { createProgressPrinter, metricLine } from './progress.js';
import { evaluateModel } from './trainer/evaluate.js';
import { statsLayout, trainableLayout } from './trainer/param-layout.js';
import { ReplicaPool } from './trainer/replica-pool.js';
import { runTraining } from './trainer/loop.js';

function parseFlags(argv: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_UNKNOWN_KEY', (e as Error).message);
  }
}

/** `edgekd train --config FILE [--a.b value ...]` */
export async function trainCommand(argv: string[]): Promise<number> {
  const { config, extra } = parseCli(TrainConfigSchema, argv);
  if (extra.help) {
    console.log(helpText('usage: edgekd train --config FILE [--section.field value ...]', TrainConfigSchema));
    return 0;
  }
  const progress = createProgressPrinter();
  const ac = new AbortController();
  let sigints = 0;
  const onSigint = () => {
    sigints++;
    if (sigints === 1) {
      process.stderr.write(
        '\ninterrupt: finishing the current step and saving a checkpoint (Ctrl-C again to quit now)\n',
      );
      ac.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  try {
    const r = await runTraining(config, { onEvent: progress, signal: ac.signal });
    const m = r.metrics ? ` ${metricLine(r.metrics)}` : '';
    console.error(
      `${r.interrupted ? 'interrupted' : 'done'} in ${r.seconds.toFixed(1)}s (${r.backend}, ${r.workers} replicas): ${r.checkpoint}${m}`,
    );
    if (r.metrics)
      console.log(
        JSON.stringify({
          checkpoint: r.checkpoint,
          epochs: r.epochsCompleted,
          seconds: Number(r.seconds.toFixed(1)),
          metrics: r.metrics,
        }),
      );
    return r.interrupted ? 130 : 0;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

/**
 * Parses `--data`: a COCO JSON file, a YOLO folder (with --names), or `synthetic:COUNT[:SEED]`.
 * @throws {ConfigError} naming the flag
 */
export function parseDataArg(data: string, names?: string): DataSource {
  const syn = /^synthetic:(\d+)(?::(-?\d+))?$/.exec(data);
  if (syn) return { kind: 'synthetic', count: Number(syn[1]), seed: Number(syn[2] ?? 0) };
  if (!existsSync(data))
    throw new ConfigError(
      'ERR_FILE_NOT_FOUND',
      `--data '${data}' does not exist (expected a COCO .json, a YOLO folder or synthetic:COUNT[:SEED])`,
    );
  if (statSync(data).isDirectory()) {
    if (!names)
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `--data '${data}' is a folder (YOLO): pass --names a,b,c for its class ids`,
      );
    return { kind: 'yolo', root: data, names: names.split(',') };
  }
  return { kind: 'coco', annotations: data };
}

/** `edgekd eval --checkpoint FILE --data SRC` */
export async function evalCommand(argv: string[]): Promise<number> {
  const v = parseFlags(argv, {
    checkpoint: { type: 'string' },
    model: { type: 'string' },
    card: { type: 'string' },
    data: { type: 'string' },
    names: { type: 'string' },
    'map-all-to': { type: 'string' },
    backend: { type: 'string' },
    workers: { type: 'string' },
    'score-threshold': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (v.help) {
    console.log(`usage: edgekd eval (--checkpoint FILE | --model FILE.onnx [--card FILE.json])
  --data (COCO.json | YOLO_DIR --names a,b | synthetic:COUNT[:SEED])
  [--map-all-to CLASS] [--backend auto|wasm|cpu|tensorflow] [--workers N] [--score-threshold 0.01] [--json]

--model evaluates an exported ONNX model (any precision) with onnxruntime-node's CPU provider;
--card FILE.json then records the figures in that model card (under "eval").`);
    return 0;
  }
  if (typeof v.checkpoint !== 'string' && typeof v.model !== 'string')
    throw new ConfigError('ERR_CONFIG_INVALID', 'eval needs --checkpoint FILE or --model FILE.onnx');
  if (typeof v.checkpoint === 'string' && typeof v.model === 'string')
    throw new ConfigError('ERR_CONFIG_INVALID', 'eval takes --checkpoint or --model, not both');
  if (typeof v.card === 'string' && typeof v.model !== 'string')
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      '--card goes with --model (it records the figures of an exported model)',
    );
  if (typeof v.data !== 'string')
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      'eval needs --data (COCO json, YOLO folder or synthetic:COUNT[:SEED])',
    );
  const backend = z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).safeParse(v.backend ?? 'auto');
  if (!backend.success)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `--backend must be one of auto, tensorflow, wasm, cpu, got '${String(v.backend)}'`,
    );
  const workers = v.workers === undefined ? availableParallelism() : Number(v.workers);
  if (!Number.isInteger(workers) || workers < 1)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `--workers must be an integer >= 1, got '${String(v.workers)}'`,
    );
  const scoreThreshold = v['score-threshold'] === undefined ? 0.01 : Number(v['score-threshold']);
  if (!(scoreThreshold >= 0 && scoreThreshold <= 1))
    throw new ConfigError(
      'ERR_CONFIG_RANGE',
      `--score-threshold must be in [0, 1], got '${String(v['score-threshold'])}'`,
    );

  if (typeof v.model === 'string') return evalOnnxCommand(v.model, v.data, v, scoreThreshold);
  const ck = loadCheckpoint(v.checkpoint as string);
  const spec = ck.spec;
  const graph = buildGraph(spec);
  const weights = deployWeights(ck);
  const flat = (layout: ReturnType<typeof trainableLayout>) => {
    const out = new Float32Array(layout.total);
    for (const s of layout.slots) {
      const t = weights.get(s.name);
      if (!t || t.data.length !== s.length)
        throw new ConfigError('ERR_CHECKPOINT', `checkpoint '${v.checkpoint}' lacks parameter '${s.name}'`);
      out.set(t.data, s.offset);
    }
    return out;
  };
  const trainable = flat(trainableLayout(graph));
  const stats = flat(statsLayout(graph));
  const dataset = await openDataset(parseDataArg(v.data, v.names as string | undefined), spec, {
    aliases: {},
    mapAllTo: v['map-all-to'] as string | undefined,
  });
  for (const s of dataset.skipped)
    console.error(`skip: ${s.what}: ${s.reason}${s.count && s.count > 1 ? ` (x${s.count})` : ''}`);
  const pool = await ReplicaPool.start(spec, workers, backend.data, {
    heatmap: 1,
    size: 1,
    offset: 1,
    giou: 0,
    focalAlpha: 2,
    focalBeta: 4,
  });
  try {
    const t0 = performance.now();
    const metrics = await evaluateModel(pool, spec, dataset, trainable, stats, {
      scoreThreshold,
      maxDetections: 100,
    });
    const secs = (performance.now() - t0) / 1000;
    if (v.json)
      console.log(
        JSON.stringify({ checkpoint: v.checkpoint, data: v.data, images: dataset.samples.length, metrics }),
      );
    else {
      console.log(`${dataset.samples.length} images in ${secs.toFixed(1)}s (${pool.info.backend})`);
      for (const [k, val] of Object.entries(metrics))
        console.log(`${k.padEnd(14)} ${Number.isFinite(val) ? val.toFixed(4) : String(val)}`);
    }
    return 0;
  } finally {
    await pool.close();
  }
}

/** `edgekd eval --model FILE.onnx`: the exported model on ONNX Runtime's CPU provider. */
async function evalOnnxCommand(
  modelPath: string,
  data: string,
  v: Record<string, string | boolean | undefined>,
  scoreThreshold: number,
): Promise<number> {
  const model = await openOnnxModel(modelPath);
  try {
    const dataset = await openDataset(parseDataArg(data, v.names as string | undefined), model.spec, {
      aliases: {},
      mapAllTo: v['map-all-to'] as string | undefined,
    });
    for (const s of dataset.skipped)
      console.error(`skip: ${s.what}: ${s.reason}${s.count && s.count > 1 ? ` (x${s.count})` : ''}`);
    const t0 = performance.now();
    const metrics = await evaluateOnnxModel(model, dataset, { scoreThreshold, maxDetections: 100 });
    const secs = (performance.now() - t0) / 1000;
    if (typeof v.card === 'string') {
      const card = readJsonFile(v.card, 'model card') as Record<string, unknown>;
      card.eval = {
        data,
        images: dataset.samples.length,
        scoreThreshold,
        metrics,
        evaluatedAt: new Date().toISOString(),
      };
      writeFileAtomic(v.card, `${JSON.stringify(card, null, 2)}\n`);
    }
    if (v.json)
      console.log(JSON.stringify({ model: modelPath, data, images: dataset.samples.length, metrics }));
    else {
      console.log(
        `${dataset.samples.length} images in ${secs.toFixed(1)}s (onnxruntime cpu, ${model.outputs} outputs)`,
      );
      for (const [k, val] of Object.entries(metrics))
        console.log(`${k.padEnd(14)} ${Number.isFinite(val) ? val.toFixed(4) : String(val)}`);
    }
    return 0;
  } finally {
    await model.session.release();
  }
}

/** `edgekd data frames --video FILE --out DIR [--start 0] [--count N] [--step 1]`: frames as JPEG files. */
async function dataFramesCommand(argv: string[]): Promise<number> {
  const v = parseFlags(argv, {
    video: { type: 'string' },
    out: { type: 'string' },
    start: { type: 'string' },
    count: { type: 'string' },
    step: { type: 'string' },
    quality: { type: 'string' },
  });
  if (v.help) {
    console.log(
      'usage: edgekd data frames --video FILE --out DIR [--start 0] [--count N] [--step 1] [--quality 95]\n' +
        'Decodes frames start, start+step, ... of a video (ffmpeg) into DIR/frame_NNNNNN.jpg (NNNNNN = frame index),\n' +
        'e.g. a calibration set for `edgekd export --precision int8 --calibration DIR`. The folder is written\n' +
        'beside DIR and renamed into place.',
    );
    return 0;
  }
  if (typeof v.video !== 'string' || typeof v.out !== 'string')
    throw new ConfigError('ERR_CONFIG_INVALID', 'data frames needs --video FILE and --out DIR');
  if (existsSync(v.out))
    throw new ConfigError('ERR_FILE_WRITE', `--out '${v.out}' exists; choose a new folder`);
  const num = (name: string, dflt: number | undefined, min: number) => {
    const raw = v[name];
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new ConfigError(
        'ERR_CONFIG_RANGE',
        `--${name} must be an integer >= ${min}, got '${String(raw)}'`,
      );
    return n;
  };
  const quality = num('quality', 95, 1)!;
  if (quality > 100)
    throw new ConfigError('ERR_CONFIG_RANGE', `--quality must be in [1, 100], got ${quality}`);
  const tmp = `${v.out}.tmp-${process.pid}`;
  mkdirSync(tmp, { recursive: true });
  let written = 0;
  try {
    for await (const f of readVideoFrames(v.video, {
      start: num('start', 0, 0),
      count: num('count', undefined, 1),
      step: num('step', 1, 1),
    })) {
      await sharp(Buffer.from(f.image.data.buffer, f.image.data.byteOffset, f.image.data.length), {
        raw: { width: f.image.width, height: f.image.height, channels: 3 },
      })
        .jpeg({ quality })
        .toFile(join(tmp, `frame_${String(f.index).padStart(6, '0')}.jpg`));
      written++;
    }
    if (written === 0)
      throw new ConfigError('ERR_CONFIG_RANGE', `no frames in the requested range of '${v.video}'`);
    renameSync(tmp, v.out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  console.log(JSON.stringify({ out: v.out, frames: written }));
  return 0;
}

/** `edgekd data synth --out DIR ...` and `edgekd data frames --video FILE --out DIR ...` */
export async function dataCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'frames') return dataFramesCommand(rest);
  if (sub === undefined || sub === '--help' || sub === '-h') {
    console.log(
      'usage: edgekd data <subcommand> [options]   (available: synth, frames)\n' +
        '  synth   write a synthetic COCO set (edgekd data synth --help)\n' +
        '  frames  extract video frames to JPEGs (edgekd data frames --help)',
    );
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'synth') {
    console.error(
      `error[ERR_CONFIG_UNKNOWN_KEY]: unknown data subcommand '${sub ?? ''}' (available: synth, frames)`,
    );
    return 2;
  }
  const v = parseFlags(rest, {
    out: { type: 'string' },
    count: { type: 'string' },
    width: { type: 'string' },
    height: { type: 'string' },
    seed: { type: 'string' },
  });
  if (v.help) {
    console.log(
      'usage: edgekd data synth --out DIR [--count 200] [--width 320] [--height 320] [--seed 0]\nWrites DIR/images/*.png and DIR/annotations.json (COCO, class "person").',
    );
    return 0;
  }
  if (typeof v.out !== 'string') throw new ConfigError('ERR_CONFIG_INVALID', 'data synth needs --out DIR');
  const num = (name: string, dflt: number, min: number) => {
    const raw = v[name];
    const n = raw === undefined ? dflt : Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new ConfigError(
        'ERR_CONFIG_RANGE',
        `--${name} must be an integer >= ${min}, got '${String(raw)}'`,
      );
    return n;
  };
  const r = await writeSyntheticCoco(v.out, {
    count: num('count', 200, 1),
    width: num('width', 320, 32),
    height: num('height', 320, 32),
    seed: num('seed', 0, -2147483648),
  });
  console.log(JSON.stringify(r));
  return 0;
}
