/**
 * `edgekd serve --model FILE [--port 8080] [--host 127.0.0.1] ...`: the HTTP inference server
 * (server/app.ts) until SIGTERM / SIGINT, then a graceful shutdown and exit 0.
 */
import { numberFlag, parseFlagArgs } from '../models/core/config.js';
import { ConfigError } from '../models/core/errors.js';
import { parseProviders } from '../runtime/providers.js';
import { modelOrDefault } from '../runtime/zoo.js';
import { createServer, type ServerOptions } from './app.js';

type Flags = Record<string, { type: 'string' | 'boolean'; short?: string }>;
type Values = Record<string, string | boolean | undefined>;

const FLAGS: Flags = {
  model: { type: 'string' },
  spec: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  ep: { type: 'string' },
  workers: { type: 'string' },
  token: { type: 'string' },
  cors: { type: 'string' },
  'max-batch': { type: 'string' },
  'max-wait-ms': { type: 'string' },
  'no-batching': { type: 'boolean' },
  queue: { type: 'string' },
  'timeout-ms': { type: 'string' },
  'max-body-mb': { type: 'string' },
  'max-pixels': { type: 'string' },
  'max-streams': { type: 'string' },
};

const HELP = `usage: edgekd serve [--model FILE] [--port 8080] [--host 127.0.0.1] [--ep cpu,...] [options]

Serves a detector over HTTP: POST /v1/detect (raw image or multipart), GET /v1/models, video
streams under /v1/streams, /healthz, /readyz, /metrics (Prometheus), /openapi.json, and the
browser demo at /. Prints the URL; SIGTERM or SIGINT drains in-flight requests, stops the
streams and exits 0. See docs/http-api.md.

Options:
  --model FILE        the .onnx model (edgekd export, or a plain ONNX detector with --spec);
                      default: the shipped models/zoo/ped-pico.onnx
  --spec FILE         model spec JSON for a plain ONNX model without edgekd metadata
  --port N            TCP port (default 8080; 0 = any free port)
  --host ADDR         interface to bind (default 127.0.0.1; 0.0.0.0 for every interface)
  --ep LIST           execution providers in preference order, e.g. tensorrt,cuda,cpu
  --workers N         session worker threads (default 1)
  --token T           require Authorization: Bearer T on every route but /healthz and the page
                      (default: the EDGEKD_TOKEN environment variable, else no auth)
  --cors ORIGIN       send Access-Control-Allow-Origin: ORIGIN (default: CORS off)
  --max-batch N       images per model run at most (default 8)
  --max-wait-ms X     how long a partial batch waits for more requests (default 5)
  --no-batching       one model run per image
  --queue N           detect requests waiting at most; more get 503 + Retry-After (default 64)
  --timeout-ms X      per-request timeout, 504 past it (default 10000)
  --max-body-mb X     request body cap in MiB (default 20)
  --max-pixels N      image width * height cap, checked before decoding (default 40000000)
  --max-streams N     video streams running at once (default 4)`;

/** node:util parseArgs with edgekd's errors: unknown flags get a did-you-mean hint. */
function parseFlags(argv: string[]): { values: Values; positionals: string[] } {
  return parseFlagArgs(argv, { ...FLAGS, help: { type: 'boolean', short: 'h' } });
}

const num = numberFlag;

const isInt = (min: number) => (v: number) => Number.isInteger(v) && v >= min;

/** The server options from the flags (and EDGEKD_TOKEN). */
function serverOptions(values: Values): ServerOptions {
  const modelPath = modelOrDefault(typeof values.model === 'string' ? values.model : undefined, 'serve');
  const token = typeof values.token === 'string' ? values.token : process.env.EDGEKD_TOKEN || undefined;
  if (token !== undefined && token.trim() === '')
    throw new ConfigError('ERR_CONFIG_INVALID', '--token must not be empty');
  const mb = num(values, 'max-body-mb', (v) => v > 0, 'a number > 0');
  return {
    modelPath,
    specPath: typeof values.spec === 'string' ? values.spec : undefined,
    providers: typeof values.ep === 'string' ? parseProviders(values.ep) : undefined,
    workers: num(values, 'workers', isInt(1), 'an integer >= 1'),
    token,
    cors: typeof values.cors === 'string' ? values.cors : undefined,
    batching: values['no-batching'] !== true,
    maxBatch: num(values, 'max-batch', isInt(1), 'an integer >= 1'),
    maxWaitMs: num(values, 'max-wait-ms', (v) => v >= 0, 'a number >= 0'),
    queueSize: num(values, 'queue', isInt(1), 'an integer >= 1'),
    timeoutMs: num(values, 'timeout-ms', (v) => v > 0, 'a number > 0'),
    maxBodyBytes: mb === undefined ? undefined : Math.round(mb * 1024 * 1024),
    maxPixels: num(values, 'max-pixels', isInt(1), 'an integer >= 1'),
    maxStreams: num(values, 'max-streams', isInt(1), 'an integer >= 1'),
  };
}

/** `edgekd serve ...`; resolves with the exit code once the server has shut down. */
export async function serveCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length)
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `serve takes no positional arguments, got '${positionals.join(' ')}'`,
    );
  const opts = serverOptions(values);
  const port = num(values, 'port', (v) => isInt(0)(v) && v <= 65535, 'an integer in [0, 65535]') ?? 8080;
  const host = typeof values.host === 'string' ? values.host : '127.0.0.1';

  const server = await createServer(opts);
  let url: string;
  try {
    ({ url } = await server.listen(port, host));
  } catch (e) {
    await server.close();
    const code = (e as { code?: string }).code;
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `cannot listen on ${host}:${port}: ${code ?? (e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  const d = server.detector;
  const batching = opts.batching
    ? `batching up to ${opts.maxBatch ?? 8} within ${opts.maxWaitMs ?? 5} ms`
    : 'no batching';
  process.stderr.write(
    `serve: model ${d.spec.name} (${d.outputs}, ${d.precision}, ${d.spec.input.width}x${d.spec.input.height}) on ${d.provider}, ${batching}${opts.token ? ', token auth' : ''}\n`,
  );
  console.log(`listening on ${url}`);

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      process.stderr.write(`serve: ${signal}, shutting down (draining in-flight requests)\n`);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await server.close();
  process.stderr.write('serve: stopped\n');
  return 0;
}
