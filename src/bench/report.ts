/**
 * The benchmark report: the JSON (schema xvgpu-bench/2, documented in docs/benchmarks.md), a
 * Markdown summary, and an HTML page whose plots are also written as PNG (rsvg-convert, Debian's
 * librsvg2-bin) so they can be read without a browser.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatFloor } from './floor.js';
import { xenMarkdown } from './xen.js';
import { lineChart, type Series } from './svg.js';
import { SCALING_STRATEGIES, SCALING_VCPUS, STRATEGIES, XVGPU, type BenchReport, type ScenarioResult, type SweepRatios } from './suite.js';

const us = (ns: number): string => (ns / 1000).toFixed(1);
const ms = (ns: number): string => (ns / 1e6).toFixed(1);
const int = (n: number): string => n.toFixed(0);
const fixed = (digits: number) => (n: number): string => n.toFixed(digits);

function med(s: ScenarioResult | undefined, key: string): number | null {
  return s?.aggregate[key]?.median ?? null;
}

/** median (min–max) over the runs that measured it; '–' when none did (the reason is listed under the table). */
function spread(s: ScenarioResult | undefined, key: string, f: (n: number) => string): string {
  const a = s?.aggregate[key];
  if (!a) return '–';
  const total = s.runs.length;
  const partial = a.runs < total ? ` [${a.runs}/${total} runs]` : '';
  return (a.min === a.max ? f(a.median) : `${f(a.median)} (${f(a.min)}–${f(a.max)})`) + partial;
}

function find(r: BenchReport, workload: string, strategy: string): ScenarioResult | undefined {
  return r.scenarios.find((s) => s.workload === workload && s.strategy === strategy);
}

const fmtRatio = (v: number | null, reasons: Record<string, string>, field: string): string => (v === null ? `null (${reasons[field] ?? 'no reason recorded'})` : `${v}×`);

function ratioLines(t: SweepRatios, bold: boolean): string[] {
  const b = (x: string): string => (bold ? `**${x}**` : x);
  const n = t.null_reasons;
  return [
    `- emulate-all time / xvgpu time: ${b(fmtRatio(t.emulate_all_time_over_fault_time, n, 'emulate_all_time_over_fault_time'))}`,
    `- eager time / xvgpu time: ${fmtRatio(t.eager_time_over_fault_time, n, 'eager_time_over_fault_time')}`,
    `- xvgpu fault p50 / floor p50 (same run, same exit and wakes to a handler that does nothing): ${b(fmtRatio(t.fault_p50_over_floor_p50, n, 'fault_p50_over_floor_p50'))}`,
    `- context: xvgpu fault p50 / waiter floor p50 (native thread → TSFN → JS → back): one CPU ${fmtRatio(t.fault_p50_over_waiter_same_cpu_p50, n, 'fault_p50_over_waiter_same_cpu_p50')}, unpinned ${fmtRatio(t.fault_p50_over_waiter_unpinned_p50, n, 'fault_p50_over_waiter_unpinned_p50')}`,
  ];
}

const COLUMNS: { head: string; key: string; f: (n: number) => string; sweepOnly?: boolean; timedOnly?: boolean }[] = [
  { head: 'fault p50 µs', key: 'fault_ns.p50', f: us },
  { head: 'fault p99 µs', key: 'fault_ns.p99', f: us },
  { head: 'floor p50 µs', key: 'floor_ns.p50', f: us },
  { head: 'fault/floor p50', key: 'fault_over_floor_p50', f: fixed(2) },
  { head: 'exits/MiB', key: 'exits_per_mib', f: fixed(1) },
  { head: 'first access µs', key: 'first_access_ns', f: us },
  { head: 'sweep ms', key: 'sweep_ns', f: ms, sweepOnly: true },
  { head: 'MiB/s', key: 'sweep_mib_per_s', f: fixed(2), sweepOnly: true },
  { head: 'accesses/s', key: 'accesses_per_s', f: int, timedOnly: true },
  { head: 'stall ms/s', key: 'stall_ms_per_s', f: int },
  { head: 'revoke p50 µs', key: 'revoke_ns.p50', f: us, timedOnly: true },
  { head: 'revokes', key: 'revokes', f: int, timedOnly: true },
];

function workloadTable(r: BenchReport, workload: string): string[] {
  const sweep = r.scenarios.find((s) => s.workload === workload)?.pattern.startsWith('sweep') === true;
  const cols = COLUMNS.filter((c) => (sweep ? c.timedOnly !== true : c.sweepOnly !== true));
  const lines = [`## ${workload}`, '', `| strategy | ${cols.map((c) => c.head).join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`];
  const nulls: string[] = [];
  for (const st of STRATEGIES) {
    const s = find(r, workload, st.name);
    if (!s) continue;
    lines.push(`| ${st.name} | ${cols.map((c) => spread(s, c.key, c.f)).join(' | ')} |`);
    for (const [k, why] of Object.entries(s.null_reasons)) if (cols.some((c) => c.key === k || c.key.startsWith(`${k}.`))) nulls.push(`${st.name} ${k}: ${why}`);
  }
  if (nulls.length > 0) lines.push('', `– is null: ${nulls.join('; ')}.`);
  lines.push('');
  return lines;
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
    `## Headline ratios (\`${r.ratios.workload}\`: every byte of the blob written and read back; xvgpu = \`${XVGPU}\`)`,
    '',
    ...ratioLines(r.ratios, true),
    `- correctness over every run: stale_accesses ${r.correctness.stale_accesses}, integrity_errors ${r.correctness.integrity_errors}, guest_crashes ${r.correctness.guest_crashes}`,
    '',
    `Beside it, \`${r.touch_ratios.workload}\` (one 8-byte write per page):`,
    '',
    ...ratioLines(r.touch_ratios, false),
    '',
  ];
  for (const w of wl) lines.push(...workloadTable(r, w));
  const scaling = SCALING_STRATEGIES.filter((st) => SCALING_VCPUS.some((v) => find(r, `scaling-${v}vcpu`, st)));
  if (scaling.length > 0) {
    lines.push('## vCPU scaling (random touches, accesses/s)', '', `| strategy | ${SCALING_VCPUS.map((v) => `${v} vCPU`).join(' | ')} |`, `|---|${SCALING_VCPUS.map(() => '---').join('|')}|`);
    for (const st of scaling) lines.push(`| ${st} | ${SCALING_VCPUS.map((v) => spread(find(r, `scaling-${v}vcpu`, st), 'accesses_per_s', int)).join(' | ')} |`);
    lines.push('');
  }
  lines.push('## Transport floors (context)', '', '```', formatFloor(r.floor), '```', '');
  if (r.xen) lines.push(xenMarkdown(r.xen));
  const plots = Object.keys(charts(r));
  if (plots.length > 0) lines.push(`Plots: ${plots.map((p) => `\`${p}.png\``).join(', ')} (and the same in \`index.html\`).`, '');
  return lines.join('\n');
}

/** Each plot of what ran: series with no measured point, and plots with no series, are left out. */
export function charts(r: BenchReport): Record<string, string> {
  const pts = (list: (readonly [number, number | null])[]): (readonly [number, number])[] => list.flatMap(([x, y]) => (y === null ? [] : [[x, y] as const]));
  const keep = (series: Series[]): Series[] => series.filter((s) => s.points.length > 0);
  const touch = r.touch_ratios.workload;
  const cdfSeries = keep(STRATEGIES.map((st) => ({ name: st.name, points: (find(r, 'hotset-evict', st.name)?.fault_cdf ?? []).map(([p, ns]) => [ns / 1000, p] as const) })));
  const scaling = keep(SCALING_STRATEGIES.map((st) => ({ name: st, points: pts(SCALING_VCPUS.map((v) => [v, med(find(r, `scaling-${v}vcpu`, st), 'accesses_per_s')] as const)) })));
  const exits = keep((['retry', 'emulate'] as const).map((mode) => ({ name: `fault-${mode}`, points: pts([1, 16, 512].map((fa) => [fa, med(find(r, touch, `fault-${mode}-${fa}`), 'exits_per_mib')] as const)) })));
  const out: Record<string, string> = {};
  if (cdfSeries.length > 0) out['fault-cdf'] = lineChart({ title: 'Guest-visible fault latency CDF (hot set under eviction)', xLabel: 'latency (µs, log)', yLabel: 'percentile', series: cdfSeries, logX: true });
  if (scaling.length > 0) out['throughput-vcpus'] = lineChart({ title: 'Throughput vs vCPUs (random touches)', xLabel: 'vCPUs', yLabel: 'guest accesses / s', series: scaling, logY: true, xTicks: SCALING_VCPUS });
  if (exits.length > 0) out['exits-fault-around'] = lineChart({ title: `Exits per MiB vs fault-around (${touch})`, xLabel: 'fault-around pages (log)', yLabel: 'exits / MiB (log)', series: exits, logX: true, logY: true, xTicks: [1, 16, 512] });
  return out;
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
