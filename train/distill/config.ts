/**
 * The `distill` block of a train config: teachers, each method's own block (present = on),
 * schedule and teacher-output cache. Defaults follow docs/distillation-methods.md ([D] values)
 * and live here only.
 */
import { z } from 'zod';

const FeatureNorm = z
  .enum(['pkd', 'none'])
  .describe('(pkd|none) per-channel standardisation of both sides (pkd: needed for a foreign teacher)');

/** Student class name -> teacher class indices whose max is that class's probability. */
const ClassMap = z
  .record(z.string(), z.array(z.number().int().min(0)).min(1))
  .describe('(object) student class -> teacher class indices, e.g. {"person":[0]}');

const TeacherInputNorm = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('unit') }),
  z.strictObject({ kind: z.literal('raw') }),
  z.strictObject({
    kind: z.literal('meanstd'),
    mean: z.tuple([z.number(), z.number(), z.number()]),
    std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
  }),
]);

const EdgekdTeacher = z.strictObject({
  kind: z.literal('edgekd'),
  name: z.string().default('teacher'),
  weight: z.number().positive().default(1).describe('(number) ensemble weight (normalised over teachers)'),
  checkpoint: z.string().describe('(path) edgekd checkpoint (.safetensors) of the same model family'),
});

const CenterNetTeacher = z.strictObject({
  kind: z.literal('centernet'),
  name: z.string().default('centernet'),
  weight: z.number().positive().default(1),
  modelDir: z
    .string()
    .optional()
    .describe('(path) folder with centernet.json + .bin (default: the @vladmandic/human package models/)'),
  inputSize: z.number().int().min(64).default(512).describe('(int) teacher input side, pixels'),
  classes: ClassMap.default({ person: [0] }),
});

const OnnxTeacher = z.strictObject({
  kind: z.literal('onnx'),
  name: z.string().default('onnx-teacher'),
  weight: z.number().positive().default(1),
  path: z.string().describe('(path) ONNX model'),
  input: z.strictObject({
    name: z.string().optional().describe("(string) input name (default: the graph's only input)"),
    height: z.number().int().min(1),
    width: z.number().int().min(1),
    layout: z.enum(['nchw', 'nhwc']).default('nchw'),
    channelOrder: z.enum(['rgb', 'bgr']).default('rgb'),
    normalization: TeacherInputNorm.default({ kind: 'unit' }),
  }),
  features: z
    .record(z.string().regex(/^\d+$/), z.string())
    .describe('(object) stride -> graph output or internal node name of a neck feature, e.g. {"8":"p3"}'),
  backbone: z
    .record(z.string().regex(/^\d+$/), z.string())
    .default({})
    .describe('(object) stride -> node name of a backbone feature'),
  featureLayout: z.enum(['nchw', 'nhwc']).default('nchw').describe('(nchw|nhwc) layout of the feature nodes'),
  heatmap: z
    .strictObject({
      output: z.string(),
      stride: z.number().int().min(1),
      layout: z.enum(['nchw', 'nhwc']).default('nchw'),
      activation: z.enum(['sigmoid', 'none']).default('sigmoid'),
      classes: ClassMap,
    })
    .optional()
    .describe('dense class-score map of the teacher, for head KD'),
});

export const TeacherConfigSchema = z.discriminatedUnion('kind', [
  EdgekdTeacher,
  CenterNetTeacher,
  OnnxTeacher,
]);
export type TeacherConfig = z.output<typeof TeacherConfigSchema>;

export const HplConfigSchema = z.strictObject({
  hint: z.number().min(0).default(2).describe('(number) lambda_hint (2 with pkd, 1 with none)'),
  relation: z.number().min(0).default(1).describe('(number) lambda_rel: inter-level relation'),
  tau: z.number().positive().default(0.5).describe('(number) saliency softmax temperature'),
  norm: FeatureNorm.default('pkd'),
  levels: z.array(z.number().int().min(2).max(5)).default([2, 3, 4, 5]),
});
export type HplConfig = z.output<typeof HplConfigSchema>;

export const HkdConfigSchema = z.strictObject({
  backbone: z.number().min(0).default(1).describe('(number) weight of backbone-stage feature MSE'),
  feature: z.number().min(0).default(1).describe('(number) lambda_f: neck-stage feature MSE'),
  region: z.number().min(0).default(1).describe('(number) lambda_r: RoIAlign region MSE on GT RoIs'),
  logit: z.number().min(0).default(0.5).describe('(number) lambda_l: head soft-target MSE on active cells'),
  jitter: z.number().int().min(0).default(2).describe('(int) jittered copies of each GT RoI'),
  norm: FeatureNorm.default('pkd'),
});
export type HkdConfig = z.output<typeof HkdConfigSchema>;

export const RmPfiConfigSchema = z.strictObject({
  rm: z.number().min(0).default(4).describe('(number) lambda_RM: rank mimicking'),
  pfi: z.number().min(0).default(1.5).describe('(number) lambda_PFI: prediction-guided feature imitation'),
  temperature: z.number().positive().default(1).describe('(number) RM softmax temperature'),
  variant: z.enum(['prob', 'logit']).default('prob').describe('(prob|logit) PFI prediction-gap form'),
  normalizeWeights: z.boolean().default(true).describe('(bool) PFI weights averaged to 1 per batch'),
  stopGradient: z.boolean().default(true).describe('(bool) no gradient through the PFI weight'),
  norm: FeatureNorm.default('pkd'),
  levels: z.array(z.number().int().min(2).max(5)).default([2, 3, 4, 5]),
});
export type RmPfiConfig = z.output<typeof RmPfiConfigSchema>;

export const AdversarialConfigSchema = z.strictObject({
  adversarial: z.number().min(0).default(0.1).describe('(number) lambda_adv'),
  anchor: z.number().min(0).default(0.5).describe('(number) lambda_anc: PKD anchor term'),
  channels: z.number().int().min(1).default(128).describe('(int) discriminator width'),
  lr: z.number().positive().default(1e-4).describe('(number) discriminator Adam lr'),
  beta1: z.number().min(0).lt(1).default(0.5),
  beta2: z.number().min(0).lt(1).default(0.999),
  warmupSteps: z
    .number()
    .int()
    .min(0)
    .default(500)
    .describe('(int) steps training the discriminator only (lambda_adv = 0)'),
  realLabel: z
    .number()
    .gt(0)
    .max(1)
    .default(1)
    .describe('(number) real-label smoothing target (0.9 = smoothed)'),
  levels: z.array(z.number().int().min(2).max(5)).default([2, 3, 4, 5]),
});
export type AdversarialConfig = z.output<typeof AdversarialConfigSchema>;

export const HmkdConfigSchema = z.strictObject({
  match: z.number().min(0).default(1).describe('(number) lambda_match: deep-to-shallow attention matching'),
  decoder: z.number().min(0).default(1).describe('(number) lambda_dec: ABF decoder with HCL'),
  supplementary: z.number().min(0).default(1).describe('(number) lambda_sup: fg/bg imitation'),
  tau: z.number().positive().default(0.2).describe('(number) attention temperature'),
  midChannels: z.number().int().min(1).default(128).describe('(int) ABF width C_m'),
  alphaFg: z.number().min(0).default(1),
  alphaBg: z.number().min(0).default(0.5),
  norm: FeatureNorm.default('pkd'),
});
export type HmkdConfig = z.output<typeof HmkdConfigSchema>;

export const DistillConfigSchema = z.strictObject({
  teachers: z.array(TeacherConfigSchema).min(1).describe('teachers; the first is the primary one'),
  projectChannels: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe(
      '(int) project teacher features wider than this onto this many channels with a frozen seeded orthonormal matrix (cheaper KD and cache; 0 = off)',
    ),
  warmupEpochs: z.number().min(0).default(1).describe('(number) linear ramp of every KD weight from 0'),
  stopFraction: z
    .number()
    .gt(0)
    .max(1)
    .default(0.9)
    .describe('(number) KD is switched off after this fraction of training (1 = never)'),
  cache: z
    .strictObject({
      dir: z.string().describe('(path) folder of cached teacher outputs'),
      variants: z
        .number()
        .int()
        .min(1)
        .default(4)
        .describe('(int) fixed augmentations per image; epoch e uses variant e mod N'),
    })
    .optional()
    .describe('cache teacher outputs on disk for a fixed (pre-augmented) dataset'),
  hpl: HplConfigSchema.optional().describe('hint pyramid learning'),
  hkd: HkdConfigSchema.optional().describe('hierarchical KD (backbone, neck, head)'),
  rmPfi: RmPfiConfigSchema.optional().describe('rank mimicking + prediction-guided feature imitation'),
  adversarial: AdversarialConfigSchema.optional().describe('adversarial feature distillation'),
  hmkd: HmkdConfigSchema.optional().describe('hierarchical matching on P2-P4 for small objects'),
});
export type DistillConfig = z.output<typeof DistillConfigSchema>;
export const KD_METHODS = ['hpl', 'hkd', 'rmPfi', 'adversarial', 'hmkd'] as const;
export type KdMethodName = (typeof KD_METHODS)[number];

/**
 * The combined default recipe (docs/distillation-methods.md §8.2, adapted to a CenterNet
 * student: no quality branch, no box KD from a COCO teacher): 1.5 PFI + 4 RM, HMKD matching and
 * fg/bg supplementary imitation (decoder off), HPL relations only.
 */
export const DEFAULT_RECIPE = {
  rmPfi: { rm: 4, pfi: 1.5 },
  hmkd: { match: 1, decoder: 0, supplementary: 1 },
  hpl: { hint: 0, relation: 1 },
} as const;
