/**
 * The report of `edgekd ablate`: a markdown table of per-seed results with mean ± half-range per
 * variant, the AP50 change of each variant against the no-KD baseline set beside the baseline's own
 * seed spread, the final-epoch loss terms of every run, and a bar chart (SVG, rasterised to PNG by
 * sharp). Pure functions on numbers; only {@link svgToPng} touches a library (no files).
 */
import sharp from 'sharp';

/** One finished (or failed) training run of the ablation. */
export interface AblationRun {
  /** Run name, e.g. `ablate-hpl-s0`. */
  name: string;
  variant: string;
  seed: number;
  status: 'done' | 'failed';
  /** Final eval metrics on the held-out set (NaN / -1 = undefined for that set). */
  metrics: Record<string, number>;
  /** Seconds spent in training steps (epoch start to last step), without eval and checkpoints. */
  trainSeconds: number;
  /** Wall time of the whole run, eval included. */
  seconds: number;
  /** Mean loss terms of the last epoch. */
  finalLosses: Record<string, number>;
  /** Every final loss term is finite (and there is at least one). */
  lossesFinite: boolean;
  error?: string;
}

/** A column of the results table: which metric key of `evaluateModel`'s record, and how to show it. */
export interface ReportMetric {
  key: string;
  label: string;
  higherIsBetter: boolean;
}

/**
 * The reported metrics: COCO AP, AP50, AP-small, and the pedestrian-standard log-average miss
 * rate MR⁻² on the Caltech/CityPersons "Reasonable" subset (height >= 50 px, FPPI 1e-2..1).
 */
export const REPORT_METRICS: readonly ReportMetric[] = Object.freeze([
  { key: 'AP', label: 'AP', higherIsBetter: true },
  { key: 'AP50', label: 'AP50', higherIsBetter: true },
  { key: 'APsmall', label: 'AP-small', higherIsBetter: true },
  { key: 'MR2Reasonable', label: 'MR⁻² (Reasonable) ↓', higherIsBetter: false },
]);

/** MR⁻² over every pedestrian >= 20 px tall: used when no run has a Reasonable (>= 50 px) figure. */
const MR2_ALL: ReportMetric = { key: 'MR2', label: 'MR⁻² (all, h ≥ 20 px) ↓', higherIsBetter: false };

/**
 * The columns for these runs: {@link REPORT_METRICS}, except that MR⁻² falls back from the
 * Reasonable subset to all heights (`MR2`) when the held-out set has no Reasonable-sized person
 * (small-object sets), so the column says something; the header names the key used.
 */
export function reportMetrics(runs: readonly AblationRun[]): ReportMetric[] {
  const anyReasonable = runs.some((r) => Number.isFinite(metricValue(r.metrics, 'MR2Reasonable')));
  const anyAll = runs.some((r) => Number.isFinite(metricValue(r.metrics, 'MR2')));
  return REPORT_METRICS.map((m) => (m.key === 'MR2Reasonable' && !anyReasonable && anyAll ? MR2_ALL : m));
}

/** Mean and spread of a few numbers (one per seed); NaN when none is finite. */
export interface Spread {
  /** Number of finite values. */
  n: number;
  mean: number;
  min: number;
  max: number;
  /** (max - min) / 2: with 2 seeds, the distance of each seed from the mean. */
  halfRange: number;
}

/** The value as a metric: AP-style -1 ("no ground truth of that kind") and non-finite become NaN. */
export function metricValue(metrics: Record<string, number>, key: string): number {
  const v = metrics[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) return NaN;
  return key.startsWith('AP') && v < 0 ? NaN : v;
}

/** Mean, min, max and half-range of the finite values. */
export function spread(values: readonly number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { n: 0, mean: NaN, min: NaN, max: NaN, halfRange: NaN };
  const min = Math.min(...v);
  const max = Math.max(...v);
  return { n: v.length, mean: v.reduce((a, b) => a + b, 0) / v.length, min, max, halfRange: (max - min) / 2 };
}

/** Per-variant aggregate over seeds. */
export interface VariantSummary {
  variant: string;
  seeds: number[];
  /** Runs that failed (not in the aggregates). */
  failed: number;
  metrics: Record<string, Spread>;
  /** AP50 of each done run, by seed (NaN where undefined). */
  ap50BySeed: { seed: number; value: number }[];
  trainSeconds: Spread;
  /** Mean AP50 of this variant minus mean AP50 of the baseline (NaN without a baseline). */
  deltaAP50: number;
  /** The baseline's AP50 half-range over seeds (NaN with fewer than 2 baseline seeds). */
  baselineHalfRange: number;
  /**
   * `|deltaAP50| > baselineHalfRange`: the change is larger than the baseline's seed-to-seed
   * spread. Undefined when it cannot be judged (baseline itself, < 2 seeds, missing numbers).
   */
  beyondSpread?: boolean;
}

/**
 * Aggregates the done runs per variant, in `variants` order.
 * @param baseline - variant the deltas are taken against (normally `no-kd`)
 */
export function summarizeVariants(
  runs: readonly AblationRun[],
  variants: readonly string[],
  baseline: string,
  metrics: readonly ReportMetric[] = REPORT_METRICS,
): VariantSummary[] {
  const done = (v: string) => runs.filter((r) => r.variant === v && r.status === 'done');
  const base = spread(done(baseline).map((r) => metricValue(r.metrics, 'AP50')));
  return variants.map((variant) => {
    const rs = done(variant);
    const m: Record<string, Spread> = {};
    for (const k of new Set([...metrics.map((x) => x.key), 'AP50']))
      m[k] = spread(rs.map((r) => metricValue(r.metrics, k)));
    const delta = m.AP50.mean - base.mean;
    const baselineHalfRange = base.n >= 2 ? base.halfRange : NaN;
    const s: VariantSummary = {
      variant,
      seeds: rs.map((r) => r.seed).sort((a, b) => a - b),
      failed: runs.filter((r) => r.variant === variant && r.status === 'failed').length,
      metrics: m,
      ap50BySeed: rs
        .map((r) => ({ seed: r.seed, value: metricValue(r.metrics, 'AP50') }))
        .sort((a, b) => a.seed - b.seed),
      trainSeconds: spread(rs.map((r) => r.trainSeconds)),
      deltaAP50: delta,
      baselineHalfRange,
    };
    if (variant !== baseline && Number.isFinite(delta) && Number.isFinite(baselineHalfRange))
      s.beyondSpread = Math.abs(delta) > baselineHalfRange;
    return s;
  });
}

const num = (v: number, digits = 3) => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const signed = (v: number, digits = 3) =>
  Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(digits)}` : 'n/a';
const pm = (s: Spread, digits = 3) =>
  s.n === 0
    ? 'n/a'
    : s.n === 1
      ? num(s.mean, digits)
      : `${num(s.mean, digits)} ± ${num(s.halfRange, digits)}`;
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** What the report says about the setup, above the tables. */
export interface AblationReportMeta {
  title: string;
  /** Variant the deltas are taken against. */
  baseline: string;
  /** Variants in display order. */
  variants: string[];
  seeds: number[];
  /** Free lines describing the budget, data and held-out set (markdown). */
  notes?: string[];
  /** File name of the chart beside the markdown, linked when given. */
  chart?: string;
  /** ISO date of the report. */
  generatedAt?: string;
}

/**
 * Renders the markdown report: per-seed table with a mean ± half-range row per variant, the
 * AP50-vs-baseline table, and the final-epoch loss terms of every run.
 */
export function ablationMarkdown(runs: readonly AblationRun[], meta: AblationReportMeta): string {
  const metrics = reportMetrics(runs);
  const mr = metrics.find((m) => m.key.startsWith('MR2'));
  const summaries = summarizeVariants(runs, meta.variants, meta.baseline, metrics);
  const out: string[] = [`# ${meta.title}`, ''];
  const planned = meta.variants.length * meta.seeds.length;
  const done = runs.filter((r) => r.status === 'done').length;
  out.push(
    `${done} of ${planned} runs done (${meta.variants.length} variants × seeds ${meta.seeds.join(', ')})` +
      `${meta.generatedAt ? `, ${meta.generatedAt}` : ''}.`,
  );
  for (const n of meta.notes ?? []) out.push(`- ${n}`);
  out.push(
    `- Metric keys: ${metrics.map((m) => `\`${m.key}\``).join(', ')} (all in 0..1); MR⁻² is the log-average miss ` +
      `rate over FPPI 1e-2..1 ${
        mr?.key === 'MR2'
          ? 'over every person ≥ 20 px tall (`MR2`: the held-out set has no Reasonable-sized, ≥ 50 px, person)'
          : 'on the Reasonable subset (height ≥ 50 px)'
      }, lower is better. ` +
      '"mean ± ½range" = mean over seeds ± half of (max − min); n/a = undefined on this held-out set.',
  );
  out.push('', '## Results per seed', '');
  out.push(
    `| variant | seed | ${metrics.map((m) => m.label).join(' | ')} | train time (s) | final loss | losses finite |`,
  );
  out.push(`|---|---|${metrics.map(() => '---:').join('|')}|---:|---:|:---:|`);
  for (const s of summaries) {
    const rs = runs.filter((r) => r.variant === s.variant).sort((a, b) => a.seed - b.seed);
    for (const r of rs) {
      if (r.status === 'failed') {
        out.push(
          `| ${cell(s.variant)} | ${r.seed} | ${metrics.map(() => '—').join(' | ')} | — | — | failed: ${cell(r.error ?? 'unknown error')} |`,
        );
        continue;
      }
      out.push(
        `| ${cell(s.variant)} | ${r.seed} | ${metrics.map((m) => num(metricValue(r.metrics, m.key))).join(' | ')} | ` +
          `${num(r.trainSeconds, 1)} | ${num(r.finalLosses.total ?? NaN, 4)} | ${r.lossesFinite ? 'yes' : '**no**'} |`,
      );
    }
    if (s.seeds.length > 0)
      out.push(
        `| **${cell(s.variant)}** | mean ± ½range | ${metrics.map((m) => pm(s.metrics[m.key])).join(' | ')} | ` +
          `${pm(s.trainSeconds, 1)} | | |`,
      );
  }
  out.push('', `## AP50 against ${meta.baseline}`, '');
  out.push(
    `| variant | AP50 mean ± ½range | ΔAP50 vs ${cell(meta.baseline)} | ${cell(meta.baseline)} seed spread (½range) | verdict |`,
  );
  out.push('|---|---:|---:|---:|---|');
  for (const s of summaries) {
    let verdict: string;
    if (s.variant === meta.baseline) verdict = 'baseline';
    else if (s.metrics.AP50.n === 0) verdict = 'no result';
    else if (!Number.isFinite(s.deltaAP50)) verdict = `n/a (no ${meta.baseline} result)`;
    else if (s.beyondSpread === undefined) verdict = 'n/a (needs ≥ 2 seeds)';
    else
      verdict = s.beyondSpread
        ? `larger than the seed spread (${s.deltaAP50 > 0 ? 'better' : 'worse'})`
        : 'within the seed spread';
    out.push(
      `| ${cell(s.variant)} | ${pm(s.metrics.AP50)} | ${s.variant === meta.baseline ? '—' : signed(s.deltaAP50)} | ` +
        `${num(s.baselineHalfRange)} | ${verdict} |`,
    );
  }
  const lossKeys = [...new Set(runs.flatMap((r) => Object.keys(r.finalLosses)))];
  lossKeys.sort((a, b) => (a === 'total' ? -1 : b === 'total' ? 1 : 0));
  out.push('', '## Final-epoch loss terms', '');
  if (lossKeys.length === 0) out.push('No run has finished an epoch yet.');
  else {
    out.push(`| run | ${lossKeys.map(cell).join(' | ')} | finite |`);
    out.push(`|---|${lossKeys.map(() => '---:').join('|')}|:---:|`);
    for (const r of runs)
      out.push(
        `| ${cell(r.name)} | ${lossKeys.map((k) => (k in r.finalLosses ? num(r.finalLosses[k], 4) : '')).join(' | ')} | ` +
          `${r.lossesFinite ? 'yes' : '**no**'} |`,
      );
  }
  if (meta.chart) out.push('', `![AP50 per variant](${meta.chart})`);
  out.push('');
  return out.join('\n');
}

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * A readable value axis from 0: the smallest top at or above `v` (plus 8% headroom, capped at 1)
 * that is a whole number of "nice" steps (0.01, 0.02, 0.05, 0.1, 0.2, 0.25), with at most 8 steps.
 */
export function niceAxis(v: number): { max: number; step: number } {
  if (!(v > 0)) return { max: 0.1, step: 0.02 };
  for (const step of [0.01, 0.02, 0.05, 0.1, 0.2, 0.25]) {
    const top = Math.ceil((Math.min(v, 1) * 1.08) / step) * step;
    if (top / step <= 8) return { max: Number(Math.min(1, top).toFixed(4)), step };
  }
  return { max: 1, step: 0.25 };
}

/** Size and labels of {@link ablationChartSvg}. */
export interface ChartOptions {
  title: string;
  baseline?: string;
  width?: number;
  height?: number;
}

/**
 * Bar chart of AP50 per variant: the bar is the mean over seeds (value printed above it), the
 * whisker spans min..max over seeds, dots are the individual seeds; a dashed line marks the
 * baseline's mean. Axes are labelled.
 * @returns an SVG document, `width x height` pixels.
 */
export function ablationChartSvg(summaries: readonly VariantSummary[], opts: ChartOptions): string {
  const n = Math.max(1, summaries.length);
  const width = opts.width ?? Math.max(560, 120 + 96 * n);
  const height = opts.height ?? 440;
  const left = 72;
  const right = 24;
  const top = 56;
  const bottom = 96;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const ap = (s: VariantSummary) => s.metrics.AP50;
  const maxV = Math.max(0, ...summaries.map((s) => (ap(s).n ? ap(s).max : 0)));
  const axis = niceAxis(maxV);
  const yMax = axis.max;
  const y = (v: number) => top + plotH * (1 - Math.min(Math.max(v, 0), yMax) / yMax);
  const slot = plotW / n;
  const barW = Math.min(56, slot * 0.6);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="28" font-size="17" font-weight="bold" text-anchor="middle">${esc(opts.title)}</text>`,
  );
  // Grid and y ticks.
  const ticks = Math.round(yMax / axis.step);
  for (let i = 0; i <= ticks; i++) {
    const v = (yMax * i) / ticks;
    const yy = y(v).toFixed(1);
    parts.push(
      `<line x1="${left}" y1="${yy}" x2="${width - right}" y2="${yy}" stroke="${i === 0 ? '#333' : '#e3e3e3'}" stroke-width="1"/>`,
      `<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" font-size="12" text-anchor="end">${v.toFixed(axis.step === 0.1 || axis.step === 0.2 ? 1 : 2)}</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333" stroke-width="1"/>`,
    `<text x="18" y="${top + plotH / 2}" font-size="13" text-anchor="middle" transform="rotate(-90 18 ${top + plotH / 2})">AP50 on the held-out set</text>`,
    `<text x="${left + plotW / 2}" y="${height - 14}" font-size="13" text-anchor="middle">variant (bar = mean over seeds, whisker = min–max, dots = seeds)</text>`,
  );
  const base = summaries.find((s) => s.variant === opts.baseline);
  summaries.forEach((s, i) => {
    const cx = left + slot * (i + 0.5);
    const a = ap(s);
    const isBase = s.variant === opts.baseline;
    if (a.n > 0) {
      const yb = y(a.mean);
      parts.push(
        `<rect x="${(cx - barW / 2).toFixed(1)}" y="${yb.toFixed(1)}" width="${barW.toFixed(1)}" height="${(top + plotH - yb).toFixed(1)}" fill="${isBase ? '#9aa5b1' : '#3b7dd8'}"/>`,
      );
      if (a.n > 1) {
        const y1 = y(a.min).toFixed(1);
        const y2 = y(a.max).toFixed(1);
        parts.push(
          `<line x1="${cx}" y1="${y1}" x2="${cx}" y2="${y2}" stroke="#222" stroke-width="1.5"/>`,
          `<line x1="${cx - 8}" y1="${y1}" x2="${cx + 8}" y2="${y1}" stroke="#222" stroke-width="1.5"/>`,
          `<line x1="${cx - 8}" y1="${y2}" x2="${cx + 8}" y2="${y2}" stroke="#222" stroke-width="1.5"/>`,
        );
      }
      s.ap50BySeed.forEach((p, k) => {
        if (!Number.isFinite(p.value)) return;
        const dx = s.ap50BySeed.length > 1 ? (k / (s.ap50BySeed.length - 1) - 0.5) * barW * 0.5 : 0;
        parts.push(
          `<circle cx="${(cx + dx).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="3.5" fill="#f59e0b" stroke="#222" stroke-width="0.8"/>`,
        );
      });
      const label = a.n > 1 ? `${a.mean.toFixed(3)}±${a.halfRange.toFixed(3)}` : a.mean.toFixed(3);
      parts.push(
        `<text x="${cx}" y="${(y(a.max) - 8).toFixed(1)}" font-size="11" text-anchor="middle">${esc(label)}</text>`,
      );
    } else {
      parts.push(`<text x="${cx}" y="${top + plotH - 6}" font-size="11" text-anchor="middle">n/a</text>`);
    }
    parts.push(
      `<text x="${cx}" y="${top + plotH + 18}" font-size="12" text-anchor="middle">${esc(s.variant)}</text>`,
    );
    if (!isBase && Number.isFinite(s.deltaAP50))
      parts.push(
        `<text x="${cx}" y="${top + plotH + 34}" font-size="11" text-anchor="middle" fill="${s.deltaAP50 >= 0 ? '#1a7f37' : '#b42318'}">Δ ${esc(signed(s.deltaAP50))}</text>`,
      );
  });
  if (base && base.metrics.AP50.n > 0) {
    const yb = y(base.metrics.AP50.mean).toFixed(1);
    parts.push(
      `<line x1="${left}" y1="${yb}" x2="${width - right}" y2="${yb}" stroke="#666" stroke-width="1" stroke-dasharray="5 4"/>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** Rasterises an SVG document to PNG (sharp/librsvg, 72 dpi: 1 SVG px = 1 PNG px). */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg, 'utf8')).png().toBuffer();
}
