/**
 * docs/cli-reference.md, rendered from the CLI's own definitions: the command list that
 * `edgekd --help` prints (bin/edgekd.ts COMMANDS) and each command's `--help`, which the
 * commands build from their flag definitions and zod schemas. The binary is run as child
 * processes, so the reference is exactly what a user sees and a new command appears in it
 * without anyone listing it here. test/docs/cli-reference.test.ts fails when the file on disk
 * differs from a fresh render; test/docs/commands.test.ts reads the flags back with
 * {@link parseCliReference}.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The help of one (sub)command, e.g. `['data', 'synth']`. */
export interface CliCommandHelp {
  path: string[];
  /** The one-line summary from `edgekd --help` (top-level commands only). */
  summary?: string;
  /** `edgekd <path> --help` output; undefined for a command that only dispatches to subcommands. */
  help?: string;
  subcommands: string[];
}

export interface CliHelp {
  /** `edgekd --help`, verbatim. */
  usage: string;
  /** Top-level commands in `edgekd --help` order, each followed by its subcommands. */
  commands: CliCommandHelp[];
}

export const REGENERATE_COMMAND = 'npm run docs:cli';

const BIN = fileURLToPath(new URL('./edgekd.js', import.meta.url));

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(bin: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    // Help text must not depend on the caller's log level or terminal.
    delete env.EDGEKD_LOG_LEVEL;
    delete env.COLUMNS;
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Trailing blanks and blank end lines carry no meaning and would make the check flaky. */
function clean(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/^\n+|\n+$/g, '');
}

/** `name  summary` rows under `commands:` in `edgekd --help`. */
export function parseCommandList(usage: string): { name: string; summary: string }[] {
  const lines = usage.split('\n');
  const start = lines.findIndex((l) => l.trim() === 'commands:');
  if (start < 0) throw new Error(`'edgekd --help' has no 'commands:' section:\n${usage}`);
  const out: { name: string; summary: string }[] = [];
  for (const line of lines.slice(start + 1)) {
    const m = /^\s+([a-z][\w-]*)\s+(.*)$/.exec(line);
    if (!m) break;
    out.push({ name: m[1], summary: m[2].trim() });
  }
  if (!out.length) throw new Error(`'edgekd --help' lists no commands:\n${usage}`);
  return out;
}

/**
 * Subcommands of `name`: the summary names them as `` `data synth` ``, and a dispatcher that
 * rejects `--help` says `(available: synth, frames)`.
 */
function subcommandsOf(name: string, summary: string, helpError: string): string[] {
  const subs = new Set<string>();
  for (const m of summary.matchAll(/`([a-z][\w-]*) ([a-z][\w-]*)[^`]*`/g)) if (m[1] === name) subs.add(m[2]);
  const avail = /available: ([a-z][\w-]*(?:, [a-z][\w-]*)*)/.exec(helpError);
  if (avail) for (const s of avail[1].split(', ')) subs.add(s);
  return [...subs];
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Runs `edgekd --help`, then `edgekd <cmd> --help` for every listed command and
 * `edgekd <cmd> <sub> --help` for its subcommands.
 * @param bin - the compiled entry point (default: edgekd.js beside this module)
 * @throws {Error} when a command that has no subcommands fails to print its help
 */
export async function collectCliHelp(bin = BIN): Promise<CliHelp> {
  const top = await runCli(bin, ['--help']);
  if (top.code !== 0) throw new Error(`'edgekd --help' exited ${top.code}: ${top.stderr}`);
  const usage = clean(top.stdout);
  const listed = parseCommandList(usage);
  const own = await mapLimited(listed, 4, (c) => runCli(bin, [c.name, '--help']));
  const commands: CliCommandHelp[] = listed.map((c, i) => ({
    path: [c.name],
    summary: c.summary,
    help: own[i].code === 0 ? clean(own[i].stdout) : undefined,
    subcommands: subcommandsOf(c.name, c.summary, own[i].stderr),
  }));
  for (const c of commands) {
    if (c.help === undefined && !c.subcommands.length) {
      const i = commands.indexOf(c);
      throw new Error(`'edgekd ${c.path[0]} --help' exited ${own[i].code}: ${own[i].stderr.trim()}`);
    }
  }
  const subPaths = commands.flatMap((c) => c.subcommands.map((s) => [c.path[0], s]));
  const subHelp = await mapLimited(subPaths, 4, async (p) => {
    const r = await runCli(bin, [...p, '--help']);
    if (r.code !== 0) throw new Error(`'edgekd ${p.join(' ')} --help' exited ${r.code}: ${r.stderr.trim()}`);
    return clean(r.stdout);
  });
  const all: CliCommandHelp[] = [];
  for (const c of commands) {
    all.push(c);
    subPaths.forEach((p, i) => {
      if (p[0] === c.path[0]) all.push({ path: p, help: subHelp[i], subcommands: [] });
    });
  }
  return { usage, commands: all };
}

const anchor = (path: string[]) => ['edgekd', ...path].join('-');

function fence(text: string): string {
  const ticks = '`'.repeat(Math.max(3, ...[...text.matchAll(/`{3,}/g)].map((m) => m[0].length + 1)));
  return `${ticks}text\n${text}\n${ticks}`;
}

/** The markdown of docs/cli-reference.md for already collected help. */
export function renderCliReferenceFrom(cli: CliHelp): string {
  const top = cli.commands.filter((c) => c.path.length === 1);
  const lines = [
    '# edgekd CLI reference',
    '',
    '<!-- Generated from the CLI by scripts/gen-cli-reference.mjs: do not edit by hand. -->',
    '',
    "Every command's `--help`, generated from the CLI's own definitions (the command table in",
    "`bin/edgekd.ts` and each command's flag definitions), so it cannot drift from the binary:",
    `\`test/docs/cli-reference.test.ts\` fails when it is stale. Regenerate with \`${REGENERATE_COMMAND}\`.`,
    'Examples, config files and exit codes are in [cli.md](cli.md).',
    '',
    '## Commands',
    '',
  ];
  for (const c of top) {
    lines.push(`- [\`edgekd ${c.path[0]}\`](#${anchor(c.path)}): ${c.summary ?? ''}`);
    for (const s of c.subcommands)
      lines.push(`  - [\`edgekd ${c.path[0]} ${s}\`](#${anchor([c.path[0], s])})`);
  }
  lines.push('', fence(cli.usage));
  for (const c of cli.commands) {
    lines.push('', `${c.path.length === 1 ? '##' : '###'} \`edgekd ${c.path.join(' ')}\``, '');
    if (c.summary) lines.push(`${c.summary[0].toUpperCase()}${c.summary.slice(1)}.`, '');
    if (c.help !== undefined) lines.push(fence(c.help));
    else lines.push(`Subcommands: ${c.subcommands.map((s) => `\`${c.path[0]} ${s}\``).join(', ')}.`);
  }
  return lines.join('\n') + '\n';
}

/** Renders docs/cli-reference.md from the compiled binary. */
export async function renderCliReference(bin = BIN): Promise<string> {
  return renderCliReferenceFrom(await collectCliHelp(bin));
}

/**
 * Reads a rendered reference back: each (sub)command path joined by spaces, e.g. `'data synth'`,
 * to its help text (`''` for a command that only has subcommands). The inverse of
 * {@link renderCliReferenceFrom} for the parts the docs test needs.
 */
export function parseCliReference(md: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const h = /^#{2,3} `edgekd ([^`]+)`$/.exec(lines[i]);
    if (!h) continue;
    let help = '';
    for (let j = i + 1; j < lines.length && !/^#{1,3} /.test(lines[j]); j++) {
      const open = /^(`{3,})text$/.exec(lines[j]);
      if (!open) continue;
      const end = lines.indexOf(open[1], j + 1);
      help = lines.slice(j + 1, end < 0 ? undefined : end).join('\n');
      break;
    }
    out.set(h[1], help);
  }
  return out;
}
