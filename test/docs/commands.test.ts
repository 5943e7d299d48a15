/**
 * Every command in README.md and docs/**\/*.md is run or checked. Each fenced shell block
 * (```sh, ```bash, ```shell, ```console) carries a marker on the line before it:
 *
 * - `<!-- docs-test: run -->`: executed by bash (-e, pipefail) in a temp folder, in page order,
 *   and must exit 0 (`run exit=N`: N). The folder holds `dist/`, `train/` and `models/` of this
 *   checkout, `edgekd` on PATH (the compiled binary), and the fixtures below. Only for commands
 *   that finish in seconds.
 * - `<!-- docs-test: flags [note] -->`: not run; each `edgekd` line must name a command of
 *   docs/cli-reference.md and only flags of its --help; repository paths it names must exist; a
 *   train or ablate `--config` in the repository is parsed with the command's own schema together
 *   with the flags; `npm run X` needs script X, `npm install pkg@v` the version package.json pins.
 *   Any other program makes the block fail: it cannot be judged without running it.
 * - `<!-- docs-test: skip <reason> -->`: not checked; the reason is mandatory.
 *
 * Other blocks (usage synopses, unit files) are checked like `flags` when they carry a `flags`
 * marker, on their `edgekd` lines only. Inline `edgekd ...` / `npm run ...` code spans in the
 * prose are always checked like `flags`.
 *
 * Fixtures of a `run` block's folder: `street.jpg` (640x480), `frames/` (two JPEGs),
 * `ped-nano.onnx` / `ped-nano.fp16.onnx` (a 64x64 test detector with boxes output, FP32 and
 * FP16), `runs/tiny/best.safetensors` and `last.safetensors` (ped-tiny spec, initial weights),
 * and with ffmpeg `vtest.avi` (768x576, 20 frames) and `clip.mp4` (320x240, 20 frames).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { REGENERATE_COMMAND } from '../../bin/cli-reference.js';
import { toFp16 } from '../../export/fp16.js';
import { encodeModel } from '../../export/onnx-graph.js';
import { onnx } from '../../export/onnx-proto.js';
import { saveCheckpoint } from '../../models/core/checkpoint.js';
import { readModelSpec } from '../../models/core/spec.js';
import { testWeights, writeTestModels } from '../runtime/fixtures.js';
import { HAVE_FFMPEG, makeClip } from '../runtime/video/helpers.js';
import {
  blockCommands,
  checkCommand,
  checkContext,
  docFiles,
  extractBlocks,
  extractInlineCommands,
  inlineWords,
  MARKER_HELP,
  parseShell,
  SHELL_LANGS,
  synopsisCommands,
  type CheckContext,
  type DocBlock,
  type ShellCommand,
} from './doc-commands.js';
import { repoRoot } from './repo-root.js';

const ROOT = repoRoot();
/** The compiled tree this test belongs to (dist/ or another outDir): its bin/edgekd.js is the CLI. */
const COMPILED = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FILES = docFiles(ROOT);
const BLOCK_TIMEOUT_MS = 60_000;

const tmpRoot = mkdtempSync(join(tmpdir(), 'edgekd-docs-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

let context: CheckContext | undefined;
function ctx(): CheckContext {
  if (!context) {
    let reference: string;
    try {
      reference = readFileSync(join(ROOT, 'docs/cli-reference.md'), 'utf8');
    } catch {
      throw new Error(`docs/cli-reference.md is missing: run \`${REGENERATE_COMMAND}\``);
    }
    context = checkContext(ROOT, reference);
  }
  return context;
}

function staticProblems(file: string, md: string, blocks: DocBlock[]): string[] {
  const problems: string[] = [];
  const check = (cmds: ShellCommand[]) => {
    for (const c of cmds)
      for (const p of checkCommand(c.words, ctx())) problems.push(`${file}:${c.line}: ${p}`);
  };
  for (const ic of extractInlineCommands(file, md)) check([{ words: inlineWords(ic.text), line: ic.line }]);
  for (const b of blocks) {
    if (b.mode?.kind !== 'flags') continue;
    if (!SHELL_LANGS.has(b.lang)) check(synopsisCommands(b.text, b.line + 1));
    else {
      try {
        check(blockCommands(b));
      } catch (e) {
        problems.push(`${file}:${b.line}: ${(e as Error).message}`);
      }
    }
  }
  return problems;
}

test('every shell block in the docs says how the docs test treats it', () => {
  const problems: string[] = [];
  let unmarked = 0;
  for (const file of FILES) {
    for (const b of extractBlocks(file, readFileSync(join(ROOT, file), 'utf8'))) {
      const where = `${file}:${b.line}`;
      if (b.markerError) problems.push(`${where}: ${b.markerError}`);
      else if (!b.mode && SHELL_LANGS.has(b.lang)) {
        unmarked++;
        problems.push(`${where}: \`\`\`${b.lang} block without a docs-test marker`);
      } else if (b.mode?.kind === 'run' && !SHELL_LANGS.has(b.lang))
        problems.push(`${where}: only shell blocks (${[...SHELL_LANGS].join(', ')}) can be run`);
    }
  }
  if (unmarked) problems.push(`To fix an unmarked block, ${MARKER_HELP}.`);
  assert.equal(problems.length, 0, `\n${problems.join('\n')}`);
});

// ---- run blocks: one folder per page, fixtures made once ----

let fixtures: Promise<string> | undefined;

async function person(left: number, top: number, h: number) {
  const body = await sharp({
    create: { width: Math.round(h * 0.35), height: h, channels: 3, background: '#2b2b3a' },
  })
    .png()
    .toBuffer();
  return { input: body, left, top };
}

async function writeImage(path: string, width: number, height: number, shift: number): Promise<void> {
  await sharp({ create: { width, height, channels: 3, background: '#8a9a88' } })
    .composite([await person(120 + shift, 200, 160), await person(400 - shift, 260, 110)])
    .jpeg()
    .toFile(path);
}

function makeFixtures(): Promise<string> {
  fixtures ??= (async () => {
    const dir = join(tmpRoot, 'fixtures');
    mkdirSync(join(dir, 'frames'), { recursive: true });
    const models = join(tmpRoot, 'models');
    mkdirSync(models);
    const m = writeTestModels(models);
    cpSync(m.boxes, join(dir, 'ped-nano.onnx'));
    writeFileSync(
      join(dir, 'ped-nano.fp16.onnx'),
      encodeModel(toFp16(onnx.ModelProto.decode(readFileSync(m.boxes)))),
    );
    const spec = readModelSpec(join(ROOT, 'train/configs/ped-tiny.spec.json'));
    mkdirSync(join(dir, 'runs/tiny'), { recursive: true });
    for (const name of ['best', 'last'])
      saveCheckpoint(join(dir, `runs/tiny/${name}.safetensors`), {
        spec,
        params: testWeights(spec),
        ema: new Map(),
      });
    await writeImage(join(dir, 'street.jpg'), 640, 480, 0);
    await writeImage(join(dir, 'frames/000001.jpg'), 640, 480, 20);
    await writeImage(join(dir, 'frames/000002.jpg'), 640, 480, 40);
    if (HAVE_FFMPEG) {
      makeClip(join(dir, 'vtest.avi'), { size: '768x576', rate: 10, codec: ['-c:v', 'mpeg4', '-q:v', '5'] });
      makeClip(join(dir, 'clip.mp4'), { size: '320x240', rate: 10, codec: ['-c:v', 'mpeg4', '-q:v', '5'] });
    }
    const bin = join(tmpRoot, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'edgekd'),
      `#!/bin/sh\nexec "${process.execPath}" "${join(COMPILED, 'bin/edgekd.js')}" "$@"\n`,
    );
    chmodSync(join(bin, 'edgekd'), 0o755);
    return dir;
  })();
  return fixtures;
}

/** A fresh folder for one page's run blocks, laid out like a checkout with the fixtures in it. */
async function workspace(file: string): Promise<string> {
  const fx = await makeFixtures();
  const ws = join(tmpRoot, file.replace(/[^\w.-]/g, '_'));
  cpSync(fx, ws, { recursive: true });
  symlinkSync(COMPILED, join(ws, 'dist'));
  for (const d of ['train', 'models']) symlinkSync(join(ROOT, d), join(ws, d));
  return ws;
}

interface RunResult {
  code: number | null;
  output: string;
  timedOut: boolean;
}

function runBlock(b: DocBlock, cwd: string): Promise<RunResult> {
  const script =
    b.lang === 'console'
      ? blockCommands(b)
          .map((c) => c.words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' '))
          .join('\n')
      : b.text;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${join(tmpRoot, 'bin')}:${dirname(process.execPath)}:${process.env.PATH}`,
  };
  delete env.EDGEKD_LOG_LEVEL;
  return new Promise((resolvePromise, reject) => {
    // Own process group, so a timeout takes ffmpeg and worker children down with the shell.
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], {
      cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-6000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, BLOCK_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output, timedOut });
    });
  });
}

const NEEDS_FFMPEG = /\b(edgekd(\.js)?\s+video|data\s+frames|ffmpeg|ffprobe)\b|\.(avi|mp4|mkv)\b/;

for (const file of FILES) {
  test(`${file}: every command is run or checked`, async (t) => {
    const md = readFileSync(join(ROOT, file), 'utf8');
    const blocks = extractBlocks(file, md);
    await t.test('commands, flags and files (not run)', () => {
      const problems = staticProblems(file, md, blocks);
      assert.equal(problems.length, 0, `\n${problems.join('\n')}`);
    });
    const runs = blocks.filter((b) => b.mode?.kind === 'run' && SHELL_LANGS.has(b.lang));
    let ws: string | undefined;
    for (const b of runs) {
      const skip =
        !HAVE_FFMPEG && NEEDS_FFMPEG.test(b.text) ? 'ffmpeg not on PATH (apt-get install ffmpeg)' : false;
      await t.test(`${file}:${b.line} runs`, { skip }, async () => {
        ws ??= await workspace(file);
        const expected = b.mode?.kind === 'run' ? b.mode.exit : 0;
        const r = await runBlock(b, ws);
        assert.ok(
          !r.timedOut,
          `${file}:${b.line}: still running after ${BLOCK_TIMEOUT_MS / 1000} s:\n${r.output}`,
        );
        assert.equal(
          r.code,
          expected,
          `${file}:${b.line}: exited ${r.code}, expected ${expected}; output:\n${r.output}`,
        );
      });
    }
  });
}

test('the checker reports a stale flag, a missing config and an unmarked block with file:line', () => {
  const md = [
    'Run `edgekd detect img.jpg --model m.onnx --treshold 0.3`.',
    '',
    '<!-- docs-test: flags -->',
    '```sh',
    'edgekd train --config train/configs/nope.json \\',
    '  --train.epochs 2   # a comment --not-a-flag',
    'npm run no-such-script && edgekd nope',
    '```',
    '',
    '```bash',
    'edgekd --help',
    '```',
  ].join('\n');
  const blocks = extractBlocks('x.md', md);
  assert.equal(blocks[1].mode, undefined);
  assert.equal(blocks[1].line, 10);
  const problems = staticProblems('x.md', md, blocks);
  assert.equal(problems.length, 4, problems.join('\n'));
  assert.match(problems[0], /^x\.md:1: edgekd detect: unknown flag --treshold .*did you mean --threshold\?/);
  assert.match(problems[1], /^x\.md:5: edgekd train: 'train\/configs\/nope\.json' does not exist/);
  assert.match(problems[2], /^x\.md:7: npm run no-such-script: package.json has no such script/);
  assert.match(problems[3], /^x\.md:7: 'edgekd nope' is not a command/);
});

test('shell words: quotes, continuations, comments, redirections and console prompts', () => {
  const cmds = parseShell(
    `A=1 edgekd ablate --variants '[{"name": "x"}]' \\\n  --seeds "[0, 1]" 2>&1 | tee log.txt # note\nnode -e "x" > out.txt; ls`,
    10,
  );
  assert.deepEqual(
    cmds.map((c) => [c.line, c.words]),
    [
      [10, ['A=1', 'edgekd', 'ablate', '--variants', '[{"name": "x"}]', '--seeds', '[0, 1]']],
      [11, ['tee', 'log.txt']],
      [12, ['node', '-e', 'x']],
      [12, ['ls']],
    ],
  );
  const [b] = extractBlocks('c.md', '<!-- docs-test: run -->\n```console\n$ edgekd --help\nusage: ...\n```');
  assert.deepEqual(
    blockCommands(b).map((c) => c.words),
    [['edgekd', '--help']],
  );
});
