/** The ablation report on hand-made numbers: spread maths, table contents, chart size. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import {
  ablationChartSvg,
  ablationMarkdown,
  metricValue,
  niceAxis,
  reportMetrics,
  spread,
  summarizeVariants,
  svgToPng,
  type AblationRun,
} from '../../train/ablate-report.js';

function run(variant: string, seed: number, ap50: number, over: Partial<AblationRun> = {}): AblationRun {
  return {
    name: `abl-${variant}-s${seed}`,
    variant,
    seed,
    status: 'done',
    metrics: { AP: ap50 / 2, AP50: ap50, APsmall: -1, MR2Reasonable: 0.4, MR2: 0.5 },
    trainSeconds: 10 + seed,
    seconds: 12 + seed,
    finalLosses: { total: 1.25, heatmap: 1, kd: 0.25 },
    lossesFinite: true,
    ...over,
  };
}

// no-kd: AP50 0.50 / 0.54 (mean 0.52, half-range 0.02); hpl: +0.05; hkd: +0.01.
const RUNS: AblationRun[] = [
  run('no-kd', 0, 0.5),
  run('no-kd', 1, 0.54),
  run('hpl', 0, 0.56),
  run('hpl', 1, 0.58),
  run('hkd', 0, 0.51),
  run('hkd', 1, 0.55),
  run('adversarial', 0, NaN, {
    status: 'failed',
    metrics: {},
    finalLosses: { total: NaN },
    lossesFinite: false,
    error: 'ERR_TRAIN_DIVERGED: loss became NaN',
  }),
];
const VARIANTS = ['no-kd', 'hpl', 'hkd', 'adversarial'];
const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);

describe('ablation summary maths', () => {
  test('spread gives mean and half of max - min over the finite values', () => {
    const s = spread([0.5, 0.7, NaN]);
    assert.equal(s.n, 2);
    close(s.mean, 0.6, 'mean');
    close(s.halfRange, 0.1, 'halfRange');
    assert.deepEqual(spread([]).n, 0);
    assert.ok(Number.isNaN(spread([NaN]).mean));
  });

  test('metricValue treats AP -1 and non-finite values as undefined', () => {
    assert.ok(Number.isNaN(metricValue({ APsmall: -1 }, 'APsmall')));
    assert.ok(Number.isNaN(metricValue({ MR2Reasonable: NaN }, 'MR2Reasonable')));
    assert.ok(Number.isNaN(metricValue({}, 'AP')));
    assert.equal(metricValue({ AP50: 0.25 }, 'AP50'), 0.25);
  });

  test('deltas of mean AP50 are judged against the baseline half-range', () => {
    const [base, hpl, hkd, adv] = summarizeVariants(RUNS, VARIANTS, 'no-kd');
    close(base.metrics.AP50.mean, 0.52, 'no-kd mean');
    close(base.baselineHalfRange, 0.02, 'no-kd half-range');
    assert.equal(base.beyondSpread, undefined);
    close(hpl.deltaAP50, 0.05, 'hpl delta');
    assert.equal(hpl.beyondSpread, true);
    close(hkd.deltaAP50, 0.01, 'hkd delta');
    assert.equal(hkd.beyondSpread, false);
    assert.equal(adv.failed, 1);
    assert.equal(adv.metrics.AP50.n, 0);
    assert.equal(adv.beyondSpread, undefined);
    assert.deepEqual(hpl.ap50BySeed, [
      { seed: 0, value: 0.56 },
      { seed: 1, value: 0.58 },
    ]);
    close(hpl.trainSeconds.mean, 10.5, 'train seconds');
  });

  test('with one seed the spread is not judged', () => {
    const [, hpl] = summarizeVariants([run('no-kd', 0, 0.5), run('hpl', 0, 0.6)], ['no-kd', 'hpl'], 'no-kd');
    close(hpl.deltaAP50, 0.1, 'delta');
    assert.ok(Number.isNaN(hpl.baselineHalfRange));
    assert.equal(hpl.beyondSpread, undefined);
  });

  test('niceAxis rounds up to a whole number of readable steps', () => {
    assert.deepEqual(niceAxis(0.58), { max: 0.7, step: 0.1 });
    assert.deepEqual(niceAxis(0.93), { max: 1, step: 0.2 });
    assert.deepEqual(niceAxis(0.031), { max: 0.04, step: 0.01 });
    assert.deepEqual(niceAxis(0), { max: 0.1, step: 0.02 });
  });
});

describe('ablationMarkdown', () => {
  const md = ablationMarkdown(RUNS, {
    title: 'KD ablation: test',
    baseline: 'no-kd',
    variants: VARIANTS,
    seeds: [0, 1],
    notes: ['Budget per run: 1 epoch.'],
    chart: 'ablation.png',
  });
  const lines = md.split('\n');

  test('has a row per run and a mean ± half-range row per variant', () => {
    assert.ok(lines.includes('# KD ablation: test'));
    assert.ok(md.includes('6 of 8 runs done'));
    assert.ok(lines.includes('| no-kd | 0 | 0.250 | 0.500 | n/a | 0.400 | 10.0 | 1.2500 | yes |'), md);
    assert.ok(lines.includes('| no-kd | 1 | 0.270 | 0.540 | n/a | 0.400 | 11.0 | 1.2500 | yes |'), md);
    assert.ok(
      lines.includes(
        '| **no-kd** | mean ± ½range | 0.260 ± 0.010 | 0.520 ± 0.020 | n/a | 0.400 ± 0.000 | 10.5 ± 0.5 | | |',
      ),
      md,
    );
    assert.ok(md.includes('| MR⁻² (Reasonable) ↓ |'));
    assert.ok(md.includes('`MR2Reasonable`'));
    assert.ok(/\| adversarial \| 0 \|.*failed: ERR_TRAIN_DIVERGED/.test(md));
  });

  test('states each delta against the no-kd seed spread', () => {
    assert.ok(
      lines.includes('| hpl | 0.570 ± 0.010 | +0.050 | 0.020 | larger than the seed spread (better) |'),
      md,
    );
    assert.ok(lines.includes('| hkd | 0.530 ± 0.020 | +0.010 | 0.020 | within the seed spread |'), md);
    assert.ok(lines.includes('| no-kd | 0.520 ± 0.020 | — | 0.020 | baseline |'), md);
    assert.ok(lines.includes('| adversarial | n/a | n/a | 0.020 | no result |'), md);
  });

  test('lists the final-epoch loss terms of every run with a finite flag', () => {
    assert.ok(lines.includes('| run | total | heatmap | kd | finite |'), md);
    assert.ok(lines.includes('| abl-hpl-s0 | 1.2500 | 1.0000 | 0.2500 | yes |'), md);
    assert.ok(lines.includes('| abl-adversarial-s0 | n/a |  |  | **no** |'), md);
    assert.ok(lines.includes('![AP50 per variant](ablation.png)'));
  });
});

describe('MR⁻² column', () => {
  test('uses the Reasonable subset, or all heights when no run has a Reasonable figure', () => {
    assert.equal(reportMetrics(RUNS)[3].key, 'MR2Reasonable');
    const small = [
      run('no-kd', 0, 0.5, { metrics: { AP: 0.2, AP50: 0.5, APsmall: 0.1, MR2: 0.7, MR2Reasonable: NaN } }),
    ];
    const m = reportMetrics(small);
    assert.deepEqual(
      m.map((x) => x.key),
      ['AP', 'AP50', 'APsmall', 'MR2'],
    );
    const md = ablationMarkdown(small, { title: 't', baseline: 'no-kd', variants: ['no-kd'], seeds: [0] });
    assert.ok(md.includes('| MR⁻² (all, h ≥ 20 px) ↓ |'), md);
    assert.ok(md.includes('| no-kd | 0 | 0.200 | 0.500 | 0.100 | 0.700 |'), md);
  });
});

describe('ablation chart', () => {
  test('renders a PNG of the requested size with the variants and axis labels', async () => {
    const summaries = summarizeVariants(RUNS, VARIANTS, 'no-kd');
    const svg = ablationChartSvg(summaries, {
      title: 'AP50 <per> variant',
      baseline: 'no-kd',
      width: 640,
      height: 400,
    });
    for (const s of [
      '>hpl<',
      '>hkd<',
      'AP50 on the held-out set',
      'variant (bar = mean',
      '0.570±0.010',
      'AP50 &lt;per&gt;',
    ])
      assert.ok(svg.includes(s), s);
    const png = await svgToPng(svg);
    const meta = await sharp(png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 640, 400]);
  });

  test('sizes itself to the number of variants by default', async () => {
    const many = Array.from({ length: 7 }, (_, i) => `v${i}`);
    const svg = ablationChartSvg(summarizeVariants([run('v0', 0, 0.3)], many, 'v0'), { title: 't' });
    const meta = await sharp(await svgToPng(svg)).metadata();
    assert.deepEqual([meta.width, meta.height], [120 + 96 * 7, 440]);
  });
});
