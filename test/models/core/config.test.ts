import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCli, schemaFlags, validateConfig } from '../../../models/core/config.js';
import { TrainConfigSchema } from '../../../train/config.js';

const base = [
  '--model',
  'train/configs/ped-tiny.spec.json',
  '--data.train',
  '{"kind":"synthetic","count":8}',
];

test('flags are derived from the schema in kebab case with dotted sections', () => {
  const flags = schemaFlags(TrainConfigSchema).map((f) => f.flag);
  assert.ok(flags.includes('train.batch-size'));
  assert.ok(flags.includes('train.optimizer'));
  assert.ok(flags.includes('eval.score-threshold'));
});

test('precedence: defaults < --config file < flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekd-cfg-'));
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ train: { epochs: 3, batchSize: 4 } }));
  const { config } = parseCli(TrainConfigSchema, [...base, '--config', file, '--train.epochs', '7']);
  assert.equal(config.train.epochs, 7); // flag wins over file
  assert.equal(config.train.batchSize, 4); // file wins over default
  assert.equal(config.train.microBatch, 4); // default
});

test('rejects an unknown flag with a did-you-mean hint', () => {
  assert.throws(() => parseCli(TrainConfigSchema, [...base, '--train.batch-sise', '8']), {
    name: 'ConfigError',
    code: 'ERR_CONFIG_UNKNOWN_KEY',
    message: /did you mean --train\.batch-size/,
  });
});

test('rejects an unknown key in a config object naming it', () => {
  assert.throws(
    () =>
      validateConfig(TrainConfigSchema, {
        model: 'x.json',
        data: { train: { kind: 'synthetic', count: 4 } },
        train: { epoch: 3 },
      }),
    {
      name: 'ConfigError',
      code: 'ERR_CONFIG_UNKNOWN_KEY',
      message: /train\.epoch.*did you mean 'train\.epochs'/,
    },
  );
});

test('rejects a wrong value naming the field', () => {
  assert.throws(() => parseCli(TrainConfigSchema, [...base, '--train.epochs', 'many']), {
    name: 'ConfigError',
    message: /--train\.epochs must be a number/,
  });
  assert.throws(() => parseCli(TrainConfigSchema, [...base, '--train.epochs', '0']), {
    name: 'ConfigError',
    code: 'ERR_CONFIG_INVALID',
    message: /train\.epochs/,
  });
  assert.throws(() => parseCli(TrainConfigSchema, ['--data.train', '{"kind":"synthetic","count":8}']), {
    name: 'ConfigError',
    message: /model/,
  });
});

test('boolean flags take --flag, --flag true|false, --flag=false and --no-flag', () => {
  const aug = (args: string[]) => parseCli(TrainConfigSchema, [...base, ...args]).config.train.augment;
  assert.equal(aug([]), true);
  assert.equal(aug(['--train.augment', 'false']), false);
  assert.equal(aug(['--train.augment=false']), false);
  assert.equal(aug(['--no-train.augment']), false);
  assert.equal(aug(['--no-train.augment', '--train.augment']), true);
  assert.throws(() => aug(['--train.augment=maybe']), {
    name: 'ConfigError',
    message: /--train\.augment must be true or false/,
  });
});

test('rejects a stray positional argument instead of ignoring it', () => {
  assert.throws(() => parseCli(TrainConfigSchema, [...base, 'oops']), {
    name: 'ConfigError',
    message: /unexpected argument 'oops'/,
  });
});
