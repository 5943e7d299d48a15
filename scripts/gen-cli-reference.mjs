// Writes docs/cli-reference.md from the compiled CLI (run `npm run build` first, or use
// `npm run docs:cli`, which does both). test/docs/cli-reference.test.ts fails when the file
// on disk differs from what this writes.
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const compiled = new URL('dist/bin/cli-reference.js', root);
if (!existsSync(fileURLToPath(compiled))) {
  console.error('error: dist/bin/cli-reference.js not found: run `npm run build` first');
  process.exit(1);
}
const { renderCliReference } = await import(compiled.href);
const out = fileURLToPath(new URL('docs/cli-reference.md', root));
writeFileSync(out, await renderCliReference());
console.error(`wrote ${out}`);
