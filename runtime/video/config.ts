/**
 * `VideoConfig`: the one schema of `edgekd video`. Defaults live here and nowhere else; the CLI
 * flags (`--model`, `--out`, `--jsonl`, `--live`, `--batch`, `--count-line`, ...) are generated
 * from it.
 */
import { z } from 'zod';

export const VideoConfigSchema = z.strictObject({
  source: z
    .string()
    .min(1)
    .describe(
      "(string) video file, rtsp/rtmp/http(s)/udp/srt URL, /dev/videoN, image folder, or '-' for stdin",
    ),
  model: z
    .string()
    .min(1)
    .optional()
    .describe('(path) ONNX model written by edgekd export (default: the shipped models/zoo/ped-pico.onnx)'),
  spec: z
    .string()
    .optional()
    .describe('(path) sidecar spec JSON, for a plain ONNX detector without edgekd metadata'),
  out: z
    .string()
    .optional()
    .describe('(path) annotated video: boxes and track ids drawn on the source-resolution frames'),
  jsonl: z
    .string()
    .optional()
    .describe("(path) detections as JSON Lines, one line per processed frame; '-' for stdout"),
  live: z
    .boolean()
    .optional()
    .describe(
      '(bool) live mode: drop stale frames (counted) so latency stays bounded [default: on for stream URLs and cameras, off otherwise]',
    ),
  batch: z
    .number()
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe('(int) most frames per inference call, taken when the queue already holds them'),
  ep: z
    .string()
    .optional()
    .describe('(list) execution providers in preference order, e.g. tensorrt,cuda,cpu'),
  profile: z
    .string()
    .optional()
    .describe(
      '(jetson|nvidia) deployment profile: TensorRT, then CUDA, then CPU, and hardware decoding in ffmpeg when it works (docs/jetson.md)',
    ),
  deviceId: z.number().int().min(0).optional().describe('(int) CUDA / TensorRT device id'),
  workers: z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(1)
    .describe('(int) session workers; as many inference calls run at once'),
  threads: z.number().int().min(1).optional().describe('(int) ORT intra-op threads per session'),
  scoreThreshold: z.number().min(0).max(1).optional().describe("(number) score floor [default: the model's]"),
  track: z
    .boolean()
    .default(true)
    .describe('(bool) ByteTrack ids on the detections (--no-track turns it off)'),
  countLine: z
    .string()
    .optional()
    .describe('(x1,y1,x2,y2) count tracks crossing this line, in source pixels'),
  maxFrames: z.number().int().min(1).optional().describe('(int) stop after this many frames'),
  reconnectAttempts: z
    .number()
    .int()
    .min(0)
    .max(1000)
    .default(5)
    .describe(
      '(int) stream / camera sources: reconnect attempts in a row after a loss (back-off 0.5 s doubling to 10 s)',
    ),
  openTimeout: z
    .number()
    .positive()
    .default(10)
    .describe('(number) seconds to wait when opening a network source'),
  ffmpeg: z
    .string()
    .optional()
    .describe('(path) ffmpeg binary [default: ffmpeg on PATH, else @ffmpeg-installer/ffmpeg]'),
});

export type VideoConfig = z.output<typeof VideoConfigSchema>;
export type VideoConfigInput = z.input<typeof VideoConfigSchema>;
