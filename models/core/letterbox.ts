/**
 * Source <-> network-input geometry shared by training (letterboxing samples, mapping eval
 * detections back) and the runtime (mapping detections back to source pixels). Pure arithmetic,
 * no pixels: the resamplers (train's JS resampler, the runtime's sharp / ffmpeg scalers) place
 * the image where this transform says.
 */
import type { BoxXyxy } from './detection.js';

/** How a source image is fitted into the network input (the model spec's `input.resize`). */
export type ResizeMode = 'letterbox' | 'stretch';

/** Grey used for padding, as in YOLO-family letterboxing. */
export const LETTERBOX_PAD = 114;

/**
 * How a source image was placed into the network input: `xNet = xSrc * scaleX + padX`,
 * `yNet = ySrc * scaleY + padY` (continuous pixel-edge coordinates, so box corners map exactly).
 * For `letterbox`, scaleX and scaleY differ from the nominal fit scale only by the rounding of the
 * resized size to whole pixels; for `stretch` they differ by the aspect change and pads are 0.
 */
export interface LetterboxTransform {
  srcWidth: number;
  srcHeight: number;
  /** Network input width / height. */
  width: number;
  height: number;
  scaleX: number;
  scaleY: number;
  /** Left / top padding in network pixels (whole pixels). */
  padX: number;
  padY: number;
}

/**
 * The source -> network transform without touching pixels. `letterbox` keeps the aspect ratio
 * (scaled size rounded to whole pixels, centred, padding split with the extra pixel right/bottom);
 * `stretch` fills the input.
 * @param height - network input height in pixels.
 * @param width - network input width in pixels.
 * @throws {RangeError} when a size is not positive.
 */
export function letterboxTransform(
  srcWidth: number,
  srcHeight: number,
  height: number,
  width: number,
  mode: ResizeMode = 'letterbox',
): LetterboxTransform {
  if (!(srcWidth > 0 && srcHeight > 0))
    throw new RangeError(`source size must be positive, got ${srcWidth}x${srcHeight}`);
  if (!(width > 0 && height > 0))
    throw new RangeError(`'height'/'width' must be positive, got ${height}x${width}`);
  if (mode === 'stretch')
    return {
      srcWidth,
      srcHeight,
      width,
      height,
      scaleX: width / srcWidth,
      scaleY: height / srcHeight,
      padX: 0,
      padY: 0,
    };
  const s = Math.min(width / srcWidth, height / srcHeight);
  const newW = Math.max(1, Math.min(width, Math.round(srcWidth * s)));
  const newH = Math.max(1, Math.min(height, Math.round(srcHeight * s)));
  return {
    srcWidth,
    srcHeight,
    width,
    height,
    scaleX: newW / srcWidth,
    scaleY: newH / srcHeight,
    padX: Math.floor((width - newW) / 2),
    padY: Math.floor((height - newH) / 2),
  };
}

/** Maps a source-pixel box into network-input pixels (not clipped). */
export function boxToNetwork(b: BoxXyxy, t: LetterboxTransform): BoxXyxy {
  return [
    b[0] * t.scaleX + t.padX,
    b[1] * t.scaleY + t.padY,
    b[2] * t.scaleX + t.padX,
    b[3] * t.scaleY + t.padY,
  ];
}

/** Maps a network-input box (e.g. a detection) back to source pixels, clipped to the source image. */
export function boxToSource(b: BoxXyxy, t: LetterboxTransform): BoxXyxy {
  const cx = (v: number) => Math.min(t.srcWidth, Math.max(0, (v - t.padX) / t.scaleX));
  const cy = (v: number) => Math.min(t.srcHeight, Math.max(0, (v - t.padY) / t.scaleY));
  return [cx(b[0]), cy(b[1]), cx(b[2]), cy(b[3])];
}
