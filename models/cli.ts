/** `edgekd model info`: parameter and MAC counts and feature-tap shapes of a model spec. */
import { parseArgs } from 'node:util';
import { graphCost } from './arch/graph.js';
import { loadCheckpoint } from './core/checkpoint.js';
import { ConfigError } from './core/errors.js';
import { parseModelSpec, readModelSpec, type ModelSpec } from './core/spec.js';
import { readJsonFile } from './core/config.js';

const HELP = `usage: edgekd model info (--spec FILE | --config TRAIN.json | --checkpoint FILE) [--json]

Prints the trainable parameter count, multiply-accumulates per image at the spec's input
size (by part), and the shapes of the feature taps C2..C5 / P2..P5 used by distillation.`;

function specFrom(values: Record<string, string | boolean | undefined>): ModelSpec {
  if (typeof values.spec === 'string') return readModelSpec(values.spec);
  if (typeof values.checkpoint === 'string') return loadCheckpoint(values.checkpoint).spec;
  if (typeof values.config === 'string') {
    const cfg = readJsonFile(values.config) as { model?: unknown };
    if (typeof cfg.model === 'string') return readModelSpec(cfg.model);
    if (cfg.model && typeof cfg.model === 'object')
      return parseModelSpec(cfg.model, `model in '${values.config}'`);
    throw new ConfigError('ERR_CONFIG_INVALID', `config '${values.config}' has no 'model' field`);
  }
  throw new ConfigError('ERR_CONFIG_INVALID', 'model info needs one of --spec, --config or --checkpoint');
}

export async function modelCommand(argv: string[]): Promise<number> {
  const sub = argv[0];
  if (sub === '--help' || sub === '-h') {
    console.log(HELP);
    return 0;
  }
  if (sub !== 'info') {
    console.error(`error[ERR_CONFIG_UNKNOWN_KEY]: unknown model subcommand '${sub ?? ''}'\n${HELP}`);
    return 2;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv.slice(1),
      options: {
        spec: { type: 'string' },
        config: { type: 'string' },
        checkpoint: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_UNKNOWN_KEY', (e as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const spec = specFrom(values);
  const cost = graphCost(spec);
  if (values.json) {
    console.log(JSON.stringify({ name: spec.name, input: spec.input, ...cost }, null, 2));
    return 0;
  }
  const g = (n: number) => (n / 1e9).toFixed(3);
  console.log(
    `model     ${spec.name} (${spec.architecture}, ${spec.classes.length} class${spec.classes.length > 1 ? 'es' : ''}: ${spec.classes.join(', ')})`,
  );
  console.log(
    `input     ${spec.input.height}x${spec.input.width}x3 ${spec.input.channelOrder}, ${spec.input.normalization.kind} normalisation, ${spec.input.resize}`,
  );
  console.log(`params    ${cost.params.toLocaleString('en-US')} (${(cost.params / 1e6).toFixed(3)} M)`);
  console.log(
    `MACs      ${g(cost.macs)} G per image (${Object.entries(cost.macsByPart)
      .map(([k, v]) => `${k} ${g(v)} G`)
      .join(', ')})`,
  );
  console.log(
    'taps      ' +
      Object.entries(cost.tapShapes)
        .map(([k, s]) => `${k} ${s.join('x')}`)
        .join(', '),
  );
  return 0;
}
