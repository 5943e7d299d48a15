/**
 * Procedural training scenes with many small people and exact labels, deterministic for a seed.
 *
 * A scene is a textured background (two-tone gradient with a horizon, low-frequency blotches,
 * paving lines, pixel noise), clutter (buildings with windows, cars, trees, poles, blobs, lines)
 * and people: head, hair, torso, arms and legs in walking poses seen from the front, back or
 * side, in varied skin and clothing colours, with shadows. Heights run from 8 px to half the image
 * height, log-uniform with extra weight on small ones; some people stand in groups and in
 * perspective, so they occlude each other, and clutter drawn in front of them occludes them too.
 * Person-coloured distractors (skin-tone blobs, clothing-coloured bars of pedestrian aspect,
 * bollards) are deliberately not person-shaped, so a detector has to learn the shape.
 *
 * Boxes are the full body (as CityPersons): the exact extent of the drawn figure, clipped to the
 * image. A person whose visible area (not covered by anything in front, and inside the image) is
 * under 30% of the body is marked `ignore`.
 */
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import sharp from 'sharp';
import type { Annotation, BoxXyxy } from '../../models/core/detection.js';
import { ConfigError, EdgekdError } from '../../models/core/errors.js';
import { NO_OWNER, OCCLUDER, Raster, shapeBounds, type Paint, type Rgb, type Shape } from './raster.js';
import { createRng, type Rng } from './rng.js';
import type { Dataset, RgbImage, Sample } from './types.js';

/** Options of {@link generateSyntheticScene}. */
export interface SyntheticOptions {
  /** Fewest people per image (default 3). */
  minPeople?: number;
  /** Most people per image (default 40). */
  maxPeople?: number;
  /** Smallest person height in pixels (default 8). */
  minHeight?: number;
  /** Largest person height in pixels (default: half the image height). */
  maxHeight?: number;
  /** Occluded fraction above which a person is marked ignore (default 0.7). */
  ignoreOccluded?: number;
  /** Class id written into the annotations (default 0). */
  classId?: number;
}

/** A generated scene: the image and its labels in image pixels. */
export interface SyntheticScene {
  image: RgbImage;
  annotations: Annotation[];
}

// #region colours

const SKIN: Rgb[] = [
  [255, 224, 196],
  [241, 194, 160],
  [224, 172, 130],
  [198, 134, 66],
  [160, 105, 60],
  [141, 85, 36],
  [92, 51, 23],
];
const HAIR: Rgb[] = [
  [25, 20, 18],
  [45, 32, 22],
  [80, 55, 35],
  [120, 85, 50],
  [190, 160, 110],
  [150, 150, 150],
];

function hsv(h: number, s: number, v: number): Rgb {
  const i = Math.floor(h * 6) % 6;
  const f = h * 6 - Math.floor(h * 6);
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

function jitter(rng: Rng, c: Rgb, amount: number): Rgb {
  const k = 1 + rng.uniform(-amount, amount);
  return [Math.min(255, c[0] * k), Math.min(255, c[1] * k), Math.min(255, c[2] * k)];
}

function shade(c: Rgb, k: number): Rgb {
  return [Math.min(255, c[0] * k), Math.min(255, c[1] * k), Math.min(255, c[2] * k)];
}

function clothing(rng: Rng): Rgb {
  const r = rng.next();
  if (r < 0.3) {
    const g = rng.uniform(15, 235);
    return [g, g * rng.uniform(0.95, 1.05), g * rng.uniform(0.95, 1.08)];
  }
  if (r < 0.5) return hsv(rng.uniform(0.55, 0.68), rng.uniform(0.3, 0.7), rng.uniform(0.12, 0.35)); // navy / dark
  if (r < 0.62) return hsv(rng.uniform(0.57, 0.62), rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.65)); // denim
  return hsv(rng.next(), rng.uniform(0.35, 0.95), rng.uniform(0.3, 0.95));
}

function anyColour(rng: Rng): Rgb {
  return hsv(rng.next(), rng.uniform(0, 0.7), rng.uniform(0.15, 0.95));
}

// #endregion

// #region people

/** A figure in body units: y from 0 (head top) to about 1 (soles), x about the body axis. */
interface Figure {
  paints: Paint[];
}

/** Builds a walking person in body units; `dir` = +1 faces right, -1 left (side views). */
function buildFigure(rng: Rng): Figure {
  const view = rng.pick(['front', 'back', 'side', 'side', 'side'] as const);
  const dir = rng.chance(0.5) ? 1 : -1;
  const skin = jitter(rng, rng.pick(SKIN), 0.08);
  const hair = jitter(rng, rng.pick(HAIR), 0.1);
  const top = clothing(rng);
  const bottom = rng.chance(0.15) ? top : clothing(rng);
  const shoes = rng.chance(0.7) ? shade(anyColour(rng), 0.35) : anyColour(rng);
  const coat = rng.chance(0.25);
  const P: Paint[] = [];
  const cap = (x1: number, y1: number, x2: number, y2: number, r: number, color: Rgb) =>
    P.push({ shape: { kind: 'capsule', x1, y1, x2, y2, r }, color });
  const ell = (cx: number, cy: number, rx: number, ry: number, color: Rgb) =>
    P.push({ shape: { kind: 'ellipse', cx, cy, rx, ry }, color });
  const poly = (pts: number[], color: Rgb) => P.push({ shape: { kind: 'poly', pts }, color });
  const rad = Math.PI / 180;

  const side = view === 'side';
  const shoulderY = 0.145;
  const hipY = rng.uniform(0.47, 0.51);
  const sw = side ? rng.uniform(0.13, 0.17) : rng.uniform(0.2, 0.25);
  const hw = side ? rng.uniform(0.12, 0.15) : rng.uniform(0.15, 0.19);
  const legR = rng.uniform(0.038, 0.048);
  const armR = rng.uniform(0.026, 0.033);
  const legLen = 0.985 - hipY - legR;
  const thigh = legLen * 0.5;
  const shin = legLen * 0.5;
  const upper = 0.165;
  const fore = 0.15;

  // Joint chains: angle from vertical, positive towards +x (flipped by dir for side views).
  const limb = (x: number, y: number, a1: number, len1: number, a2: number, len2: number) => {
    const kx = x + Math.sin(a1) * len1;
    const ky = y + Math.cos(a1) * len1;
    return { kx, ky, ex: kx + Math.sin(a2) * len2, ey: ky + Math.cos(a2) * len2 };
  };

  type Limb = ReturnType<typeof limb>;
  let legs: { hipX: number; l: Limb; far: boolean }[];
  let arms: { sx: number; l: Limb; far: boolean }[];
  if (side) {
    const a = rng.uniform(0.55, 1) * 21 * rad;
    const b = a * rng.uniform(0.8, 1.4);
    const bend = rng.uniform(5, 25) * rad;
    const lead = rng.chance(0.5);
    const front = limb(0, hipY, dir * a, thigh, dir * a * 0.55, shin);
    const back = limb(0, hipY, -dir * a * 0.8, thigh, -dir * (a * 0.8 + bend * 1.4), shin);
    legs = [
      { hipX: 0, l: lead ? back : front, far: true },
      { hipX: 0, l: lead ? front : back, far: false },
    ];
    const armFwd = limb(0, shoulderY + 0.015, dir * b, upper, dir * (b + bend), fore);
    const armBack = limb(0, shoulderY + 0.015, -dir * b * 0.9, upper, -dir * b * 0.6, fore);
    arms = [
      { sx: 0, l: lead ? armFwd : armBack, far: true },
      { sx: 0, l: lead ? armBack : armFwd, far: false },
    ];
  } else {
    const spread = rng.uniform(1, 6) * rad;
    const hx = hw * 0.28;
    const lift = rng.uniform(0, 0.06);
    legs = [
      {
        hipX: -hx,
        l: limb(-hx, hipY, -spread, thigh, -spread * 0.5, shin - (rng.chance(0.5) ? lift : 0)),
        far: false,
      },
      { hipX: hx, l: limb(hx, hipY, spread, thigh, spread * 0.5, shin), far: false },
    ];
    const out = () => rng.uniform(8, 16) * rad;
    const sx = sw / 2 - armR * 0.6;
    const oL = out();
    const oR = out();
    arms = [
      { sx: -sx, l: limb(-sx, shoulderY + 0.015, -oL, upper, -oL * rng.uniform(0.3, 1.2), fore), far: false },
      { sx, l: limb(sx, shoulderY + 0.015, oR, upper, oR * rng.uniform(0.3, 1.2), fore), far: false },
    ];
  }

  const drawArm = (arm: (typeof arms)[number]) => {
    const c = arm.far ? shade(top, 0.8) : top;
    cap(arm.sx, shoulderY + 0.015, arm.l.kx, arm.l.ky, armR * 1.05, c);
    cap(
      arm.l.kx,
      arm.l.ky,
      arm.l.ex,
      arm.l.ey,
      armR * (rng.chance(0.5) ? 0.95 : 0.85),
      rng.chance(0.3) ? skin : c,
    );
    ell(arm.l.ex, arm.l.ey + armR * 0.4, armR * 0.9, armR * 1.1, arm.far ? shade(skin, 0.85) : skin);
  };
  const drawLeg = (leg: (typeof legs)[number]) => {
    const c = leg.far ? shade(bottom, 0.8) : bottom;
    cap(leg.hipX, hipY, leg.l.kx, leg.l.ky, legR, c);
    cap(leg.l.kx, leg.l.ky, leg.l.ex, leg.l.ey, legR * 0.85, c);
    const toe = side ? dir * 0.055 : 0;
    cap(
      leg.l.ex - toe * 0.2,
      leg.l.ey,
      leg.l.ex + toe,
      leg.l.ey + legR * 0.2,
      legR * 0.8,
      leg.far ? shade(shoes, 0.8) : shoes,
    );
  };

  for (const a of arms) if (a.far) drawArm(a);
  for (const l of legs) drawLeg(l);
  // Torso (a coat flares and reaches over the thighs).
  const bottomY = coat ? hipY + rng.uniform(0.1, 0.2) : hipY + 0.02;
  const bw = coat ? hw * rng.uniform(1.05, 1.25) : hw;
  const lean = side ? dir * rng.uniform(0, 0.02) : 0;
  poly([lean - sw / 2, shoulderY, lean + sw / 2, shoulderY, bw / 2, bottomY, -bw / 2, bottomY], top);
  cap(lean - sw / 2 + armR, shoulderY + armR * 0.5, lean + sw / 2 - armR, shoulderY + armR * 0.5, armR, top); // round shoulders
  if (!coat && rng.chance(0.3))
    poly([-hw / 2, hipY - 0.03, hw / 2, hipY - 0.03, hw / 2, hipY + 0.03, -hw / 2, hipY + 0.03], bottom);
  if (view !== 'front' && rng.chance(0.3)) {
    // Backpack on the back.
    const bx = side ? -dir * (sw / 2 + 0.02) : 0;
    const bwid = side ? 0.07 : sw * 0.75;
    P.push({
      shape: {
        kind: 'rect',
        x1: bx - bwid / 2,
        y1: shoulderY + 0.02,
        x2: bx + bwid / 2,
        y2: shoulderY + 0.2,
      },
      color: anyColour(rng),
    });
  }
  // Neck, head, hair.
  const headCx = lean + (side ? dir * 0.01 : 0);
  const hry = rng.uniform(0.058, 0.066);
  const hrx = side ? hry * 0.85 : hry * 0.78;
  cap(headCx, 0.11, lean, shoulderY, 0.022, skin);
  if (view === 'back') {
    ell(headCx, hry, hrx, hry, hair);
  } else {
    ell(headCx, hry, hrx, hry, skin);
    const longHair = rng.chance(0.3);
    if (side) {
      ell(headCx - dir * hrx * 0.25, hry * 0.75, hrx * 0.85, hry * 0.75, hair);
      if (longHair) cap(headCx - dir * hrx * 0.6, hry, headCx - dir * hrx * 0.7, hry * 2.2, hrx * 0.35, hair);
    } else {
      ell(headCx, hry * 0.6, hrx * 1.02, hry * 0.6, hair);
      if (longHair) {
        cap(headCx - hrx * 0.85, hry * 0.8, headCx - hrx * 0.9, hry * 2.1, hrx * 0.3, hair);
        cap(headCx + hrx * 0.85, hry * 0.8, headCx + hrx * 0.9, hry * 2.1, hrx * 0.3, hair);
      }
    }
  }
  if (rng.chance(0.12))
    P.push({
      shape: { kind: 'ellipse', cx: headCx, cy: hry * 0.45, rx: hrx * 1.15, ry: hry * 0.5 },
      color: anyColour(rng),
    }); // hat
  for (const a of arms) if (!a.far) drawArm(a);
  return { paints: P };
}

function transformShape(s: Shape, k: number, ox: number, oy: number): Shape {
  switch (s.kind) {
    case 'ellipse':
      return { kind: 'ellipse', cx: s.cx * k + ox, cy: s.cy * k + oy, rx: s.rx * k, ry: s.ry * k };
    case 'capsule':
      return {
        kind: 'capsule',
        x1: s.x1 * k + ox,
        y1: s.y1 * k + oy,
        x2: s.x2 * k + ox,
        y2: s.y2 * k + oy,
        r: s.r * k,
      };
    case 'rect':
      return { kind: 'rect', x1: s.x1 * k + ox, y1: s.y1 * k + oy, x2: s.x2 * k + ox, y2: s.y2 * k + oy };
    case 'poly':
      return { kind: 'poly', pts: s.pts.map((v, i) => v * k + (i % 2 ? oy : ox)) };
  }
}

function unionBounds(paints: Paint[]): BoxXyxy {
  const b: BoxXyxy = [Infinity, Infinity, -Infinity, -Infinity];
  for (const p of paints) {
    const [x1, y1, x2, y2] = shapeBounds(p.shape);
    b[0] = Math.min(b[0], x1);
    b[1] = Math.min(b[1], y1);
    b[2] = Math.max(b[2], x2);
    b[3] = Math.max(b[3], y2);
  }
  return b;
}

/** Places a figure so its full-body box is `height` tall with its bottom centre at (footX, footY). */
function placeFigure(
  fig: Figure,
  height: number,
  footX: number,
  footY: number,
): { paints: Paint[]; box: BoxXyxy } {
  const u = unionBounds(fig.paints);
  const k = height / (u[3] - u[1]);
  const ox = footX - ((u[0] + u[2]) / 2) * k;
  const oy = footY - u[3] * k;
  const paints = fig.paints.map((p) => ({ ...p, shape: transformShape(p.shape, k, ox, oy) }));
  return { paints, box: [u[0] * k + ox, u[1] * k + oy, u[2] * k + ox, u[3] * k + oy] };
}

// #endregion

// #region scene layout

interface SceneObject {
  /** Draw order key: objects with a lower base (farther away) are drawn first. */
  depth: number;
  paints: Paint[];
  /** Overlays drawn before the object that own no pixels (shadows). */
  under?: Paint[];
  /** Person index, or -1 for clutter. */
  person: number;
}

interface Layout {
  width: number;
  height: number;
  horizon: number;
  sky: [Rgb, Rgb];
  ground: [Rgb, Rgb];
  blotchCell: number;
  blotchAmp: number;
  noiseAmp: number;
  paving: Paint[];
  backdrop: Paint[];
  objects: SceneObject[];
  boxes: BoxXyxy[];
  noiseSeed: number;
}

const rect = (x1: number, y1: number, x2: number, y2: number): Shape => ({ kind: 'rect', x1, y1, x2, y2 });

function building(rng: Rng, W: number, horizon: number): Paint[] {
  const w = rng.uniform(0.1, 0.4) * W;
  const x = rng.uniform(-0.1 * W, W);
  const top = horizon - rng.uniform(0.1, 0.6) * horizon - 4;
  const base = horizon + rng.uniform(0, 6);
  const wall = anyColour(rng);
  const out: Paint[] = [{ shape: rect(x, top, x + w, base), color: wall }];
  const win = rng.uniform(4, 14);
  const glass = rng.chance(0.5) ? shade(wall, 0.45) : jitter(rng, [120, 150, 175], 0.3);
  for (let yy = top + win * 0.6; yy + win < base - win * 0.4 && out.length < 60; yy += win * 1.7) {
    for (let xx = x + win * 0.6; xx + win < x + w - win * 0.3 && out.length < 60; xx += win * 1.6) {
      out.push({ shape: rect(xx, yy, xx + win, yy + win * 1.1), color: glass });
    }
  }
  return out;
}

function car(rng: Rng, x: number, baseY: number, w: number): Paint[] {
  const h = w * rng.uniform(0.35, 0.45);
  const body = anyColour(rng);
  const dark: Rgb = [25, 25, 28];
  const r = h * 0.2;
  return [
    { shape: rect(x + w * 0.2, baseY - h, x + w * 0.8, baseY - h * 0.5), color: shade(body, 0.9) },
    {
      shape: {
        kind: 'poly',
        pts: [
          x + w * 0.25,
          baseY - h * 0.95,
          x + w * 0.72,
          baseY - h * 0.95,
          x + w * 0.78,
          baseY - h * 0.55,
          x + w * 0.2,
          baseY - h * 0.55,
        ],
      },
      color: jitter(rng, [90, 110, 130], 0.3),
    },
    { shape: rect(x, baseY - h * 0.55, x + w, baseY - r * 0.8), color: body },
    { shape: { kind: 'ellipse', cx: x + w * 0.2, cy: baseY - r, rx: r, ry: r }, color: dark },
    { shape: { kind: 'ellipse', cx: x + w * 0.8, cy: baseY - r, rx: r, ry: r }, color: dark },
  ];
}

function tree(rng: Rng, x: number, baseY: number, h: number): Paint[] {
  const trunk: Rgb = jitter(rng, [90, 65, 40], 0.3);
  const leaf = hsv(rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.55));
  const out: Paint[] = [
    { shape: { kind: 'capsule', x1: x, y1: baseY, x2: x, y2: baseY - h * 0.55, r: h * 0.035 }, color: trunk },
  ];
  const n = rng.int(2, 5);
  for (let i = 0; i < n; i++) {
    out.push({
      shape: {
        kind: 'ellipse',
        cx: x + rng.uniform(-0.2, 0.2) * h,
        cy: baseY - h * rng.uniform(0.6, 0.85),
        rx: h * rng.uniform(0.15, 0.3),
        ry: h * rng.uniform(0.12, 0.25),
      },
      color: jitter(rng, leaf, 0.15),
    });
  }
  return out;
}

/** Person-coloured things that are not people: the model must tell them apart by shape. */
function distractor(rng: Rng, x: number, baseY: number, h: number): Paint[] {
  const r = rng.next();
  if (r < 0.3) {
    // Clothing-coloured bar with a pedestrian's aspect (door, sign, bin, bag).
    const w = h * rng.uniform(0.3, 0.5);
    return [{ shape: rect(x - w / 2, baseY - h, x + w / 2, baseY), color: clothing(rng) }];
  }
  if (r < 0.55) {
    // Skin-tone blob.
    return [
      {
        shape: {
          kind: 'ellipse',
          cx: x,
          cy: baseY - h / 2,
          rx: h * rng.uniform(0.1, 0.6),
          ry: h * rng.uniform(0.1, 0.5),
        },
        color: jitter(rng, rng.pick(SKIN), 0.1),
      },
    ];
  }
  if (r < 0.75) {
    // Bollard / post with a round top.
    const c = rng.chance(0.5) ? clothing(rng) : jitter(rng, [130, 130, 135], 0.3);
    return [
      {
        shape: {
          kind: 'capsule',
          x1: x,
          y1: baseY - h * 0.08,
          x2: x,
          y2: baseY - h,
          r: h * rng.uniform(0.08, 0.15),
        },
        color: c,
      },
      { shape: { kind: 'ellipse', cx: x, cy: baseY - h, rx: h * 0.12, ry: h * 0.1 }, color: shade(c, 0.8) },
    ];
  }
  // Two clothing-coloured blocks stacked with skin on the side (a market stall, a bench with a coat).
  const w = h * rng.uniform(0.6, 1.6);
  return [
    { shape: rect(x - w / 2, baseY - h * 0.5, x + w / 2, baseY), color: clothing(rng) },
    { shape: rect(x - w / 2, baseY - h * 0.65, x + w / 2, baseY - h * 0.5), color: clothing(rng) },
    {
      shape: { kind: 'ellipse', cx: x + w / 2, cy: baseY - h * 0.6, rx: h * 0.08, ry: h * 0.12 },
      color: rng.pick(SKIN),
    },
  ];
}

function layoutScene(
  seed: number | string,
  W: number,
  H: number,
  o: Required<Omit<SyntheticOptions, 'classId'>>,
): Layout {
  const rng = createRng(`scene:${seed}`);
  const horizon = rng.chance(0.25) ? -1 : rng.uniform(0.12, 0.55) * H;
  const groundBase = rng.chance(0.5) ? jitter(rng, [125, 125, 120], 0.35) : anyColour(rng);
  const layout: Layout = {
    width: W,
    height: H,
    horizon,
    sky: [anyColour(rng), anyColour(rng)],
    ground: [shade(groundBase, rng.uniform(0.7, 1)), shade(groundBase, rng.uniform(0.9, 1.3))],
    blotchCell: rng.uniform(12, 48),
    blotchAmp: rng.uniform(6, 30),
    noiseAmp: rng.uniform(2, 10),
    paving: [],
    backdrop: [],
    objects: [],
    boxes: [],
    noiseSeed: rng.u32(),
  };
  const groundTop = Math.max(0, horizon);

  // Paving / road markings: thin lines on the ground.
  if (rng.chance(0.5)) {
    const c = shade(layout.ground[0], rng.uniform(0.6, 0.85));
    const step = rng.uniform(14, 60);
    const vertical = rng.chance(0.6);
    for (let y = groundTop + step * rng.next(); y < H; y += step)
      layout.paving.push({
        shape: { kind: 'capsule', x1: 0, y1: y, x2: W, y2: y + rng.uniform(-3, 3), r: 0.5 },
        color: c,
      });
    if (vertical)
      for (let x = step * rng.next(); x < W; x += step)
        layout.paving.push({
          shape: { kind: 'capsule', x1: x, y1: groundTop, x2: x + rng.uniform(-8, 8), y2: H, r: 0.5 },
          color: c,
        });
  }
  if (rng.chance(0.3)) {
    // Road stripe.
    const y = rng.uniform(groundTop, H);
    layout.paving.push({
      shape: { kind: 'rect', x1: 0, y1: y, x2: W, y2: y + rng.uniform(2, 8) },
      color: jitter(rng, [220, 220, 210], 0.1),
    });
  }
  // Buildings on the horizon.
  if (horizon > 10) {
    const n = rng.int(0, 6);
    for (let i = 0; i < n; i++) layout.backdrop.push(...building(rng, W, horizon));
  }

  const scaleAt = rng.uniform(0.25, 1.1); // person height per pixel below the horizon (perspective scenes)
  const perspective = horizon > 0 && rng.chance(0.6);
  const maxH = Math.max(o.minHeight, Math.min(o.maxHeight, H / 2));

  // Clutter, including occluders in front of people.
  const nClutter = rng.int(3, 20);
  for (let i = 0; i < nClutter; i++) {
    const baseY = rng.uniform(groundTop, H * 1.05);
    const x = rng.uniform(-0.05, 1.05) * W;
    const size = Math.min(
      H * 0.3,
      perspective
        ? Math.max(6, (baseY - horizon) * scaleAt * rng.uniform(0.5, 1.5))
        : rng.logUniform(6, H * 0.4),
    );
    const r = rng.next();
    let paints: Paint[];
    if (r < 0.25) paints = distractor(rng, x, baseY, size);
    else if (r < 0.4) paints = car(rng, x - size, baseY, size * 2);
    else if (r < 0.52) paints = tree(rng, x, baseY, size * 2);
    else if (r < 0.67) {
      // Pole / lamp post.
      const c = jitter(rng, [90, 90, 95], 0.4);
      paints = [
        {
          shape: {
            kind: 'capsule',
            x1: x,
            y1: baseY,
            x2: x + rng.uniform(-2, 2),
            y2: baseY - size * 2.5,
            r: Math.max(0.6, size * 0.03),
          },
          color: c,
        },
      ];
      if (rng.chance(0.4))
        paints.push({
          shape: { kind: 'ellipse', cx: x, cy: baseY - size * 2.5, rx: size * 0.1, ry: size * 0.06 },
          color: jitter(rng, [230, 220, 170], 0.1),
        });
    } else if (r < 0.82) {
      paints = [
        {
          shape: {
            kind: 'ellipse',
            cx: x,
            cy: baseY - size * 0.3,
            rx: size * rng.uniform(0.2, 0.9),
            ry: size * rng.uniform(0.15, 0.4),
          },
          color: anyColour(rng),
        },
      ];
    } else if (r < 0.92) {
      const w = size * rng.uniform(0.5, 2);
      paints = [
        {
          shape: rect(x - w / 2, baseY - size * rng.uniform(0.3, 1), x + w / 2, baseY),
          color: anyColour(rng),
        },
      ];
    } else {
      const a = rng.uniform(0, Math.PI);
      const l = size * rng.uniform(0.5, 2);
      paints = [
        {
          shape: {
            kind: 'capsule',
            x1: x,
            y1: baseY,
            x2: x + Math.cos(a) * l,
            y2: baseY - Math.sin(a) * l,
            r: rng.uniform(0.4, 2),
          },
          color: anyColour(rng),
        },
      ];
    }
    layout.objects.push({ depth: baseY, paints, person: -1 });
  }

  // People: log-uniform heights biased to small (exponent > 1 on the log-uniform variate).
  const nPeople = Math.round(rng.logUniform(o.minPeople, o.maxPeople + 1 - 1e-9) - 0.5);
  const count = Math.min(o.maxPeople, Math.max(o.minPeople, nPeople));
  const placed: { x: number; y: number; h: number }[] = [];
  const overlapShare = (a: BoxXyxy, b: BoxXyxy) => {
    const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
    const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
    if (iw <= 0 || ih <= 0) return 0;
    const inter = iw * ih;
    return Math.max(inter / ((a[2] - a[0]) * (a[3] - a[1])), inter / ((b[2] - b[0]) * (b[3] - b[1])));
  };
  for (let i = 0; i < count; i++) {
    const figure = buildFigure(rng);
    let h = o.minHeight * Math.pow(maxH / o.minHeight, Math.pow(rng.next(), 1.5));
    const group = placed.length > 0 && rng.chance(0.3) ? rng.pick(placed) : undefined;
    if (group) h = Math.min(maxH, Math.max(o.minHeight, group.h * rng.uniform(0.85, 1.15)));
    let x = 0;
    let y = 0;
    let fig: { paints: Paint[]; box: BoxXyxy } | undefined;
    // A few tries to avoid hiding most of one person behind another (some heavy occlusion stays).
    for (let attempt = 0; attempt < 4; attempt++) {
      if (group) {
        // Join a group: beside someone of similar size and depth.
        x = group.x + (rng.chance(0.5) ? 1 : -1) * rng.uniform(0.25, 0.7) * group.h;
        y = group.y + rng.uniform(-0.06, 0.06) * group.h;
      } else if (perspective) {
        y = horizon + h / (scaleAt * rng.uniform(0.8, 1.25));
        x = rng.uniform(-0.1, 1.1) * W;
      } else {
        y = rng.uniform(Math.max(h * 0.8, groundTop), H + h * 0.15);
        x = rng.uniform(-0.1, 1.1) * W;
      }
      if (y > H + h * 0.3) y = rng.uniform(Math.max(h, groundTop), H);
      fig = placeFigure(figure, h, x, y);
      const box = fig.box;
      if (layout.boxes.every((b) => overlapShare(b, box) < 0.5)) break;
    }
    placed.push({ x, y, h });
    const shadow: Paint = {
      shape: {
        kind: 'ellipse',
        cx: x + rng.uniform(-0.1, 0.25) * h,
        cy: y - h * 0.01,
        rx: h * rng.uniform(0.15, 0.3),
        ry: h * rng.uniform(0.025, 0.05),
      },
      color: [0, 0, 0],
      alpha: rng.uniform(0.15, 0.4),
    };
    layout.objects.push({ depth: y, paints: fig!.paints, under: [shadow], person: layout.boxes.length });
    layout.boxes.push(fig!.box);
  }
  // Stable sort by depth: farther (higher up) first.
  layout.objects.sort((a, b) => a.depth - b.depth);
  return layout;
}

// #endregion

// #region rendering

function paintBackground(l: Layout, img: Uint8Array): void {
  const { width: W, height: H } = l;
  const rng = createRng(l.noiseSeed);
  // Low-frequency blotches: a coarse random grid, bilinearly interpolated.
  const gw = Math.ceil(W / l.blotchCell) + 2;
  const gh = Math.ceil(H / l.blotchCell) + 2;
  const grid = new Float32Array(gw * gh);
  for (let i = 0; i < grid.length; i++) grid[i] = (rng.next() * 2 - 1) * l.blotchAmp;
  const inv = 1 / l.blotchCell;
  for (let y = 0; y < H; y++) {
    const inSky = y < l.horizon;
    const [c0, c1] = inSky ? l.sky : l.ground;
    const t = inSky
      ? y / Math.max(1, l.horizon)
      : (y - Math.max(0, l.horizon)) / Math.max(1, H - Math.max(0, l.horizon));
    const r = c0[0] + (c1[0] - c0[0]) * t;
    const g = c0[1] + (c1[1] - c0[1]) * t;
    const b = c0[2] + (c1[2] - c0[2]) * t;
    const gy = y * inv;
    const gy0 = Math.floor(gy);
    const fy = gy - gy0;
    const row0 = gy0 * gw;
    const row1 = row0 + gw;
    let q = y * W * 3;
    for (let x = 0; x < W; x++, q += 3) {
      const gx = x * inv;
      const gx0 = Math.floor(gx);
      const fx = gx - gx0;
      const top = grid[row0 + gx0] + (grid[row0 + gx0 + 1] - grid[row0 + gx0]) * fx;
      const bot = grid[row1 + gx0] + (grid[row1 + gx0 + 1] - grid[row1 + gx0]) * fx;
      const v = top + (bot - top) * fy;
      img[q] = Math.max(0, Math.min(255, r + v));
      img[q + 1] = Math.max(0, Math.min(255, g + v * 0.95));
      img[q + 2] = Math.max(0, Math.min(255, b + v * 0.9));
    }
  }
}

function addNoise(l: Layout, img: Uint8Array): void {
  // xorshift32 inline: ~1 random number per pixel, split into three signed bytes.
  let s = (l.noiseSeed ^ 0x9e3779b9) >>> 0 || 1;
  const amp = l.noiseAmp / 128;
  for (let q = 0; q < img.length; q += 3) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const n0 = ((s & 0xff) - 128) * amp;
    const n1 = (((s >>> 8) & 0xff) - 128) * amp;
    const n2 = (((s >>> 16) & 0xff) - 128) * amp;
    const lum = (((s >>> 24) & 0xff) - 128) * amp * 0.5;
    const a = img[q] + n0 + lum;
    const b = img[q + 1] + n1 + lum;
    const c = img[q + 2] + n2 + lum;
    img[q] = a < 0 ? 0 : a > 255 ? 255 : a;
    img[q + 1] = b < 0 ? 0 : b > 255 ? 255 : b;
    img[q + 2] = c < 0 ? 0 : c > 255 ? 255 : c;
  }
}

function render(
  l: Layout,
  paint: boolean,
  o: { ignoreOccluded: number; classId: number },
): { image?: RgbImage; annotations: Annotation[] } {
  const raster = new Raster(l.width, l.height, paint);
  if (raster.image) {
    paintBackground(l, raster.image);
    for (const p of l.paving) raster.draw(p, NO_OWNER);
  }
  for (const p of l.backdrop) raster.draw(p, OCCLUDER);
  const claimed = new Int32Array(l.boxes.length);
  for (const obj of l.objects) {
    if (obj.under && raster.image) for (const p of obj.under) raster.draw(p, NO_OWNER);
    const owner = obj.person >= 0 ? obj.person : OCCLUDER;
    for (const p of obj.paints) {
      const n = raster.draw(p, owner);
      if (obj.person >= 0) claimed[obj.person] += n;
    }
  }
  if (raster.image) addNoise(l, raster.image);
  const visible = new Int32Array(l.boxes.length);
  for (const id of raster.owners) if (id >= 0) visible[id]++;

  const annotations: Annotation[] = [];
  l.boxes.forEach((b, i) => {
    const box: BoxXyxy = [
      Math.max(0, b[0]),
      Math.max(0, b[1]),
      Math.min(l.width, b[2]),
      Math.min(l.height, b[3]),
    ];
    if (!(box[2] - box[0] >= 1 && box[3] - box[1] >= 1)) return;
    // Visible share of the whole body: unoccluded share of the in-image part, times the in-image share of the box.
    const inImage = ((box[2] - box[0]) * (box[3] - box[1])) / ((b[2] - b[0]) * (b[3] - b[1]));
    const vis = claimed[i] > 0 ? (visible[i] / claimed[i]) * inImage : 0;
    const ann: Annotation = { box, classId: o.classId };
    if (vis < 1 - o.ignoreOccluded) ann.ignore = true;
    annotations.push(ann);
  });
  return {
    image: raster.image ? { data: raster.image, width: l.width, height: l.height } : undefined,
    annotations,
  };
}

function resolveOptions(width: number, height: number, opts: SyntheticOptions) {
  for (const [k, v] of Object.entries({ width, height })) {
    if (!(Number.isInteger(v) && v >= 16)) throw new RangeError(`'${k}' must be an integer >= 16, got ${v}`);
  }
  const o = {
    minPeople: opts.minPeople ?? 3,
    maxPeople: opts.maxPeople ?? 40,
    minHeight: opts.minHeight ?? 8,
    maxHeight: opts.maxHeight ?? height / 2,
    ignoreOccluded: opts.ignoreOccluded ?? 0.7,
  };
  if (!(Number.isInteger(o.minPeople) && o.minPeople >= 0 && o.maxPeople >= o.minPeople))
    throw new RangeError(
      `'minPeople'/'maxPeople' must satisfy 0 <= minPeople <= maxPeople, got ${o.minPeople}, ${o.maxPeople}`,
    );
  if (!(o.minHeight >= 2 && o.maxHeight >= o.minHeight))
    throw new RangeError(
      `'minHeight'/'maxHeight' must satisfy 2 <= minHeight <= maxHeight, got ${o.minHeight}, ${o.maxHeight}`,
    );
  if (!(o.ignoreOccluded >= 0 && o.ignoreOccluded <= 1))
    throw new RangeError(`'ignoreOccluded' must be in [0, 1], got ${o.ignoreOccluded}`);
  return {
    layout: { ...o, minPeople: Math.max(1, o.minPeople) },
    ignoreOccluded: o.ignoreOccluded,
    classId: opts.classId ?? 0,
  };
}

// #endregion

/**
 * Renders one synthetic scene. Same seed, size and options give the same bytes.
 * About 5-15 ms for 320x320 on one core.
 * @param seed - any number or string.
 * @returns the image (RGB HWC uint8) and full-body boxes in image pixels.
 *
 * @example
 * ```ts
 * const { image, annotations } = generateSyntheticScene(7, 320, 320);
 * image.data.length; // 307200
 * annotations.length; // 3..40 people
 * ```
 */
export function generateSyntheticScene(
  seed: number | string,
  width: number,
  height: number,
  opts: SyntheticOptions = {},
): SyntheticScene {
  const o = resolveOptions(width, height, opts);
  const r = render(layoutScene(seed, width, height, o.layout), true, o);
  return { image: r.image!, annotations: r.annotations };
}

/** Labels of a scene without painting it (the occlusion pass only; a fraction of the render cost). */
export function syntheticSceneAnnotations(
  seed: number | string,
  width: number,
  height: number,
  opts: SyntheticOptions = {},
): Annotation[] {
  const o = resolveOptions(width, height, opts);
  return render(layoutScene(seed, width, height, o.layout), false, o).annotations;
}

/** Options of {@link syntheticDataset} and {@link writeSyntheticCoco}. */
export interface SyntheticDatasetOptions extends SyntheticOptions {
  /** Number of images. */
  count: number;
  width: number;
  height: number;
  /** Base seed; image i uses seed `${seed}/${i}`. */
  seed?: number;
  /** Target class list; people get the id of `className` in it (default `['person']`). */
  classes?: string[];
  /** Target class name of people (default `'person'`, or the only class when `classes` has one). */
  className?: string;
}

function personClassId(classes: string[], className: string | undefined): number {
  const name = className ?? 'person';
  const id = classes.indexOf(name);
  if (id >= 0) return id;
  if (className === undefined && classes.length === 1) return 0;
  throw new RangeError(`'classes' must contain '${name}' for synthetic people, got ${classes.join(', ')}`);
}

/**
 * A lazily rendered synthetic {@link Dataset}: `load()` renders the image (yielding to the event
 * loop first, so a prefetching loader interleaves renders with other work), and
 * `annotations` is computed on first access by the cheaper occlusion-only pass. Sample i equals
 * `generateSyntheticScene(`${seed}/${i}`, width, height, opts)`.
 */
export function syntheticDataset(opts: SyntheticDatasetOptions): Dataset {
  const { count, width, height, seed = 0 } = opts;
  if (!(Number.isInteger(count) && count >= 0))
    throw new RangeError(`'count' must be an integer >= 0, got ${count}`);
  const classes = opts.classes ?? ['person'];
  const sceneOpts: SyntheticOptions = { ...opts, classId: personClassId(classes, opts.className) };
  resolveOptions(width, height, sceneOpts);
  const samples: Sample[] = [];
  for (let i = 0; i < count; i++) {
    const s = `${seed}/${i}`;
    let anns: Annotation[] | undefined;
    samples.push({
      id: `synth-${s}`,
      width,
      height,
      get annotations(): Annotation[] {
        anns ??= syntheticSceneAnnotations(s, width, height, sceneOpts);
        return anns;
      },
      set annotations(v: Annotation[]) {
        anns = v;
      },
      load: async () => {
        await new Promise<void>((resolve) => setImmediate(resolve));
        const scene = generateSyntheticScene(s, width, height, sceneOpts);
        anns ??= scene.annotations;
        return scene.image;
      },
    });
  }
  return { name: `synthetic-${seed}-${width}x${height}`, classes: [...classes], samples, skipped: [] };
}

/** Options of {@link writeSyntheticCoco}. */
export interface WriteSyntheticCocoOptions extends SyntheticDatasetOptions {
  /** Image format (default `'jpg'`, quality 92; `'png'` is lossless). */
  format?: 'jpg' | 'png';
  /** Replace an existing output folder (default false). */
  overwrite?: boolean;
  /** Called after each image is written. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes a synthetic dataset as `dir/images/000000.jpg ...` plus `dir/annotations.json` (COCO;
 * ignored people have `iscrowd: 1` and `ignore: 1`). The folder appears atomically: everything is
 * written to a temporary sibling folder that is renamed into place at the end.
 * @returns counts of what was written.
 * @throws {ConfigError} `ERR_CONFIG_INVALID` when `dir` exists and `overwrite` is not set.
 * @throws {EdgekdError} `ERR_FILE_WRITE` when writing fails (the temporary folder is removed).
 */
export async function writeSyntheticCoco(
  dir: string,
  opts: WriteSyntheticCocoOptions,
): Promise<{ dir: string; images: number; annotations: number }> {
  const exists = await stat(dir).then(
    () => true,
    () => false,
  );
  if (exists && !opts.overwrite)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `output folder '${dir}' already exists; pass 'overwrite' to replace it`,
    );
  const ds = syntheticDataset(opts);
  const format = opts.format ?? 'jpg';
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}-${Date.now()}`);
  const images: { id: number; file_name: string; width: number; height: number }[] = [];
  const annotations: Record<string, unknown>[] = [];
  const pending = new Set<Promise<void>>();
  let written = 0;
  try {
    await mkdir(join(tmp, 'images'), { recursive: true });
    for (let i = 0; i < ds.samples.length; i++) {
      const s = ds.samples[i];
      const scene = generateSyntheticScene(`${opts.seed ?? 0}/${i}`, opts.width, opts.height, {
        ...opts,
        classId: personClassId(ds.classes, opts.className),
      });
      const file = `${String(i).padStart(6, '0')}.${format}`;
      images.push({ id: i + 1, file_name: file, width: s.width, height: s.height });
      for (const a of scene.annotations) {
        const [x1, y1, x2, y2] = a.box;
        const r = (v: number) => Math.round(v * 100) / 100;
        const bbox = [r(x1), r(y1), r(x2 - x1), r(y2 - y1)];
        annotations.push({
          id: annotations.length + 1,
          image_id: i + 1,
          category_id: a.classId + 1,
          bbox,
          area: r(bbox[2] * bbox[3]),
          iscrowd: a.ignore ? 1 : 0,
          ignore: a.ignore ? 1 : 0,
        });
      }
      const enc = sharp(scene.image.data, {
        raw: { width: scene.image.width, height: scene.image.height, channels: 3 },
      });
      const p = (format === 'png' ? enc.png() : enc.jpeg({ quality: 92 }))
        .toFile(join(tmp, 'images', file))
        .then(() => {
          opts.onProgress?.(++written, ds.samples.length);
        })
        .finally(() => pending.delete(p));
      pending.add(p);
      if (pending.size >= 4) await Promise.race(pending);
    }
    await Promise.all(pending);
    const coco = {
      info: { description: `edgekd synthetic pedestrians, seed ${opts.seed ?? 0}`, version: '1' },
      images,
      annotations,
      categories: ds.classes.map((name, i) => ({ id: i + 1, name })),
    };
    await writeFile(join(tmp, 'annotations.json'), JSON.stringify(coco));
    if (exists) await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    await Promise.allSettled([...pending]);
    await rm(tmp, { recursive: true, force: true });
    if (e instanceof EdgekdError) throw e;
    throw new EdgekdError(
      'ERR_FILE_WRITE',
      `cannot write synthetic dataset to '${dir}': ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
  return { dir, images: images.length, annotations: annotations.length };
}
