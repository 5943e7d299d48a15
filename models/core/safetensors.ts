/**
 * Reader/writer for the safetensors container (8-byte little-endian header length, JSON
 * header, raw little-endian tensor bytes). Checkpoints use it so Python tools (safetensors,
 * PyTorch) can open them too. Written here rather than taken from npm: the format is three
 * fields, and the npm packages for it are unmaintained or pull in native code.
 *
 * Writes are atomic: data goes to a temp file in the same folder, is fsynced, then renamed
 * over the target, so a crash mid-save leaves either the old file or the new one.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ModelFormatError, ConfigError } from './errors.js';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, NamedTensor>;
  metadata: Record<string, string>;
}

/** Serialises tensors (float32 only) and string metadata into one buffer. */
export function encodeSafetensors(
  tensors: Map<string, NamedTensor>,
  metadata: Record<string, string>,
): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length)
      throw new RangeError(
        `tensor '${name}': shape [${t.shape.join(', ')}] needs ${n} values, got ${t.data.length}`,
      );
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + n * 4] };
    offset += n * 4;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const t of tensors.values()) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, pos);
    pos += t.data.byteLength;
  }
  return out;
}

/**
 * Parses a safetensors buffer (F32 tensors only).
 * @throws {ModelFormatError} when the buffer is truncated or malformed
 */
export function decodeSafetensors(buf: Buffer, source = 'safetensors'): SafetensorsFile {
  const bad = (why: string) => new ModelFormatError('ERR_CHECKPOINT', `${source}: ${why}`);
  if (buf.length < 8) throw bad('file is shorter than the 8-byte header length');
  const hlen = Number(buf.readBigUInt64LE(0));
  if (hlen > buf.length - 8 || hlen > 100_000_000)
    throw bad(`header length ${hlen} exceeds the file size ${buf.length}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + hlen).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ModelFormatError(
      'ERR_CHECKPOINT',
      `${source}: header is not valid JSON (truncated or not a safetensors file)`,
      { cause: e },
    );
  }
  const base = 8 + hlen;
  const tensors = new Map<string, NamedTensor>();
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (e.dtype !== 'F32') throw bad(`tensor '${name}' has dtype ${String(e.dtype)}; only F32 is supported`);
    const [b, end] = e.data_offsets ?? [-1, -1];
    const n = (e.shape ?? []).reduce((a, c) => a * c, 1);
    if (!(b >= 0 && end === b + n * 4 && base + end <= buf.length))
      throw bad(`tensor '${name}' has bad data offsets or the file is truncated`);
    // Copy so the tensor is 4-byte aligned and independent of the file buffer.
    const data = new Float32Array(n);
    Buffer.from(data.buffer).set(buf.subarray(base + b, base + end));
    tensors.set(name, { shape: e.shape ?? [], data });
  }
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  return { tensors, metadata };
}

/** Writes a buffer to `path` atomically (temp file + fsync + rename). */
export function writeFileAtomic(path: string, data: Buffer | string): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new ConfigError('ERR_FILE_WRITE', `cannot write '${path}' (folder '${dirname(path)}')`, {
      cause: e,
    });
  }
}

/** Reads a safetensors file. @throws {ConfigError} when missing, {ModelFormatError} when malformed. */
export function readSafetensors(path: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new ConfigError('ERR_FILE_NOT_FOUND', `cannot read '${path}'`, { cause: e });
  }
  return decodeSafetensors(buf, `'${path}'`);
}
