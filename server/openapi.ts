/**
 * The route table of the HTTP API and the OpenAPI 3.1 document built from it.
 *
 * `API_ROUTES` is the single list the app registers its own handlers from (server/app.ts fails at
 * start when a route has no handler or a handler no route), so the document cannot miss one of
 * them. The stream routes (server/streams.ts) and the web demo page (server/web-demo.ts) are
 * described in `STREAM_ROUTES` and `WEB_ROUTES`, and a test walks the app's router to check both tables against what is actually mounted.
 * Schemas are written once in zod and converted with `z.toJSONSchema` (JSON Schema 2020-12, the
 * dialect of OpenAPI 3.1).
 */
import { z } from 'zod';
import { DETECT_PARAM_SCHEMAS, IMAGE_TYPES } from './image-input.js';
import type { HttpErrorCode } from './http-error.js';
import { StartStreamSchema } from './streams.js';

// #region schemas

const ERROR_CODES = [
  'bad_request',
  'invalid_parameter',
  'empty_body',
  'unsupported_media_type',
  'payload_too_large',
  'image_too_large',
  'invalid_image',
  'unauthorized',
  'not_found',
  'method_not_allowed',
  'conflict',
  'too_many_streams',
  'overloaded',
  'timeout',
  'shutting_down',
  'not_ready',
  'stream_source',
  'internal',
] as const satisfies readonly HttpErrorCode[];

const ErrorBodySchema = z
  .strictObject({
    error: z.strictObject({
      code: z.enum(ERROR_CODES).describe('Stable error code to branch on'),
      message: z.string().describe('Human-readable reason, naming the offending parameter'),
    }),
  })
  .describe('Every 4xx / 5xx answer');

const DetectionSchema = z.strictObject({
  box: z
    .tuple([z.number(), z.number(), z.number(), z.number()])
    .describe('[x1, y1, x2, y2] in source-image pixels, top-left origin'),
  score: z.number().min(0).max(1),
  class: z.int().min(0).describe('Class id (index into the model classes)'),
  label: z.string().describe('Class name'),
});

const TimingsSchema = z
  .strictObject({
    queueMs: z.number().describe('Waiting for a model run (micro-batching window / busy workers)'),
    preMs: z.number().describe('Decode + letterbox + tensor packing'),
    inferMs: z.number().describe('session.run of the batch'),
    postMs: z.number().describe('Decoding of the outputs of the batch'),
    totalMs: z.number().describe('Whole request after the body was read'),
    batchSize: z.int().min(1).describe('Images in the model run this image was part of'),
  })
  .describe('Milliseconds per stage');

const ImageResultSchema = z.strictObject({
  width: z.int().describe('Source image width, px'),
  height: z.int().describe('Source image height, px'),
  detections: z.array(DetectionSchema).describe('Best first'),
  timings: TimingsSchema,
});

const DetectResponseSchema = z
  .strictObject({
    model: z.string(),
    provider: z.string().describe('Execution provider the model runs on'),
    ...ImageResultSchema.shape,
  })
  .describe('One image');

const DetectBatchResponseSchema = z
  .strictObject({
    model: z.string(),
    provider: z.string(),
    results: z.array(ImageResultSchema).describe('One per image part, in request order'),
  })
  .describe('A multipart request with several images');

const ModelSchema = z.strictObject({
  name: z.string(),
  provider: z.string(),
  fallbacks: z.array(z.strictObject({ provider: z.string(), reason: z.string() })),
  precision: z.string(),
  outputs: z.enum(['boxes', 'heads']),
  input: z.strictObject({
    width: z.int(),
    height: z.int(),
    channelOrder: z.enum(['rgb', 'bgr']),
    normalization: z.record(z.string(), z.unknown()),
    resize: z.enum(['letterbox', 'stretch']),
  }),
  classes: z.array(z.string()),
  spec: z.record(z.string(), z.unknown()).describe('The full model spec'),
  url: z.string().describe('Where to download the ONNX model (for in-browser inference)'),
});

const ModelsResponseSchema = z.strictObject({ models: z.array(ModelSchema) });

const StatusSchema = z.strictObject({ status: z.string() });

const StreamInfoSchema = z.strictObject({
  id: z.string(),
  source: z.string().describe('As given, URL password masked'),
  live: z.boolean(),
  state: z.enum(['starting', 'running', 'ended', 'failed', 'stopped']),
  startedAt: z.string().describe('ISO 8601'),
  frames: z.int(),
  droppedFrames: z.int(),
  fps: z.number(),
  error: z.strictObject({ code: z.string(), message: z.string() }).optional(),
});

function jsonSchema(s: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(s, { io: 'output', unrepresentable: 'any' }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

const COMPONENTS: Record<string, z.ZodType> = {
  Error: ErrorBodySchema,
  Detection: DetectionSchema,
  DetectResponse: DetectResponseSchema,
  DetectBatchResponse: DetectBatchResponseSchema,
  ModelsResponse: ModelsResponseSchema,
  Status: StatusSchema,
  StartStream: StartStreamSchema,
  StreamInfo: StreamInfoSchema,
  StreamList: z.strictObject({ streams: z.array(StreamInfoSchema) }),
};

// #endregion

// #region route table

export type HttpMethod = 'get' | 'post' | 'delete';

/** One route: where it is, and its OpenAPI operation. */
export interface RouteDoc {
  method: HttpMethod;
  /** Express pattern (`/v1/models/:name/model.onnx`). */
  path: string;
  operationId: string;
  summary: string;
  /** Open without the bearer token. */
  public?: boolean;
  parameters?: Record<string, unknown>[];
  requestBody?: Record<string, unknown>;
  responses: Record<string, Record<string, unknown>>;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string, description: string) => ({
  description,
  content: { 'application/json': { schema: ref(name) } },
});
const err = (description: string) => json('Error', description);
const pathParam = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description,
});

const detectQuery = Object.entries(DETECT_PARAM_SCHEMAS).map(([name, schema]) => {
  const s = jsonSchema(schema);
  const description = s.description;
  delete s.description;
  return { name, in: 'query', required: false, schema: s, description };
});

/** Routes the app implements itself (server/app.ts registers exactly these). */
export const API_ROUTES: readonly RouteDoc[] = [
  {
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    summary: 'Liveness: the process is up (never needs the token)',
    public: true,
    responses: { '200': json('Status', '{"status":"ok"}') },
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'ready',
    summary: 'Readiness: the model is loaded and warmed up, and the server is not shutting down',
    responses: {
      '200': json('Status', '{"status":"ready"}'),
      '503': err('`not_ready` while loading or shutting down'),
    },
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics (text exposition format)',
    responses: {
      '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'openapi',
    summary: 'This document',
    responses: {
      '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } },
    },
  },
  {
    method: 'get',
    path: '/v1/models',
    operationId: 'listModels',
    summary: 'The served model: spec, provider, precision, input size, download URL',
    responses: { '200': json('ModelsResponse', 'Models') },
  },
  {
    method: 'get',
    path: '/v1/models/:name/model.onnx',
    operationId: 'downloadModel',
    summary: 'The ONNX file of a served model (for in-browser inference with onnxruntime-web)',
    parameters: [pathParam('name', 'Model name from /v1/models')],
    responses: {
      '200': {
        description: 'ONNX bytes',
        content: {
          'application/octet-stream': {
            schema: { type: 'string', contentMediaType: 'application/octet-stream' },
          },
        },
      },
      '404': err('`not_found`: no model of that name'),
    },
  },
  {
    method: 'post',
    path: '/v1/detect',
    operationId: 'detect',
    summary:
      'Detect objects in one image (raw body) or several (multipart). Concurrent requests are micro-batched into one model run.',
    parameters: detectQuery,
    requestBody: {
      required: true,
      content: {
        ...Object.fromEntries(
          IMAGE_TYPES.map((t) => [t, { schema: { type: 'string', contentMediaType: t } }]),
        ),
        'multipart/form-data': {
          schema: {
            type: 'object',
            description:
              'One or more image parts (any field name) plus optional parameter fields (threshold, maxDetections, classes, annotate)',
            additionalProperties: true,
          },
        },
      },
    },
    responses: {
      '200': {
        description:
          'Detections (one image: DetectResponse; several: DetectBatchResponse); with annotate=1 the image as JPEG',
        content: {
          'application/json': { schema: { oneOf: [ref('DetectResponse'), ref('DetectBatchResponse')] } },
          'image/jpeg': { schema: { type: 'string', contentMediaType: 'image/jpeg' } },
        },
      },
      '400': err('`empty_body`, `invalid_image`, `invalid_parameter`, `bad_request`'),
      '413': err('`payload_too_large` (body cap), `image_too_large` (pixel cap)'),
      '415': err('`unsupported_media_type`'),
      '503': err('`overloaded` (queue full, see Retry-After) or `shutting_down`'),
      '504': err('`timeout`: not done within the per-request timeout'),
    },
  },
];

/** Routes served by server/streams.ts (described here; checked against the mounted router). */
export const STREAM_ROUTES: readonly RouteDoc[] = [
  {
    method: 'post',
    path: '/v1/streams',
    operationId: 'startStream',
    summary: 'Start a video pipeline on a file, image folder, camera or stream URL',
    requestBody: { required: true, content: { 'application/json': { schema: ref('StartStream') } } },
    responses: {
      '201': json('StreamInfo', 'Started (URL sources: state "starting")'),
      '400': err('`invalid_parameter`'),
      '415': err('`unsupported_media_type`: the body is not JSON'),
      '422': err('`stream_source`: the local source cannot be opened'),
      '429': err('`too_many_streams`'),
      '503': err('`shutting_down`, or `stream_source` when ffmpeg is not installed'),
    },
  },
  {
    method: 'get',
    path: '/v1/streams',
    operationId: 'listStreams',
    summary: 'Running and recently finished streams',
    responses: { '200': json('StreamList', 'Streams') },
  },
  {
    method: 'get',
    path: '/v1/streams/:id',
    operationId: 'getStream',
    summary: 'One stream',
    parameters: [pathParam('id', 'Stream id')],
    responses: { '200': json('StreamInfo', 'The stream'), '404': err('`not_found`') },
  },
  {
    method: 'get',
    path: '/v1/streams/:id/events',
    operationId: 'streamEvents',
    summary: 'Server-sent events: `detections` per frame (with track ids), `stats`, then `end` or `error`',
    parameters: [pathParam('id', 'Stream id')],
    responses: {
      '200': {
        description: 'Event stream',
        content: { 'text/event-stream': { schema: { type: 'string' } } },
      },
      '404': err('`not_found`'),
    },
  },
  {
    method: 'get',
    path: '/v1/streams/:id/mjpeg',
    operationId: 'streamMjpeg',
    summary: 'Annotated frames as MJPEG (multipart/x-mixed-replace)',
    parameters: [pathParam('id', 'Stream id')],
    responses: {
      '200': {
        description: 'MJPEG',
        content: { 'multipart/x-mixed-replace': { schema: { type: 'string' } } },
      },
      '404': err('`not_found`'),
      '409': err('`conflict`: the stream has finished'),
    },
  },
  {
    method: 'delete',
    path: '/v1/streams/:id',
    operationId: 'stopStream',
    summary: 'Stop a stream (waits until its ffmpeg process is gone)',
    parameters: [pathParam('id', 'Stream id')],
    responses: { '200': json('StreamInfo', 'The stopped stream'), '404': err('`not_found`') },
  },
];

/** The web demo's page (server/web-demo.ts; its scripts and styles are static files below `/`). */
export const WEB_ROUTES: readonly RouteDoc[] = ['/', '/index.html'].map((path) => ({
  method: 'get' as const,
  path,
  operationId: path === '/' ? 'webDemo' : 'webDemoIndex',
  summary: 'Browser demo: runs the model in the page with onnxruntime-web, or on this server via /v1/detect',
  public: true,
  responses: {
    '200': { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } },
    '503': err('`not_ready`: the demo has not been built'),
  },
}));

// #endregion

/** `/v1/models/:name/model.onnx` -> `/v1/models/{name}/model.onnx`. */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
}

/**
 * The OpenAPI 3.1 document of the given routes.
 * @param opts.auth - whether a bearer token is required (adds the security scheme and 401s)
 */
export function openApiDocument(opts: {
  version: string;
  auth: boolean;
  routes: readonly RouteDoc[];
}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of opts.routes) {
    const p = (paths[openApiPath(r.path)] ??= {});
    const responses: Record<string, unknown> = { ...r.responses };
    const secured = opts.auth && !r.public;
    if (secured) responses['401'] = err('`unauthorized`: missing or wrong bearer token');
    responses.default = err('Any other error');
    p[r.method] = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.parameters ? { parameters: r.parameters } : {}),
      ...(r.requestBody ? { requestBody: r.requestBody } : {}),
      responses,
      ...(opts.auth ? { security: secured ? [{ bearer: [] }] : [] } : {}),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'edgekd inference server',
      version: opts.version,
      description:
        'Object detection with an edgekd ONNX model. Every error is {"error":{"code","message"}}. See docs/http-api.md.',
    },
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(COMPONENTS).map(([k, s]) => [k, jsonSchema(s)])),
      ...(opts.auth ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } : {}),
    },
  };
}
