/**
 * A tiny antialiased rasteriser for the synthetic generator: ellipses, capsules (thick line
 * segments), convex polygons and rectangles, with coverage from a signed distance to the edge
 * (1 px ramp). Besides colour it keeps an owner buffer (which object is on top of each pixel,
 * at coverage > 0.5), which is how the generator measures occlusion exactly.
 * It can run without colour (`paint: false`) to compute occlusion alone.
 */

/** An 8-bit RGB colour. */
export type Rgb = readonly [number, number, number];

/** Shapes in continuous pixel coordinates (pixel (i, j) covers [i, i+1) x [j, j+1)). */
export type Shape =
  | { kind: 'ellipse'; cx: number; cy: number; rx: number; ry: number }
  | { kind: 'capsule'; x1: number; y1: number; x2: number; y2: number; r: number }
  /** Convex polygon, flat `[x0, y0, x1, y1, ...]`, either winding. */
  | { kind: 'poly'; pts: number[] }
  | { kind: 'rect'; x1: number; y1: number; x2: number; y2: number };

/** A shape with its colour; `alpha` < 1 is a translucent overlay (shadows) that owns no pixels. */
export interface Paint {
  shape: Shape;
  color: Rgb;
  alpha?: number;
}

/** Owner id of pixels covered by something that is not a person (clutter, occluders). */
export const OCCLUDER = -2;
/** Owner id of uncovered pixels. */
export const NO_OWNER = -1;

/** Axis-aligned bounds `[x1, y1, x2, y2]` of a shape. */
export function shapeBounds(s: Shape): [number, number, number, number] {
  switch (s.kind) {
    case 'ellipse':
      return [s.cx - s.rx, s.cy - s.ry, s.cx + s.rx, s.cy + s.ry];
    case 'capsule':
      return [
        Math.min(s.x1, s.x2) - s.r,
        Math.min(s.y1, s.y2) - s.r,
        Math.max(s.x1, s.x2) + s.r,
        Math.max(s.y1, s.y2) + s.r,
      ];
    case 'rect':
      return [s.x1, s.y1, s.x2, s.y2];
    case 'poly': {
      let x1 = Infinity;
      let y1 = Infinity;
      let x2 = -Infinity;
      let y2 = -Infinity;
      for (let i = 0; i < s.pts.length; i += 2) {
        x1 = Math.min(x1, s.pts[i]);
        x2 = Math.max(x2, s.pts[i]);
        y1 = Math.min(y1, s.pts[i + 1]);
        y2 = Math.max(y2, s.pts[i + 1]);
      }
      return [x1, y1, x2, y2];
    }
  }
}

/** Coverage 0..1 of the pixel centred at (x, y), for one shape; built once per draw call. */
function coverageFn(s: Shape): (x: number, y: number) => number {
  switch (s.kind) {
    case 'ellipse': {
      const { cx, cy } = s;
      const irx2 = 1 / (s.rx * s.rx);
      const iry2 = 1 / (s.ry * s.ry);
      // Thin ellipses cover less than a pixel even at their centre.
      const cap = Math.min(1, 2 * Math.min(s.rx, s.ry));
      return (x, y) => {
        const dx = x - cx;
        const dy = y - cy;
        const f = dx * dx * irx2 + dy * dy * iry2 - 1;
        if (f <= -0.999) return cap;
        const gx = 2 * dx * irx2;
        const gy = 2 * dy * iry2;
        const d = f / Math.sqrt(gx * gx + gy * gy);
        const a = 0.5 - d;
        return a <= 0 ? 0 : a >= cap ? cap : a;
      };
    }
    case 'capsule': {
      const { x1, y1, r } = s;
      const ex = s.x2 - x1;
      const ey = s.y2 - y1;
      const len2 = ex * ex + ey * ey;
      const cap = Math.min(1, 2 * r);
      return (x, y) => {
        let t = len2 > 0 ? ((x - x1) * ex + (y - y1) * ey) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const dx = x - x1 - t * ex;
        const dy = y - y1 - t * ey;
        const a = r + 0.5 - Math.sqrt(dx * dx + dy * dy);
        return a <= 0 ? 0 : a >= cap ? cap : a;
      };
    }
    case 'rect': {
      const { x1, y1, x2, y2 } = s;
      const cap = Math.min(1, x2 - x1) * Math.min(1, y2 - y1);
      return (x, y) => {
        const d = Math.max(x1 - x, x - x2, y1 - y, y - y2);
        const a = 0.5 - d;
        return a <= 0 ? 0 : a >= cap ? cap : a;
      };
    }
    case 'poly': {
      const p = s.pts;
      const n = p.length / 2;
      let mx = 0;
      let my = 0;
      for (let i = 0; i < n; i++) {
        mx += p[2 * i] / n;
        my += p[2 * i + 1] / n;
      }
      const nx = new Float64Array(n);
      const ny = new Float64Array(n);
      const c = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const ax = p[2 * i];
        const ay = p[2 * i + 1];
        const bx = p[(2 * i + 2) % p.length];
        const by = p[(2 * i + 3) % p.length];
        const l = Math.hypot(bx - ax, by - ay) || 1;
        let ux = (by - ay) / l;
        let uy = -(bx - ax) / l;
        if (ux * (mx - ax) + uy * (my - ay) > 0) {
          ux = -ux;
          uy = -uy;
        }
        nx[i] = ux;
        ny[i] = uy;
        c[i] = ux * ax + uy * ay;
      }
      return (x, y) => {
        let d = -Infinity;
        for (let i = 0; i < n; i++) {
          const e = nx[i] * x + ny[i] * y - c[i];
          if (e > d) d = e;
        }
        const a = 0.5 - d;
        return a <= 0 ? 0 : a >= 1 ? 1 : a;
      };
    }
  }
}

/** The drawing surface: optional RGB pixels plus the owner buffer. */
export class Raster {
  /** RGB HWC pixels when painting, else undefined. */
  readonly image: Uint8Array | undefined;
  /** Owner of each pixel: a person index, {@link OCCLUDER} or {@link NO_OWNER}. */
  readonly owners: Int32Array;

  constructor(
    readonly width: number,
    readonly height: number,
    paint: boolean,
  ) {
    this.image = paint ? new Uint8Array(width * height * 3) : undefined;
    this.owners = new Int32Array(width * height).fill(NO_OWNER);
  }

  /**
   * Draws one shape over what is there.
   * @param owner - person index, {@link OCCLUDER}, or {@link NO_OWNER} for overlays that hide nothing.
   * @returns how many pixels changed owner to `owner` (the new area this object claims).
   */
  draw(p: Paint, owner: number): number {
    const [bx1, by1, bx2, by2] = shapeBounds(p.shape);
    const x0 = Math.max(0, Math.floor(bx1 - 1));
    const y0 = Math.max(0, Math.floor(by1 - 1));
    const x1 = Math.min(this.width - 1, Math.ceil(bx2 + 1));
    const y1 = Math.min(this.height - 1, Math.ceil(by2 + 1));
    if (x0 > x1 || y0 > y1) return 0;
    const cov = coverageFn(p.shape);
    const alpha = p.alpha ?? 1;
    const img = this.image;
    const [cr, cg, cb] = p.color;
    const owners = this.owners;
    const claims = owner !== NO_OWNER && alpha >= 1;
    let claimed = 0;
    const w = this.width;
    for (let y = y0; y <= y1; y++) {
      const yc = y + 0.5;
      for (let x = x0; x <= x1; x++) {
        const a0 = cov(x + 0.5, yc);
        if (a0 <= 0) continue;
        const i = y * w + x;
        if (claims && a0 > 0.5 && owners[i] !== owner) {
          owners[i] = owner;
          claimed++;
        }
        if (img) {
          const a = a0 * alpha;
          const q = i * 3;
          img[q] += (cr - img[q]) * a + 0.5;
          img[q + 1] += (cg - img[q + 1]) * a + 0.5;
          img[q + 2] += (cb - img[q + 2]) * a + 0.5;
        }
      }
    }
    return claimed;
  }
}
