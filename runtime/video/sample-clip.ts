/**
 * Encodes raw RGB24 frames into a video file with an ffmpeg encoder child (the same command line
 * as the annotated video's, from ffmpeg.ts). The file is encoded under a temporary name beside
 * `out` and renamed into place only once ffmpeg has finished it, so an interrupted or failed run
 * leaves no half-written clip. `edgekd demo` uses it to turn generator-rendered scenes into a
 * sample clip where vtest.avi is not installed.
 */
import { once } from 'node:events';
import { renameSync, rmSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { EdgekdError } from '../../models/core/errors.js';
import { describeExit, encoderArgs, findFfmpeg, spawnFfmpeg } from './ffmpeg.js';

/** Options of {@link writeRgbClip}. */
export interface RgbClipOptions {
  width: number;
  height: number;
  /** Frames per second of the clip. */
  fps: number;
  /** libx264 constant rate factor (default 18: close to lossless for generated scenes). */
  crf?: number;
  /** Explicit ffmpeg binary (default: the one {@link findFfmpeg} finds). */
  ffmpegPath?: string;
  /** Aborting stops the encoder, removes the partial file and rejects with `ERR_INTERRUPTED`. */
  signal?: AbortSignal;
}

/**
 * Writes `frames` (each `width * height * 3` bytes, RGB24, row-major) to `out`; the container
 * follows the extension (e.g. `.mp4`).
 * @example
 * ```ts
 * const frames = [new Uint8Array(64 * 48 * 3).fill(128)];
 * await writeRgbClip('grey.mp4', frames, { width: 64, height: 48, fps: 10 });
 * // { path: 'grey.mp4', frames: 1 }
 * ```
 * @returns the path and the number of frames written
 * @throws {PipelineError} when ffmpeg is missing or the encoder fails (nothing is left at `out`)
 * @throws {RangeError} when a frame has the wrong length
 * @throws {EdgekdError} `ERR_INTERRUPTED` when `signal` aborts
 */
export async function writeRgbClip(
  out: string,
  frames: Iterable<Uint8Array>,
  o: RgbClipOptions,
): Promise<{ path: string; frames: number }> {
  const bin = await findFfmpeg(o.ffmpegPath);
  const ext = extname(out);
  const tmp = join(dirname(out), `.${basename(out, ext)}.partial-${process.pid}${ext}`);
  const args = await encoderArgs(bin, {
    out: tmp,
    width: o.width,
    height: o.height,
    fps: String(o.fps),
    codec: 'auto',
    crf: o.crf ?? 18,
  });
  const enc = spawnFfmpeg(bin, args, { role: 'encoder', stdin: true, fd3: false });
  const died = enc.exited.then((e) => {
    throw describeExit(`encoding '${out}' failed`, e, enc);
  });
  died.catch(() => undefined);
  const bytes = o.width * o.height * 3;
  let n = 0;
  try {
    for (const f of frames) {
      if (o.signal?.aborted)
        throw new EdgekdError('ERR_INTERRUPTED', `writing '${out}' aborted`, { cause: o.signal.reason });
      if (f.length !== bytes)
        throw new RangeError(
          `'frames' must be ${o.width}x${o.height} RGB24 (${bytes} bytes), got ${f.length} bytes`,
        );
      if (!enc.stdin || enc.stdin.destroyed || enc.process.exitCode !== null) await died;
      if (!enc.stdin!.write(f)) await Promise.race([once(enc.stdin!, 'drain'), died]);
      n++;
    }
    enc.stdin?.end();
    const info = await enc.exited;
    if (info.code !== 0) throw describeExit(`encoding '${out}' failed`, info, enc);
    renameSync(tmp, out);
    return { path: out, frames: n };
  } catch (e) {
    await enc.stop();
    rmSync(tmp, { force: true });
    throw e;
  }
}
