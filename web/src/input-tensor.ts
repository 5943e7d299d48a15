/**
 * Browser pre-processing: a frame -> the model's `images` input, float32 NCHW `[1, 3, H, W]`,
 * as the server prepares it (runtime/preprocess.ts). The geometry comes from the shared
 * models/core/letterbox.ts, so boxes map back exactly as on the server; the canvas does the
 * resampling (the server uses sharp's antialiased `linear` kernel, so pixels can differ by a
 * grey level or so when the frame is scaled; at scale 1 they are identical).
 */
import { LETTERBOX_PAD, letterboxTransform, type LetterboxTransform } from '../../models/core/letterbox.js';
import type { ModelInput } from './api.js';

/** A 2D context that can read back its pixels (a canvas or an offscreen canvas). */
export type Context2D = CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D;

/**
 * Draws `src` (`srcWidth` x `srcHeight` pixels) into the input-size canvas of `ctx`: scaled to
 * the letterbox's whole-pixel size, placed at its padding, the rest grey 114 (or stretched to
 * fill, per `input.resize`).
 * @returns the transform that maps network-input pixels back to source pixels
 */
export function letterboxInto(
  ctx: Context2D,
  src: CanvasImageSource,
  srcWidth: number,
  srcHeight: number,
  input: ModelInput,
): LetterboxTransform {
  const t = letterboxTransform(srcWidth, srcHeight, input.height, input.width, input.resize);
  // Same rounding as runtime/preprocess.ts, so the placed image has the server's size.
  const newW = Math.round(t.scaleX * srcWidth);
  const newH = Math.round(t.scaleY * srcHeight);
  ctx.globalCompositeOperation = 'copy';
  ctx.fillStyle = `rgb(${LETTERBOX_PAD}, ${LETTERBOX_PAD}, ${LETTERBOX_PAD})`;
  ctx.fillRect(0, 0, input.width, input.height);
  ctx.globalCompositeOperation = 'source-over';
  ctx.imageSmoothingEnabled = true;
  // Shrinking needs an antialiasing filter like sharp's triangle kernel: 'low' (plain
  // bilinear) aliases at large shrink factors and moves boxes; 'medium'/'high' filter through
  // a mip chain and land within a fraction of a pixel of the server's boxes.
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src, t.padX, t.padY, newW, newH);
  return t;
}

/**
 * Packs RGBA pixels (canvas `ImageData` order) into a `[1, 3, H, W]` float tensor in the
 * network's channel order and normalisation. Uses per-channel lookup tables with the same
 * arithmetic as the server's InputPacker, so equal pixels give bit-identical inputs.
 */
export class TensorPacker {
  readonly width: number;
  readonly height: number;
  /** `luts[s][p]`: the value pixel value p of source channel s (r, g, b) becomes. */
  private readonly luts: [Float32Array, Float32Array, Float32Array];
  /** Plane (network channel) that source channel s feeds. */
  private readonly planeOf: [number, number, number];

  constructor(input: ModelInput) {
    this.width = input.width;
    this.height = input.height;
    // Network channel c is fed by source channel srcOf[c].
    const srcOf = input.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
    this.planeOf = [0, 1, 2].map((s) => srcOf.indexOf(s)) as [number, number, number];
    const n = input.normalization;
    this.luts = this.planeOf.map((c) => {
      const lut = new Float32Array(256);
      for (let p = 0; p < 256; p++)
        lut[p] =
          n.kind === 'unit'
            ? p * (1 / 255)
            : n.kind === 'raw'
              ? p
              : p * (1 / n.std[c]) + -n.mean[c] / n.std[c];
      return lut;
    }) as [Float32Array, Float32Array, Float32Array];
  }

  /**
   * @param rgba - width * height * 4 bytes, rows top to bottom
   * @param dst - 3 * width * height floats
   * @throws {RangeError} when a buffer has the wrong size
   */
  pack(rgba: Uint8ClampedArray, dst: Float32Array): void {
    const hw = this.width * this.height;
    if (rgba.length !== hw * 4)
      throw new RangeError(`'rgba' must hold ${this.width}x${this.height}x4 bytes, got ${rgba.length}`);
    if (dst.length !== hw * 3) throw new RangeError(`'dst' must hold ${hw * 3} floats, got ${dst.length}`);
    const [l0, l1, l2] = this.luts;
    const o0 = this.planeOf[0] * hw;
    const o1 = this.planeOf[1] * hw;
    const o2 = this.planeOf[2] * hw;
    for (let q = 0, p = 0; p < hw; q += 4, p++) {
      dst[o0 + p] = l0[rgba[q]];
      dst[o1 + p] = l1[rgba[q + 1]];
      dst[o2 + p] = l2[rgba[q + 2]];
    }
  }
}
