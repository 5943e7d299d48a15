/**
 * `edgekd serve` as a user runs it: a child process that prints its URL, serves, and on SIGTERM
 * drains and exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTestModels } from '../runtime/fixtures.js';
import { call, postImage, testImage } from './helpers.js';

const bin = fileURLToPath(new URL('../../bin/edgekd.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgekd-server-cli-'));
const models = writeTestModels(dir);

test('serve prints its URL, answers requests, and exits 0 on SIGTERM after draining', async () => {
  const child = spawn(
    process.execPath,
    [bin, 'serve', '--model', models.boxes, '--port', '0', '--max-batch', '4'],
    {
      env: { ...process.env, EDGEKD_TOKEN: 'from-env', EDGEKD_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) resolve(m[1]);
      });
      void exited.then((code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
    });
    assert.equal((await call(`${url}/healthz`)).status, 200);
    const jpeg = await testImage(80, 60);
    assert.equal((await postImage(url, jpeg)).status, 401, 'EDGEKD_TOKEN turns auth on');
    const inflight = Array.from({ length: 4 }, () =>
      postImage(url, jpeg, { headers: { authorization: 'Bearer from-env' } }),
    );
    const first = await inflight[0];
    assert.equal(first.status, 200);
    child.kill('SIGTERM');
    assert.deepEqual(
      (await Promise.all(inflight)).map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM, shutting down/);
    assert.match(stderr, /serve: stopped/);
  } finally {
    child.kill('SIGKILL');
  }
});

test('serve rejects an unknown flag with a hint (exit 2) and documents its flags in --help', () => {
  const bad = spawnSync(process.execPath, [bin, 'serve', '--model', models.boxes, '--max-bach', '4'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /ERR_CONFIG_UNKNOWN_KEY.*--max-bach; did you mean --max-batch\?/);
  const none = spawnSync(process.execPath, [bin, 'serve', '--model', 'no-such-model.onnx'], {
    encoding: 'utf8',
  });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /ERR_FILE_NOT_FOUND.*no-such-model\.onnx/);
  const range = spawnSync(process.execPath, [bin, 'serve', '--model', models.boxes, '--queue', '0'], {
    encoding: 'utf8',
  });
  assert.equal(range.status, 2);
  assert.match(range.stderr, /--queue must be an integer >= 1, got '0'/);
  const help = spawnSync(process.execPath, [bin, 'serve', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  for (const flag of [
    '--port',
    '--host',
    '--ep',
    '--workers',
    '--token',
    '--cors',
    '--max-batch',
    '--max-wait-ms',
    '--no-batching',
    '--queue',
    '--timeout-ms',
    '--max-body-mb',
    '--max-pixels',
    '--max-streams',
  ])
    assert.ok(help.stdout.includes(flag), flag);
});
