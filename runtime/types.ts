/**
 * The runtime's contract: a Detector runs an edgekd ONNX model (or a plain ONNX detector with a
 * sidecar spec) on ONNX Runtime in a worker_threads pool and returns boxes in source pixels.
 * The video pipeline, the CLI and the server code against these types only.
 */
import type { Detection } from '../models/core/detection.js';
import type { ModelSpec } from '../models/core/spec.js';

/** Execution providers in preference order; 'cpu' always works. */
export type ProviderName = 'tensorrt' | 'cuda' | 'webgpu' | 'cpu';

export interface DetectorOptions {
  /**
   * Preference list, tried in order (default: every provider this build has, best first, then cpu).
   * "Has" means the provider library loads: tensorrt / cuda when their shared libraries are
   * installed; webgpu (experimental in onnxruntime-node) is tried only when listed.
   */
  providers?: ProviderName[];
  /** CUDA / TensorRT device id (default 0). */
  deviceId?: number;
  /** ORT intra-op threads per session (default: cores / workers, at least 1). */
  intraOpThreads?: number;
  /** Sessions in the worker pool (default 1). */
  workers?: number;
  /** Sidecar spec JSON for a plain ONNX model without `edgekd.spec` metadata. */
  specPath?: string;
  /** Score floor (default: the spec's decode.scoreThreshold). */
  scoreThreshold?: number;
  /** Max detections per image (default: the spec's decode.topK). */
  maxDetections?: number;
  /** Keep only these class ids (default: all). */
  classes?: number[];
  /**
   * Class-aware NMS IoU threshold applied after decoding (default: none; CenterNet's max-pool
   * peak picking needs no NMS, a plain ONNX detector that returns overlapping candidates does).
   */
  nmsIouThreshold?: number;
  /**
   * Whether ORT's idle intra-op threads spin after a run (default: only when the sessions'
   * threads leave a core free; spinning steals cores from other sessions and pre/post-processing).
   */
  allowSpinning?: boolean;
}

/** Maps network-input pixels back to source pixels: defined once, shared with training. */
export type { LetterboxTransform } from '../models/core/letterbox.js';
import type { LetterboxTransform } from '../models/core/letterbox.js';

/**
 * A frame already at the model's input size (e.g. scaled and padded by ffmpeg), packed RGB24
 * (width * height * 3 bytes), with the transform that maps its pixels back to the source.
 */
export interface PreparedFrame {
  rgb: Uint8Array;
  transform: LetterboxTransform;
}

/** Per-stage milliseconds of one detect call (per image in a batch: the batch's figures). */
export interface StageTimings {
  /** Decode + letterbox + normalise/layout into the input tensor. */
  preMs: number;
  /** Time in the worker's session.run (native work). */
  inferMs: number;
  /** Decode of raw heads / box mapping / NMS. */
  postMs: number;
  /** Wall time of the call, including queueing and thread hops. */
  totalMs: number;
  /** Thread hop: message round trip to the session worker minus inferMs (queueing excluded). */
  hopMs?: number;
}

export interface DetectResult {
  /** Boxes in source pixels. */
  detections: Detection[];
  /** Source image size. */
  width: number;
  height: number;
  timings: StageTimings;
}

export interface Detector {
  readonly spec: ModelSpec;
  /** The provider the sessions actually run on. */
  readonly provider: ProviderName;
  /** Providers skipped before it, with the reason. */
  readonly fallbacks: { provider: ProviderName; reason: string }[];
  /** 'boxes' (decoded in-graph) or 'heads' (decoded here). */
  readonly outputs: 'boxes' | 'heads';
  readonly precision: string;
  /** Encoded image (JPEG/PNG/WebP...) or a path: decoded and letterboxed with sharp. */
  detectImage(image: Buffer | string): Promise<DetectResult>;
  /** Several encoded images as one batch (one session.run). */
  detectImages(images: (Buffer | string)[]): Promise<DetectResult[]>;
  /** Frames already at the input size (video path): one session.run per call. */
  detectPrepared(frames: PreparedFrame[]): Promise<DetectResult[]>;
  /** Stops the worker pool. Safe to call twice. */
  close(): Promise<void>;
}
