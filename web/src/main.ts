/**
 * edgekd web demo: runs the server's ONNX model in the browser (onnxruntime-web, WebGPU or
 * WebAssembly) on the webcam, a video file or an image file, and draws boxes, scores and track
 * ids on a canvas. "Server-side inference" also sends each frame to `POST /v1/detect` and draws
 * the server's boxes in a second colour, with both timings.
 *
 * For automated tests the page exposes `window.edgekdDemo` (see {@link EdgekdDemo}) and mirrors
 * the main figures in data attributes of the canvas.
 */
import type { BoxXyxy, Detection } from '../../models/core/detection.js';
import { ByteTracker } from '../../runtime/tracker.js';
import { iou } from '../../models/core/detection.js';
import { ApiError, detectOnServer, fetchModelBytes, fetchModels, type ModelEntry } from './api.js';
import { BACKENDS, BrowserDetector, type Backend, type BrowserTimings } from './browser-detector.js';
import { BROWSER_COLOR, drawBoxes, SERVER_COLOR } from './draw.js';

/** One detection as shown, in source pixels. */
export interface DemoDetection {
  box: BoxXyxy;
  score: number;
  classId: number;
  label: string;
  /** Track id (video and webcam only). */
  trackId?: number;
}

/** What one processed frame produced. */
export interface DemoFrame {
  width: number;
  height: number;
  detections: DemoDetection[];
  /** Present when server-side inference is on and the server answered. */
  serverDetections?: DemoDetection[];
  browserMs: BrowserTimings & { totalMs: number };
  serverMs?: { roundTripMs: number; inferMs?: number };
  /** Outlines drawn on the canvas for this frame (browser + server). */
  boxesDrawn: number;
}

/** The page state tests and the console can read. */
export interface EdgekdDemo {
  /** Settles once the model runs in the browser (rejects with the reason it cannot). */
  ready: Promise<void>;
  backend?: Backend;
  /** Backends dropped before `backend`, with the reason. */
  fallbacks: { backend: Backend; reason: string }[];
  /** WebAssembly threads (1 when the page is not cross-origin isolated). */
  threads?: number;
  /** The first (warm-up) run of the session, ms. */
  warmupMs?: number;
  model?: ModelEntry;
  lastDetections: DemoDetection[];
  lastServerDetections?: DemoDetection[];
  lastFrame?: DemoFrame;
  framesDrawn: number;
  boxesDrawn: number;
  /** Every error message shown so far. */
  errors: string[];
  /** Fetches an image, shows it and detects on it. */
  runImage(url: string): Promise<DemoFrame>;
}

declare global {
  interface Window {
    edgekdDemo: EdgekdDemo;
  }
}

const TOKEN_KEY = 'edgekd.token';

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page lacks #${id}`);
  return e as T;
}

const ui = {
  status: el<HTMLElement>('status'),
  message: el<HTMLElement>('message'),
  model: el<HTMLSelectElement>('model'),
  webcam: el<HTMLButtonElement>('webcam'),
  file: el<HTMLInputElement>('file'),
  threshold: el<HTMLInputElement>('threshold'),
  server: el<HTMLInputElement>('server'),
  token: el<HTMLInputElement>('token'),
  canvas: el<HTMLCanvasElement>('view'),
  video: el<HTMLVideoElement>('video'),
  backend: el<HTMLElement>('stat-backend'),
  detections: el<HTMLElement>('stat-detections'),
  browserMs: el<HTMLElement>('stat-browser-ms'),
  serverMs: el<HTMLElement>('stat-server-ms'),
  fps: el<HTMLElement>('stat-fps'),
  frames: el<HTMLElement>('stat-frames'),
};
const view = ui.canvas.getContext('2d', { alpha: false });
if (!view) throw new Error('this browser cannot draw on a 2D canvas');

const state: EdgekdDemo = {
  ready: Promise.resolve(),
  fallbacks: [],
  lastDetections: [],
  framesDrawn: 0,
  boxesDrawn: 0,
  errors: [],
  runImage,
};
window.edgekdDemo = state;

let models: ModelEntry[] = [];
let detector: BrowserDetector | undefined;
let tracker = new ByteTracker({ minHits: 1 });
let trackFrame = 0;
/** The still image on screen, re-run when a setting changes. */
let still: ImageBitmap | undefined;
/** Bumped to stop the running video loop. */
let loopGen = 0;
let objectUrl: string | undefined;
let webcamStream: MediaStream | undefined;
let processing: Promise<DemoFrame | undefined> = Promise.resolve(undefined);
const frameTimes: number[] = [];

function showError(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  state.errors.push(msg);
  ui.message.textContent = msg;
  ui.message.hidden = false;
}

function showNote(msg: string): void {
  ui.message.textContent = msg;
  ui.message.hidden = msg === '';
}

function token(): string {
  return ui.token.value.trim();
}

/** `?backend=webgpu|wasm`, or a note saying why the value was ignored. */
function requestedBackend(): { backend?: Backend; note?: string } {
  const b = new URLSearchParams(location.search).get('backend');
  if (b === null || b === '') return {};
  if ((BACKENDS as readonly string[]).includes(b)) return { backend: b as Backend };
  return { note: `?backend must be one of ${BACKENDS.join(', ')}, got '${b}'; chose automatically` };
}

function setControls(enabled: boolean): void {
  for (const c of [ui.webcam, ui.file, ui.threshold, ui.server, ui.model]) c.disabled = !enabled;
}

async function loadModel(entry: ModelEntry): Promise<void> {
  setControls(false);
  ui.status.textContent = `loading ${entry.name}…`;
  const old = detector;
  detector = undefined;
  await old?.release();
  const bytes = await fetchModelBytes(entry.url, token());
  const requested = requestedBackend();
  const d = await BrowserDetector.create(entry, bytes, requested.backend);
  detector = d;
  state.model = entry;
  state.backend = d.backend;
  state.fallbacks = d.fallbacks;
  state.threads = d.threads;
  state.warmupMs = d.warmupMs;
  ui.backend.textContent =
    d.backend === 'wasm' ? `wasm (${d.threads} thread${d.threads > 1 ? 's' : ''})` : d.backend;
  ui.canvas.dataset.backend = d.backend;
  ui.threshold.value = String(entry.spec?.decode?.scoreThreshold ?? 0.3);
  const dropped = [
    ...(requested.note ? [requested.note] : []),
    ...d.fallbacks.map((f) => `${f.backend}: ${f.reason}`),
  ].join('; ');
  ui.status.textContent = `${entry.name} (${entry.outputs}, ${entry.precision}, ${entry.input.width}x${entry.input.height}) on ${d.backend}`;
  showNote(dropped ? `running on ${d.backend} (${dropped})` : '');
  setControls(true);
  if (still) await queueFrame(still, still.width, still.height, false);
}

async function init(): Promise<void> {
  ui.status.textContent = 'loading models…';
  models = await fetchModels(token());
  ui.model.replaceChildren(
    ...models.map((m, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = `${m.name} (${m.outputs})`;
      return o;
    }),
  );
  await loadModel(models[0]);
}

function start(): void {
  const p = init();
  state.ready = p;
  p.catch((e: unknown) => {
    ui.status.textContent = 'not ready';
    if (e instanceof ApiError && e.status === 401)
      showError(new Error(`${e.message}: enter the server's token above`));
    else showError(e);
  });
}

function label(classId: number, score: number, trackId?: number): string {
  const name = state.model?.classes[classId] ?? `class ${classId}`;
  return `${trackId !== undefined ? `#${trackId} ` : ''}${name} ${score.toFixed(2)}`;
}

/** Gives each detection the id of the track it matched (best IoU, same class). */
function withTracks(dets: Detection[]): DemoDetection[] {
  const tracks = tracker.update(dets, trackFrame++);
  return dets.map((d) => {
    let best: { id: number; iou: number } | undefined;
    for (const t of tracks) {
      if (t.classId !== d.classId) continue;
      const o = iou(t.box, d.box);
      if (o > 0.5 && (!best || o > best.iou)) best = { id: t.id, iou: o };
    }
    return { ...d, label: label(d.classId, d.score, best?.id), trackId: best?.id };
  });
}

function frameBlob(): Promise<Blob> {
  return new Promise((resolve, reject) =>
    ui.canvas.toBlob(
      (b) => (b ? resolve(b) : reject(new Error('cannot encode the frame as JPEG'))),
      'image/jpeg',
      0.92,
    ),
  );
}

function updateStats(f: DemoFrame): void {
  const now = performance.now();
  frameTimes.push(now);
  while (frameTimes.length > 30 || (frameTimes.length > 1 && now - frameTimes[0] > 5000)) frameTimes.shift();
  const fps = frameTimes.length > 1 ? ((frameTimes.length - 1) * 1000) / (now - frameTimes[0]) : undefined;
  const b = f.browserMs;
  ui.detections.textContent =
    f.serverDetections === undefined
      ? String(f.detections.length)
      : `${f.detections.length} (server ${f.serverDetections.length})`;
  ui.browserMs.textContent = `${b.inferMs.toFixed(1)} ms (total ${b.totalMs.toFixed(1)})`;
  ui.serverMs.textContent = f.serverMs
    ? `${f.serverMs.inferMs !== undefined ? `${f.serverMs.inferMs.toFixed(1)} ms` : '?'} (round trip ${f.serverMs.roundTripMs.toFixed(1)})`
    : '–';
  ui.fps.textContent = fps === undefined ? '–' : fps.toFixed(1);
  ui.frames.textContent = String(state.framesDrawn);
  const d = ui.canvas.dataset;
  d.frames = String(state.framesDrawn);
  d.detections = String(f.detections.length);
  d.serverDetections = f.serverDetections === undefined ? '' : String(f.serverDetections.length);
  d.boxesDrawn = String(f.boxesDrawn);
}

/** Draws one frame, detects on it (and on the server when asked) and draws the boxes. */
async function processFrame(
  src: CanvasImageSource,
  sw: number,
  sh: number,
  track: boolean,
): Promise<DemoFrame> {
  const d = detector;
  if (!d) throw new Error('the model is not loaded yet');
  if (ui.canvas.width !== sw || ui.canvas.height !== sh) {
    ui.canvas.width = sw;
    ui.canvas.height = sh;
  }
  view!.drawImage(src, 0, 0, sw, sh);
  const threshold = Math.min(1, Math.max(0, Number(ui.threshold.value) || 0));
  const maxDetections = d.model.spec?.decode?.topK ?? 100;
  // The canvas holds the bare frame now; toBlob copies it before the boxes are drawn.
  const server = ui.server.checked
    ? (async () => {
        const blob = await frameBlob();
        const t0 = performance.now();
        const r = await detectOnServer(blob, { threshold, maxDetections, token: token() });
        return { r, roundTripMs: performance.now() - t0 };
      })()
    : undefined;
  // Keep a failed server call from rejecting unobserved while the browser side runs.
  server?.catch(() => undefined);
  const t0 = performance.now();
  const b = await d.detect(src, sw, sh, { scoreThreshold: threshold, maxDetections });
  const totalMs = performance.now() - t0;
  const detections: DemoDetection[] = track
    ? withTracks(b.detections)
    : b.detections.map((x) => ({ ...x, label: label(x.classId, x.score) }));
  const frame: DemoFrame = {
    width: sw,
    height: sh,
    detections,
    browserMs: { ...b.timings, totalMs },
    boxesDrawn: 0,
  };
  if (server) {
    try {
      const { r, roundTripMs } = await server;
      frame.serverDetections = r.detections.map((x) => ({
        box: x.box,
        score: x.score,
        classId: x.class,
        label: `server ${x.label} ${x.score.toFixed(2)}`,
      }));
      const inferMs = r.timings?.inferMs;
      frame.serverMs = { roundTripMs, inferMs: typeof inferMs === 'number' ? inferMs : undefined };
    } catch (e) {
      showError(e);
    }
  }
  frame.boxesDrawn = drawBoxes(view!, frame.detections, BROWSER_COLOR);
  if (frame.serverDetections) frame.boxesDrawn += drawBoxes(view!, frame.serverDetections, SERVER_COLOR);
  state.framesDrawn++;
  state.boxesDrawn = frame.boxesDrawn;
  state.lastDetections = frame.detections;
  state.lastServerDetections = frame.serverDetections;
  state.lastFrame = frame;
  updateStats(frame);
  return frame;
}

/** Runs frames one after another: ORT sessions take one call at a time. */
function queueFrame(src: CanvasImageSource, sw: number, sh: number, track: boolean): Promise<DemoFrame> {
  const p = processing.catch(() => undefined).then(() => processFrame(src, sw, sh, track));
  processing = p.catch(() => undefined);
  return p;
}

function stopSources(): void {
  loopGen++;
  ui.video.pause();
  ui.video.removeAttribute('src');
  ui.video.srcObject = null;
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = undefined;
  for (const t of webcamStream?.getTracks() ?? []) t.stop();
  webcamStream = undefined;
  ui.webcam.textContent = 'Start webcam';
  still?.close();
  still = undefined;
  tracker = new ByteTracker({ minHits: 1 });
  trackFrame = 0;
  frameTimes.length = 0;
}

/** Detects on video frames as fast as the model allows; frames that arrive meanwhile are skipped. */
function runVideo(video: HTMLVideoElement): void {
  const gen = loopGen;
  const next = () => {
    if (gen !== loopGen) return;
    if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(() => void step());
    else requestAnimationFrame(() => void step());
  };
  const step = async () => {
    if (gen !== loopGen) return;
    try {
      if (video.readyState >= 2 && video.videoWidth > 0)
        await queueFrame(video, video.videoWidth, video.videoHeight, true);
    } catch (e) {
      showError(e);
      return;
    }
    next();
  };
  next();
}

async function showImage(blob: Blob): Promise<DemoFrame> {
  stopSources();
  // EXIF orientation is not applied, as on the server: boxes refer to the stored pixels.
  const bmp = await createImageBitmap(blob, {
    imageOrientation: 'none',
    colorSpaceConversion: 'none',
    premultiplyAlpha: 'none',
  });
  still = bmp;
  return queueFrame(bmp, bmp.width, bmp.height, false);
}

async function runImage(url: string): Promise<DemoFrame> {
  await state.ready;
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url} failed: HTTP ${res.status}`);
  return showImage(await res.blob());
}

async function playVideo(video: HTMLVideoElement): Promise<void> {
  video.muted = true;
  video.playsInline = true;
  await video.play();
  runVideo(video);
}

async function openFile(file: File): Promise<void> {
  if (file.type.startsWith('video/')) {
    stopSources();
    objectUrl = URL.createObjectURL(file);
    ui.video.loop = true;
    ui.video.src = objectUrl;
    await playVideo(ui.video);
  } else {
    await showImage(file);
  }
}

async function toggleWebcam(): Promise<void> {
  if (webcamStream) {
    stopSources();
    return;
  }
  if (!navigator.mediaDevices?.getUserMedia)
    throw new Error('this browser gives no camera access here (it needs https or localhost)');
  stopSources();
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: false,
  });
  webcamStream = stream;
  ui.webcam.textContent = 'Stop webcam';
  ui.video.loop = false;
  ui.video.srcObject = stream;
  await playVideo(ui.video);
}

ui.token.value = localStorage.getItem(TOKEN_KEY) ?? '';
const saveToken = () => {
  localStorage.setItem(TOKEN_KEY, token());
  if (!detector) start();
};
ui.token.addEventListener('change', saveToken);
el<HTMLFormElement>('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  saveToken();
});
ui.webcam.addEventListener('click', () => void toggleWebcam().catch(showError));
ui.file.addEventListener('change', () => {
  const f = ui.file.files?.[0];
  if (f) void openFile(f).catch(showError);
});
ui.model.addEventListener('change', () => {
  const m = models[Number(ui.model.value)];
  if (m) void loadModel(m).catch(showError);
});
const rerunStill = () => {
  if (still) void queueFrame(still, still.width, still.height, false).catch(showError);
};
ui.threshold.addEventListener('change', rerunStill);
ui.server.addEventListener('change', rerunStill);
setControls(false);
start();
