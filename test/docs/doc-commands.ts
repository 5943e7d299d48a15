/**
 * How the docs test reads the docs: fenced blocks with their `<!-- docs-test: ... -->` marker,
 * inline `edgekd ...` spans, shell words, and the static check of one command line against the
 * CLI reference (docs/cli-reference.md, kept equal to `--help` by cli-reference.test.ts),
 * package.json and the repository's files. test/docs/commands.test.ts drives it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { didYouMean, parseCli, readJsonFile, validateConfig } from '../../models/core/config.js';
import { parseModelSpec } from '../../models/core/spec.js';
import { parseCliReference, REGENERATE_COMMAND } from '../../bin/cli-reference.js';
import { TrainConfigSchema } from '../../train/config.js';
import { AblateConfigSchema } from '../../train/ablate.js';

/** README.md and every markdown file under docs/, repo-relative, sorted. */
export function docFiles(root: string): string[] {
  const walk = (rel: string): string[] =>
    readdirSync(join(root, rel))
      .sort()
      .flatMap((n) => {
        const p = `${rel}/${n}`;
        return statSync(join(root, p)).isDirectory() ? walk(p) : n.endsWith('.md') ? [p] : [];
      });
  return ['README.md', ...(existsSync(join(root, 'docs')) ? walk('docs') : [])];
}

export type Mode = { kind: 'run'; exit: number } | { kind: 'flags' } | { kind: 'skip'; reason: string };

/** Fence languages whose blocks are commands a reader may paste: each needs a marker. */
export const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'zsh', 'console']);

export const MARKER_HELP =
  'put one of these on the line before its fence: `<!-- docs-test: run -->` (executed in a temp ' +
  'folder with the fixtures of test/docs/commands.test.ts; `run exit=N` for a documented non-zero ' +
  'exit), `<!-- docs-test: flags -->` (commands, flags and repository files checked, not run: for ' +
  'slow commands), or `<!-- docs-test: skip <reason> -->` (needs a GPU, Jetson, camera, internet...)';

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  /** The block's lines, de-indented by the fence's indentation. */
  text: string;
  mode?: Mode;
  /** A marker that could not be read. */
  markerError?: string;
}

export interface InlineCommand {
  file: string;
  line: number;
  text: string;
}

function parseMarker(body: string): { mode?: Mode; error?: string } {
  const m = /^docs-test:\s*(\S*)\s*(.*)$/s.exec(body.trim());
  if (!m) return { error: `unreadable marker '<!--${body}-->'` };
  const [, kind, rest] = m;
  if (kind === 'run') {
    const exit = /^exit=(\d+)$/.exec(rest.trim());
    if (rest.trim() && !exit) return { error: `'run' takes only 'exit=N', got '${rest.trim()}'` };
    return { mode: { kind: 'run', exit: exit ? Number(exit[1]) : 0 } };
  }
  // Text after `flags` is a note for the reader of the markdown (why it is not run).
  if (kind === 'flags') return { mode: { kind: 'flags' } };
  if (kind === 'skip') {
    if (!rest.trim()) return { error: "'skip' needs a reason: <!-- docs-test: skip needs a GPU -->" };
    return { mode: { kind: 'skip', reason: rest.trim() } };
  }
  return { error: `unknown docs-test mode '${kind}' (run, flags or skip)` };
}

/** Fenced blocks of a markdown file, each with the marker on the nearest non-blank line above. */
export function extractBlocks(file: string, md: string): DocBlock[] {
  const lines = md.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    let end = i + 1;
    const close = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
    while (end < lines.length && !close.test(lines[end])) end++;
    const body = lines
      .slice(i + 1, end)
      .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l.trimStart()))
      .join('\n');
    const block: DocBlock = { file, line: i + 1, lang: lang.toLowerCase(), text: body };
    let j = i - 1;
    while (j >= 0 && !lines[j].trim()) j--;
    const marker = j >= 0 ? /^\s*<!--\s*(docs-test\b[\s\S]*?)-->\s*$/.exec(lines[j]) : null;
    if (marker) {
      const { mode, error } = parseMarker(marker[1]);
      block.mode = mode;
      block.markerError = error;
    }
    blocks.push(block);
    i = end;
  }
  return blocks;
}

const INLINE_COMMAND = /^(edgekd|npx edgekd|node dist\/bin\/edgekd\.js|npm run|npm test)(\s|$)/;

/** Inline code spans outside fences that are commands (`edgekd ...`, `npm run ...`). */
export function extractInlineCommands(file: string, md: string): InlineCommand[] {
  const lines = md.split('\n');
  // Blank out fenced blocks and HTML comments, keeping offsets, so spans are read from prose only.
  const blanked = lines.slice();
  for (const b of extractBlocks(file, md)) {
    const n = b.text.split('\n').length + 2;
    for (let k = b.line - 1; k < b.line - 1 + n && k < lines.length; k++) blanked[k] = '';
  }
  const text = blanked.join('\n').replace(/<!--[\s\S]*?-->/g, (c) => c.replace(/[^\n]/g, ' '));
  const out: InlineCommand[] = [];
  for (const m of text.matchAll(/(?<!`)(`+)(?!`)([\s\S]+?)(?<!`)\1(?!`)/g)) {
    const span = m[2].replace(/\s*\n\s*/g, ' ').trim();
    if (m[2].includes('\n\n') || !INLINE_COMMAND.test(span)) continue;
    out.push({ file, line: text.slice(0, m.index).split('\n').length, text: span });
  }
  return out;
}

/**
 * Words of an inline span: prose spans mix shell with synopsis grammar (`<name>`, `[--x]`), so
 * they are split on blanks, not parsed as shell.
 */
export function inlineWords(span: string): string[] {
  return span
    .split(/\s+/)
    .map((w) => w.replace(/^[[(]+|[\])]+$/g, '').replace(/^(['"])(.*)\1$/, '$2'))
    .filter((w) => w && w !== '|');
}

export interface ShellCommand {
  words: string[];
  /** Line in the markdown file where the command starts. */
  line: number;
}

/**
 * Splits shell text into simple commands: quotes, backslash escapes and line continuations,
 * `#` comments, `&& || | ; &` separators; redirections and their targets are dropped.
 * @throws {Error} on an unterminated quote
 */
export function parseShell(text: string, firstLine: number): ShellCommand[] {
  const out: ShellCommand[] = [];
  let words: string[] = [];
  let word = '';
  let inWord = false;
  let line = firstLine;
  let cmdLine = firstLine;
  let dropNext = false;
  const endWord = () => {
    if (inWord) {
      if (dropNext) dropNext = false;
      else {
        if (!words.length) cmdLine = line;
        words.push(word);
      }
    }
    word = '';
    inWord = false;
  };
  const endCommand = () => {
    endWord();
    if (words.length) out.push({ words, line: cmdLine });
    words = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') {
      if (text[i + 1] === '\n') line++;
      else {
        word += text[i + 1] ?? '';
        inWord = true;
      }
      i++;
    } else if (c === '\n') {
      endCommand();
      line++;
    } else if (c === ' ' || c === '\t') endWord();
    else if (c === '#' && !inWord) {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' at line ${line}`);
      word += text.slice(i + 1, end);
      line += text.slice(i + 1, end).split('\n').length - 1;
      inWord = true;
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && '"\\$`'.includes(text[j + 1])) j++;
        else if (text[j] === '\n') line++;
        word += text[j];
      }
      if (j >= text.length) throw new Error(`unterminated " at line ${line}`);
      inWord = true;
      i = j;
    } else if ('|&;'.includes(c)) {
      if (text[i + 1] === c) i++;
      endCommand();
    } else if (c === '>' || c === '<') {
      if (/^\d+$/.test(word)) {
        word = '';
        inWord = false;
      } else endWord();
      if (text[i + 1] === c) i++;
      if (text[i + 1] === '&') {
        i++;
        while (/\d/.test(text[i + 1] ?? '')) i++;
      } else dropNext = true;
    } else {
      word += c;
      inWord = true;
    }
  }
  endCommand();
  return out;
}

/** The command lines of a block: `console` blocks keep only `$ ` lines (the rest is output). */
export function blockCommands(block: DocBlock): ShellCommand[] {
  let text = block.text;
  if (block.lang === 'console') {
    let cont = false;
    text = text
      .split('\n')
      .map((l) => {
        const p = /^\s*\$ (.*)$/.exec(l);
        const keep = p ? p[1] : cont ? l : '';
        cont = (p !== null || cont) && /\\$/.test(l);
        return keep;
      })
      .join('\n');
  }
  return parseShell(text, block.line + 1);
}

/**
 * Usage synopses and unit files are not shell: each line that starts with `edgekd` (or holds a
 * path ending in `edgekd.js`) starts an invocation, continued by indented or `\`-ended lines;
 * brackets and `|` of the synopsis grammar are dropped.
 */
export function synopsisCommands(text: string, firstLine: number): ShellCommand[] {
  const lines = text.split('\n');
  const out: ShellCommand[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*edgekd\s(.*)$/.exec(lines[i]) ?? /\S*edgekd\.js\s(.*)$/.exec(lines[i]);
    if (!m) continue;
    let rest = m[1];
    const start = i;
    while (i + 1 < lines.length && (/\\\s*$/.test(lines[i]) || /^\s+\S/.test(lines[i + 1]))) {
      i++;
      rest += ' ' + lines[i];
    }
    const words = rest
      .replace(/\\\s*$/gm, ' ')
      .split(/\s+/)
      .map((w) => w.replace(/^[[(]+|[\])]+$/g, '').replace(/\[.*$/, ''))
      .filter((w) => w && w !== '|' && w !== '\\');
    out.push({ words: ['edgekd', ...words], line: firstLine + start });
  }
  return out;
}

export interface CheckContext {
  root: string;
  /** (Sub)command path, e.g. 'data synth', to its --help text (from docs/cli-reference.md). */
  cli: Map<string, string>;
  scripts: Record<string, string>;
  /** Every dependency of package.json, any kind, to its version range. */
  deps: Record<string, string>;
  /** Top-level folders of the checkout that hold sources (generated and ignored ones left out). */
  sourceDirs: Set<string>;
}

export function checkContext(root: string, cliReference: string): CheckContext {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<
    string,
    Record<string, string> | undefined
  >;
  const ignored = new Set(
    readFileSync(join(root, '.gitignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim().replace(/^\//, '').replace(/\/$/, ''))
      .filter((l) => l && !l.startsWith('#')),
  );
  const sourceDirs = new Set(
    readdirSync(root).filter((n) => !ignored.has(n) && n !== '.git' && statSync(join(root, n)).isDirectory()),
  );
  return {
    root,
    cli: parseCliReference(cliReference),
    scripts: pkg.scripts ?? {},
    deps: {
      ...pkg.optionalDependencies,
      ...pkg.devDependencies,
      ...pkg.peerDependencies,
      ...pkg.dependencies,
    },
    sourceDirs,
  };
}

/** Flags a command accepts, read from its --help: every `--name` in it, `--no-x` for booleans. */
export function helpFlags(help: string): Set<string> {
  const flags = new Set(['help']);
  for (const m of help.matchAll(/(?<![\w-])--([a-z0-9][a-z0-9.-]*[a-z0-9]|[a-z0-9])/gi)) flags.add(m[1]);
  for (const m of help.matchAll(/--([a-z0-9][a-z0-9.-]*) \[true\|false\]/gi)) flags.add(`no-${m[1]}`);
  return flags;
}

/** `FILE`, `<name>`, `...`, `X.onnx`-style stand-ins a reader replaces. */
const isPlaceholder = (w: string) => /^(\.\.\.|<.*>|[A-Z][A-Z0-9_]*(\.\.\.)?)$/.test(w) || w.includes('...');

/** A relative path into a source folder of the checkout (outputs under runs/ etc. are not). */
function repoPath(w: string, ctx: CheckContext): string | undefined {
  if (/[*?<>{}$]/.test(w) || isPlaceholder(w)) return undefined;
  const p = w.replace(/^\.\//, '');
  const first = p.split('/')[0];
  return p.includes('/') && ctx.sourceDirs.has(first) ? p : undefined;
}

/** The arguments after the program of an `edgekd` invocation, or undefined for other commands. */
export function edgekdArgs(words: string[]): string[] | undefined {
  const w = stripPrefixes(words);
  if (w[0] === 'edgekd') return w.slice(1);
  if (w[0] === 'npx' && w[1] === 'edgekd') return w.slice(2);
  if (/(^|\/)node$/.test(w[0] ?? '') && /(^|\/)edgekd\.js$/.test(w[1] ?? '')) return w.slice(2);
  if (/(^|\/)edgekd\.js$/.test(w[0] ?? '')) return w.slice(1);
  if (w[0] === 'npm' && w[1] === 'run' && w[2] === 'edgekd') return w.slice(w[3] === '--' ? 4 : 3);
  return undefined;
}

/** Drops `VAR=value` assignments and `sudo` / `time` / `exec` in front of a command. */
function stripPrefixes(words: string[]): string[] {
  let i = 0;
  while (i < words.length) {
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]) || ['time', 'exec'].includes(words[i])) i++;
    else if (words[i] === 'sudo') {
      i++;
      while (words[i]?.startsWith('-')) i += /^-[ugCDhpRrTt]$/.test(words[i]) ? 2 : 1;
    } else break;
  }
  return words.slice(i);
}

/** Programs whose lines carry nothing to check (file shuffling, printing). */
const INERT = new Set([
  'cd',
  'export',
  'echo',
  'printf',
  'ls',
  'cat',
  'mkdir',
  'cp',
  'mv',
  'rm',
  'tail',
  'head',
  'grep',
  'wc',
  'sort',
  'tee',
  'true',
  'sleep',
  'set',
]);

/**
 * Problems with one command line, checked without running it.
 * @returns messages; empty when the line is fine
 */
export function checkCommand(words: string[], ctx: CheckContext): string[] {
  const args = edgekdArgs(words);
  if (args) return checkEdgekd(args, ctx);
  const w = stripPrefixes(words);
  if (!w.length) return [];
  if (w[0] === 'npm') return checkNpm(w.slice(1), ctx);
  if (w[0] === 'node') return checkNode(w.slice(1), ctx);
  if (INERT.has(w[0])) return [];
  return [
    `'${w[0]}' cannot be checked without running it: mark the block \`<!-- docs-test: skip <reason> -->\`, or \`run\` it`,
  ];
}

function checkEdgekd(args: string[], ctx: CheckContext): string[] {
  const a0 = args[0];
  if (a0 === undefined || ['--help', '-h', 'help'].includes(a0) || isPlaceholder(a0)) return [];
  const top = [...ctx.cli.keys()].filter((k) => !k.includes(' '));
  if (!ctx.cli.has(a0)) {
    const hint = didYouMean(a0, top);
    return [
      `'edgekd ${a0}' is not a command (docs/cli-reference.md lists: ${top.join(', ')}; if the CLI has it, regenerate the reference: ${REGENERATE_COMMAND})${hint ? `; did you mean '${hint}'?` : ''}`,
    ];
  }
  const path = [a0];
  const subs = [...ctx.cli.keys()].filter((k) => k.startsWith(`${a0} `)).map((k) => k.slice(a0.length + 1));
  let rest = args.slice(1);
  if (subs.length) {
    const a1 = args[1];
    if (a1 !== undefined && isPlaceholder(a1)) return [];
    // A bare `edgekd data` names the command group in prose; with flags it is a mistake.
    if (a1 === undefined) return [];
    if (a1.startsWith('-')) return [`'edgekd ${a0}' needs a subcommand (${subs.join(', ')})`];
    if (!subs.includes(a1))
      return [`'edgekd ${a0} ${a1}' is not a command (subcommands: ${subs.join(', ')})`];
    path.push(a1);
    rest = args.slice(2);
  }
  const name = `edgekd ${path.join(' ')}`;
  const flags = helpFlags(ctx.cli.get(path.join(' ')) ?? '');
  const problems: string[] = [];
  for (const a of rest) {
    const long = /^--([^=\s]+)(?:=(.*))?$/.exec(a);
    if (long && !flags.has(long[1])) {
      const hint = didYouMean(long[1], [...flags]);
      problems.push(
        `${name}: unknown flag --${long[1]} (not in its --help in docs/cli-reference.md)${hint ? `; did you mean --${hint}?` : ''}`,
      );
    } else if (/^-[a-zA-Z]$/.test(a) && a !== '-h') problems.push(`${name}: unknown flag ${a}`);
    const value = long ? long[2] : a;
    const p = value === undefined ? undefined : repoPath(value, ctx);
    if (p && !existsSync(join(ctx.root, p)))
      problems.push(`${name}: '${p}' does not exist in the repository`);
  }
  const ci = rest.indexOf('--config');
  const cfg = ci >= 0 ? repoPath(rest[ci + 1] ?? '', ctx) : undefined;
  if (cfg && existsSync(join(ctx.root, cfg)) && statSync(join(ctx.root, cfg)).isFile())
    problems.push(...checkConfig(path[0], cfg, rest, ctx));
  return problems;
}

/** Which config schema each command parses with, for `--config FILE` in the repository. */
const CONFIG_COMMANDS = new Set(['train', 'ablate']);

/**
 * Parses the command line the way the command does (its config file plus every flag, validated
 * by its zod schema), and checks the repository files the config names.
 */
function checkConfig(command: string, cfg: string, args: string[], ctx: CheckContext): string[] {
  const problems: string[] = [];
  const abs = args.map((a, i) => (i > 0 && args[i - 1] === '--config' ? join(ctx.root, cfg) : a));
  try {
    if (command === 'train') parseCli(TrainConfigSchema, abs);
    else if (command === 'ablate') {
      const { config } = parseCli(AblateConfigSchema, abs, { 'report-only': { type: 'boolean' } });
      if (typeof config.base === 'string' && repoPath(config.base, ctx))
        validateConfig(TrainConfigSchema, readJsonFile(join(ctx.root, config.base)), `base '${config.base}'`);
    } else JSON.parse(readFileSync(join(ctx.root, cfg), 'utf8'));
  } catch (e) {
    problems.push(`edgekd ${command} --config ${cfg}: ${(e as Error).message}`);
  }
  if (!CONFIG_COMMANDS.has(command)) return problems;
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const walk = (v: unknown): void => {
      if (typeof v === 'string') {
        const p = repoPath(v, ctx);
        if (!p) return;
        if (!existsSync(join(ctx.root, p))) problems.push(`${file} names '${p}', which does not exist`);
        else if (p.endsWith('.spec.json')) {
          try {
            parseModelSpec(readJsonFile(join(ctx.root, p)), `model spec '${p}'`);
          } catch (e) {
            problems.push((e as Error).message);
          }
        } else if (p.endsWith('.json') && p.startsWith('train/configs/')) visit(p);
      } else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(JSON.parse(readFileSync(join(ctx.root, file), 'utf8')));
  };
  visit(cfg);
  return problems;
}

function checkNpm(args: string[], ctx: CheckContext): string[] {
  const words = args.filter((a) => !a.startsWith('-'));
  const sub = words[0];
  const depCheck = (names: string[]) =>
    names
      .filter((n) => !(n in ctx.deps))
      .map((n) => `npm ${sub}: '${n}' is not a dependency in package.json`);
  switch (sub) {
    case 'run':
    case 'run-script':
      return words[1] in ctx.scripts ? [] : [`npm run ${words[1]}: package.json has no such script`];
    case 'test':
    case 't':
    case 'start':
    case 'stop':
    case 'restart': {
      const s = sub === 't' ? 'test' : sub;
      return s in ctx.scripts ? [] : [`npm ${s}: package.json has no '${s}' script`];
    }
    case 'install':
    case 'i':
    case 'add': {
      const problems: string[] = [];
      for (const spec of words.slice(1)) {
        const m = /^(@?[^@]+)@(.+)$/.exec(spec);
        const pinned = m ? ctx.deps[m[1]]?.replace(/^[\^~=]/, '') : undefined;
        if (m && pinned !== undefined && pinned !== m[2])
          problems.push(`npm install ${spec}: package.json has ${m[1]}@${ctx.deps[m[1]]}`);
      }
      return problems;
    }
    case 'rebuild':
      return depCheck(words.slice(1));
    case 'install-scripts':
    case 'approve-scripts':
      return depCheck(words.slice(sub === 'install-scripts' ? 2 : 1));
    default:
      return [];
  }
}

function checkNode(args: string[], ctx: CheckContext): string[] {
  const script = args.find((a) => !a.startsWith('-'));
  if (!script || args[0] === '-e' || args[0] === '-p' || args[0] === '--eval' || args[0] === '--print')
    return [];
  const source = script.startsWith('dist/') ? script.slice(5).replace(/\.js$/, '.ts') : script;
  const p = repoPath(source, ctx);
  return p && !existsSync(join(ctx.root, p)) ? [`node ${script}: '${p}' does not exist`] : [];
}
