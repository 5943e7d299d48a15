/**
 * Shared configuration plumbing: CLI flags derived from a zod schema, JSON config files,
 * and precedence (schema defaults < --config file < flags, right wins). Only cli.ts files
 * call this; library functions take parsed config objects.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { formatIssues } from './spec.js';

type LeafKind = 'string' | 'number' | 'boolean' | 'json';
export interface FlagInfo {
  /** Object path, e.g. ['train', 'batchSize']. */
  path: string[];
  /** CLI spelling, e.g. 'train.batch-size'. */
  flag: string;
  kind: LeafKind;
  description: string;
  /** Schema default, when the field has one. */
  defaultValue?: unknown;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

interface ZodDefLike {
  type: string;
  defaultValue?: unknown;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  options?: z.ZodType[];
}
function defOf(s: z.ZodType): ZodDefLike {
  return (s as unknown as { _zod: { def: ZodDefLike } })._zod.def;
}

/** Walks a zod schema and lists every leaf as a CLI flag (nested objects flatten with '.'). */
export function schemaFlags(schema: z.ZodType, path: string[] = []): FlagInfo[] {
  let s = schema;
  let description = s.description ?? '';
  let defaultValue: unknown;
  for (;;) {
    const d = defOf(s);
    if (d.type === 'default' && defaultValue === undefined) {
      defaultValue =
        typeof d.defaultValue === 'function' ? (d.defaultValue as () => unknown)() : d.defaultValue;
    }
    if (
      (d.type === 'default' || d.type === 'optional' || d.type === 'nullable' || d.type === 'prefault') &&
      d.innerType
    ) {
      s = d.innerType;
      description ||= s.description ?? '';
      continue;
    }
    break;
  }
  const d = defOf(s);
  if (d.type === 'object' && d.shape) {
    return Object.entries(d.shape).flatMap(([k, v]) => schemaFlags(v, [...path, k]));
  }
  const kind: LeafKind =
    d.type === 'number' || d.type === 'int'
      ? 'number'
      : d.type === 'boolean'
        ? 'boolean'
        : d.type === 'string' || d.type === 'enum' || d.type === 'literal'
          ? 'string'
          : 'json';
  return [{ path, flag: path.map(kebab).join('.'), kind, description, defaultValue }];
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** Closest known name to `name`, when close enough to be a plausible typo. */
export function didYouMean(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = Math.min(distance(name, k), k.endsWith(`.${name}`) ? 0 : Infinity);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[path[path.length - 1]] = value;
}

/** Deep merge of plain objects; arrays and scalars on the right replace. */
export function deepMerge(a: unknown, b: unknown): unknown {
  if (
    typeof a !== 'object' ||
    a === null ||
    Array.isArray(a) ||
    typeof b !== 'object' ||
    b === null ||
    Array.isArray(b)
  )
    return b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b)) out[k] = k in out ? deepMerge(out[k], v) : v;
  return out;
}

/** Reads a JSON config file. @throws {ConfigError} naming the file. */
export function readJsonFile(path: string, what = 'config'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('ERR_FILE_NOT_FOUND', `cannot read ${what} file '${path}'`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `${what} file '${path}' is not valid JSON: ${(e as Error).message}`,
    );
  }
}

export interface ParsedCli<T> {
  config: T;
  positionals: string[];
  /** Flags handled by the command itself (not config fields), e.g. --help. */
  extra: Record<string, string | boolean | undefined>;
}

/**
 * Parses argv against a schema: `--config FILE` (JSON), then `--a.b-c value` flags.
 * @param extraFlags - command flags that are not config fields (parsed by node:util parseArgs too)
 * @throws {ConfigError} ERR_CONFIG_UNKNOWN_KEY with a "did you mean" hint, ERR_CONFIG_INVALID naming each bad field
 */
export function parseCli<S extends z.ZodType>(
  schema: S,
  argv: string[],
  extraFlags: Record<string, { type: 'string' | 'boolean'; short?: string }> = {},
  base: unknown = {},
): ParsedCli<z.output<S>> {
  const flags = schemaFlags(schema);
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    ...extraFlags,
  };
  // Boolean config fields are parsed as strings so that `--flag`, `--flag true|false`,
  // `--flag=false` and `--no-flag` all work (node:util parseArgs alone would silently take
  // `--flag false` as `true` plus a stray positional).
  const booleans = new Set(flags.filter((f) => f.kind === 'boolean').map((f) => f.flag));
  for (const f of flags) options[f.flag] = { type: 'string' };
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const neg = /^--no-(.+)$/.exec(a);
    if (neg && booleans.has(neg[1])) args.push(`--${neg[1]}=false`);
    else if (a.startsWith('--') && booleans.has(a.slice(2))) {
      const next = argv[i + 1];
      if (next === 'true' || next === 'false') {
        args.push(`${a}=${next}`);
        i++;
      } else args.push(`${a}=true`);
    } else args.push(a);
  }
  const parsed = parseFlagArgs(args, options);
  if (parsed.positionals.length) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `unexpected argument '${parsed.positionals[0]}' (flags take the form --name value)`,
    );
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  let merged: unknown = base;
  if (typeof values.config === 'string') merged = deepMerge(merged, readJsonFile(values.config));
  const overrides: Record<string, unknown> = {};
  for (const f of flags) {
    const v = values[f.flag];
    if (v === undefined) continue;
    let value: unknown = v;
    if (f.kind === 'boolean') {
      if (v !== 'true' && v !== 'false')
        throw new ConfigError('ERR_CONFIG_INVALID', `--${f.flag} must be true or false, got '${String(v)}'`);
      value = v === 'true';
    } else if (f.kind === 'number') {
      value = Number(v);
      if (v === '' || !Number.isFinite(value))
        throw new ConfigError('ERR_CONFIG_INVALID', `--${f.flag} must be a number, got '${String(v)}'`);
    } else if (f.kind === 'json') {
      try {
        value = JSON.parse(String(v));
      } catch {
        // A bare word for a union field (e.g. a file path) stays a string.
        value = v;
      }
    }
    setPath(overrides, f.path, value);
  }
  merged = deepMerge(merged, overrides);
  const extra: Record<string, string | boolean | undefined> = {};
  for (const k of Object.keys(extraFlags)) extra[k] = values[k];
  extra.help = values.help;
  extra.config = values.config;
  if (values.help) return { config: undefined as never, positionals: parsed.positionals, extra };
  return {
    config: validateConfig(
      schema,
      merged,
      typeof values.config === 'string' ? `config '${values.config}'` : 'config',
    ),
    positionals: parsed.positionals,
    extra,
  };
}

/**
 * Validates a config object; unknown keys get a did-you-mean hint.
 * @throws {ConfigError}
 */
export function validateConfig<S extends z.ZodType>(
  schema: S,
  value: unknown,
  source = 'config',
): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const unknown = r.error.issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown && unknown.code === 'unrecognized_keys') {
    const known = schemaFlags(schema).map((f) => f.path.join('.'));
    const prefix = unknown.path.length ? `${unknown.path.join('.')}.` : '';
    const key = `${prefix}${unknown.keys[0]}`;
    const hint = didYouMean(key, known);
    throw new ConfigError(
      'ERR_CONFIG_UNKNOWN_KEY',
      `${source}: unknown key '${key}'${hint ? `; did you mean '${hint}'?` : ''}`,
    );
  }
  throw new ConfigError('ERR_CONFIG_INVALID', `${source} is invalid: ${formatIssues(r.error)}`);
}

/** Renders `--help` text from the schema's descriptions. */
export function helpText(usage: string, schema: z.ZodType, extra: string[] = []): string {
  const lines = [usage, '', 'Options:', '  --config FILE   JSON config file (flags override it)', ...extra];
  for (const f of schemaFlags(schema)) {
    const arg = f.kind === 'boolean' ? ' [true|false]' : f.kind === 'number' ? ' N' : ' VALUE';
    const dflt = f.defaultValue === undefined ? '' : ` [default: ${JSON.stringify(f.defaultValue)}]`;
    lines.push(`  --${f.flag}${arg}`.padEnd(38) + ` ${f.description}${dflt}`);
  }
  return lines.join('\n');
}

/** Flag definitions in node:util parseArgs form. */
export type FlagOptions = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;
export type FlagValues = Record<string, string | boolean | undefined>;

/**
 * node:util parseArgs (strict, positionals allowed) with edgekd's errors: an unknown flag is
 * `ERR_CONFIG_UNKNOWN_KEY` with a did-you-mean hint, anything else `ERR_CONFIG_INVALID`. Every CLI
 * parses its flags through here so they all fail the same way.
 * @throws {ConfigError}
 */
export function parseFlagArgs(
  argv: string[],
  options: FlagOptions,
): { values: FlagValues; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    return { values: r.values as FlagValues, positionals: r.positionals };
  } catch (e) {
    const m = /Unknown option '--?([^']+)'/.exec((e as Error).message);
    if (m) {
      const hint = didYouMean(m[1], Object.keys(options));
      throw new ConfigError(
        'ERR_CONFIG_UNKNOWN_KEY',
        `unknown flag --${m[1]}${hint ? `; did you mean --${hint}?` : ''}`,
      );
    }
    throw new ConfigError('ERR_CONFIG_INVALID', (e as Error).message);
  }
}

/**
 * A numeric flag: undefined when absent, else the number if `check` accepts it.
 * @throws {ConfigError} `--name must be <what>, got '<value>'`
 */
export function numberFlag(
  values: FlagValues,
  name: string,
  check: (v: number) => boolean,
  what: string,
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === '' || !Number.isFinite(n) || !check(n))
    throw new ConfigError('ERR_CONFIG_INVALID', `--${name} must be ${what}, got '${String(v)}'`);
  return n;
}
