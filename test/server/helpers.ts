/** Shared pieces of the server tests: images, a decompression-bomb PNG, a slow model, HTTP calls. */
import { request, type ClientRequest } from 'node:http';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import type { ModelSpecInput } from '../../models/core/spec.js';
import { writeTestModels, type TestModels } from '../runtime/fixtures.js';

/** A seeded noise image with a few bright blocks (so the test models find peaks), encoded. */
export async function testImage(
  width: number,
  height: number,
  format: 'jpeg' | 'png' | 'webp' = 'jpeg',
  seed = 1,
): Promise<Buffer> {
  const px = new Uint8Array(width * height * 3);
  let s = seed >>> 0;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    px[i] = s >>> 25;
  }
  for (let b = 0; b < 5; b++) {
    const w = Math.max(4, Math.floor(width / 10));
    const h = Math.max(8, Math.floor(height / 5));
    const x0 = (seed * 37 + b * 53) % Math.max(1, width - w);
    const y0 = (seed * 11 + b * 29) % Math.max(1, height - h);
    for (let y = y0; y < y0 + h; y++)
      for (let x = x0; x < x0 + w; x++) px.fill(235, (y * width + x) * 3, (y * width + x) * 3 + 3);
  }
  const img = sharp(px, { raw: { width, height, channels: 3 } });
  return (format === 'jpeg' ? img.jpeg() : format === 'png' ? img.png() : img.webp()).toBuffer();
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/**
 * A valid-looking PNG of a few hundred bytes whose header declares `width` x `height` RGB pixels
 * (its one IDAT holds a single compressed row), i.e. a decompression bomb for a naive decoder.
 */
export function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  const idat = deflateSync(Buffer.alloc(1 + Math.min(width, 1000) * 3));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', idat),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * Test models large enough that one session run takes tens of milliseconds on a CPU core
 * (a 320x320 input, 48 channels throughout), to keep requests in flight.
 */
export function writeSlowModels(dir: string, size = 320, channels = 48): TestModels {
  const stage = { channels, depth: 1, expansion: 2 };
  const overrides: Partial<ModelSpecInput> = {
    name: 'slow',
    input: { height: size, width: size },
    backbone: { stemChannels: channels, stages: [stage, stage, stage, stage] },
    neck: { channels },
    head: { channels },
  };
  return writeTestModels(dir, overrides);
}

export interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

/** fetch, reading the whole body; JSON bodies are parsed. */
export async function call(url: string, init: RequestInit = {}): Promise<Reply> {
  const r = await fetch(url, init);
  const body = Buffer.from(await r.arrayBuffer());
  let json: unknown;
  if ((r.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(body.toString('utf8'));
  return { status: r.status, headers: r.headers, body, json };
}

/**
 * A POST through node:http, for bodies fetch cannot send as needed (chunked, without
 * Content-Length): `write` writes the body and must end the request.
 */
export function rawPost(
  url: string,
  headers: Record<string, string>,
  write: (req: ClientRequest) => void,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const json = (res.headers['content-type'] ?? '').includes('json')
          ? (JSON.parse(body.toString('utf8')) as unknown)
          : undefined;
        resolve({
          status: res.statusCode ?? 0,
          headers: new Headers(res.headers as Record<string, string>),
          body,
          json,
        });
      });
    });
    req.on('error', reject);
    write(req);
  });
}

/** POSTs one raw image to /v1/detect. */
export function postImage(
  base: string,
  image: Uint8Array | string,
  opts: { type?: string; query?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Reply> {
  return call(`${base}/v1/detect${opts.query ? `?${opts.query}` : ''}`, {
    method: 'POST',
    body: image,
    headers: { 'content-type': opts.type ?? 'image/jpeg', ...opts.headers },
    signal: opts.signal,
  });
}

/** The `{error:{code,message}}` body of a reply (fails when absent). */
export function errorOf(r: Reply): { code: string; message: string } {
  const e = (r.json as { error?: { code: string; message: string } } | undefined)?.error;
  if (!e) throw new Error(`expected an error body, got ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
  return e;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
