/**
 * Enforces the dependency direction of DESIGN.md / STYLE.md by scanning import statements:
 * the deployed side (runtime, server) never pulls in training code or tfjs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const FOLDERS = ['models', 'train', 'export', 'runtime', 'server', 'bin', 'web'];

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function importsOf(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(
    /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
  ))
    out.push(m[1] ?? m[2]);
  return out;
}

/** Area of a file: 'models/core', 'models/arch', 'models/zoo', 'models' (cli), or a top folder. */
function areaOf(rel: string): string {
  const parts = rel.split('/');
  if (parts[0] === 'models' && parts.length > 2) return `models/${parts[1]}`;
  return parts[0];
}

const FORBIDDEN: Record<string, RegExp[]> = {
  'models/core': [
    /^(train|export|runtime|server|bin)$/,
    /^models\/(arch|zoo)$/,
    /^@tensorflow\//,
    /^onnxruntime/,
  ],
  'models/arch': [/^(train|export|runtime|server|bin)$/],
  'models/zoo': [/^(train|export|runtime|server|bin)$/, /^@tensorflow\//],
  models: [/^(train|export|runtime|server|bin)$/],
  train: [/^(export|runtime|server|bin)$/],
  export: [/^(train|runtime|server|bin)$/],
  runtime: [/^(train|export|server|bin)$/, /^models\/arch$/, /^@tensorflow\//],
  server: [/^(train|export|bin)$/, /^models\/arch$/, /^@tensorflow\//],
  bin: [],
  // The browser page bundles pure modules only: no Node-side stacks, no native ONNX Runtime.
  web: [/^(train|export|server|bin)$/, /^models\/arch$/, /^@tensorflow\//, /^onnxruntime-node$/, /^sharp$/],
};

test('no source file imports across a forbidden layer edge', () => {
  const violations: string[] = [];
  let files = 0;
  for (const folder of FOLDERS) {
    for (const file of walk(join(ROOT, folder))) {
      files++;
      const rel = relative(ROOT, file);
      const area = areaOf(rel);
      for (const spec of importsOf(file)) {
        const target = spec.startsWith('.') ? areaOf(relative(ROOT, resolve(dirname(file), spec))) : spec;
        for (const re of FORBIDDEN[area] ?? [])
          if (re.test(target)) violations.push(`${rel} imports '${spec}' (${area} -> ${target})`);
      }
    }
  }
  assert.ok(files > 10, `scanned only ${files} files: is the test looking at the source tree?`);
  assert.deepEqual(violations, []);
});

test('library code does not use console (only cli.ts, bin, bench and tests do)', () => {
  const offenders: string[] = [];
  for (const folder of ['models', 'train', 'export', 'runtime', 'server']) {
    for (const file of walk(join(ROOT, folder))) {
      if (file.endsWith('cli.ts')) continue;
      const code = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => !/^\s*(\*|\/\/)/.test(l))
        .join('\n');
      if (/\bconsole\.(log|error|warn|info)\(/.test(code)) offenders.push(relative(ROOT, file));
    }
  }
  assert.deepEqual(offenders, []);
});
