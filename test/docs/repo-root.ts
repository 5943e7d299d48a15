/** Where the docs live, whether the tests run from dist/ or another outDir. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root: the nearest folder above `from` whose package.json is edgekd's. */
export function repoRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'edgekd')
      return dir;
    if (dirname(dir) === dir) throw new Error(`no edgekd package.json above ${from}`);
  }
}
