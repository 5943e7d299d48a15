/**
 * The npm package as a user gets it: `npm pack`, a global install of the tarball into a temp
 * prefix, then the installed `edgekd` binary run from outside the repository.
 *
 * Runs in `npm test` by default (about 45 s here, most of it npm copying ~900 MB of dependencies
 * out of the cache); `EDGEKD_SKIP_PACKAGE_TEST=1` skips it for quick local loops.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { writeTestModels } from '../runtime/fixtures.js';

/** The repository root: the nearest folder above this file with edgekd's package.json. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (
    !existsSync(join(dir, 'package.json')) ||
    !readFileSync(join(dir, 'package.json'), 'utf8').includes('"name": "edgekd"')
  ) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no edgekd package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

const ROOT = findRoot();
const SKIP = process.env.EDGEKD_SKIP_PACKAGE_TEST === '1' ? 'EDGEKD_SKIP_PACKAGE_TEST=1' : false;
const INSTALL_TIMEOUT_MS = 300_000;

interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/**
 * Runs a command in its own process group and kills the whole group on timeout, so an npm
 * install stuck on an unreachable host (an optional dependency's download script) leaves no
 * child behind.
 */
function runTool(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<ToolResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is already gone
      }
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0, timedOut });
    });
  });
}

/**
 * The environment for npm: `npm test` exports its own lifecycle and prefix settings
 * (npm_config_prefix=/usr, npm_package_*), which must not leak into the nested install; user
 * settings such as the registry, cache or proxy stay.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_|command$|config_(call|prefix|global_prefix|local_prefix)$)/.test(k))
      continue;
    env[k] = v;
  }
  // onnxruntime-node's postinstall would fetch CUDA libraries from GitHub; the CPU provider ships
  // inside its npm package (npm 11 does not run that script unless allowed; older npm does).
  env.ONNXRUNTIME_NODE_INSTALL = 'skip';
  return env;
}

const tail = (s: string, n = 25) => s.trim().split('\n').slice(-n).join('\n');

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

describe('npm package', { skip: SKIP }, () => {
  let work = '';
  let pack: PackResult;
  let tarball = '';

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'edgekd-pack-'));
    // --ignore-scripts skips `prepack` (npm run build, ~1 min of tsc here): `npm test` has just
    // built dist/ and the test runs from that build, so the tarball holds the code under test.
    const r = await runTool('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], {
      cwd: ROOT,
      env: npmEnv(),
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, `npm pack failed:\n${tail(r.stderr)}`);
    [pack] = JSON.parse(r.stdout) as PackResult[];
    tarball = join(work, pack.filename);
    assert.ok(existsSync(tarball), tarball);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball holds the binary, shipped models, configs and docs, and no runs, scratch or test files', (t) => {
    const paths = pack.files.map((f) => f.path);
    t.diagnostic(
      `tarball ${(pack.size / 1e6).toFixed(2)} MB packed, ${(pack.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${paths.length} files`,
    );
    for (const p of [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'docs/licences.md',
      'dist/bin/edgekd.js',
      'dist/runtime/cli.js',
      'dist/runtime/session-worker.js',
      'dist/train/trainer/replica-worker.js',
      'train/configs/tiny.json',
      'train/configs/ped-nano.spec.json',
    ]) {
      assert.ok(paths.includes(p), `missing from the tarball: ${p}`);
    }
    const forbidden = paths.filter(
      (p) =>
        /^(runs|\.tmp|test|node_modules|dist\/test|dist\/bench|bench|scripts|\.ci)\//.test(p) ||
        p.endsWith('.map') ||
        (p.endsWith('.ts') && !p.endsWith('.d.ts')),
    );
    assert.deepEqual(forbidden, [], 'files that must not ship');
    // `edgekd serve` answers `/` from dist/web, which only scripts/build-web.mjs writes.
    if (existsSync(join(ROOT, 'web/index.html'))) {
      assert.ok(
        paths.includes('dist/web/index.html') && paths.some((p) => /^dist\/web\/ort\/.+\.wasm$/.test(p)),
        'the built web demo (dist/web/) is missing from the tarball: `npm run build` must run scripts/build-web.mjs',
      );
    }
    // Every shipped model in the repo goes into the package with its card.
    const zoo = join(ROOT, 'models/zoo');
    const zooFiles = existsSync(zoo)
      ? readdirSync(zoo, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(onnx|json|md)$/.test(f))
      : [];
    for (const f of zooFiles) {
      const p = relative(ROOT, join(zoo, f)).split('\\').join('/');
      assert.ok(paths.includes(p), `zoo file missing from the tarball: ${p}`);
    }
    // Several MB of shipped ONNX models are expected; tens of MB mean something slipped in.
    assert.ok(pack.size < 30e6, `tarball is ${pack.size} bytes`);
  });

  describe('installed globally into a temp prefix', () => {
    let prefix = '';
    let bin = '';
    const runEnv = () => ({
      ...process.env,
      // the bin's shebang is `#!/usr/bin/env node`: resolve it to the node running this test
      PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
    });

    before(async () => {
      prefix = join(work, 'prefix');
      // A failed optional dependency (tfjs-node's libtensorflow download) must not fail the install.
      const install = (mode: '--offline' | '--prefer-offline') => {
        rmSync(prefix, { recursive: true, force: true });
        return runTool(
          'npm',
          [
            'install',
            '-g',
            '--prefix',
            prefix,
            mode,
            '--no-audit',
            '--no-fund',
            '--no-update-notifier',
            tarball,
          ],
          { cwd: work, env: npmEnv(), timeoutMs: INSTALL_TIMEOUT_MS },
        );
      };
      const why = (r: ToolResult) =>
        r.timedOut
          ? `timed out after ${INSTALL_TIMEOUT_MS / 1000} s`
          : `exit ${r.code} after ${(r.ms / 1000).toFixed(1)} s`;
      // First from the npm cache alone (warm after `npm ci`): no network, and a miss fails at once
      // with ENOTCACHED instead of npm retrying an unreachable registry for minutes.
      let r = await install('--offline');
      if (r.code !== 0 && !r.timedOut && /ENOTCACHED/.test(r.stderr)) {
        const missing = /request to (\S+) failed/.exec(r.stderr)?.[1] ?? 'a package';
        // The registry is the only network CI has; check it answers before depending on it.
        const ping = await runTool('npm', ['ping', '--fetch-retries', '0', '--fetch-timeout', '15000'], {
          cwd: work,
          env: npmEnv(),
          timeoutMs: 30_000,
        });
        assert.ok(
          ping.code === 0,
          `npm install -g of the packed tarball needs the package registry: the npm cache lacks ${missing}, ` +
            `and the registry does not answer (npm ping: ${why(ping)}). Run \`npm ci\` with the registry ` +
            `reachable first, or set EDGEKD_SKIP_PACKAGE_TEST=1.\n${tail(ping.stderr + ping.stdout, 8)}`,
        );
        r = await install('--prefer-offline');
      }
      assert.ok(
        !r.timedOut && r.code === 0,
        `npm install -g of the packed tarball failed (${why(r)}):\n${tail(r.stderr + r.stdout)}`,
      );
      console.log(`# npm install -g of the tarball: ${(r.ms / 1000).toFixed(1)} s`);
      bin = join(prefix, 'bin', 'edgekd');
    });

    test('the edgekd bin is linked and executable', () => {
      assert.ok(existsSync(bin), `${bin} is missing`);
      const target = realpathSync(bin);
      assert.equal(target, join(realpathSync(prefix), 'lib/node_modules/edgekd/dist/bin/edgekd.js'));
      assert.ok((statSync(target).mode & 0o111) !== 0, 'dist/bin/edgekd.js is not executable');
    });

    test('edgekd --help lists the commands', async () => {
      const r = await runTool(bin, ['--help'], { cwd: work, env: runEnv(), timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      for (const cmd of ['train', 'export', 'detect', 'video', 'label', 'model']) {
        assert.match(r.stdout, new RegExp(`^  ${cmd} `, 'm'), `--help does not list ${cmd}`);
      }
    });

    test('edgekd detect runs an exported model on an image with the installed onnxruntime and sharp', async () => {
      const dir = join(work, 'detect');
      mkdirSync(dir);
      const models = writeTestModels(dir);
      const width = 160;
      const height = 96;
      const px = new Uint8Array(width * height * 3).map((_, i) => (i * 2654435761) >>> 24);
      const image = join(dir, 'street.png');
      await sharp(px, { raw: { width, height, channels: 3 } }).toFile(image);
      const out = join(dir, 'out');
      const r = await runTool(bin, ['detect', image, '--model', models.boxes, '--out', out], {
        cwd: work,
        env: runEnv(),
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 1, r.stdout);
      const rec = JSON.parse(lines[0]) as {
        image: string;
        width: number;
        height: number;
        detections: { class: string; score: number; box: number[] }[];
      };
      assert.deepEqual([rec.image, rec.width, rec.height], [image, width, height]);
      assert.ok(rec.detections.length > 0, 'no detections');
      for (const d of rec.detections) {
        assert.equal(d.class, 'person');
        const [x1, y1, x2, y2] = d.box;
        assert.ok(x1 >= 0 && y1 >= 0 && x2 <= width && y2 <= height && x1 < x2 && y1 < y2, `${d.box}`);
      }
      assert.match(r.stderr, /detect: 1\/1 images, \d+ detections, model rt-micro \(boxes, fp32\) on cpu/);
      // The annotated JPEG proves sharp's native binary came with the install.
      const meta = await sharp(join(out, 'street.jpg')).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', width, height]);
    });

    test('edgekd model info reads a spec shipped in the package', async () => {
      const spec = join(prefix, 'lib/node_modules/edgekd/train/configs/ped-nano.spec.json');
      const r = await runTool(bin, ['model', 'info', '--spec', spec], {
        cwd: work,
        env: runEnv(),
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /params\s+717,749/);
    });
  });
});
