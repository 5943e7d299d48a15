/**
 * One interface for every teacher: given a batch of RGB images, return feature maps per stride
 * and (where it has one) its class-score map mapped to the student's classes. No gradients:
 * teacher outputs are constants for the student. Maps cover the whole input image; the trainer
 * aligns a stride-s map to the student's grid (input / s) by bilinear resampling.
 */
import type { Detection } from '../../models/core/detection.js';

/** A plain NHWC float map (crosses threads and goes to the cache as-is). */
export interface FeatureMap {
  shape: [number, number, number, number];
  data: Float32Array;
}

export interface TeacherOutput {
  /** Neck (FPN / decoder) features keyed by stride in the teacher's own input. */
  neck: Map<number, FeatureMap>;
  /** Backbone-stage features keyed by stride (may be empty). */
  backbone: Map<number, FeatureMap>;
  /** Class probabilities (0..1) for the STUDENT's classes, [N, h, w, K], with its stride. */
  headProb?: { stride: number; map: FeatureMap };
}

export interface TeacherDetectOptions {
  /** Keep detections scoring at least this. */
  scoreThreshold: number;
  /** Max detections per image. */
  maxDetections?: number;
}

export interface Teacher {
  readonly name: string;
  /** Stable identity for cache keys: kind, model file hash and options that change outputs. */
  readonly fingerprint: string;
  /** Neck stride -> channels. */
  readonly neckChannels: ReadonlyMap<number, number>;
  /** Backbone stride -> channels. */
  readonly backboneChannels: ReadonlyMap<number, number>;
  /** Student class names the head map covers, in the student's order (empty: no head map). */
  readonly headClasses: readonly string[];
  /**
   * Runs the teacher.
   * @param images - NHWC RGB pixels 0..255, [batch, height, width, 3]
   */
  run(images: Float32Array, batch: number, height: number, width: number): Promise<TeacherOutput>;
  /**
   * Decoded detections per image, boxes in the given images' pixels, classId = student class
   * index (for `edgekd label`). Throws ConfigError when the teacher cannot decode boxes.
   */
  detect(
    images: Float32Array,
    batch: number,
    height: number,
    width: number,
    opts: TeacherDetectOptions,
  ): Promise<Detection[][]>;
  dispose(): void;
}
