/**
 * Draws training progress events on a terminal: a redrawn cli-progress bar with ETA and every
 * loss term on a TTY; one line per epoch otherwise (CI, pipes, log files).
 */
import cliProgress from 'cli-progress';
import type { ProgressEvent } from '../models/core/events.js';

const fmt = (v: number) =>
  Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(3) : v.toPrecision(3);
const terms = (o: Record<string, number>) =>
  Object.entries(o)
    .map(([k, v]) => `${k}=${fmt(v)}`)
    .join(' ');
const PRIMARY_METRICS = ['AP', 'AP50', 'APsmall', 'MR2', 'MR2Reasonable'];

export function metricLine(m: Record<string, number>): string {
  return PRIMARY_METRICS.filter((k) => k in m)
    .map((k) => `${k}=${m[k].toFixed(3)}`)
    .join(' ');
}

/** Returns an onEvent handler that writes to `out` (stderr by default). */
export function createProgressPrinter(
  out: NodeJS.WriteStream = process.stderr,
  tty = Boolean(out.isTTY) && !process.env.CI,
): (e: ProgressEvent) => void {
  let bar: cliProgress.SingleBar | undefined;
  const line = (s: string) => {
    if (bar) bar.stop();
    bar = undefined;
    out.write(s + '\n');
  };
  return (e) => {
    switch (e.kind) {
      case 'train-start':
        line(
          `backend ${e.backend}, ${e.workers} replica(s), ${e.params.toLocaleString('en-US')} params, ${e.epochs} epochs x ${e.stepsPerEpoch} steps`,
        );
        break;
      case 'epoch-start':
        if (tty) {
          bar = new cliProgress.SingleBar(
            {
              stream: out,
              format: `epoch ${e.epoch}/${e.epochs} [{bar}] {value}/{total} eta {eta_formatted} {speed} img/s {losses}`,
              hideCursor: true,
              etaBuffer: 20,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(e.steps, 0, { losses: '', speed: '-' });
        }
        break;
      case 'batch-end':
        bar?.update(e.step, { losses: terms({ lr: e.lr, ...e.losses }), speed: e.imagesPerSec.toFixed(1) });
        break;
      case 'epoch-end':
        line(
          `epoch ${e.epoch}/${e.epochs} ${terms(e.losses)} ${e.eval ? metricLine(e.eval) + ' ' : ''}${e.seconds.toFixed(1)}s`,
        );
        break;
      case 'checkpoint':
        if (e.reason !== 'periodic') line(`checkpoint (${e.reason}) ${e.path}`);
        break;
      case 'skip':
        line(`skip: ${e.what}: ${e.reason}`);
        break;
      case 'eval-end':
      case 'train-done':
        break;
    }
  };
}
