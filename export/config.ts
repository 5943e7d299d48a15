/**
 * `ExportConfig`: the one schema of `edgekd export`. Defaults live here and nowhere else; the
 * CLI flags (`--checkpoint`, `--out`, `--outputs`, ...) are generated from it.
 */
import { z } from 'zod';

export const ExportConfigSchema = z.strictObject({
  checkpoint: z.string().min(1).describe('(path) edgekd checkpoint (.safetensors) to export'),
  out: z.string().min(1).describe('(path) ONNX file to write; the model card goes beside it as <name>.json'),
  outputs: z
    .enum(['heads', 'boxes'])
    .default('boxes')
    .describe('(heads|boxes) heads: heatmap/size/offset NHWC; boxes: detections [N, K, 6] decoded in-graph'),
  inputSize: z
    .string()
    .regex(/^\d+(x\d+)?$/, 'expected N or WxH, e.g. 256 or 320x256')
    .optional()
    .describe(
      '(N|WxH) export at another input size than the checkpoint spec (multiples of 32; the network is fully convolutional, the model card records both sizes)',
    ),
  opset: z
    .union([z.literal(17), z.literal(18)])
    .default(17)
    .describe('(17|18) ONNX default-domain opset (IR version 8)'),
  precision: z
    .enum(['fp32', 'fp16', 'int8'])
    .default('fp32')
    .describe('(fp32|fp16|int8) weights/compute precision; I/O stays float32'),
  calibration: z
    .string()
    .optional()
    .describe(
      '(string) int8 only: calibration set: a folder of images, a COCO JSON file (its images) or synthetic:COUNT[:SEED]',
    ),
  int8Activations: z
    .enum(['uint8', 'int8'])
    .default('uint8')
    .describe(
      '(uint8|int8) int8 only: activation type; uint8 fuses into QLinearConv on ORT CPU, int8 (symmetric) is what TensorRT takes',
    ),
  int8FloatHeads: z
    .boolean()
    .default(true)
    .describe(
      "(bool) int8 only: keep the heads' last 1x1 convs (scores, sizes, offsets) in float32: less AP lost for ~no speed (--no-int8-float-heads quantises them too)",
    ),
  calibrationLimit: z
    .number()
    .int()
    .min(1)
    .default(256)
    .describe('(int) int8 only: most images read from a calibration folder'),
  calibrationMethod: z
    .enum(['minmax', 'percentile'])
    .default('minmax')
    .describe(
      '(minmax|percentile) int8 only: how activation ranges are measured (min-max lost less AP50 than 99.99th percentile on both shipped specs)',
    ),
  verify: z
    .boolean()
    .default(true)
    .describe('(bool) check parity against the tfjs model with onnxruntime-node (--no-verify skips)'),
  triton: z
    .string()
    .optional()
    .describe('(path) also write a Triton Inference Server model repository under this folder'),
  tritonMaxBatch: z
    .number()
    .int()
    .min(1)
    .max(256)
    .default(8)
    .describe('(int) Triton max_batch_size; preferred batches are the powers of two up to it'),
  parityBatch: z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(2)
    .describe('(int) images per parity input kind (random noise, synthetic scene)'),
});

export type ExportConfig = z.output<typeof ExportConfigSchema>;
export type ExportConfigInput = z.input<typeof ExportConfigSchema>;
