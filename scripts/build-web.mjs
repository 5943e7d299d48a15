// Builds the browser demo into dist/web/ (served at `/` by server/web-demo.ts):
//   index.html, style.css          copied from web/
//   main.js, chunks/*.js (+ maps)  web/src/main.ts bundled by esbuild (ESM, minified, with
//                                  onnxruntime-web split out and loaded on demand)
//   ort/<version>/ort-wasm-*       onnxruntime-web's WebAssembly runtime (plain and JSEP/WebGPU
//                                  builds), loaded at run time from this folder, never a CDN
//   build-inputs.json              the project sources bundled (for staleness checks)
// Deterministic (same inputs, same bytes) and incremental for the large runtime files.
// Usage: node scripts/build-web.mjs [--out DIR]
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
const out = resolve(values.out ?? join(root, 'dist/web'));
const t0 = performance.now();

const ortPkg = join(root, 'node_modules/onnxruntime-web');
const ortVersion = JSON.parse(readFileSync(join(ortPkg, 'package.json'), 'utf8')).version;
// The versioned folder lets the server cache these files as immutable.
const ortDir = `ort/${ortVersion}/`;
// Under the extern-wasm condition, `onnxruntime-web` (dist/ort.min.mjs) imports the JSEP glue
// (WebGPU + wasm EPs) from wasmPaths at run time, and `onnxruntime-web/wasm` the plain one.
const ORT_FILES = [
  'ort-wasm-simd-threaded.jsep.mjs',
  'ort-wasm-simd-threaded.jsep.wasm',
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.wasm',
];

const { build } = await import('esbuild');
mkdirSync(out, { recursive: true });
for (const stale of ['main.js', 'main.js.map', 'chunks'])
  rmSync(join(out, stale), { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: ['web/src/main.ts'],
  outdir: out,
  entryNames: '[name]',
  // onnxruntime-web's wasm-only and WebGPU builds are imported lazily, one or the other.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome113', 'firefox128', 'safari17'],
  tsconfig: 'web/tsconfig.json',
  conditions: ['onnxruntime-web-use-extern-wasm'],
  define: { __ORT_WASM_DIR__: JSON.stringify(`./${ortDir}`) },
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
if (result.errors.length > 0) process.exit(1);

// The sources the bundle was made from, so a test (or a script) can tell when it is stale.
const inputs = [
  ...Object.keys(result.metafile.inputs).filter((p) => !p.startsWith('node_modules/')),
  'web/index.html',
  'web/style.css',
  'scripts/build-web.mjs',
].sort();
writeFileSync(join(out, 'build-inputs.json'), JSON.stringify({ ortVersion, inputs }, null, 2) + '\n');

const wrote = [];
const note = (path) => wrote.push(`${relative(root, path)} (${(statSync(path).size / 1024).toFixed(0)} KiB)`);
for (const file of Object.keys(result.metafile.outputs)
  .filter((f) => f.endsWith('.js'))
  .sort())
  note(join(root, file));
for (const name of ['index.html', 'style.css']) {
  writeFileSync(join(out, name), readFileSync(join(root, 'web', name)));
  note(join(out, name));
}
mkdirSync(join(out, ortDir), { recursive: true });
for (const name of ORT_FILES) {
  const from = join(ortPkg, 'dist', name);
  const to = join(out, ortDir, name);
  const a = statSync(from);
  let same = false;
  try {
    const b = statSync(to);
    same = b.size === a.size && b.mtimeMs >= a.mtimeMs;
  } catch {
    same = false;
  }
  if (!same) copyFileSync(from, to);
  note(to);
}
for (const line of wrote) console.log(`  ${line}`);
console.log(
  `build-web: wrote ${relative(root, out) || '.'} in ${((performance.now() - t0) / 1000).toFixed(2)} s`,
);
