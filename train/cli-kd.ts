/**
 * Distillation-side commands: `edgekd label` (teacher pseudo-labels as COCO) and `edgekd ablate`
 * (KD ablation runner and report). Logs and progress go to stderr, results (one JSON line) to stdout.
 */
import { statSync } from 'node:fs';
import { extname } from 'node:path';
import { helpText, parseCli, readJsonFile, validateConfig } from '../models/core/config.js';
import { ConfigError } from '../models/core/errors.js';
import { AblateConfigSchema, runAblation, type AblateEvent } from './ablate.js';
import { TeacherConfigSchema, type TeacherConfig } from './distill/config.js';
import {
  evaluationSplitWarning,
  LabelConfigSchema,
  labelClasses,
  labelFrames,
  labelImages,
  parseFrameRange,
  type LabelEvent,
  type LabelSettings,
} from './label.js';
import { selectBackend } from './backend/index.js';
import { createProgressPrinter, metricLine } from './progress.js';
import { createTeacher } from './teachers/index.js';

const err = (s: string) => process.stderr.write(`${s}\n`);
const out = (s: string) => process.stdout.write(`${s}\n`);

/** Ctrl-C once: finish the current step and write what is done; twice: quit now. */
function interruptible(what: string): { signal: AbortSignal; release: () => void } {
  const ac = new AbortController();
  let n = 0;
  const on = () => {
    n++;
    if (n === 1) {
      err(`\ninterrupt: ${what} (Ctrl-C again to quit now)`);
      ac.abort();
    } else process.exit(130);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    signal: ac.signal,
    release: () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

/**
 * `--teacher`: `centernet` (built-in, defaults), an edgekd checkpoint (`.safetensors`), or a JSON
 * file holding one TeacherConfig.
 * @throws {ConfigError}
 */
export function parseTeacherArg(arg: string): TeacherConfig {
  if (arg === 'centernet') return validateConfig(TeacherConfigSchema, { kind: 'centernet' }, '--teacher');
  if (extname(arg).toLowerCase() === '.safetensors')
    return validateConfig(TeacherConfigSchema, { kind: 'edgekd', checkpoint: arg }, '--teacher');
  if (extname(arg).toLowerCase() === '.json')
    return validateConfig(
      TeacherConfigSchema,
      readJsonFile(arg, 'teacher config'),
      `teacher config '${arg}'`,
    );
  throw new ConfigError(
    'ERR_CONFIG_INVALID',
    `--teacher must be centernet, a TeacherConfig .json file or an edgekd .safetensors checkpoint, got '${arg}'`,
  );
}

const LABEL_USAGE =
  'usage: edgekd label --teacher centernet|FILE.json|FILE.safetensors (--video FILE [--frames 0-499] | --images DIR)\n' +
  '                    --out DIR/labels.json [--threshold 0.4] [--classes person] [--size 512] [--batch 4]\n\n' +
  'Runs the teacher over the frames (letterboxed to --size, boxes mapped back to source pixels) and writes a\n' +
  'COCO file of its detections with the images in DIR/images/, usable as {"kind":"coco","annotations":FILE}.';

/** `edgekd label ...` */
export async function labelCommand(argv: string[]): Promise<number> {
  const { config: c, extra } = parseCli(LabelConfigSchema, argv);
  if (extra.help) {
    out(helpText(LABEL_USAGE, LabelConfigSchema));
    return 0;
  }
  if ((c.video === undefined) === (c.images === undefined))
    throw new ConfigError('ERR_CONFIG_INVALID', 'label needs exactly one of --video FILE or --images DIR');
  if (c.frames !== undefined && c.video === undefined)
    throw new ConfigError('ERR_CONFIG_INVALID', '--frames goes with --video');
  const classes = labelClasses(c.classes);
  const range = { ...parseFrameRange(c.frames ?? '0'), step: c.step };
  const warning = c.video !== undefined ? evaluationSplitWarning(c.video, range) : undefined;
  if (warning) err(`warning: ${warning}`);
  const settings: LabelSettings = {
    classes,
    threshold: c.threshold,
    size: c.size,
    batch: c.batch,
    maxDetections: c.maxDetections,
    minBoxSize: c.minBoxSize,
    quality: c.quality,
  };
  // Cheap input checks before the teacher loads (seconds for a tfjs graph model).
  if (c.video !== undefined && !statSync(c.video, { throwIfNoEntry: false })?.isFile())
    throw new ConfigError('ERR_FILE_NOT_FOUND', `--video '${c.video}' is not a readable file`);
  if (c.images !== undefined && !statSync(c.images, { throwIfNoEntry: false })?.isDirectory())
    throw new ConfigError('ERR_FILE_NOT_FOUND', `--images '${c.images}' is not a readable folder`);
  const teacherCfg = parseTeacherArg(c.teacher);
  // The trainer picks a backend inside its workers; here the teacher runs on the main thread, whose
  // tfjs default would be the (slow) pure-JS cpu backend.
  const backend = await selectBackend(c.backend);
  err(`backend ${backend.name}`);
  const teacher = await createTeacher(teacherCfg, { classes });
  err(
    `teacher ${teacher.name} (${teacher.fingerprint}), classes ${classes.join(',')}, threshold ${c.threshold}`,
  );
  let lastPrinted = 0;
  const onEvent = (e: LabelEvent) => {
    if (e.kind === 'label-start')
      err(`labelling ${e.source}${e.total !== undefined ? ` (${e.total} images)` : ''} with ${e.teacher}`);
    else if (e.kind === 'label-progress') {
      const atEnd = e.total !== undefined && e.done >= e.total;
      if (e.done - lastPrinted < c.progressEvery && !atEnd) return;
      lastPrinted = e.done;
      const eta =
        e.total !== undefined && e.imagesPerSec > 0
          ? ` eta ${((e.total - e.done) / e.imagesPerSec).toFixed(0)}s`
          : '';
      err(
        `label ${e.done}${e.total !== undefined ? `/${e.total}` : ''} images, ${e.detections} boxes, ${e.imagesPerSec.toFixed(1)} img/s${eta}`,
      );
    }
  };
  const stop = interruptible('writing the labels done so far');
  try {
    const r =
      c.video !== undefined
        ? await labelFrames(teacher, c.video, range, c.out, settings, { onEvent, signal: stop.signal })
        : await labelImages(teacher, c.images as string, c.out, settings, { onEvent, signal: stop.signal });
    err(
      `${r.interrupted ? 'interrupted' : 'done'} in ${r.seconds.toFixed(1)}s: ${r.coco.images.length} images, ${r.coco.annotations.length} boxes -> ${r.annotationFile}`,
    );
    out(
      JSON.stringify({
        annotations: r.annotationFile,
        images: r.imagesDir,
        count: r.coco.images.length,
        boxes: r.coco.annotations.length,
        frames: r.coco.info.frames,
        teacher: r.coco.info.teacher,
      }),
    );
    return r.interrupted ? 130 : 0;
  } finally {
    stop.release();
    teacher.dispose();
  }
}

const ABLATE_USAGE =
  'usage: edgekd ablate --config FILE [--out DIR] [--seeds [0,1]] [--report-only]\n\n' +
  'Trains the base config once per variant (default: no-kd, each KD method, the combined recipe) and seed,\n' +
  'evaluates every run on base.data.val, and writes <out>/ablation.md, ablation.png and ablation.json.\n' +
  'Runs already recorded in <out>/results.json with the same config are reused (resume).';

/** `edgekd ablate --config FILE` */
export async function ablateCommand(argv: string[]): Promise<number> {
  const { config, extra } = parseCli(AblateConfigSchema, argv, { 'report-only': { type: 'boolean' } });
  if (extra.help) {
    out(
      helpText(ABLATE_USAGE, AblateConfigSchema, [
        `${'  --report-only'.padEnd(38)} rewrite the report from results.json (train nothing)`,
      ]),
    );
    return 0;
  }
  const progress = createProgressPrinter();
  const onEvent = (e: AblateEvent) => {
    switch (e.kind) {
      case 'ablate-start':
        err(`ablation: ${e.runs} runs, ${e.toRun} to train, in ${e.out}`);
        break;
      case 'run-start':
        err(`\n== run ${e.index}/${e.total}: ${e.name} (variant ${e.variant}, seed ${e.seed})`);
        break;
      case 'run-skip':
        err(`run ${e.name}: ${e.reason}`);
        break;
      case 'run-done':
        err(
          `run ${e.record.name} done: ${metricLine(e.record.metrics)} train ${e.record.trainSeconds.toFixed(1)}s` +
            `${e.record.lossesFinite ? '' : ' (NON-FINITE LOSS)'}`,
        );
        break;
      case 'run-failed':
        err(`run ${e.name} failed: ${e.error}`);
        break;
      case 'train':
        progress(e.event);
        break;
      case 'report':
        err(`report: ${e.markdown}, ${e.chart}, ${e.json}`);
        break;
    }
  };
  const stop = interruptible('stopping after the current step and writing the report');
  try {
    const r = await runAblation(config, {
      onEvent,
      signal: stop.signal,
      reportOnly: extra['report-only'] === true,
      command: ['edgekd', 'ablate', ...argv].join(' '),
    });
    out(
      JSON.stringify({
        out: r.out,
        report: r.markdown,
        chart: r.chart,
        json: r.json,
        runs: r.runs.length,
        reused: r.reused,
        failed: r.failed,
        interrupted: r.interrupted,
      }),
    );
    return r.interrupted ? 130 : r.failed > 0 ? 1 : 0;
  } finally {
    stop.release();
  }
}
