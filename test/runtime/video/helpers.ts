/** Fixtures for the video tests, made by ffmpeg in the test: testsrc2 clips, probes, pid checks. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether ffmpeg and ffprobe are on PATH (tests skip with a reason otherwise). */
export const HAVE_FFMPEG = (() => {
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
    execFileSync('ffprobe', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
export const SKIP = HAVE_FFMPEG ? false : 'ffmpeg/ffprobe not on PATH (apt-get install ffmpeg)';

export function tmp(prefix = 'edgekd-video-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Writes a testsrc2 clip. `vf` is applied before encoding (e.g. a drawbox); the codec is
 * libx264 yuv420p for even sizes and ffv1 (in .mkv / .nut) for anything else.
 */
export function makeClip(
  path: string,
  o: { size?: string; rate?: number; seconds?: number; vf?: string; codec?: string[]; source?: string } = {},
): string {
  const size = o.size ?? '320x240';
  const input = o.source ?? `testsrc2=size=${size}:rate=${o.rate ?? 25}`;
  const codec = o.codec ?? ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];
  execFileSync(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      input,
      '-t',
      String(o.seconds ?? 2),
      ...(o.vf ? ['-vf', o.vf] : []),
      ...codec,
      path,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return path;
}

export interface ProbedVideo {
  width: number;
  height: number;
  frames: number;
  codec: string;
}

/** Decodes every frame with ffprobe (-count_frames): size, decoded frame count and codec. */
export function probeVideo(path: string): ProbedVideo {
  const out = execFileSync(
    'ffprobe',
    [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-count_frames',
      '-show_entries',
      'stream=width,height,nb_read_frames,codec_name',
      '-of',
      'json',
      path,
    ],
    { encoding: 'utf8' },
  );
  const s = (JSON.parse(out) as { streams: Record<string, string | number>[] }).streams[0];
  return {
    width: Number(s.width),
    height: Number(s.height),
    frames: Number(s.nb_read_frames),
    codec: String(s.codec_name),
  };
}

/** Whether a process with this pid exists (a zombie would still count: node reaps on 'exit'). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of ffmpeg processes whose command line contains `needle` (read from /proc). */
export function pidsWithArg(needle: string): number[] {
  const out: number[] = [];
  for (const e of existsSync('/proc') ? readdirSync('/proc') : []) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (/ffmpeg$/.test(argv[0]) && argv.some((a) => a.includes(needle))) out.push(Number(e));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Resolves after `ms`. */
export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** An H.264 clip cut in half (a truncated download): `<dir>/fs.mp4` is the whole, the cut is returned. */
export function makeTruncatedClip(dir: string): string {
  const full = makeClip(join(dir, 'fs.mp4'), {
    codec: ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-movflags', '+faststart'],
  });
  const cut = join(dir, 'cut.mp4');
  writeFileSync(cut, readFileSync(full).subarray(0, Math.floor(statSync(full).size / 2)));
  return cut;
}
