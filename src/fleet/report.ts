/**
 * The aggregated campaign report: the benchmark's scenario tables (median, min–max over repeats),
 * one set per host label, and a cross-host table of throughput; for bench cells, a cross-host
 * table of the suite's headline ratios and each suite's own report (src/bench/report.ts). It reads each run summary loosely
 * (every numeric field, one level of nested latency summaries), so fields the benchmark adds or
 * renames later still aggregate; the columns shown name the fields they need and print '–' when a
 * summary lacks one.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { markdown as benchMarkdown } from '../bench/report.js';
import { lineChart, type Series } from '../bench/svg.js';
import { SCALING_STRATEGIES, STRATEGIES, type BenchReport, type Stat, type SweepRatios } from '../bench/suite.js';
import type { RunCell } from './campaign.js';
import type { CampaignStatus } from './status.js';
import type { CellResult } from './results.js';

export interface FleetScenario {
  readonly workload: string;
  readonly strategy: string;
  readonly vcpus: number;
  readonly platform: string;
  readonly runs: number;
  readonly aggregate: Record<string, Stat>;
}

export interface HostReport {
  readonly host: string;
  /** Machines (hostnames) whose workers ran under this label. */
  readonly machines: string[];
  readonly scenarios: FleetScenario[];
  readonly correctness: { stale_accesses: number; integrity_errors: number; guest_crashes: number; failed_checks: number };
}

/** One bench cell's suite, as its worker stored it. */
export interface BenchEntry {
  readonly cell: string;
  readonly host: string;
  readonly machine: string;
  readonly exit_code: number;
  readonly report: BenchReport;
}

export interface FleetReport {
  readonly schema: 'xvgpu-fleet/1';
  readonly created: string;
  readonly campaign: { id: string; name: string; file: string; submitted: string; finished: boolean };
  readonly cells: { total: number; with_result: number; dead: number; pending: number };
  readonly dead: { id: string; attempts: number; error: string }[];
  readonly hosts: HostReport[];
  /** Bench cells with a result, by host label then cell id. */
  readonly bench: BenchEntry[];
}

/**
 * Numeric fields of a run summary, latency summaries as `fault_ns.p50`, lists of strings (guest
 * crashes) as their length, and accesses_per_s derived as the benchmark derives it.
 */
export function flattenSummary(summary: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(summary)) {
    if (typeof v === 'number') out[k] = v;
    else if (Array.isArray(v)) {
      if (v.every((x) => typeof x === 'string')) out[k] = v.length;
    } else if (v !== null && typeof v === 'object') {
      for (const [p, n] of Object.entries(v)) if (typeof n === 'number') out[`${k}.${p}`] = n;
    }
  }
  if (out.accesses !== undefined && out.duration_s !== undefined) out.accesses_per_s = Math.round(out.accesses / Math.max(out.duration_s, 1e-3));
  return out;
}

function stat(values: number[]): Stat {
  const v = [...values].sort((a, b) => a - b);
  return { min: v[0] ?? NaN, median: v[Math.floor((v.length - 1) / 2)] ?? NaN, max: v[v.length - 1] ?? NaN, runs: v.length };
}

function aggregate(runs: Record<string, number>[]): Record<string, Stat> {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r)))];
  return Object.fromEntries(keys.map((k) => [k, stat(runs.flatMap((r) => (r[k] === undefined ? [] : [r[k]])))]));
}

type RunResult = CellResult & { readonly cell: RunCell };

const scenarioKey = (r: RunResult): string => `${r.cell.workload.name}|${r.cell.strategy.name}|${r.cell.vcpus}|${r.cell.platform}`;

function hostReport(host: string, results: RunResult[]): HostReport {
  const groups = new Map<string, RunResult[]>();
  for (const r of results) groups.set(scenarioKey(r), [...(groups.get(scenarioKey(r)) ?? []), r]);
  const scenarios = [...groups.values()].map((rs) => {
    const c = (rs[0] as RunResult).cell;
    return { workload: c.workload.name, strategy: c.strategy.name, vcpus: c.vcpus, platform: c.platform, runs: rs.length, aggregate: aggregate(rs.map((r) => flattenSummary(r.summary))) };
  });
  const order = (s: FleetScenario): number => STRATEGIES.findIndex((x) => x.name === s.strategy);
  scenarios.sort((a, b) => a.workload.localeCompare(b.workload) || a.platform.localeCompare(b.platform) || order(a) - order(b) || a.vcpus - b.vcpus);
  const sum = (k: string): number => results.reduce((n, r) => n + (flattenSummary(r.summary)[k] ?? 0), 0);
  return {
    host,
    machines: [...new Set(results.map((r) => r.machine))],
    scenarios,
    correctness: { stale_accesses: sum('stale_accesses'), integrity_errors: sum('integrity_errors'), guest_crashes: sum('guest_crashes'), failed_checks: results.filter((r) => r.exit_code !== 0).length },
  };
}

const isRun = (r: CellResult): r is RunResult => r.cell.kind === 'run';

function benchEntries(results: CellResult[]): BenchEntry[] {
  return results.filter((r) => r.cell.kind === 'bench')
    .map((r) => ({ cell: r.cell.id, host: r.host, machine: r.machine, exit_code: r.exit_code, report: r.summary as unknown as BenchReport }))
    .sort((a, b) => a.host.localeCompare(b.host) || a.cell.localeCompare(b.cell));
}

export function buildReport(s: CampaignStatus, now = new Date()): FleetReport {
  const byHost = new Map<string, RunResult[]>();
  for (const r of [...s.results.values()].filter(isRun)) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r]);
  const dead = s.cells.filter((c) => c.state === 'dead');
  return {
    schema: 'xvgpu-fleet/1',
    created: now.toISOString(),
    campaign: { id: s.campaign.campaignId, name: s.campaign.name, file: s.campaign.file, submitted: s.campaign.submitted, finished: s.finished },
    cells: { total: s.cells.length, with_result: s.results.size, dead: dead.length, pending: s.cells.length - s.results.size - dead.length },
    dead: dead.map((c) => ({ id: c.id, attempts: c.failedAttempts, error: c.lastError ?? '' })),
    hosts: [...byHost.keys()].sort().map((h) => hostReport(h, byHost.get(h) ?? [])),
    bench: benchEntries([...s.results.values()]),
  };
}

const COLUMNS: readonly [string, string, (n: number) => string][] = [
  ['accesses/s', 'accesses_per_s', (n) => n.toFixed(0)],
  ['fault p50 µs', 'fault_ns.p50', (n) => (n / 1000).toFixed(1)],
  ['fault p99 µs', 'fault_ns.p99', (n) => (n / 1000).toFixed(1)],
  // Each run measures its own transport floor, so this ratio compares hosts on equal terms.
  ['fault/floor p50', 'fault_over_floor_p50', (n) => n.toFixed(1)],
  ['exits/MiB', 'exits_per_mib', (n) => n.toFixed(1)],
  ['stall ms/s', 'stall_ms_per_s', (n) => n.toFixed(0)],
  ['revoke p50 µs', 'revoke_ns.p50', (n) => (n / 1000).toFixed(1)],
  ['revokes', 'revokes', (n) => n.toFixed(0)],
];

function metric(s: FleetScenario, key: string): Stat | undefined {
  return s.aggregate[key];
}

function spread(st: Stat | undefined, f: (n: number) => string): string {
  if (!st) return '–';
  return st.min === st.max ? f(st.median) : `${f(st.median)} (${f(st.min)}–${f(st.max)})`;
}

function hostSection(h: HostReport): string[] {
  const lines = [`## host ${h.host} (${h.machines.join(', ')})`, '', `correctness: stale_accesses ${h.correctness.stale_accesses}, integrity_errors ${h.correctness.integrity_errors}, guest_crashes ${h.correctness.guest_crashes}, runs with a failed check ${h.correctness.failed_checks}`, ''];
  for (const w of [...new Set(h.scenarios.map((s) => s.workload))]) {
    lines.push(`### ${w}`, '', `| strategy | platform | vCPUs | runs | ${COLUMNS.map((c) => c[0]).join(' | ')} |`, `|---|---|---|---|${COLUMNS.map(() => '---').join('|')}|`);
    for (const s of h.scenarios.filter((x) => x.workload === w)) {
      lines.push(`| ${s.strategy} | ${s.platform} | ${s.vcpus} | ${s.runs} | ${COLUMNS.map(([, k, f]) => spread(metric(s, k), f)).join(' | ')} |`);
    }
    lines.push('');
  }
  return lines;
}

function crossHostSection(r: FleetReport): string[] {
  if (r.hosts.length < 2) return [];
  const key = (s: FleetScenario): string => `${s.workload} × ${s.strategy} × ${s.vcpus} vCPU (${s.platform})`;
  const keys = [...new Set(r.hosts.flatMap((h) => h.scenarios.map(key)))];
  const lines = ['## Across hosts: accesses/s, median', '', `| scenario | ${r.hosts.map((h) => h.host).join(' | ')} |`, `|---|${r.hosts.map(() => '---').join('|')}|`];
  for (const k of keys) {
    lines.push(`| ${k} | ${r.hosts.map((h) => { const s = h.scenarios.find((x) => key(x) === k); return s ? spread(metric(s, 'accesses_per_s'), (n) => n.toFixed(0)) : '–'; }).join(' | ')} |`);
  }
  return [...lines, ''];
}

const RATIO_ROWS: readonly [Exclude<keyof SweepRatios, 'workload' | 'null_reasons'>, string][] = [
  ['emulate_all_time_over_fault_time', 'emulate-all time / xvgpu time'],
  ['eager_time_over_fault_time', 'eager time / xvgpu time'],
  ['fault_p50_over_floor_p50', 'xvgpu fault p50 / floor p50'],
  ['fault_p50_over_waiter_same_cpu_p50', 'fault p50 / waiter floor p50, one CPU'],
  ['fault_p50_over_waiter_unpinned_p50', 'fault p50 / waiter floor p50, unpinned'],
];

const benchLabel = (b: BenchEntry): string => `${b.host} (${b.machine}, ${b.cell})`;

/** The suites' headline ratios side by side: one column per bench cell, nulls with their reasons below. */
function benchRatiosSection(bench: readonly BenchEntry[]): string[] {
  if (bench.length === 0) return [];
  const lines = ['## Benchmark suite across hosts: headline ratios', '', `| ratio | ${bench.map(benchLabel).join(' | ')} |`, `|---|${bench.map(() => '---').join('|')}|`];
  const nulls: string[] = [];
  for (const sweep of ['ratios', 'touch_ratios'] as const) {
    for (const [field, head] of RATIO_ROWS) {
      const cells = bench.map((b) => {
        const t = b.report[sweep];
        const v = t[field];
        if (v !== null) return `${v}×`;
        nulls.push(`${benchLabel(b)} ${t.workload} ${field}: ${t.null_reasons[field] ?? 'no reason recorded'}`);
        return 'null';
      });
      lines.push(`| ${head} (\`${bench[0]?.report[sweep].workload ?? sweep}\`) | ${cells.join(' | ')} |`);
    }
  }
  lines.push(`| correctness: stale / integrity / crashes | ${bench.map((b) => `${b.report.correctness.stale_accesses} / ${b.report.correctness.integrity_errors} / ${b.report.correctness.guest_crashes}`).join(' | ')} |`);
  if (nulls.length > 0) lines.push('', `null: ${nulls.join('; ')}.`);
  return [...lines, ''];
}

/** Each suite's own report (the benchmark's Markdown), its headings moved two levels down. */
function benchSection(b: BenchEntry): string[] {
  const own = benchMarkdown(b.report).split('\n').map((l) => (l.startsWith('#') ? `##${l}` : l));
  return [`## bench on host ${benchLabel(b)}, exit ${b.exit_code}`, '', ...own, ''];
}

export function fleetMarkdown(r: FleetReport): string {
  const c = r.cells;
  const lines = [
    `# xvgpu fleet campaign ${r.campaign.id}`,
    '',
    `${r.campaign.name} from \`${r.campaign.file}\`, submitted ${r.campaign.submitted}, ${r.campaign.finished ? 'finished' : 'NOT finished'}; report ${r.created}. Figures: median (min–max) over repeats.`,
    '',
    `Cells: ${c.total} total, ${c.with_result} with a result, ${c.dead} dead, ${c.pending} pending. Hosts: ${r.hosts.map((h) => `${h.host} (${h.scenarios.reduce((n, s) => n + s.runs, 0)} runs)`).join(', ') || 'none yet'}.`,
    '',
  ];
  if (r.dead.length > 0) lines.push('## Dead letter (failed every attempt)', '', ...r.dead.map((d) => `- ${d.id}: ${d.attempts} attempt(s): ${d.error}`), '');
  lines.push(...crossHostSection(r));
  for (const h of r.hosts) lines.push(...hostSection(h));
  lines.push(...benchRatiosSection(r.bench));
  for (const b of r.bench) lines.push(...benchSection(b));
  return lines.join('\n');
}

/**
 * Per workload, accesses/s against vCPUs, one line per host and strategy (the benchmark's scaling
 * strategies when the campaign ran any of them, so the legend stays readable), with the
 * benchmark's own chart code.
 */
export function throughputCharts(r: FleetReport): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of [...new Set(r.hosts.flatMap((h) => h.scenarios.map((s) => s.workload)))]) {
    const of = r.hosts.flatMap((h) => h.scenarios.filter((s) => s.workload === w).map((s) => ({ host: h.host, s })));
    const strategies = [...new Set(of.map((x) => x.s.strategy))];
    const shown = strategies.some((st) => SCALING_STRATEGIES.includes(st)) ? strategies.filter((st) => SCALING_STRATEGIES.includes(st)) : strategies;
    const series: Series[] = r.hosts.flatMap((h) => shown.map((st) => ({
      name: `${h.host} ${st}`,
      points: of.filter((x) => x.host === h.host && x.s.strategy === st).map((x) => [x.s.vcpus, metric(x.s, 'accesses_per_s')?.median ?? NaN] as const)
        .filter(([, y]) => Number.isFinite(y)).sort((a, b) => a[0] - b[0]),
    }))).filter((x) => x.points.length > 0);
    const vcpus = [...new Set(of.map((x) => x.s.vcpus))].sort((a, b) => a - b);
    out[`throughput-${w}`] = lineChart({ title: `${w}: throughput vs vCPUs, per host`, xLabel: 'vCPUs', yLabel: 'guest accesses / s', series, logY: true, xTicks: vcpus });
  }
  return out;
}

/** Writes report.json, summary.md and one throughput plot (SVG) per workload into `dir`; returns the paths. */
export function writeFleetReport(r: FleetReport, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'report.json');
  const md = join(dir, 'summary.md');
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(md, fleetMarkdown(r));
  const plots = Object.entries(throughputCharts(r)).map(([name, svg]) => {
    const path = join(dir, `${name}.svg`);
    writeFileSync(path, svg);
    return path;
  });
  return [json, md, ...plots];
}
