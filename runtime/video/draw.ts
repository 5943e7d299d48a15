/**
 * Drawing on packed RGB24 frames, in place: box outlines, a counting line and short labels in
 * a built-in 5x7 bitmap font (digits, A-Z and a few signs). Only outlines and small labels are
 * written, so annotating a 1080p frame touches a few thousand pixels, not the frame.
 */
import type { BoxXyxy } from '../../models/core/detection.js';

/** A packed RGB24 image (width * height * 3 bytes, rows top to bottom). */
export interface RgbFrame {
  data: Uint8Array;
  width: number;
  height: number;
}

export type Rgb = [number, number, number];

// 5x7 glyphs, one string of 7 rows x 5 columns per character ('1' = ink).
const GLYPH_ROWS: Record<string, string> = {
  '0': '01110100011001110101110011000101110',
  '1': '00100011000010000100001000010001110',
  '2': '01110100010000100010001000100011111',
  '3': '11111000100010000010000011000101110',
  '4': '00010001100101010010111110001000010',
  '5': '11111100001111000001000011000101110',
  '6': '00110010001000011110100011000101110',
  '7': '11111000010001000100010000100001000',
  '8': '01110100011000101110100011000101110',
  '9': '01110100011000101111000010001001100',
  '#': '01010010101111101010111110101001010',
  '.': '00000000000000000000000000110001100',
  ':': '00000011000110000000011000110000000',
  '%': '11000110010001000100010001001100011',
  '-': '00000000000000011111000000000000000',
  A: '01110100011000111111100011000110001',
  B: '11110100011000111110100011000111110',
  C: '01110100011000010000100001000101110',
  D: '11100100101000110001100011001011100',
  E: '11111100001000011110100001000011111',
  F: '11111100001000011110100001000010000',
  G: '01110100011000010111100011000101111',
  H: '10001100011000111111100011000110001',
  I: '01110001000010000100001000010001110',
  J: '00111000100001000010000101001001100',
  K: '10001100101010011000101001001010001',
  L: '10000100001000010000100001000011111',
  M: '10001110111010110101100011000110001',
  N: '10001100011100110101100111000110001',
  O: '01110100011000110001100011000101110',
  P: '11110100011000111110100001000010000',
  Q: '01110100011000110001101011001001101',
  R: '11110100011000111110101001001010001',
  S: '01111100001000001110000010000111110',
  T: '11111001000010000100001000010000100',
  U: '10001100011000110001100011000101110',
  V: '10001100011000110001100010101000100',
  W: '10001100011000110101101011010101010',
  X: '10001100010101000100010101000110001',
  Y: '10001100011000101010001000010000100',
  Z: '11111000010001000100010001000011111',
};

/** Glyph width and height in font pixels, and the advance between characters. */
export const GLYPH_W = 5;
export const GLYPH_H = 7;
const ADVANCE = 6;

/** Distinct colours for track ids / classes (high contrast on video). */
const PALETTE: Rgb[] = [
  [255, 56, 56],
  [255, 157, 151],
  [255, 112, 31],
  [255, 178, 29],
  [207, 210, 49],
  [72, 249, 10],
  [146, 204, 23],
  [61, 219, 134],
  [26, 147, 52],
  [0, 212, 187],
  [44, 153, 168],
  [0, 194, 255],
  [52, 69, 147],
  [100, 115, 255],
  [0, 24, 236],
  [132, 56, 255],
  [82, 0, 133],
  [203, 56, 255],
  [255, 149, 200],
  [255, 55, 199],
];

/** Palette colour for an id (track id, or class id when untracked). */
export function colorFor(id: number): Rgb {
  return PALETTE[((id % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

/** Fills [x0, x1) x [y0, y1), clipped to the frame. */
export function fillRect(img: RgbFrame, x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
  const ax = Math.max(0, Math.floor(x0));
  const ay = Math.max(0, Math.floor(y0));
  const bx = Math.min(img.width, Math.floor(x1));
  const by = Math.min(img.height, Math.floor(y1));
  if (bx <= ax || by <= ay) return;
  const d = img.data;
  for (let y = ay; y < by; y++) {
    let p = (y * img.width + ax) * 3;
    for (let x = ax; x < bx; x++, p += 3) {
      d[p] = c[0];
      d[p + 1] = c[1];
      d[p + 2] = c[2];
    }
  }
}

/** Outline of a box (xyxy, source pixels), `thickness` pixels drawn inward, clipped. */
export function strokeBox(img: RgbFrame, b: BoxXyxy, thickness: number, c: Rgb): void {
  const x0 = Math.round(b[0]);
  const y0 = Math.round(b[1]);
  const x1 = Math.round(b[2]);
  const y1 = Math.round(b[3]);
  const t = Math.max(1, Math.min(thickness, Math.ceil((x1 - x0) / 2), Math.ceil((y1 - y0) / 2)));
  fillRect(img, x0, y0, x1, y0 + t, c);
  fillRect(img, x0, y1 - t, x1, y1, c);
  fillRect(img, x0, y0, x0 + t, y1, c);
  fillRect(img, x1 - t, y0, x1, y1, c);
}

/** A straight line with a square brush of `thickness` pixels. */
export function drawLine(
  img: RgbFrame,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  thickness: number,
  c: Rgb,
): void {
  const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
  const h = thickness / 2;
  for (let i = 0; i <= steps; i++) {
    const x = x0 + ((x1 - x0) * i) / steps;
    const y = y0 + ((y1 - y0) * i) / steps;
    fillRect(img, x - h, y - h, x + h, y + h, c);
  }
}

/** Width in pixels of `text` drawn at `scale`. */
export function textWidth(text: string, scale: number): number {
  return text.length === 0 ? 0 : (text.length * ADVANCE - 1) * scale;
}

/**
 * Draws `text` with its top-left corner at (x, y) on a filled background (1 font pixel margin).
 * Lower case is drawn as upper case; characters without a glyph are blank.
 */
export function drawText(
  img: RgbFrame,
  x: number,
  y: number,
  text: string,
  scale: number,
  fg: Rgb,
  bg: Rgb,
): void {
  const s = Math.max(1, Math.round(scale));
  fillRect(img, x, y, x + textWidth(text, s) + 2 * s, y + (GLYPH_H + 2) * s, bg);
  let cx = x + s;
  for (const ch of text.toUpperCase()) {
    const rows = GLYPH_ROWS[ch];
    if (rows)
      for (let r = 0; r < GLYPH_H; r++)
        for (let col = 0; col < GLYPH_W; col++)
          if (rows[r * GLYPH_W + col] === '1')
            fillRect(img, cx + col * s, y + s + r * s, cx + (col + 1) * s, y + s + (r + 1) * s, fg);
    cx += ADVANCE * s;
  }
}

/** One thing to draw on a frame. */
export interface Annotation {
  box: BoxXyxy;
  label: string;
  color: Rgb;
}

/** Line thickness and font scale for a frame size: readable from 320x240 to 4K. */
export function styleFor(width: number, height: number): { thickness: number; scale: number } {
  const m = Math.min(width, height);
  return { thickness: Math.max(2, Math.round(m / 300)), scale: Math.max(1, Math.round(m / 360)) };
}

/**
 * Draws boxes with labels above them (inside the box when there is no room above), an optional
 * counting line, and an optional status text in the top-left corner.
 */
export function drawAnnotations(
  img: RgbFrame,
  items: readonly Annotation[],
  extra: { line?: [number, number, number, number]; status?: string } = {},
): void {
  const { thickness, scale } = styleFor(img.width, img.height);
  if (extra.line) {
    const [x0, y0, x1, y1] = extra.line;
    drawLine(img, x0, y0, x1, y1, thickness, [255, 255, 0]);
  }
  for (const it of items) strokeBox(img, it.box, thickness, it.color);
  const lh = (GLYPH_H + 2) * scale;
  for (const it of items) {
    if (!it.label) continue;
    const x = Math.max(
      0,
      Math.min(img.width - textWidth(it.label, scale) - 2 * scale, Math.round(it.box[0])),
    );
    const top = Math.round(it.box[1]) - lh;
    drawText(img, x, top >= 0 ? top : Math.round(it.box[1]), it.label, scale, [0, 0, 0], it.color);
  }
  if (extra.status) drawText(img, 0, 0, extra.status, scale, [255, 255, 255], [0, 0, 0]);
}
