/**
 * The data contract of training: every source (COCO, YOLO, MOT, video frames, the synthetic
 * generator) becomes a {@link Dataset} of lazily decoded {@link Sample}s, and the loader turns
 * samples into {@link TrainBatch}es for the network. Nothing here imports tfjs: batches are
 * plain typed arrays that the trainer wraps in tensors.
 */
import type { Annotation } from '../../models/core/detection.js';
import type { LetterboxTransform } from '../../models/core/letterbox.js';

/** Re-exported: the source -> network transform is defined once, in models/core. */
export type { LetterboxTransform } from '../../models/core/letterbox.js';

/** A decoded image: `data` is HWC, 3 channels, RGB, uint8, length `height * width * 3`. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * One image of a dataset with its labels. Annotations are known up front (readers parse
 * label files eagerly); pixels are decoded only when {@link Sample.load} is called, so a
 * dataset of 100k images costs only its labels in memory.
 */
export interface Sample {
  /** Stable id, unique in its dataset (file path relative to the dataset root, or `seq/000042`). */
  id: string;
  /** Source image width in pixels. */
  width: number;
  /** Source image height in pixels. */
  height: number;
  /** Boxes in source pixels, class ids index the target class list. */
  annotations: Annotation[];
  /**
   * Decodes to RGB HWC uint8 of size `width x height`.
   * @throws {DataFormatError} `ERR_IMAGE_DECODE` / `ERR_FILE_NOT_FOUND` naming the file.
   */
  load(): Promise<RgbImage>;
}

/**
 * Something a reader or the loader left out, and why. Readers aggregate records that share a
 * reason (e.g. 12,000 annotations of class 'car' are one record with `count: 12000` and a few
 * example locations in `what`), so the list stays short even on full COCO.
 */
export interface SkipRecord {
  /** What was skipped: e.g. `instances.json: annotations[12]` or `sample 'img/001.jpg'`. */
  what: string;
  /** Why: e.g. `unknown class 'car'`, `zero-area box after clipping`. */
  reason: string;
  /** How many items this record stands for (1 when absent). */
  count?: number;
}

/** A set of samples with the target class list they are labelled in. */
export interface Dataset {
  name: string;
  /** Target class names; `Annotation.classId` indexes this list (normally the model spec's `classes`). */
  classes: string[];
  samples: Sample[];
  /** Labels or images the reader left out, aggregated by reason. */
  skipped: SkipRecord[];
}

/**
 * A batch ready for the network.
 * `imagesNhwc` is `[size, height, width, 3]`, normalised and channel-ordered as the model spec
 * says; `annotations[i]` are the boxes of image i in network-input pixels (after letterbox /
 * augmentation), clipped to `[0, width] x [0, height]`.
 */
export interface TrainBatch {
  size: number;
  height: number;
  width: number;
  imagesNhwc: Float32Array;
  annotations: Annotation[][];
  ids: string[];
}

/** A non-augmented batch for evaluation: also carries what is needed to map back to source pixels. */
export interface EvalBatch extends TrainBatch {
  /** Per image: source -> network transform (see {@link LetterboxTransform}). */
  transforms: LetterboxTransform[];
  /** Per image: the annotations in source pixels, as in the dataset. */
  sourceAnnotations: Annotation[][];
}
