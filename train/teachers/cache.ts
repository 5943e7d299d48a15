/**
 * Disk cache of teacher outputs, already aligned to the student's grids, one file per
 * (teacher, image, augmentation variant, input size). Repeated epochs and ablation runs over a
 * fixed (pre-augmented) dataset then never pay the teacher twice. Values are stored as float16:
 * teacher features are distillation targets, and half precision halves the disk and read cost.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Float16Array } from '@petamoriken/float16';
import { writeFileAtomic } from '../../models/core/safetensors.js';
import { DataFormatError } from '../../models/core/errors.js';

/** One named map of one image: [h, w, c] values. */
export interface CachedMap {
  name: string;
  shape: [number, number, number];
  data: Float32Array;
}

const MAGIC = 'EKDTC1';

/** Encodes maps as: magic, u32 header length, JSON header, float16 payload. */
export function encodeCacheEntry(maps: CachedMap[]): Buffer {
  const header: { name: string; shape: number[]; offset: number }[] = [];
  let total = 0;
  for (const m of maps) {
    header.push({ name: m.name, shape: m.shape, offset: total });
    total += m.data.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const half = new Float16Array(total);
  for (const m of maps) half.set(m.data, header.find((h) => h.name === m.name)!.offset);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length, 0);
  return Buffer.concat([Buffer.from(MAGIC, 'ascii'), len, json, Buffer.from(half.buffer)]);
}

/** Decodes an entry written by encodeCacheEntry. */
export function decodeCacheEntry(buf: Buffer, source: string): CachedMap[] {
  if (buf.subarray(0, MAGIC.length).toString('ascii') !== MAGIC)
    throw new DataFormatError('ERR_DATA_FORMAT', `teacher cache entry '${source}' has a bad header`);
  const hlen = buf.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  const header = JSON.parse(buf.subarray(start, start + hlen).toString('utf8')) as {
    name: string;
    shape: [number, number, number];
    offset: number;
  }[];
  const payload = buf.subarray(start + hlen);
  // Copy to an aligned buffer: a Buffer slice may start at an odd byte offset.
  const aligned = new Uint8Array(payload.length);
  aligned.set(payload);
  const half = new Float16Array(aligned.buffer, 0, aligned.length / 2);
  return header.map((h) => {
    const n = h.shape[0] * h.shape[1] * h.shape[2];
    return { name: h.name, shape: h.shape, data: Float32Array.from(half.subarray(h.offset, h.offset + n)) };
  });
}

export class TeacherCache {
  readonly dir: string;
  hits = 0;
  misses = 0;

  /** @param root - cache folder; entries go under root/<teacher fingerprint>/ */
  constructor(root: string, teacherFingerprint: string) {
    this.dir = join(root, teacherFingerprint.replace(/[^a-zA-Z0-9._-]/g, '_'));
    mkdirSync(this.dir, { recursive: true });
  }

  private path(key: string): string {
    return join(this.dir, `${createHash('sha1').update(key).digest('hex')}.bin`);
  }

  /** The cached maps of one image, or undefined on a miss (a corrupt entry counts as a miss). */
  get(key: string): CachedMap[] | undefined {
    const p = this.path(key);
    if (!existsSync(p)) {
      this.misses++;
      return undefined;
    }
    try {
      const maps = decodeCacheEntry(readFileSync(p), p);
      this.hits++;
      return maps;
    } catch {
      this.misses++;
      return undefined;
    }
  }

  /** Stores the maps of one image atomically. */
  put(key: string, maps: CachedMap[]): void {
    writeFileAtomic(this.path(key), encodeCacheEntry(maps));
  }
}
