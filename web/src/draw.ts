/**
 * Canvas overlay: box outlines and labels in source pixels. Outlines are filled whole-pixel
 * rectangles (no anti-aliasing), so every outline pixel has exactly the box colour, which is
 * what the headless-browser test reads back.
 */
import type { BoxXyxy } from '../../models/core/detection.js';

/** Browser detections. */
export const BROWSER_COLOR: readonly [number, number, number] = [0, 230, 118];
/** Server detections (comparison mode). */
export const SERVER_COLOR: readonly [number, number, number] = [255, 64, 160];

export interface OverlayBox {
  box: BoxXyxy;
  label: string;
}

const css = (c: readonly [number, number, number]) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;

/** Line width and label font size for an image size, in pixels. */
export function overlayStyle(width: number, height: number): { thickness: number; fontPx: number } {
  const m = Math.min(width, height);
  return { thickness: Math.max(1, Math.round(m / 240)), fontPx: Math.max(9, Math.round(m / 40)) };
}

/**
 * Draws outlines and labels; a box entirely outside the canvas is skipped.
 * @returns the number of boxes drawn
 */
export function drawBoxes(
  ctx: CanvasRenderingContext2D,
  boxes: readonly OverlayBox[],
  color: readonly [number, number, number],
): number {
  const { width: cw, height: ch } = ctx.canvas;
  const { thickness: t, fontPx } = overlayStyle(cw, ch);
  const fill = css(color);
  ctx.save();
  ctx.font = `${fontPx}px system-ui, sans-serif`;
  ctx.textBaseline = 'top';
  let drawn = 0;
  for (const { box, label } of boxes) {
    const x1 = Math.max(0, Math.round(box[0]));
    const y1 = Math.max(0, Math.round(box[1]));
    const x2 = Math.min(cw, Math.round(box[2]));
    const y2 = Math.min(ch, Math.round(box[3]));
    if (x2 <= x1 || y2 <= y1) continue;
    const w = x2 - x1;
    const h = y2 - y1;
    ctx.fillStyle = fill;
    ctx.fillRect(x1, y1, w, Math.min(t, h));
    ctx.fillRect(x1, Math.max(y1, y2 - t), w, Math.min(t, h));
    ctx.fillRect(x1, y1, Math.min(t, w), h);
    ctx.fillRect(Math.max(x1, x2 - t), y1, Math.min(t, w), h);
    if (label) {
      const tw = Math.ceil(ctx.measureText(label).width) + 4;
      const th = fontPx + 2;
      // Above the box when there is room, else just inside its top edge.
      const ly = y1 - th >= 0 ? y1 - th : y1;
      ctx.fillRect(x1, ly, tw, th);
      ctx.fillStyle = 'rgb(0, 0, 0)';
      ctx.fillText(label, x1 + 2, ly + 1);
    }
    drawn++;
  }
  ctx.restore();
  return drawn;
}
