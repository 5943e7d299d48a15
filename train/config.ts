/**
 * `edgekd train` configuration: one strict zod schema; defaults live here and nowhere else.
 * Precedence (right wins): these defaults < --config FILE < CLI flags.
 */
import { z } from 'zod';
import { ModelSpecSchema } from '../models/core/spec.js';
import { DistillConfigSchema } from './distill/config.js';

const Synthetic = z.strictObject({
  kind: z.literal('synthetic'),
  count: z.number().int().min(1).describe('(int) number of generated images'),
  seed: z.number().int().default(0).describe('(int) generator seed'),
  width: z.number().int().min(32).optional().describe('(int) image width (default: model input width)'),
  height: z.number().int().min(32).optional().describe('(int) image height (default: model input height)'),
});
const Coco = z.strictObject({
  kind: z.literal('coco'),
  annotations: z.string().describe('(path) COCO JSON file'),
  images: z.string().optional().describe('(path) image folder (default: folder of the JSON)'),
});
const Yolo = z.strictObject({
  kind: z.literal('yolo'),
  root: z.string().describe('(path) folder holding images/ and labels/'),
  names: z.array(z.string()).min(1).describe('(string[]) source class names by YOLO class id'),
  split: z.string().optional().describe('(string) sub-folder under images/ and labels/, e.g. train'),
});
const Mot = z.strictObject({
  kind: z.literal('mot'),
  gt: z.string().describe('(path) MOT gt.txt'),
  frames: z.string().optional().describe('(path) folder of frame images (img1/)'),
  video: z.string().optional().describe('(path) video file instead of frames'),
});

/** Where images and labels come from. Paths are relative to the working directory. */
export const DataSourceSchema = z.discriminatedUnion('kind', [Synthetic, Coco, Yolo, Mot]);
export type DataSource = z.output<typeof DataSourceSchema>;

const AdamW = z.strictObject({
  kind: z.literal('adamw'),
  lr: z.number().positive().default(2e-3).describe('(number) peak learning rate'),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  epsilon: z.number().positive().default(1e-8),
  weightDecay: z.number().min(0).default(5e-4).describe('(number) decoupled weight decay on conv kernels'),
});
const Sgd = z.strictObject({
  kind: z.literal('sgd'),
  lr: z.number().positive().default(2e-2),
  momentum: z.number().min(0).lt(1).default(0.9),
  nesterov: z.boolean().default(true),
  weightDecay: z.number().min(0).default(5e-4),
});

export const TrainConfigSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-zA-Z0-9._-]+$/)
    .default('run')
    .describe('(string) run name; outputs go to <out>/<name>'),
  out: z.string().default('runs').describe('(path) folder for run outputs'),
  model: z.union([z.string(), ModelSpecSchema]).describe('(path|object) model spec JSON file or inline spec'),
  backend: z
    .enum(['auto', 'tensorflow', 'wasm', 'cpu'])
    .default('auto')
    .describe('(auto|tensorflow|wasm|cpu) tfjs backend'),
  workers: z
    .number()
    .int()
    .min(0)
    .max(64)
    .default(0)
    .describe('(int) data-parallel replicas, one per core; 0 = number of cores'),
  seed: z.number().int().default(0).describe('(int) seed for weights, shuffling and augmentation'),
  data: z.strictObject({
    train: z
      .union([DataSourceSchema, z.array(DataSourceSchema).min(1)])
      .describe('training set: one source, or a list whose samples are concatenated (e.g. real + synthetic)'),
    val: DataSourceSchema.optional().describe('held-out set for periodic eval'),
    aliases: z
      .record(z.string(), z.string())
      .default({})
      .describe('(object) dataset class name -> model class name'),
    mapAllTo: z.string().optional().describe('(string) map every dataset label to this model class'),
  }),
  train: z
    .strictObject({
      epochs: z.number().int().min(1).default(10).describe('(int) passes over the training set'),
      batchSize: z.number().int().min(1).default(16).describe('(int) images per optimiser step'),
      microBatch: z
        .number()
        .int()
        .min(1)
        .default(4)
        .describe('(int) images per forward/backward inside a replica (bounds wasm memory)'),
      optimizer: z
        .discriminatedUnion('kind', [AdamW, Sgd])
        .default({ kind: 'adamw', lr: 2e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 5e-4 })
        .describe(
          '(json) {"kind":"adamw","lr":..,"weightDecay":..} or {"kind":"sgd","lr":..,"momentum":..,"nesterov":..}',
        ),
      warmupEpochs: z.number().min(0).default(1).describe('(number) linear warm-up length in epochs'),
      minLrRatio: z
        .number()
        .min(0)
        .max(1)
        .default(0.05)
        .describe('(number) final lr as a fraction of the peak'),
      gradClip: z.number().min(0).default(10).describe('(number) max global gradient norm (0 = off)'),
      ema: z.number().min(0).lt(1).default(0.999).describe('(number) EMA decay of weights (0 = off)'),
      emaRampSteps: z
        .number()
        .int()
        .min(1)
        .default(200)
        .describe('(int) steps over which the EMA decay ramps up'),
      bnMomentum: z.number().min(0).lt(1).default(0.9).describe('(number) BN moving-statistics momentum'),
      augment: z.boolean().default(true).describe('(bool) random scale/crop/flip/colour jitter'),
      prefetch: z
        .number()
        .int()
        .min(0)
        .default(2)
        .describe('(int) batches decoded ahead of the training step'),
    })
    // An omitted section means every default.
    .prefault({}),
  loss: z
    .strictObject({
      heatmap: z.number().min(0).default(1).describe('(number) weight of the focal heatmap term'),
      size: z.number().min(0).default(1).describe('(number) weight of the log-size L1 term'),
      offset: z.number().min(0).default(1).describe('(number) weight of the centre-offset L1 term'),
      giou: z
        .number()
        .min(0)
        .default(2)
        .describe('(number) weight of the dense GIoU box loss (TTFNet; 0 = off)'),
      focalAlpha: z.number().min(0).default(2).describe('(number) focal-loss exponent on the prediction'),
      focalBeta: z
        .number()
        .min(0)
        .default(4)
        .describe('(number) penalty reduction around centres, (1 - y)^beta'),
    })
    .default({ heatmap: 1, size: 1, offset: 1, giou: 2, focalAlpha: 2, focalBeta: 4 }),
  eval: z
    .strictObject({
      every: z
        .number()
        .int()
        .min(0)
        .default(1)
        .describe('(int) evaluate every N epochs (0 = only at the end)'),
      scoreThreshold: z
        .number()
        .min(0)
        .max(1)
        .default(0.01)
        .describe('(number) score floor for eval detections'),
      maxDetections: z
        .number()
        .int()
        .min(1)
        .default(100)
        .describe('(int) detections kept per image for eval'),
    })
    .default({ every: 1, scoreThreshold: 0.01, maxDetections: 100 }),
  distill: DistillConfigSchema.optional().describe('knowledge distillation from one or more teachers'),
  checkpointEvery: z.number().int().min(1).default(1).describe('(int) save last.safetensors every N epochs'),
  resume: z.string().optional().describe('(path) checkpoint to resume from (weights, optimiser, epoch)'),
});

export type TrainConfig = z.output<typeof TrainConfigSchema>;
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;
