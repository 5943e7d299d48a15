/**
 * The shipped default model (models/zoo/ped-pico.onnx, docs/model-card.md), found relative to
 * this module so it resolves the same in a checkout (dist/runtime/ -> ../../models) and after
 * `npm install -g` (the package root holds models/ beside dist/).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../models/core/errors.js';

export const DEFAULT_MODEL_FILE = fileURLToPath(new URL('../../models/zoo/ped-pico.onnx', import.meta.url));

/**
 * The model a command runs: `--model` when given, else the shipped default.
 * @param what - what the model is for, in the error message ("run", "serve")
 * @throws {ConfigError} when no --model is given and the shipped model is not installed
 */
export function modelOrDefault(model: string | undefined, what: string): string {
  if (model) return model;
  if (existsSync(DEFAULT_MODEL_FILE)) return DEFAULT_MODEL_FILE;
  throw new ConfigError(
    'ERR_CONFIG_INVALID',
    `--model FILE is required (the .onnx model to ${what}): the shipped default ${DEFAULT_MODEL_FILE} is not installed`,
  );
}
