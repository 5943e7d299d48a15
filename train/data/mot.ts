/**
 * MOTChallenge reader (MOT16/17/20 layout): `seq/gt/gt.txt` with rows
 * `frame, id, bb_left, bb_top, bb_width, bb_height, conf, class, visibility`, and the frames as
 * `seq/img1/000001.jpg` or as one video file. Only pedestrians are kept: class 1 becomes the
 * target person class; classes 2 (person on vehicle) and 7 (static person) become ignore
 * regions; rows with `conf = 0` ("do not consider") become ignore regions too.
 */
import { readFile, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Annotation } from '../../models/core/detection.js';
import { DataFormatError } from '../../models/core/errors.js';
import { createClassMapper, type ClassMapOptions } from './class-map.js';
import { clipBox } from './clip-box.js';
import { decodeImage, readImageSize } from './image.js';
import { SkipLog } from './skip-log.js';
import type { Dataset, RgbImage, Sample } from './types.js';
import { probeVideo, VideoFrameCache } from './video-frames.js';

/** MOT class numbers and names (MOT16/17/20). */
export const MOT_CLASS_NAMES: Readonly<Record<number, string>> = {
  1: 'pedestrian',
  2: 'person_on_vehicle',
  3: 'car',
  4: 'bicycle',
  5: 'motorbike',
  6: 'non_mot_vehicle',
  7: 'static_person',
  8: 'distractor',
  9: 'occluder',
  10: 'occluder_on_ground',
  11: 'occluder_full',
  12: 'reflection',
  13: 'crowd',
};

/** Options of {@link readMot}. */
export interface MotReadOptions extends ClassMapOptions {
  /** Folder of frame images named by 1-based frame number (`000001.jpg`); default `<seq>/img1`. */
  frames?: string;
  /** A video file holding the frames instead (frame n of gt.txt = n-th decoded frame). */
  video?: string;
  /** MOT classes kept as people (default `[1]`; rows with class <= 0, as in MOT15, count as 1). */
  pedestrianClasses?: number[];
  /** MOT classes kept as ignore regions (default `[2, 7]`). */
  ignoreClasses?: number[];
  /** People less visible than this (gt column 9, 0..1) become ignore regions (default 0: none). */
  minVisibility?: number;
  /** Only frames in `[first, last]` (1-based, inclusive), e.g. to hold out an evaluation split. */
  frameRange?: [number, number];
  /** gt.txt coordinates are 1-based (MOTChallenge convention), so 1 is subtracted (default true). */
  oneBased?: boolean;
  ffmpegPath?: string;
  /** Storage of decoded video frames (see `VideoFrameCache`); default `'jpeg'`. */
  videoEncoding?: 'jpeg' | 'raw';
}

/** Parses `seqinfo.ini` (`key=value` lines under `[Sequence]`); absent file gives `{}`. */
async function readSeqInfo(path: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z]\w*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

const FRAME_FILE = /^(\d+)\.(jpe?g|png|webp|bmp)$/i;

/**
 * Reads a MOT sequence into a {@link Dataset}, one sample per frame (frames without people are
 * kept as negatives). Track ids go to `Annotation.trackId`. Image size comes from `seqinfo.ini`
 * when present, else from the first frame's header or the video header.
 * @param gtPath - the `gt.txt` file.
 * @throws {DataFormatError} `ERR_FILE_NOT_FOUND` for a missing gt.txt or frames folder,
 *   `ERR_DATA_FORMAT` naming `gt.txt:line` for a malformed row.
 * @throws {PipelineError} when `video` is given and ffmpeg is absent or cannot read it.
 * @throws {RangeError} when no target class can take MOT pedestrians (`classes` has neither
 *   `person` nor `pedestrian`, and no `mapAllTo` / alias says otherwise).
 */
export async function readMot(gtPath: string, opts: MotReadOptions): Promise<Dataset> {
  const mapper = createClassMapper(opts);
  let target = mapper.idOf('pedestrian');
  if (target < 0) target = mapper.idOf('person');
  if (target < 0)
    throw new RangeError(
      `'classes' must contain 'person' or 'pedestrian' for MOT labels (or set 'mapAllTo'), got ${opts.classes.join(', ')}`,
    );
  const pedestrian = new Set(opts.pedestrianClasses ?? [1]);
  const ignoreCls = new Set(opts.ignoreClasses ?? [2, 7]);
  const minVis = opts.minVisibility ?? 0;
  const shift = opts.oneBased === false ? 0 : 1;

  let text: string;
  try {
    text = await readFile(gtPath, 'utf8');
  } catch (e) {
    throw new DataFormatError('ERR_FILE_NOT_FOUND', `cannot read MOT file '${gtPath}'`, { cause: e });
  }
  const seqDir = dirname(dirname(gtPath));
  const seqInfo = await readSeqInfo(join(seqDir, 'seqinfo.ini'));
  const seqName = seqInfo.name ?? basename(seqDir);

  // Frames: 1-based frame number -> loader.
  let width = Number(seqInfo.imWidth) || 0;
  let height = Number(seqInfo.imHeight) || 0;
  const frameLoad = new Map<number, () => Promise<RgbImage>>();
  if (opts.video) {
    const info = await probeVideo(opts.video, { ffmpegPath: opts.ffmpegPath });
    width = info.width;
    height = info.height;
    let n = Number(seqInfo.seqLength) || info.frameCountEstimate || 0;
    if (!n) for (const line of text.split('\n')) n = Math.max(n, Number.parseInt(line, 10) || 0);
    const first = Math.max(1, opts.frameRange?.[0] ?? 1);
    const last = Math.min(n, opts.frameRange?.[1] ?? n);
    if (last >= first) {
      const frames = Array.from({ length: last - first + 1 }, (_, i) => first + i);
      const cache = new VideoFrameCache(opts.video, {
        frames: frames.map((f) => f - 1),
        ffmpegPath: opts.ffmpegPath,
        size: info,
        encoding: opts.videoEncoding,
      });
      for (const f of frames) frameLoad.set(f, () => cache.get(f - 1));
    }
  } else {
    const dir = opts.frames ?? join(seqDir, seqInfo.imDir ?? 'img1');
    let files: string[];
    try {
      files = await readdir(dir);
    } catch (e) {
      throw new DataFormatError(
        'ERR_FILE_NOT_FOUND',
        `MOT frames folder not found: '${dir}' (pass 'frames' or 'video')`,
        { cause: e },
      );
    }
    let firstFile: string | undefined;
    for (const f of files.sort()) {
      const m = FRAME_FILE.exec(f);
      if (!m) continue;
      const n = Number(m[1]);
      if (opts.frameRange && (n < opts.frameRange[0] || n > opts.frameRange[1])) continue;
      const path = join(dir, f);
      firstFile ??= path;
      frameLoad.set(n, () => decodeImage(path));
    }
    if (firstFile && !(width && height)) ({ width, height } = await readImageSize(firstFile));
  }

  const skips = new SkipLog();
  const byFrame = new Map<number, Annotation[]>();
  const label = basename(gtPath);
  text.split(/\r?\n/).forEach((line, li) => {
    if (!line.trim()) return;
    const where = `${label}:${li + 1}`;
    const v = line
      .split(/[,\s]+/)
      .filter(Boolean)
      .map(Number);
    if (v.length < 6 || !v.slice(0, 6).every(Number.isFinite)) {
      throw new DataFormatError(
        'ERR_DATA_FORMAT',
        `${gtPath}:${li + 1}: expected 'frame,id,x,y,w,h[,conf,class,visibility]', got '${line.trim()}'`,
      );
    }
    const [frame, id, x, y, w, h] = v;
    const conf = Number.isFinite(v[6]) ? v[6] : 1;
    const cls = Number.isFinite(v[7]) && v[7] > 0 ? v[7] : 1;
    const vis = Number.isFinite(v[8]) && v[8] >= 0 ? v[8] : 1;
    if (opts.frameRange && (frame < opts.frameRange[0] || frame > opts.frameRange[1])) return;
    if (!frameLoad.has(frame)) {
      skips.add(where, `frame ${frame} has no image`);
      return;
    }
    const isPerson = pedestrian.has(cls);
    if (!isPerson && !ignoreCls.has(cls)) {
      skips.add(where, `MOT class ${cls} (${MOT_CLASS_NAMES[cls] ?? 'unknown'}) is not a pedestrian class`);
      return;
    }
    const box = clipBox([x - shift, y - shift, x - shift + w, y - shift + h], width, height);
    if (typeof box === 'string') {
      skips.add(where, box);
      return;
    }
    const ann: Annotation = { box, classId: target, trackId: id };
    if (!isPerson || conf === 0 || vis < minVis) ann.ignore = true;
    let list = byFrame.get(frame);
    if (!list) byFrame.set(frame, (list = []));
    list.push(ann);
  });

  const samples: Sample[] = [...frameLoad.keys()]
    .sort((a, b) => a - b)
    .map((frame) => ({
      id: `${seqName}/${String(frame).padStart(6, '0')}`,
      width,
      height,
      annotations: byFrame.get(frame) ?? [],
      load: frameLoad.get(frame)!,
    }));
  return { name: seqName, classes: [...opts.classes], samples, skipped: skips.records() };
}
