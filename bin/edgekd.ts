#!/usr/bin/env node
/**
 * `edgekd` entry point: a thin dispatcher. Each subcommand lives in its folder's cli.ts and is
 * imported lazily, so `edgekd model info` never loads the training stack.
 */
import { exitCodeFor, formatError } from '../models/core/errors.js';
import { setLogLevel, type LogLevel } from '../models/core/log.js';

interface Command {
  summary: string;
  run: (argv: string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  demo: {
    summary:
      'the whole product in a few minutes: shipped model on a video, then distil, export and verify a student',
    run: async (a) => (await import('./demo.js')).demoCommand(a),
  },
  train: {
    summary: 'train a student detector from a config (tfjs: wasm replicas, or tfjs-node)',
    run: async (a) => (await import('../train/cli.js')).trainCommand(a),
  },
  eval: {
    summary: 'evaluate a checkpoint or an exported ONNX model (COCO AP, MR^-2)',
    run: async (a) => (await import('../train/cli.js')).evalCommand(a),
  },
  data: {
    summary: 'data tools: `data synth` (synthetic COCO set), `data frames` (video to JPEGs)',
    run: async (a) => (await import('../train/cli.js')).dataCommand(a),
  },
  label: {
    summary: 'teacher pseudo-labels: run a teacher over video frames or images, write COCO JSON',
    run: async (a) => (await import('../train/cli-kd.js')).labelCommand(a),
  },
  ablate: {
    summary: 'KD ablation: train no-kd and each KD method over seeds, report AP/MR^-2 table + chart',
    run: async (a) => (await import('../train/cli-kd.js')).ablateCommand(a),
  },
  export: {
    summary: 'export a checkpoint to ONNX (heads or decoded boxes) with a model card and parity check',
    run: async (a) => (await import('../export/cli.js')).exportCommand(a),
  },
  detect: {
    summary: 'run an exported ONNX detector on images: JSON per image, annotated images with --out',
    run: async (a) => (await import('../runtime/cli.js')).detectCommand(a),
  },
  bench: {
    summary: 'benchmark a model: latency p50/p90/p99 and throughput per provider and batch size',
    run: async (a) => (await import('../runtime/cli.js')).benchCommand(a),
  },
  video: {
    summary: 'run a detector on a video file, stream, camera or image folder: JSONL, annotated video, tracks',
    run: async (a) => (await import('../runtime/video-cli.js')).videoCommand(a),
  },
  serve: {
    summary: 'HTTP inference server: /v1/detect (micro-batched), streams, metrics, web demo',
    run: async (a) => (await import('../server/cli.js')).serveCommand(a),
  },
  model: {
    summary: 'model tools: `model info` prints params, MACs and feature taps',
    run: async (a) => (await import('../models/cli.js')).modelCommand(a),
  },
};

function usage(): string {
  const lines = [
    'usage: edgekd <command> [options]   (edgekd <command> --help for its options)',
    '',
    'commands:',
  ];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${c.summary}`);
  lines.push('', 'environment: EDGEKD_LOG_LEVEL=error|warn|info|debug');
  return lines.join('\n');
}

async function main(): Promise<number> {
  const [name, ...rest] = process.argv.slice(2);
  const level = process.env.EDGEKD_LOG_LEVEL;
  if (level) setLogLevel(level as LogLevel);
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`error[ERR_CONFIG_UNKNOWN_KEY]: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return cmd.run(rest);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(formatError(err));
    if (process.env.EDGEKD_LOG_LEVEL === 'debug' && err instanceof Error) console.error(err.stack);
    process.exitCode = exitCodeFor(err);
  },
);
