/**
 * `edgekd export --checkpoint FILE --out model.onnx [--outputs heads|boxes] [--precision fp32]
 * [--opset 17] [--no-verify]`. Progress and the result line go to stderr; a JSON summary (paths,
 * size, parity figures) goes to stdout.
 */
import * as tf from '@tensorflow/tfjs';
import { helpText, parseCli } from '../models/core/config.js';
import { ExportConfigSchema } from './config.js';
import { exportOnnx, type ExportEvent } from './export-model.js';

const USAGE =
  'usage: edgekd export --checkpoint FILE --out MODEL.onnx [--outputs heads|boxes] [--precision fp32|fp16|int8 --calibration synthetic:64] [--triton DIR] [--no-verify]';

/** `edgekd export ...`; returns the exit code (errors propagate to bin/edgekd.ts). */
export async function exportCommand(argv: string[]): Promise<number> {
  // Boolean fields take --verify, --verify false and --no-verify (see parseCli).
  const { config, extra } = parseCli(ExportConfigSchema, argv);
  if (extra.help) {
    console.log(helpText(USAGE, ExportConfigSchema));
    return 0;
  }
  // Parity runs the tfjs student on the plain-JS cpu backend: exact float32, no native download.
  // PROD: tfjs's cpu backend otherwise prints an "install tfjs-node" notice; tfjs-node is optional
  // here on purpose (docs/install.md) and the parity check does not need it.
  if (config.verify) {
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
  }
  const verbose = process.env.EDGEKD_LOG_LEVEL === 'debug' || process.env.EDGEKD_LOG_LEVEL === 'info';
  const onEvent = (e: ExportEvent): void => {
    if (e.kind === 'export-op') {
      if (verbose) process.stderr.write(`export: ${e.step} ${e.detail}\n`);
    } else process.stderr.write(`${e.line}\n`);
  };
  const r = await exportOnnx(config, onEvent);
  const p = r.parity;
  if (p) {
    const d = p.maxAbsDiff;
    const boxes = p.boxes
      ? `, boxes ${p.boxes.matched}/${p.boxes.reference} matched (max coord diff ${p.boxes.maxCoordDiff.toExponential(1)} px)`
      : '';
    process.stderr.write(
      `parity (fp32, ort cpu vs tfjs ${p.tfjsBackend}): max abs diff heatmap ${d.heatmap.toExponential(1)}, size ${d.size.toExponential(1)}, offset ${d.offset.toExponential(1)}${boxes}\n`,
    );
  }
  console.log(
    JSON.stringify({
      model: r.model,
      card: r.card,
      sizeBytes: r.sizeBytes,
      seconds: Number(r.seconds.toFixed(2)),
      precision: r.modelCard.precision,
      outputs: r.modelCard.outputs,
      parity: p ? { maxAbsDiff: p.maxAbsDiff, boxes: p.boxes ?? null } : null,
      ...(r.triton ? { triton: r.triton } : {}),
    }),
  );
  return 0;
}
