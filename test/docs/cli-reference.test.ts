/**
 * docs/cli-reference.md must be what the CLI prints today: it is rendered from the binary's own
 * `--help` output, so a flag added, renamed or re-described without regenerating it fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  parseCliReference,
  REGENERATE_COMMAND,
  renderCliReference,
  renderCliReferenceFrom,
  type CliHelp,
} from '../../bin/cli-reference.js';
import { repoRoot } from './repo-root.js';

const REFERENCE = 'docs/cli-reference.md';

test('docs/cli-reference.md matches a fresh render of every command --help', async () => {
  const fresh = await renderCliReference();
  let onDisk = '';
  try {
    onDisk = readFileSync(join(repoRoot(), REFERENCE), 'utf8');
  } catch {
    assert.fail(`${REFERENCE} is missing: run \`${REGENERATE_COMMAND}\``);
  }
  if (fresh === onDisk) return;
  const a = onDisk.split('\n');
  const b = fresh.split('\n');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  assert.fail(
    `${REFERENCE} is stale: the CLI's --help changed. Regenerate it with \`${REGENERATE_COMMAND}\` and commit it.\n` +
      `first difference at line ${i + 1}:\n  file: ${a[i] ?? '(end of file)'}\n  CLI:  ${b[i] ?? '(end of output)'}`,
  );
});

test('a rendered reference reads back to the same help per command, subcommands included', () => {
  const cli: CliHelp = {
    usage: 'usage: edgekd <command>\n\ncommands:\n  go    do it\n  tools tools: `tools a`',
    commands: [
      {
        path: ['go'],
        summary: 'do it',
        help: 'usage: edgekd go [--fast]\n\n  --fast  quickly',
        subcommands: [],
      },
      { path: ['tools'], summary: 'tools: `tools a`', subcommands: ['a'] },
      { path: ['tools', 'a'], help: 'usage: edgekd tools a --x N\n```nested fence```', subcommands: [] },
    ],
  };
  const md = renderCliReferenceFrom(cli);
  assert.match(md, /\[`edgekd tools a`\]\(#edgekd-tools-a\)/);
  assert.deepEqual(
    parseCliReference(md),
    new Map([
      ['go', 'usage: edgekd go [--fast]\n\n  --fast  quickly'],
      ['tools', ''],
      ['tools a', 'usage: edgekd tools a --x N\n```nested fence```'],
    ]),
  );
});
