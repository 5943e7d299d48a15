/**
 * The Node client of docs/http-api.md, copied out of the page and run against a live server, so
 * the documented example keeps working.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type EdgekdServer } from '../../server/app.js';
import { repoRoot } from '../docs/repo-root.js';
import { writeTestModels } from '../runtime/fixtures.js';
import { testImage } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'edgekd-server-docs-'));
const models = writeTestModels(dir);
let server: EdgekdServer;
let base: string;

before(async () => {
  server = await createServer({ modelPath: models.boxes, token: 'doc-token' });
  base = (await server.listen()).url;
  await server.ready;
});
after(() => server.close());

test('the Node client of docs/http-api.md posts an image and prints its detections', async () => {
  const page = readFileSync(join(repoRoot(), 'docs/http-api.md'), 'utf8');
  const section = page.slice(page.indexOf('## Node client'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'docs/http-api.md has a ```js block under "## Node client"');
  assert.ok(code.split('\n').length <= 30, 'the client stays short');
  const script = join(dir, 'detect.mjs');
  writeFileSync(script, code);
  writeFileSync(join(dir, 'street.jpg'), await testImage(320, 240));
  // Asynchronously: the server answering it lives in this process.
  const run = (env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, [script, join(dir, 'street.jpg'), base], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.on('close', (code) => resolve({ code, out, err }));
    });
  const ok = await run({ ...process.env, EDGEKD_TOKEN: 'doc-token' });
  assert.equal(ok.code, 0, ok.err);
  const lines = ok.out.trim().split('\n');
  const m = /^rt-micro on cpu: (\d+) detections, [\d.]+ ms$/.exec(lines[0]);
  assert.ok(m, lines[0]);
  assert.ok(Number(m[1]) > 0);
  assert.equal(lines.length, 1 + Number(m[1]));
  for (const l of lines.slice(1)) assert.match(l, /^person 0\.\d\d -?\d+ -?\d+ \d+ \d+$/);
  const denied = await run({ ...process.env, EDGEKD_TOKEN: '' });
  assert.notEqual(denied.code, 0);
  assert.match(denied.err, /HTTP 401 unauthorized/);
});
