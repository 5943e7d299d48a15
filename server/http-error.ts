/**
 * The server's one error type and its JSON body. Every 4xx/5xx answer is
 * `{"error":{"code":"...","message":"..."}}` with a stable code clients can branch on; stack
 * traces never leave the process. Toolkit errors (models/core/errors.ts) map onto HTTP statuses
 * here, in one place.
 */
import {
  ConfigError,
  DataFormatError,
  EdgekdError,
  ModelFormatError,
  ProviderUnavailableError,
} from '../models/core/errors.js';

/** Stable error codes of the HTTP API (documented in docs/http-api.md). */
export type HttpErrorCode =
  | 'bad_request'
  | 'invalid_parameter'
  | 'empty_body'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'image_too_large'
  | 'invalid_image'
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'too_many_streams'
  | 'overloaded'
  | 'timeout'
  | 'shutting_down'
  | 'not_ready'
  | 'stream_source'
  | 'internal';

export class HttpError extends Error {
  readonly status: number;
  readonly code: HttpErrorCode;
  /** Extra headers to send (e.g. Retry-After on 503, WWW-Authenticate on 401). */
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    code: HttpErrorCode,
    message: string,
    options?: { headers?: Record<string, string>; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.headers = options?.headers ?? {};
  }
}

export interface ErrorBody {
  error: { code: HttpErrorCode; message: string };
}

/**
 * Maps any thrown value to an HttpError. Unknown errors become a 500 whose message says only
 * "internal error" (the detail is for the server log, not the client).
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof ConfigError) return new HttpError(400, 'invalid_parameter', err.message, { cause: err });
  if (err instanceof EdgekdError && err.code === 'ERR_IMAGE_DECODE')
    return new HttpError(400, 'invalid_image', err.message, { cause: err });
  if (err instanceof DataFormatError || err instanceof ModelFormatError)
    return new HttpError(422, 'invalid_image', err.message, { cause: err });
  if (err instanceof ProviderUnavailableError)
    return new HttpError(503, 'not_ready', err.message, { cause: err, headers: { 'Retry-After': '5' } });
  return new HttpError(500, 'internal', 'internal error', { cause: err });
}

export function errorBody(err: HttpError): ErrorBody {
  return { error: { code: err.code, message: err.message } };
}
