/**
 * Image decoding (sharp, off the main thread) and letterboxing (pure JS, see resample.ts).
 * Letterboxing runs in JS because augmentation needs the same resampler anyway and one code
 * path keeps training and evaluation geometry identical; a 768x576 -> 320x320 letterbox
 * costs a few ms.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { DataFormatError } from '../../models/core/errors.js';
import { resampleAxisAligned } from './resample.js';
import {
  LETTERBOX_PAD,
  letterboxTransform,
  type LetterboxTransform,
  type ResizeMode,
} from '../../models/core/letterbox.js';
import type { RgbImage } from './types.js';

// The geometry lives in models/core so that the runtime maps boxes with the same definition.
export {
  LETTERBOX_PAD,
  boxToNetwork,
  boxToSource,
  letterboxTransform,
  type ResizeMode,
} from '../../models/core/letterbox.js';

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
