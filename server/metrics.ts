/**
 * Prometheus metrics of one server, in its own prom-client registry (not the global one, so two
 * servers in a process, as in tests and benches, never share or clash over series).
 *
 * Gauges that mirror state elsewhere (queue depth, active streams) and the dropped-frames counter
 * are read at scrape time through `collect()`, so nothing has to remember to update them.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Readers of live state, called on every scrape. */
export interface MetricSources {
  /** Detect requests admitted and not yet running. */
  queueDepth: () => number;
  /** HTTP requests being handled (long-lived stream responses excluded). */
  inFlight?: () => number;
  /** Stream stats (StreamManager.stats()); absent when streams are not mounted. */
  streams?: () => { active: number; droppedFrames: number };
}

export interface ServerMetrics {
  readonly registry: Registry;
  /** Records one finished request; `route` is the route pattern (bounded label set). */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
  /** Records the size of one model run. */
  observeBatch(size: number): void;
  /** Prometheus text exposition. */
  text(): Promise<string>;
  readonly contentType: string;
}

/** Builds the registry with the HTTP, batching and stream series plus default process metrics. */
export function createMetrics(sources: MetricSources): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'edgekd_' });
  const requests = new Counter({
    name: 'edgekd_http_requests_total',
    help: 'HTTP requests by route pattern, method and status (499: client closed the connection first)',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'edgekd_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern, seconds',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const batch = new Histogram({
    name: 'edgekd_batch_size',
    help: 'Images per model run (session.run) of /v1/detect',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  new Gauge({
    name: 'edgekd_queue_depth',
    help: 'Detect requests admitted and waiting for a model run',
    registers: [registry],
    collect() {
      this.set(sources.queueDepth());
    },
  });
  new Gauge({
    name: 'edgekd_http_requests_in_flight',
    help: 'HTTP requests being handled, this scrape included (stream event / MJPEG responses excluded)',
    registers: [registry],
    collect() {
      this.set(sources.inFlight?.() ?? 0);
    },
  });
  new Gauge({
    name: 'edgekd_active_streams',
    help: 'Video streams running',
    registers: [registry],
    collect() {
      this.set(sources.streams?.().active ?? 0);
    },
  });
  let droppedSeen = 0;
  new Counter({
    name: 'edgekd_stream_dropped_frames_total',
    help: 'Frames dropped by live streams to keep latency bounded',
    registers: [registry],
    collect() {
      const now = sources.streams?.().droppedFrames ?? 0;
      // The source is cumulative; a counter only moves forward, so add what is new.
      if (now > droppedSeen) this.inc(now - droppedSeen);
      droppedSeen = Math.max(droppedSeen, now);
    },
  });
  return {
    registry,
    contentType: registry.contentType,
    observeRequest(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      duration.observe({ route }, seconds);
    },
    observeBatch(size) {
      batch.observe(size);
    },
    text: () => registry.metrics(),
  };
}
