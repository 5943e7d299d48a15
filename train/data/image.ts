/**
 * Image decoding (sharp, off the main thread) and letterboxing (pure JS, see resample.ts).
 * Letterboxing runs in JS because augmentation needs the same resampler anyway and one code
 * path keeps training and evaluation geometry identical; a 768x576 -> 320x320 letterbox
 * costs a few ms.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { BoxXyxy } from '../../models/core/detection.js';
import { DataFormatError } from '../../models/core/errors.js';
import { resampleAxisAligned } from './resample.js';
import type { LetterboxTransform, RgbImage } from './types.js';

/** Grey used for padding, as in YOLO-family letterboxing. */
export const LETTERBOX_PAD = 114;

function isNotFound(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ENOENT';
}

/**
 * Decodes an image file (or an encoded buffer) to RGB HWC uint8. Alpha is dropped, grey and
 * CMYK are converted to sRGB; EXIF orientation is not applied, so pixels match the stored
 * width/height that dataset labels refer to.
 * @param source - file path, or an encoded image in a Buffer.
 * @param label - name used in error messages when `source` is a buffer.
 * @throws {DataFormatError} `ERR_FILE_NOT_FOUND` when the file does not exist,
 *   `ERR_IMAGE_DECODE` naming the file when it is not a decodable image.
 */
export async function decodeImage(source: string | Buffer, label?: string): Promise<RgbImage> {
  const name = typeof source === 'string' ? source : (label ?? '<buffer>');
  let bytes: Buffer;
  if (typeof source === 'string') {
    try {
      bytes = await readFile(source);
    } catch (e) {
      if (isNotFound(e))
        throw new DataFormatError('ERR_FILE_NOT_FOUND', `image file not found: '${name}'`, { cause: e });
      throw new DataFormatError('ERR_IMAGE_DECODE', `cannot read image '${name}'`, { cause: e });
    }
  } else {
    bytes = source;
  }
  try {
    const { data, info } = await sharp(bytes)
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new DataFormatError(
        'ERR_IMAGE_DECODE',
        `cannot decode image '${name}': expected 3 channels of 8 bits, got ${info.channels} channels, ${data.length} bytes`,
      );
    }
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
    };
  } catch (e) {
    if (e instanceof DataFormatError) throw e;
    const why = e instanceof Error ? e.message : String(e);
    throw new DataFormatError('ERR_IMAGE_DECODE', `cannot decode image '${name}': ${why}`, { cause: e });
  }
}

/**
 * Reads the stored size of an image from its header only (no pixel decode).
 * @throws {DataFormatError} `ERR_FILE_NOT_FOUND` / `ERR_IMAGE_DECODE` naming the file.
 */
export async function readImageSize(path: string): Promise<{ width: number; height: number }> {
  try {
    const m = await sharp(path).metadata();
    if (!m.width || !m.height) throw new Error('no width/height in header');
    return { width: m.width, height: m.height };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    if (/missing|ENOENT|does not exist/i.test(why))
      throw new DataFormatError('ERR_FILE_NOT_FOUND', `image file not found: '${path}'`, { cause: e });
    throw new DataFormatError('ERR_IMAGE_DECODE', `cannot read image header '${path}': ${why}`, { cause: e });
  }
}

/** How a source image is fitted into the network input (the model spec's `input.resize`). */
export type ResizeMode = 'letterbox' | 'stretch';

/**
 * The source -> network transform without touching pixels. `letterbox` keeps the aspect ratio
 * (scaled size rounded to whole pixels, centred, padding split with the extra pixel right/bottom);
 * `stretch` fills the input.
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

/**
 * Letterboxes (or stretches) an image to the network input size.
 * @param height - network input height in pixels.
 * @param width - network input width in pixels.
 * @returns the `height x width` image and the transform that maps source boxes onto it.
 */
export function letterbox(
  img: RgbImage,
  height: number,
  width: number,
  opts: { mode?: ResizeMode; pad?: number } = {},
): { image: RgbImage; transform: LetterboxTransform } {
  const t = letterboxTransform(img.width, img.height, height, width, opts.mode);
  const image = resampleAxisAligned(
    img,
    width,
    height,
    { scale: t.scaleX, offset: t.padX },
    { scale: t.scaleY, offset: t.padY },
    { pad: opts.pad ?? LETTERBOX_PAD },
  );
  return { image, transform: t };
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
