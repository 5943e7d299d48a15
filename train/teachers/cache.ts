/**
 * Disk cache of teacher outputs, already aligned to the student's grids, one file per
 * (teacher, image, augmentation variant, input size). Repeated epochs and ablation runs over a
 * fixed (pre-augmented) dataset then never pay the teacher twice. Values are stored as float16:
 * teacher features are distillation targets, and half precision halves the disk and read cost.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../models/core/safetensors.js';
import { DataFormatError } from '../../models/core/errors.js';

/** One named map of one image: [h, w, c] values. */
export interface CachedMap {
  name: string;
  shape: [number, number, number];
  data: Float32Array;
}

const MAGIC = 'EKDTC1';

/** float16 bit pattern -> float32 value, for all 65536 patterns (a table beats per-value maths). */
let HALF_TABLE: Float32Array | undefined;
function halfTable(): Float32Array {
  if (HALF_TABLE) return HALF_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return (HALF_TABLE = t);
}

/** float32 -> float16 bits, round to nearest even, overflow to infinity (IEEE 754 binary16). */
export function toHalfBits(src: Float32Array, dst: Uint16Array, offset = 0): void {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < src.length; i++) {
    f[0] = src[i];
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    let h: number;
    if (exp === 0xff) h = sign | 0x7c00 | (mant ? 0x200 : 0);
    else {
      const e = exp - 127 + 15;
      if (e >= 31) h = sign | 0x7c00;
      else if (e <= 0) {
        if (e < -10) h = sign;
        else {
          mant |= 0x800000;
          const shift = 14 - e;
          let m = mant >>> shift;
          const rem = mant & ((1 << shift) - 1);
          const half = 1 << (shift - 1);
          if (rem > half || (rem === half && m & 1)) m++;
          h = sign | m;
        }
      } else {
        let m = mant >>> 13;
        const rem = mant & 0x1fff;
        let ee = e;
        if (rem > 0x1000 || (rem === 0x1000 && m & 1)) {
          m++;
          if (m === 0x400) {
            m = 0;
            ee++;
          }
        }
        h = ee >= 31 ? sign | 0x7c00 : sign | (ee << 10) | m;
      }
    }
    dst[offset + i] = h;
  }
}

/** Encodes maps as: magic, u32 header length, JSON header, float16 payload. */
export function encodeCacheEntry(maps: CachedMap[]): Buffer {
  const header: { name: string; shape: number[]; offset: number }[] = [];
  let total = 0;
  for (const m of maps) {
    header.push({ name: m.name, shape: m.shape, offset: total });
    total += m.data.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const half = new Uint16Array(total);
  for (const m of maps) toHalfBits(m.data, half, header.find((h) => h.name === m.name)!.offset);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length, 0);
  return Buffer.concat([Buffer.from(MAGIC, 'ascii'), len, json, Buffer.from(half.buffer)]);
}

/**
 * Decodes an entry written by encodeCacheEntry.
 * @param names - decode only these maps (others are skipped unread)
 */
export function decodeCacheEntry(buf: Buffer, source: string, names?: ReadonlySet<string>): CachedMap[] {
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
  const half = new Uint16Array(aligned.buffer, 0, aligned.length / 2);
  const table = halfTable();
  return header
    .filter((h) => !names || names.has(h.name))
    .map((h) => {
      const n = h.shape[0] * h.shape[1] * h.shape[2];
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = table[half[h.offset + i]];
      return { name: h.name, shape: h.shape, data };
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

  /**
   * The cached maps of one image, or undefined on a miss (a corrupt entry, or one lacking a
   * requested map, counts as a miss).
   */
  get(key: string, names?: ReadonlySet<string>): CachedMap[] | undefined {
    const p = this.path(key);
    if (!existsSync(p)) {
      this.misses++;
      return undefined;
    }
    try {
      const maps = decodeCacheEntry(readFileSync(p), p, names);
      if (names && maps.length !== names.size) throw new Error('incomplete entry');
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
