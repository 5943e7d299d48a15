/**
 * The one error module of edgekd. Every error the toolkit raises on purpose is an
 * {@link EdgekdError} with a stable `code`, so callers (CLI, HTTP handler, tests) can
 * branch on it without parsing messages. Misuse of an API argument throws a built-in
 * `TypeError` / `RangeError` naming the parameter instead (as ONNX Runtime does).
 */

export type ErrorCode =
  | 'ERR_CONFIG_UNKNOWN_KEY'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_CONFIG_RANGE'
  | 'ERR_FILE_NOT_FOUND'
  | 'ERR_FILE_WRITE'
  | 'ERR_MODEL_FORMAT'
  | 'ERR_CHECKPOINT'
  | 'ERR_DATA_FORMAT'
  | 'ERR_IMAGE_DECODE'
  | 'ERR_BACKEND_UNAVAILABLE'
  | 'ERR_PROVIDER_UNAVAILABLE'
  | 'ERR_PIPELINE'
  | 'ERR_TRAIN_DIVERGED'
  | 'ERR_INTERRUPTED';

/** Base class: sets `name` to the subclass name and carries a `code` and an optional `cause`. */
export class EdgekdError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration or CLI flag is wrong. CLI exit 2, HTTP 400. */
export class ConfigError extends EdgekdError {}

/** A model spec, checkpoint, weights file or ONNX file is malformed or inconsistent. Exit 1, HTTP 422. */
export class ModelFormatError extends EdgekdError {}

/** A dataset file (annotations, labels, images) is missing or malformed. Exit 1, HTTP 422. */
export class DataFormatError extends EdgekdError {}

/** No requested compute backend / execution provider could be used. Exit 1, HTTP 503. */
export class ProviderUnavailableError extends EdgekdError {}

/** ffmpeg or a video stage failed. Carries the last lines of the child's stderr. Exit 1, HTTP 500. */
export class PipelineError extends EdgekdError {
  readonly stderrTail: string[];
  constructor(message: string, stderrTail: string[] = [], options?: { cause?: unknown }) {
    super('ERR_PIPELINE', message, options);
    this.stderrTail = stderrTail.slice(-20);
  }
}

/** Process exit code for an error, as documented in docs/cli.md. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof ConfigError) return 2;
  if (err instanceof EdgekdError && err.code === 'ERR_INTERRUPTED') return 130;
  return 1;
}

/** One-line rendering used by every cli.ts: `error[ERR_CONFIG_RANGE]: message`. */
export function formatError(err: unknown): string {
  if (err instanceof EdgekdError) {
    const cause = err.cause instanceof Error ? ` (cause: ${err.cause.message})` : '';
    return `error[${err.code}]: ${err.message}${cause}`;
  }
  if (err instanceof Error) return `error[${err.name}]: ${err.message}`;
  return `error: ${String(err)}`;
}
