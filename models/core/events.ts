/**
 * Progress events that long jobs hand to an `onEvent` callback instead of printing.
 * cli.ts decides how to draw them (redrawn TTY line, or one line per epoch under CI).
 */

export type LossTerms = Record<string, number>;

export type ProgressEvent =
  | {
      kind: 'train-start';
      backend: string;
      workers: number;
      epochs: number;
      stepsPerEpoch: number;
      params: number;
    }
  | { kind: 'epoch-start'; epoch: number; epochs: number; steps: number }
  | {
      kind: 'batch-end';
      epoch: number;
      step: number;
      steps: number;
      globalStep: number;
      lr: number;
      losses: LossTerms;
      imagesPerSec: number;
    }
  | {
      kind: 'epoch-end';
      epoch: number;
      epochs: number;
      losses: LossTerms;
      seconds: number;
      eval?: Record<string, number>;
    }
  | { kind: 'eval-end'; epoch: number; metrics: Record<string, number> }
  | { kind: 'checkpoint'; path: string; epoch: number; reason: 'periodic' | 'final' | 'interrupt' }
  | { kind: 'skip'; what: string; reason: string }
  | { kind: 'train-done'; seconds: number; checkpoint: string }
  | { kind: 'export-op'; step: 'load' | 'build' | 'check' | 'verify' | 'convert' | 'write'; detail: string }
  | {
      kind: 'export-done';
      ok: boolean;
      seconds: number;
      /** Result line, as ultralytics' exporter logs it: `export onnx ok 2.3s ped-nano.onnx (1.9 MB)` or the failure. */
      line: string;
      model?: string;
      sizeBytes?: number;
    };
