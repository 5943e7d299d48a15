/**
 * The model spec: the single source of truth about a model. It travels with every
 * checkpoint and into the ONNX metadata; training, export and runtime read sizes,
 * classes, normalisation, widths and decode settings from it and hard-code none.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, ModelFormatError } from './errors.js';

/** Feature-tap strides of the backbone stages C2..C5 and FPN levels P2..P5. */
export const LEVEL_STRIDES = { 2: 4, 3: 8, 4: 16, 5: 32 } as const;
export type Level = 2 | 3 | 4 | 5;

const Normalization = z.discriminatedUnion('kind', [
  z
    .strictObject({
      kind: z.literal('meanstd'),
      mean: z
        .tuple([z.number(), z.number(), z.number()])
        .describe('(number[3]) per-channel mean, 0..255 scale'),
      std: z
        .tuple([z.number().positive(), z.number().positive(), z.number().positive()])
        .describe('(number[3]) per-channel std, 0..255 scale'),
    })
    .describe('x = (pixel - mean) / std'),
  z.strictObject({ kind: z.literal('unit') }).describe('x = pixel / 255'),
  z.strictObject({ kind: z.literal('raw') }).describe('x = pixel (0..255)'),
]);

const Stage = z.strictObject({
  channels: z.number().int().positive().describe('(int) output channels of the stage'),
  depth: z.number().int().min(1).max(16).describe('(int) number of blocks; the first has stride 2'),
  expansion: z.number().int().min(1).max(8).default(4).describe('(int) inverted-residual expansion ratio'),
});

export const ModelSpecSchema = z.strictObject({
  format: z.literal('edgekd-model-spec').default('edgekd-model-spec'),
  version: z.literal(1).default(1),
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*$/i, 'letters, digits, ".", "_" and "-" only')
    .describe('(string) model name'),
  architecture: z.literal('centernet-fpn').default('centernet-fpn'),
  classes: z.array(z.string().min(1)).min(1).describe('(string[]) class names; class id = index'),
  input: z.strictObject({
    height: z
      .number()
      .int()
      .min(32)
      .max(4096)
      .multipleOf(32)
      .describe('(int) network input height, multiple of 32'),
    width: z
      .number()
      .int()
      .min(32)
      .max(4096)
      .multipleOf(32)
      .describe('(int) network input width, multiple of 32'),
    channelOrder: z
      .enum(['rgb', 'bgr'])
      .default('rgb')
      .describe('(rgb|bgr) channel order fed to the network'),
    normalization: Normalization.default({ kind: 'unit' }),
    /** How a source image is fitted into the input: letterbox keeps aspect (pad value 114). */
    resize: z.enum(['letterbox', 'stretch']).default('letterbox'),
  }),
  backbone: z.strictObject({
    kind: z.literal('mobilenetv2').default('mobilenetv2'),
    stemChannels: z
      .number()
      .int()
      .positive()
      .default(16)
      .describe('(int) channels of the stride-2 stem conv'),
    stages: z.tuple([Stage, Stage, Stage, Stage]).describe('C2..C5 stages (strides 4, 8, 16, 32)'),
  }),
  neck: z.strictObject({
    channels: z.number().int().positive().describe('(int) FPN width of P2..P5'),
  }),
  head: z.strictObject({
    channels: z.number().int().positive().describe('(int) hidden width of each head branch'),
    level: z.literal(2).default(2).describe('FPN level the head runs on (P2, stride 4)'),
    heatmapPriorProb: z
      .number()
      .gt(0)
      .lt(1)
      .default(0.05)
      .describe('(number) initial heatmap probability (bias init)'),
    /**
     * How the size branch encodes (w, h): `log-stride` means w = exp(size[0]) * stride, in input
     * pixels; log space keeps 8 px and 300 px people on the same loss scale.
     */
    sizeEncoding: z.literal('log-stride').default('log-stride'),
  }),
  decode: z.strictObject({
    topK: z.number().int().min(1).max(1000).default(100).describe('(int) detections kept per image'),
    scoreThreshold: z.number().min(0).max(1).default(0.3).describe('(number) minimum score reported'),
    poolSize: z
      .number()
      .int()
      .min(1)
      .max(9)
      .default(3)
      .describe('(int) max-pool window for peak picking (odd)'),
  }),
});

export type ModelSpec = z.output<typeof ModelSpecSchema>;
export type ModelSpecInput = z.input<typeof ModelSpecSchema>;

/** Output stride of the detection head (heatmap cell size in input pixels). */
export function headStride(spec: ModelSpec): number {
  return LEVEL_STRIDES[spec.head.level];
}

/** Formats zod issues as `field.path: message` lines. */
export function formatIssues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/**
 * Validates a model spec object.
 * @throws {ModelFormatError} naming each bad field (`ERR_MODEL_FORMAT`).
 */
export function parseModelSpec(value: unknown, source = 'model spec'): ModelSpec {
  const r = ModelSpecSchema.safeParse(value);
  if (!r.success)
    throw new ModelFormatError('ERR_MODEL_FORMAT', `${source} is invalid: ${formatIssues(r.error)}`);
  if (r.data.decode.poolSize % 2 === 0)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `${source} is invalid: decode.poolSize must be odd, got ${r.data.decode.poolSize}`,
    );
  return r.data;
}

/** Reads and validates a spec JSON file. @throws {ConfigError} when missing, {ModelFormatError} when invalid. */
export function readModelSpec(path: string): ModelSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('ERR_FILE_NOT_FOUND', `cannot read model spec '${path}'`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError('ERR_MODEL_FORMAT', `model spec '${path}' is not valid JSON`, { cause: e });
  }
  return parseModelSpec(json, `model spec '${path}'`);
}
