/**
 * `POST /v1/detect` input: the request body as validated images, and the query / form parameters.
 *
 * Bodies are either one raw image (`Content-Type: image/jpeg|png|webp`) or `multipart/form-data`
 * with one or more image parts (any field name) and optional parameter fields. Every check that
 * can be made without decoding pixels comes first, cheapest first: declared length against the
 * body cap, content type, magic bytes, then the dimensions in the image header
 * (`sharp().metadata()` reads only the header) against the pixel cap. A PNG that declares
 * 50000x50000 pixels in a few hundred bytes is therefore refused before any pixel buffer exists.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import express from 'express';
import multer from 'multer';
import sharp from 'sharp';
import { z } from 'zod';
import { didYouMean } from '../models/core/config.js';
import type { ModelSpec } from '../models/core/spec.js';
import { HttpError } from './http-error.js';

/** Media types accepted as a raw body (and sniffed in multipart parts). */
export const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp'] as const;
export type ImageFormat = 'jpeg' | 'png' | 'webp';

export interface InputLimits {
  /** Body bytes at most (a raw body, or a whole multipart body). */
  maxBodyBytes: number;
  /** Width * height at most, read from the image header before decoding. */
  maxPixels: number;
  /** Images per multipart request at most. */
  maxImages: number;
}

/** An image whose header has been read and checked; not decoded yet. */
export interface CheckedImage {
  bytes: Buffer;
  format: ImageFormat;
  width: number;
  height: number;
}

/** Format from the first bytes, or undefined when it is none of the accepted ones. */
export function sniffImage(buf: Uint8Array): ImageFormat | undefined {
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (buf.length >= 8 && png.every((b, i) => buf[i] === b)) return 'png';
  const ascii = (from: number, to: number) => Buffer.from(buf.subarray(from, to)).toString('latin1');
  if (buf.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  return undefined;
}

/**
 * Sniffs and reads the header of one image.
 * @param name - how messages refer to it ("image", "image 2")
 * @throws {HttpError} 400 `empty_body` / `invalid_image`, 413 `image_too_large`
 */
export async function checkImage(bytes: Buffer, limits: InputLimits, name = 'image'): Promise<CheckedImage> {
  if (bytes.length === 0) throw new HttpError(400, 'empty_body', `${name} is empty`);
  const format = sniffImage(bytes);
  if (!format) {
    const head = Buffer.from(bytes.subarray(0, 4)).toString('hex');
    throw new HttpError(
      400,
      'invalid_image',
      `${name} is not a JPEG, PNG or WebP image (starts with 0x${head})`,
    );
  }
  let width: number | undefined;
  let height: number | undefined;
  try {
    // Header only; sharp's own pixel limit is off here because the cap below is ours to report.
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    width = meta.width;
    height = meta.height;
  } catch (e) {
    throw new HttpError(400, 'invalid_image', `${name} has an unreadable ${format} header: ${firstLine(e)}`, {
      cause: e,
    });
  }
  if (!width || !height) throw new HttpError(400, 'invalid_image', `${name} has no dimensions in its header`);
  if (width * height > limits.maxPixels)
    throw new HttpError(
      413,
      'image_too_large',
      `${name} is ${width}x${height} = ${width * height} pixels, the limit is ${limits.maxPixels}`,
    );
  return { bytes, format, width, height };
}

/** sharp / libvips messages repeat one line per warning; the first says what is wrong. */
export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0].trim();
}

function mediaType(req: Request): string | undefined {
  const ct = req.headers['content-type'];
  return ct ? ct.split(';')[0].trim().toLowerCase() : undefined;
}

function hasBody(req: Request): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

/** body-parser / multer errors -> the API's error codes. */
function bodyError(err: unknown, limits: InputLimits): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof multer.MulterError) {
    if (err.code === 'LIMIT_FILE_SIZE')
      return new HttpError(
        413,
        'payload_too_large',
        `an image part is over the ${limits.maxBodyBytes}-byte limit`,
      );
    if (err.code === 'LIMIT_FILE_COUNT')
      return new HttpError(413, 'payload_too_large', `more than ${limits.maxImages} images in one request`);
    return new HttpError(400, 'bad_request', `malformed multipart body: ${err.message}`);
  }
  const e = err as { type?: string; status?: number; message?: string };
  if (e.type === 'entity.too.large')
    return new HttpError(413, 'payload_too_large', `the body is over the ${limits.maxBodyBytes}-byte limit`);
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported')
    return new HttpError(415, 'unsupported_media_type', e.message ?? 'unsupported content encoding');
  return new HttpError(400, 'bad_request', `cannot read the body: ${e.message ?? String(err)}`);
}

/**
 * Middleware reading the detect body: a raw image into `req.body` (Buffer), or multipart parts into
 * `req.files` / `req.body` (fields). Refuses an empty body (400 `empty_body`), another content type
 * (415 `unsupported_media_type`) and a body over the cap (413 `payload_too_large`).
 */
export function detectBodyParser(limits: InputLimits): RequestHandler {
  const raw = express.raw({ type: () => true, limit: limits.maxBodyBytes });
  const form = multer({
    storage: multer.memoryStorage(),
    limits: {
      fileSize: limits.maxBodyBytes,
      files: limits.maxImages,
      fields: 16,
      fieldSize: 1024,
      parts: limits.maxImages + 16,
    },
  }).any();
  return (req: Request, res: Response, next: NextFunction) => {
    const done = (err?: unknown) => (err ? next(bodyError(err, limits)) : next());
    if (!hasBody(req))
      return done(new HttpError(400, 'empty_body', 'the request has no body; send an image'));
    const type = mediaType(req);
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limits.maxBodyBytes && type !== undefined)
      return done(
        new HttpError(
          413,
          'payload_too_large',
          `the body is ${declared} bytes, the limit is ${limits.maxBodyBytes}`,
        ),
      );
    if (type === 'multipart/form-data') {
      // The cap holds for the whole body only when its length is declared (multer limits parts,
      // not totals); browsers, curl and fetch always declare it for form data.
      if (!Number.isFinite(declared))
        return done(new HttpError(411, 'bad_request', 'a multipart body needs a Content-Length header'));
      return form(req, res, done);
    }
    if (type && (IMAGE_TYPES as readonly string[]).includes(type)) return raw(req, res, done);
    return done(
      new HttpError(
        415,
        'unsupported_media_type',
        `Content-Type ${type ? `'${type}'` : '(none)'} is not accepted; send ${IMAGE_TYPES.join(', ')} or multipart/form-data`,
      ),
    );
  };
}

/**
 * The images of a parsed detect request, header-checked.
 * @throws {HttpError} 400 `empty_body` / `invalid_image`, 413 `image_too_large`
 */
export async function requestImages(req: Request, limits: InputLimits): Promise<CheckedImage[]> {
  if (Buffer.isBuffer(req.body)) return [await checkImage(req.body, limits)];
  const files = Array.isArray(req.files) ? req.files : [];
  if (files.length === 0)
    throw new HttpError(
      400,
      'empty_body',
      'the multipart body has no image part; add one, e.g. -F image=@photo.jpg',
    );
  return Promise.all(
    files.map((f, i) =>
      checkImage(f.buffer, limits, files.length === 1 ? 'image' : `image ${i + 1} ('${f.fieldname}')`),
    ),
  );
}

/** Parameters of `POST /v1/detect`, as typed values (strings in the query are converted first). */
export const DETECT_PARAM_SCHEMAS = {
  threshold: z
    .number()
    .min(0)
    .max(1)
    .describe("Minimum score in [0, 1] (default: the model spec's decode.scoreThreshold)"),
  maxDetections: z
    .int()
    .min(1)
    .max(1000)
    .describe("Detections per image at most, 1..1000 (default: the model spec's decode.topK)"),
  classes: z
    .string()
    .describe('Comma-separated class names or ids to keep, e.g. person or 0,2 (default: all)'),
  annotate: z
    .boolean()
    .describe('1/true: answer with the image as JPEG with the boxes drawn (one image only)'),
} as const;

export type DetectParamName = keyof typeof DETECT_PARAM_SCHEMAS;

const EXPECT: Record<DetectParamName, string> = {
  threshold: 'a number in [0, 1]',
  maxDetections: 'an integer in [1, 1000]',
  classes: 'a comma-separated list of class names or ids',
  annotate: 'one of 1, 0, true, false',
};

export interface DetectParams {
  threshold: number;
  maxDetections: number;
  /** Class ids to keep; undefined = all. */
  classes?: ReadonlySet<number>;
  annotate: boolean;
}

function invalid(name: string, expect: string, got: unknown): HttpError {
  return new HttpError(400, 'invalid_parameter', `'${name}' must be ${expect}, got ${JSON.stringify(got)}`);
}

function coerce(name: DetectParamName, s: string): unknown {
  const schema = DETECT_PARAM_SCHEMAS[name];
  if (schema instanceof z.ZodNumber) return s.trim() === '' ? NaN : Number(s);
  if (schema instanceof z.ZodBoolean) {
    const v = s.trim().toLowerCase();
    if (v === '' || v === '1' || v === 'true') return true;
    if (v === '0' || v === 'false') return false;
    return s;
  }
  return s;
}

/**
 * Validates the detect parameters from the query string and, for multipart, the form fields.
 * @param sources - `req.query`, then the multipart fields (a name may be given once in all)
 * @throws {HttpError} 400 `invalid_parameter` naming the parameter (unknown names get a
 *   did-you-mean hint)
 */
export function parseDetectParams(sources: Record<string, unknown>[], spec: ModelSpec): DetectParams {
  const names = Object.keys(DETECT_PARAM_SCHEMAS) as DetectParamName[];
  const given = new Map<DetectParamName, string>();
  for (const src of sources) {
    for (const [key, value] of Object.entries(src ?? {})) {
      if (!(names as string[]).includes(key)) {
        const hint = didYouMean(key, names);
        throw new HttpError(
          400,
          'invalid_parameter',
          `unknown parameter '${key}'${hint ? `; did you mean '${hint}'?` : ''} (known: ${names.join(', ')})`,
        );
      }
      const name = key as DetectParamName;
      if (typeof value !== 'string' || given.has(name))
        throw new HttpError(400, 'invalid_parameter', `'${name}' must be given once, as a single value`);
      given.set(name, value);
    }
  }
  const values: Partial<Record<DetectParamName, unknown>> = {};
  for (const [name, s] of given) {
    const r = DETECT_PARAM_SCHEMAS[name].safeParse(coerce(name, s));
    if (!r.success) throw invalid(name, EXPECT[name], s);
    values[name] = r.data;
  }
  let classes: Set<number> | undefined;
  if (values.classes !== undefined) {
    classes = new Set();
    const items = (values.classes as string).split(',').map((c) => c.trim());
    for (const c of items) {
      const byName = spec.classes.findIndex((n) => n.toLowerCase() === c.toLowerCase());
      const id = byName >= 0 ? byName : /^\d+$/.test(c) ? Number(c) : -1;
      if (!(id >= 0 && id < spec.classes.length))
        throw new HttpError(
          400,
          'invalid_parameter',
          `'classes' must list class names or ids of this model (${spec.classes.map((n, i) => `${i}=${n}`).join(', ')}), got ${JSON.stringify(c)}`,
        );
      classes.add(id);
    }
  }
  return {
    threshold: (values.threshold as number | undefined) ?? spec.decode.scoreThreshold,
    maxDetections: (values.maxDetections as number | undefined) ?? spec.decode.topK,
    classes,
    annotate: (values.annotate as boolean | undefined) ?? false,
  };
}
