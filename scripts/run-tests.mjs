// Runs node's test runner over the compiled tests and fails when no test ran:
// `node --test` on an empty tree exits 0, which would make a broken build look green.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = findTests('dist/test').sort();
if (files.length === 0) {
  console.error('error: no compiled test files under dist/test (did tsc run?)');
  process.exit(1);
}
const args = ['--test', '--test-reporter=spec', '--test-concurrency=2', ...process.argv.slice(2), ...files];
const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4000);
});
child.on('close', (code) => {
  const m = /tests (\d+)/.exec(tail);
  if (!m || Number(m[1]) === 0) {
    console.error('error: the test run reported no tests');
    process.exit(1);
  }
  process.exit(code ?? 1);
});
