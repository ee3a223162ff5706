/**
 * The benchmark report: the JSON (schema xvgpu-bench/1, documented in docs/benchmarks.md), a
 * Markdown summary, and an HTML page whose plots are also written as PNG (rsvg-convert, Debian's
 * librsvg2-bin) so they can be read without a browser.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatFloor } from './floor.js';
import { lineChart, type Series } from './svg.js';
import { SCALING_STRATEGIES, SCALING_VCPUS, STRATEGIES, XVGPU, type BenchReport, type ScenarioResult } from './suite.js';

const us = (ns: number): string => (ns / 1000).toFixed(1);
const ms = (ns: number): string => (ns / 1e6).toFixed(1);

function med(s: ScenarioResult | undefined, key: string): number {
  return s?.aggregate[key]?.median ?? 0;
}

function spread(s: ScenarioResult | undefined, key: string, f: (n: number) => string): string {
  const a = s?.aggregate[key];
  if (!a) return '–';
  return a.min === a.max ? f(a.median) : `${f(a.median)} (${f(a.min)}–${f(a.max)})`;
}

function find(r: BenchReport, workload: string, strategy: string): ScenarioResult | undefined {
  return r.scenarios.find((s) => s.workload === workload && s.strategy === strategy);
}

export function markdown(r: BenchReport): string {
  const wl = [...new Set(r.scenarios.map((s) => s.workload))].filter((w) => !w.startsWith('scaling'));
  const lines: string[] = [
    `# xvgpu benchmark ${r.quick ? '(quick)' : ''}`,
    '',
    `${r.created} · \`${r.command}\` · ${r.repeats} run(s) per scenario, median (min–max)`,
    '',
    `Machine: ${r.machine.cpus} × ${r.machine.cpu_model}, ${r.machine.memory_gib} GiB, Node ${r.machine.node}, Linux ${r.machine.kernel}. ${r.machine.note}`,
    '',
    '## Headline ratios (sequential sweep of a 64 MiB blob)',
    '',
    `- xvgpu (\`${XVGPU}\`) fault p50 / transport floor p50 (waiter → JS → back, one CPU): **${r.ratios.fault_p50_over_floor_p50}×** (unpinned floor: ${r.ratios.fault_p50_over_floor_unpinned_p50}×)`,
    `- emulate-all time / xvgpu time to touch the blob: **${r.ratios.emulate_all_time_over_fault_time}×**`,
    `- eager time / xvgpu time: ${r.ratios.eager_time_over_fault_time}×`,
    `- correctness over every run: stale_accesses ${r.correctness.stale_accesses}, integrity_errors ${r.correctness.integrity_errors}, guest_crashes ${r.correctness.guest_crashes}`,
    '',
  ];
  for (const w of wl) {
    lines.push(`## ${w}`, '', '| strategy | fault p50 µs | fault p99 µs | exits/MiB | first access µs | sweep ms | accesses/s | stall ms/s | revoke p50 µs | revokes |', '|---|---|---|---|---|---|---|---|---|---|');
    for (const st of STRATEGIES) {
      const s = find(r, w, st.name);
      if (!s) continue;
      lines.push(`| ${st.name} | ${spread(s, 'fault_ns.p50', us)} | ${spread(s, 'fault_ns.p99', us)} | ${spread(s, 'exits_per_mib', (n) => n.toFixed(1))} | ${spread(s, 'first_access_ns', us)} | ${w.startsWith('sweep') ? spread(s, 'sweep_ns', ms) : '–'} | ${spread(s, 'accesses_per_s', (n) => n.toFixed(0))} | ${spread(s, 'stall_ms_per_s', (n) => n.toFixed(0))} | ${spread(s, 'revoke_ns.p50', us)} | ${spread(s, 'revokes', (n) => n.toFixed(0))} |`);
    }
    lines.push('');
  }
  lines.push('## vCPU scaling (random touches, accesses/s)', '', `| strategy | ${SCALING_VCPUS.map((v) => `${v} vCPU`).join(' | ')} |`, `|---|${SCALING_VCPUS.map(() => '---').join('|')}|`);
  for (const st of SCALING_STRATEGIES) lines.push(`| ${st} | ${SCALING_VCPUS.map((v) => spread(find(r, `scaling-${v}vcpu`, st), 'accesses_per_s', (n) => n.toFixed(0))).join(' | ')} |`);
  lines.push('', '## Transport floor', '', '```', formatFloor(r.floor), '```', '');
  lines.push('Plots: `fault-cdf.png`, `throughput-vcpus.png`, `exits-fault-around.png` (and the same in `index.html`).', '');
  return lines.join('\n');
}

export function charts(r: BenchReport): Record<string, string> {
  const cdfSeries: Series[] = STRATEGIES.map((st) => ({ name: st.name, points: (find(r, 'hotset-evict', st.name)?.fault_cdf ?? []).map(([p, ns]) => [ns / 1000, p] as const) }));
  const scaling: Series[] = SCALING_STRATEGIES.map((st) => ({ name: st, points: SCALING_VCPUS.map((v) => [v, med(find(r, `scaling-${v}vcpu`, st), 'accesses_per_s')] as const) }));
  const exits: Series[] = (['retry', 'emulate'] as const).map((mode) => ({ name: `fault-${mode}`, points: [1, 16, 512].map((fa) => [fa, med(find(r, 'sweep-64MiB', `fault-${mode}-${fa}`), 'exits_per_mib')] as const) }));
  const flat = (name: string): Series => ({ name, points: [1, 16, 512].map((fa) => [fa, med(find(r, 'sweep-64MiB', name), 'exits_per_mib')] as const) });
  return {
    'fault-cdf': lineChart({ title: 'Guest-visible fault latency CDF (hot set under eviction)', xLabel: 'latency (µs, log)', yLabel: 'percentile', series: cdfSeries, logX: true }),
    'throughput-vcpus': lineChart({ title: 'Throughput vs vCPUs (random touches)', xLabel: 'vCPUs', yLabel: 'guest accesses / s', series: scaling, logY: true, xTicks: SCALING_VCPUS }),
    'exits-fault-around': lineChart({ title: 'Exits per MiB vs fault-around (64 MiB sweep)', xLabel: 'fault-around pages (log)', yLabel: 'exits / MiB (log)', series: [...exits, flat('emulate-all'), flat('eager')], logX: true, logY: true, xTicks: [1, 16, 512] }),
  };
}

export function html(r: BenchReport, svgs: Record<string, string>): string {
  const md = markdown(r).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<!doctype html><html><head><meta charset="utf-8"><title>xvgpu benchmark</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}pre{white-space:pre-wrap;font-size:12px}</style></head><body>
<h1>xvgpu benchmark</h1>
${Object.values(svgs).join('\n')}
<pre>${md}</pre>
</body></html>
`;
}

/** Writes report.json, summary.md, index.html and one SVG + PNG per plot into `dir`. */
export function writeReport(r: BenchReport, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const svgs = charts(r);
  const files = [join(dir, 'report.json'), join(dir, 'summary.md'), join(dir, 'index.html')];
  writeFileSync(files[0] ?? '', `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(files[1] ?? '', markdown(r));
  writeFileSync(files[2] ?? '', html(r, svgs));
  for (const [name, svg] of Object.entries(svgs)) {
    const svgPath = join(dir, `${name}.svg`);
    const pngPath = join(dir, `${name}.png`);
    writeFileSync(svgPath, svg);
    try {
      execFileSync('rsvg-convert', ['-o', pngPath, svgPath]);
    } catch (e) {
      throw new Error(`rendering ${name}.png needs rsvg-convert (Debian: librsvg2-bin): ${(e as Error).message.split('\n')[0] ?? ''}`, { cause: e });
    }
    files.push(svgPath, pngPath);
  }
  return files;
}
