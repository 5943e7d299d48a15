/**
 * `edgekd video SOURCE --model FILE [--out annotated.mp4] [--jsonl FILE|-] [--live] [--batch N]
 * [--ep tensorrt,cuda,cpu] [--count-line x1,y1,x2,y2] [--max-frames N]`: runs the detector over a
 * video file, stream, camera, image folder or stdin. Progress (fps, per-stage ms, queues, drops)
 * goes to stderr as one redrawn line on a TTY, a line every 10 s otherwise; the summary (JSON)
 * goes to stdout, or to stderr when the detections themselves go to stdout (`--jsonl -`).
 * SIGINT / SIGTERM stop the pipeline cleanly (ffmpeg children stopped, the annotated video
 * finalised), exit code 130; a second signal exits at once. `--profile jetson|nvidia`
 * (runtime/profiles.ts) presets TensorRT, CUDA, CPU and hardware decoding in ffmpeg, and prints
 * why decoding stays in software when it does.
 */
import { availableParallelism } from 'node:os';
import { helpText, parseCli, schemaFlags } from '../models/core/config.js';
import { EdgekdError, formatError } from '../models/core/errors.js';
import { modelOrDefault } from './zoo.js';
import { createDetector } from './detector.js';
import { parseProfile, precisionAdvice, resolveDecodePlan, sessionHints } from './profiles.js';
import { parseProviders } from './providers.js';
import { parseCountLine } from './tracker.js';
import { VideoConfigSchema } from './video/config.js';
import { liveFfmpegPids } from './video/ffmpeg.js';
import { runVideoPipeline, type VideoEvent, type VideoSink } from './video/pipeline.js';
import { AnnotatedVideoSink, JsonlSink, StatsSink } from './video/sinks.js';

const USAGE =
  'usage: edgekd video SOURCE [--model FILE] [--out annotated.mp4] [--jsonl FILE|-] [--live] [--batch N] [--ep tensorrt,cuda,cpu] [--profile jetson|nvidia] [--count-line x1,y1,x2,y2] [--max-frames N]\n' +
  "  SOURCE: video file, rtsp/rtmp/http(s)/udp/srt URL, /dev/videoN, image folder, or '-' (stdin)";

/** Pulls the positional SOURCE out of argv (the first token that is not a flag or a flag's value). */
export function splitSource(argv: string[]): { source?: string; rest: string[] } {
  const flags = new Map(schemaFlags(VideoConfigSchema).map((f) => [f.flag, f.kind]));
  flags.set('config', 'string');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-' || !a.startsWith('-'))
      return { source: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
    if (!a.startsWith('--') || a.includes('=')) continue;
    const kind = flags.get(a.slice(2));
    if (kind === 'boolean') {
      if (argv[i + 1] === 'true' || argv[i + 1] === 'false') i++;
    } else if (kind !== undefined) i++;
  }
  return { rest: argv };
}

/** `edgekd video ...`; returns the exit code (errors propagate to bin/edgekd.ts). */
export async function videoCommand(argv: string[]): Promise<number> {
  const { source, rest } = splitSource(argv);
  const { config, extra } = parseCli(VideoConfigSchema, rest, {}, source !== undefined ? { source } : {});
  if (extra.help) {
    process.stdout.write(helpText(USAGE, VideoConfigSchema) + '\n');
    return 0;
  }
  const countLine = config.countLine ? parseCountLine(config.countLine) : undefined;
  const profile = config.profile ? parseProfile(config.profile) : undefined;
  const providers = config.ep ? parseProviders(config.ep) : profile?.providers.slice();
  const hints = profile ? sessionHints(profile, availableParallelism(), config.workers) : undefined;
  // Before the detector starts: a missing source fails fast, and the probe / trial frame runs alone.
  const decode = profile
    ? await resolveDecodePlan(profile, config.source, {
        ffmpegPath: config.ffmpeg,
        deviceId: config.deviceId,
        openTimeoutMs: config.openTimeout * 1000,
      })
    : undefined;
  const detector = await createDetector(modelOrDefault(config.model, 'run'), {
    providers,
    deviceId: config.deviceId,
    workers: config.workers,
    intraOpThreads: config.threads ?? hints?.intraOpThreads,
    allowSpinning: hints?.allowSpinning,
    specPath: config.spec,
    scoreThreshold: config.scoreThreshold,
  });

  const tty = process.stderr.isTTY === true;
  let progressShown = false;
  const clearProgress = () => {
    if (tty && progressShown) process.stderr.write('\r\x1b[K');
    progressShown = false;
  };
  const say = (line: string) => {
    clearProgress();
    process.stderr.write(line + '\n');
  };
  const sinks: VideoSink[] = [];
  const toStdout = config.jsonl === '-';
  if (config.jsonl) sinks.push(new JsonlSink(toStdout ? process.stdout : config.jsonl));
  if (config.out) sinks.push(new AnnotatedVideoSink(config.out));
  sinks.push(
    new StatsSink(
      (_s, line) => {
        if (tty) {
          process.stderr.write(`\r\x1b[K${line}`);
          progressShown = true;
        } else process.stderr.write(line + '\n');
      },
      tty ? 500 : 10_000,
    ),
  );
  const onEvent = (e: VideoEvent) => {
    if (e.kind === 'reconnect')
      say(`warn: ${e.reason}; reconnecting in ${e.delayMs} ms (attempt ${e.attempt}/${e.attempts})`);
    else if (e.kind === 'size-change')
      say(`warn: frame size changed at frame ${e.frame}: ${e.from.join('x')} -> ${e.to.join('x')}`);
    else if (e.kind === 'warning') say(`warn: ${e.message}`);
  };

  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      say(`${sig}: stopping (again to exit at once)`);
      controller.abort(sig);
      return;
    }
    // Second signal: no more waiting. The ffmpeg exit hook kills the children on the way out.
    say(`${sig}: exiting now (${liveFfmpegPids().length} ffmpeg process(es) killed)`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  say(
    `video: ${config.source} -> model '${detector.spec.name}' on ${detector.provider}` +
      (detector.fallbacks.length
        ? ` (skipped: ${detector.fallbacks.map((f) => f.provider).join(', ')})`
        : ''),
  );
  if (profile && decode) {
    say(
      decode.hardware
        ? `profile ${profile.name}: hardware decode ${decode.decoder} (${decode.args.join(' ')})`
        : `warn: profile ${profile.name}: software decode: ${decode.reason}`,
    );
    const advice = precisionAdvice(detector.provider, detector.precision);
    if (advice) say(`note: ${advice}`);
  }
  try {
    const summary = await runVideoPipeline({
      source: config.source,
      detector,
      sinks,
      live: config.live,
      batch: config.batch,
      inflight: config.workers,
      track: config.track,
      countLine,
      maxFrames: config.maxFrames,
      reconnect: { attempts: config.reconnectAttempts },
      openTimeoutMs: config.openTimeout * 1000,
      inputArgs: decode?.args,
      ffmpegPath: config.ffmpeg,
      signal: controller.signal,
      onEvent,
      statsIntervalMs: 0,
    });
    clearProgress();
    const text = JSON.stringify(summary) + '\n';
    if (toStdout) process.stderr.write(text);
    else process.stdout.write(text);
    return 0;
  } catch (e) {
    clearProgress();
    if (e instanceof EdgekdError && e.code === 'ERR_INTERRUPTED') {
      say(formatError(e));
      return 130;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await detector.close();
  }
}
