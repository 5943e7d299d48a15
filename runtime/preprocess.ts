/**
 * Pre-processing: source image -> the model's `images` input, float32 NCHW `[n, 3, H, W]`.
 *
 * - {@link letterboxImage}: decodes an encoded image (JPEG/PNG/WebP/...) with sharp and fits it
 *   into H x W as the spec's `input.resize` says (letterbox: aspect kept, pad grey 114, geometry
 *   from models/core/letterbox.ts, the same definition training uses; stretch: fill). sharp's
 *   `linear` kernel is an antialiased triangle filter when shrinking, like training's resampler.
 *   EXIF orientation is not applied, as in training: boxes refer to the stored pixels.
 * - {@link InputPacker}: channel order + normalisation + HWC -> CHW, through a 256-entry lookup
 *   table per channel, into one image slot of a batch tensor.
 * - {@link InputBufferPool}: the batch tensors. A buffer is transferred to the session worker and
 *   comes back with the result, then serves the next batch of the same size: in steady state no
 *   input tensor is allocated per frame.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { DataFormatError } from '../models/core/errors.js';
import { LETTERBOX_PAD, letterboxTransform } from '../models/core/letterbox.js';
import type { ModelSpec } from '../models/core/spec.js';
import type { LetterboxTransform, PreparedFrame } from './types.js';

/**
 * Writes RGB24 HWC pixels at the input size into the NCHW float tensor of a batch, normalised
 * and channel-ordered per `spec.input`. `mean` / `std` are in the network's channel order on the
 * 0..255 scale (as in training: x = (p - mean[c]) / std[c] for the pixel p feeding channel c).
 */
export class InputPacker {
  readonly height: number;
  readonly width: number;
  /** Float values per image: 3 * height * width. */
  readonly imageSize: number;
  /** `lut[c * 256 + p]`: the value of pixel p in network channel c. */
  private readonly lut = new Float32Array(3 * 256);
  /** Source (RGB) channel feeding network channel c. */
  private readonly src: [number, number, number];
  /** Per source channel s: the network channel it feeds, and that channel's table. */
  private readonly dstOf: [number, number, number];
  private readonly luts: [Float32Array, Float32Array, Float32Array];

  constructor(input: Pick<ModelSpec['input'], 'height' | 'width' | 'channelOrder' | 'normalization'>) {
    this.height = input.height;
    this.width = input.width;
    this.imageSize = 3 * input.height * input.width;
    this.src = input.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
    const n = input.normalization;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 256; p++) {
        this.lut[c * 256 + p] =
          n.kind === 'unit'
            ? p * (1 / 255)
            : n.kind === 'raw'
              ? p
              : p * (1 / n.std[c]) + -n.mean[c] / n.std[c];
      }
    }
    this.dstOf = [0, 1, 2].map((sc) => this.src.indexOf(sc)) as [number, number, number];
    this.luts = this.dstOf.map((c) => this.lut.subarray(c * 256, (c + 1) * 256)) as InputPacker['luts'];
  }

  /**
   * Packs one image into slot `index` of `dst` (`[n, 3, H, W]`).
   * @param rgb - H * W * 3 bytes, packed RGB, rows top to bottom
   * @throws {RangeError} when `rgb` or `dst` has the wrong size
   */
  pack(rgb: Uint8Array, dst: Float32Array, index: number): void {
    const hw = this.height * this.width;
    if (rgb.length !== hw * 3)
      throw new RangeError(
        `'rgb' must hold ${this.width}x${this.height}x3 = ${hw * 3} bytes (a frame at the model input size), got ${rgb.length}`,
      );
    const base = index * 3 * hw;
    if (base + 3 * hw > dst.length) throw new RangeError(`'dst' has no slot ${index}`);
    // Loop over source channels r, g, b at constant offsets; each goes to the plane of the
    // network channel it feeds (swapped for bgr) through that channel's table.
    const planes = [base, base + hw, base + 2 * hw];
    const [c0, c1, c2] = this.dstOf;
    const [l0, l1, l2] = this.luts;
    const o0 = planes[c0];
    const o1 = planes[c1];
    const o2 = planes[c2];
    const n = hw * 3;
    for (let q = 0, p = 0; q < n; q += 3, p++) {
      const r = rgb[q];
      const g = rgb[q + 1];
      const b = rgb[q + 2];
      dst[o0 + p] = l0[r];
      dst[o1 + p] = l1[g];
      dst[o2 + p] = l2[b];
    }
  }
}

/**
 * Input tensors by batch size, reused. `acquire` hands out a free buffer (allocating only when
 * none is free: at most one per batch size and in-flight request); `release` takes back a buffer
 * that returned from the worker.
 */
export class InputBufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Buffers allocated so far (tests assert steady-state reuse). */
  allocations = 0;

  /** @param imageSize - float values per image */
  constructor(
    readonly imageSize: number,
    /** Free buffers kept per batch size. */
    readonly keep = 4,
  ) {}

  /** A `[n * imageSize]` float view over a free (or new) buffer. */
  acquire(n: number): Float32Array {
    const buf = this.free.get(n)?.pop();
    if (buf) return new Float32Array(buf);
    this.allocations++;
    return new Float32Array(n * this.imageSize);
  }

  /** Returns a buffer for reuse; detached or foreign-sized buffers are ignored. */
  release(buf: ArrayBuffer): void {
    const floats = buf.byteLength / 4;
    if (floats === 0 || floats % this.imageSize !== 0) return;
    const n = floats / this.imageSize;
    const list = this.free.get(n) ?? [];
    if (list.length < this.keep) list.push(buf);
    this.free.set(n, list);
  }
}

function isNotFound(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ENOENT';
}

/**
 * Decodes an encoded image (or an image file) and fits it into the model input with sharp.
 * @param image - encoded bytes (JPEG, PNG, WebP, GIF, TIFF, AVIF...) or a file path
 * @returns RGB24 pixels at the input size and the transform back to source pixels
 * @throws {DataFormatError} `ERR_FILE_NOT_FOUND` for a missing file, `ERR_IMAGE_DECODE` for bytes
 *   that are not a decodable image
 */
export async function letterboxImage(
  image: Buffer | string,
  input: Pick<ModelSpec['input'], 'height' | 'width' | 'resize'>,
): Promise<PreparedFrame> {
  const name = typeof image === 'string' ? `'${image}'` : 'image buffer';
  let bytes: Buffer;
  if (typeof image === 'string') {
    try {
      bytes = await readFile(image);
    } catch (e) {
      if (isNotFound(e))
        throw new DataFormatError('ERR_FILE_NOT_FOUND', `image file not found: ${name}`, { cause: e });
      throw new DataFormatError('ERR_IMAGE_DECODE', `cannot read image ${name}`, { cause: e });
    }
  } else if (Buffer.isBuffer(image) || (image as unknown) instanceof Uint8Array) {
    bytes = image;
  } else {
    throw new TypeError(`'image' must be a Buffer or a file path, got ${typeof image}`);
  }
  const { height: H, width: W } = input;
  try {
    const img = sharp(bytes);
    const meta = await img.metadata();
    if (!meta.width || !meta.height) throw new Error('no width/height in the image header');
    const t: LetterboxTransform = letterboxTransform(meta.width, meta.height, H, W, input.resize);
    const newW = Math.round(t.scaleX * meta.width);
    const newH = Math.round(t.scaleY * meta.height);
    let p = img.removeAlpha().resize(newW, newH, { fit: 'fill', kernel: 'linear' });
    if (newW !== W || newH !== H)
      p = p.extend({
        left: t.padX,
        top: t.padY,
        right: W - newW - t.padX,
        bottom: H - newH - t.padY,
        background: { r: LETTERBOX_PAD, g: LETTERBOX_PAD, b: LETTERBOX_PAD },
      });
    const { data, info } = await p
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== W || info.height !== H)
      throw new Error(`sharp produced ${info.width}x${info.height}x${info.channels}, expected ${W}x${H}x3`);
    return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.length), transform: t };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new DataFormatError('ERR_IMAGE_DECODE', `cannot decode ${name}: ${why}`, { cause: e });
  }
}
