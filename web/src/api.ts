/**
 * The page's side of the HTTP API (docs/http-api.md): the model list, the model bytes and
 * server-side detection. Every call sends the bearer token when one is set; failures surface
 * as {@link ApiError} carrying the server's `{error:{code,message}}`.
 */
import type { BoxXyxy } from '../../models/core/detection.js';

/** Input normalisation variants of the model spec (models/core/spec.ts). */
export type Normalization =
  | { kind: 'unit' }
  | { kind: 'raw' }
  | { kind: 'meanstd'; mean: [number, number, number]; std: [number, number, number] };

/** The model input as `GET /v1/models` describes it. */
export interface ModelInput {
  width: number;
  height: number;
  channelOrder: 'rgb' | 'bgr';
  normalization: Normalization;
  resize: 'letterbox' | 'stretch';
}

/** One entry of `GET /v1/models`. */
export interface ModelEntry {
  name: string;
  provider: string;
  precision: string;
  outputs: 'boxes' | 'heads';
  input: ModelInput;
  classes: string[];
  /** Where the ONNX bytes are served. */
  url: string;
  /** The model spec (models/core/spec.ts); the page reads only its decode settings. */
  spec?: { decode?: { topK?: number; scoreThreshold?: number; poolSize?: number } };
}

/** One detection of `POST /v1/detect`, in source pixels. */
export interface ServerDetection {
  box: BoxXyxy;
  score: number;
  class: number;
  label: string;
}

export interface ServerDetectResponse {
  model: string;
  provider: string;
  width: number;
  height: number;
  detections: ServerDetection[];
  /** Server-side stage timings in ms (e.g. inferMs, totalMs). */
  timings: Record<string, number>;
}

/** A non-2xx answer (or an unreadable one) from the server. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

function headers(token: string, extra: Record<string, string> = {}): Record<string, string> {
  return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
}

async function failure(res: Response, what: string): Promise<ApiError> {
  let code = 'http_error';
  let message = `${what} failed: HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = `${what} failed: ${body.error.message}`;
  } catch {
    // Not a JSON error body (e.g. a proxy's HTML page): the status line is all there is.
  }
  return new ApiError(res.status, code, message);
}

function checkModel(m: unknown, i: number): ModelEntry {
  const e = m as Partial<ModelEntry> | null;
  const ok =
    e !== null &&
    typeof e === 'object' &&
    typeof e.name === 'string' &&
    typeof e.url === 'string' &&
    (e.outputs === 'boxes' || e.outputs === 'heads') &&
    Array.isArray(e.classes) &&
    typeof e.input?.width === 'number' &&
    typeof e.input.height === 'number' &&
    typeof e.input.normalization?.kind === 'string';
  if (!ok)
    throw new ApiError(
      200,
      'bad_response',
      `GET /v1/models: models[${i}] lacks name, url, outputs, classes or input`,
    );
  return {
    ...e,
    input: { channelOrder: 'rgb', resize: 'letterbox', ...e.input },
  } as ModelEntry;
}

/** `GET /v1/models`. */
export async function fetchModels(token: string): Promise<ModelEntry[]> {
  const res = await fetch('/v1/models', { headers: headers(token) });
  if (!res.ok) throw await failure(res, 'GET /v1/models');
  const body = (await res.json()) as { models?: unknown };
  if (!Array.isArray(body.models) || body.models.length === 0)
    throw new ApiError(200, 'bad_response', 'GET /v1/models: the server lists no model');
  return body.models.map(checkModel);
}

/** Downloads a model's ONNX bytes. */
export async function fetchModelBytes(url: string, token: string): Promise<Uint8Array> {
  const res = await fetch(url, { headers: headers(token) });
  if (!res.ok) throw await failure(res, `GET ${url}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** `POST /v1/detect` with one encoded image as the raw body. */
export async function detectOnServer(
  image: Blob,
  opts: { threshold: number; maxDetections: number; token: string },
): Promise<ServerDetectResponse> {
  const q = new URLSearchParams({
    threshold: String(opts.threshold),
    maxDetections: String(opts.maxDetections),
  });
  const res = await fetch(`/v1/detect?${q.toString()}`, {
    method: 'POST',
    headers: headers(opts.token, { 'content-type': image.type || 'image/jpeg' }),
    body: image,
  });
  if (!res.ok) throw await failure(res, 'POST /v1/detect');
  const body = (await res.json()) as ServerDetectResponse;
  if (!Array.isArray(body.detections))
    throw new ApiError(res.status, 'bad_response', 'POST /v1/detect: no detections array in the answer');
  return body;
}
