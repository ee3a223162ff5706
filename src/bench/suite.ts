/**
 * The benchmark suite: every strategy on the same workloads, through the same ioreq server and
 * simulated Xen, so only the strategy differs; the transport floor measured in the same run; each
 * scenario repeated, with min / median / max of every reported number so the noise is visible.
 */
import { cpus, totalmem } from 'node:os';
import type { AnswerMode, Strategy } from '../bar/manager.js';
import type { PatternName } from '../guest/workload.js';
import { runSimulation, type RunSummary } from '../session/simulation.js';
import type { LatencySummary } from '../telemetry/histogram.js';
import type { Logger } from '../telemetry/log.js';
import { measureFloor, type FloorReport } from './floor.js';

export interface StrategySpec {
  readonly name: string;
  readonly strategy: Strategy;
  readonly mode: AnswerMode;
  readonly faultAround: number;
  readonly hugePages: boolean;
}

/** xvgpu at fault-around 1 and 16 without superpages (to isolate fault-around), 512 with them. */
export const STRATEGIES: readonly StrategySpec[] = [
  { name: 'emulate-all', strategy: 'emulate-all', mode: 'emulate', faultAround: 1, hugePages: false },
  { name: 'eager', strategy: 'eager', mode: 'retry', faultAround: 512, hugePages: true },
  ...(['retry', 'emulate'] as const).flatMap((mode) =>
    [1, 16, 512].map((fa) => ({ name: `fault-${mode}-${fa}`, strategy: 'fault' as const, mode, faultAround: fa, hugePages: fa === 512 })),
  ),
];

/** The xvgpu configuration the headline ratios quote. */
export const XVGPU = 'fault-retry-16';

export interface WorkloadSpec {
  readonly name: string;
  readonly pattern: PatternName;
  readonly blobs: number;
  readonly blobSize: number;
  readonly vcpus: number;
  readonly evictRate: number;
  readonly durationS: number;
}

const MiB = 1024 * 1024;

export function workloads(quick: boolean): WorkloadSpec[] {
  return [
    { name: 'sweep-64MiB', pattern: 'sweep', blobs: 1, blobSize: 64 * MiB, vcpus: 2, evictRate: 0, durationS: 120 },
    { name: quick ? 'random-256MiB' : 'random-1GiB', pattern: 'random', blobs: quick ? 4 : 16, blobSize: 64 * MiB, vcpus: 2, evictRate: 0, durationS: quick ? 1.5 : 4 },
    { name: 'hotset-evict', pattern: 'hotset', blobs: 8, blobSize: 4 * MiB, vcpus: 2, evictRate: 500, durationS: quick ? 1.5 : 4 },
  ];
}

export const SCALING_VCPUS = [1, 2, 4, 8];
export const SCALING_STRATEGIES = ['emulate-all', 'eager', XVGPU];

export interface Stat {
  min: number;
  median: number;
  max: number;
}

/** The numbers kept per run, and aggregated over repeats. */
export interface RunMetrics {
  duration_s: number;
  accesses_per_s: number;
  faults: number;
  exits_per_mib: number;
  first_access_ns: number;
  sweep_ns: number;
  stall_ms_per_s: number;
  revokes: number;
  revoked_pages: number;
  stale_accesses: number;
  integrity_errors: number;
  guest_crashes: number;
  boot_s: number;
  fault_ns: LatencySummary;
  service_ns: LatencySummary;
  revoke_ns: LatencySummary;
}

export interface ScenarioResult {
  readonly workload: string;
  readonly strategy: string;
  readonly vcpus: number;
  readonly runs: RunMetrics[];
  readonly aggregate: Record<string, Stat>;
  /** The fault-latency CDF of the median run (by fault p50). */
  readonly fault_cdf: [number, number][];
}

export interface BenchReport {
  schema: 'xvgpu-bench/1';
  created: string;
  command: string;
  quick: boolean;
  repeats: number;
  machine: { cpus: number; cpu_model: string; memory_gib: number; node: string; kernel: string; note: string };
  floor: FloorReport;
  scenarios: ScenarioResult[];
  ratios: {
    /**
     * Sweep, xvgpu: guest-visible fault p50 over the floor p50, the waiter path (native thread →
     * TSFN → JS → back) with both threads on one CPU: the cheapest that wake path can be here.
     */
    fault_p50_over_floor_p50: number;
    /** ... over the same path unpinned (bimodal: it depends on whether the wake crossed CPUs). */
    fault_p50_over_floor_unpinned_p50: number;
    /** Sweep: time for emulate-all to touch the blob over the time for xvgpu. */
    emulate_all_time_over_fault_time: number;
    /** Sweep: eager's time over xvgpu's. */
    eager_time_over_fault_time: number;
  };
  correctness: { stale_accesses: number; integrity_errors: number; guest_crashes: number };
}

function metrics(r: RunSummary): RunMetrics {
  return {
    duration_s: r.duration_s,
    accesses_per_s: Math.round(r.accesses / Math.max(r.duration_s, 1e-3)),
    faults: r.faults,
    exits_per_mib: r.exits_per_mib,
    first_access_ns: r.first_access_ns,
    sweep_ns: r.sweep_ns,
    stall_ms_per_s: r.stall_ms_per_s,
    revokes: r.revokes,
    revoked_pages: r.revoked_pages,
    stale_accesses: r.stale_accesses ?? Number.NaN, // never null: the bench runs on sim, which detects them
    integrity_errors: r.integrity_errors,
    guest_crashes: r.guest_crashes.length,
    boot_s: r.boot_s,
    fault_ns: r.fault_ns,
    service_ns: r.service_ns,
    revoke_ns: r.revoke_ns,
  };
}

function stat(values: number[]): Stat {
  const v = [...values].sort((a, b) => a - b);
  return { min: v[0] ?? 0, median: v[Math.floor((v.length - 1) / 2)] ?? 0, max: v[v.length - 1] ?? 0 };
}

/** Flattens every numeric field (latency summaries as fault_ns.p50 ...) and aggregates over runs. */
function aggregate(runs: RunMetrics[]): Record<string, Stat> {
  const flat = runs.map((r) => {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === 'number') out[k] = v;
      else for (const [p, n] of Object.entries(v as unknown as Record<string, number>)) out[`${k}.${p}`] = n;
    }
    return out;
  });
  const keys = Object.keys(flat[0] ?? {});
  return Object.fromEntries(keys.map((k) => [k, stat(flat.map((f) => f[k] ?? 0))]));
}

export interface SuiteOptions {
  readonly quick: boolean;
  readonly repeats: number;
  readonly floorRounds: number;
  readonly command: string;
  readonly onProgress?: (line: string) => void;
}

interface Job {
  readonly workload: WorkloadSpec;
  readonly strategy: StrategySpec;
}

function jobs(quick: boolean): Job[] {
  const out: Job[] = [];
  for (const w of workloads(quick)) for (const s of STRATEGIES) out.push({ workload: w, strategy: s });
  const base = workloads(true)[1];
  if (base) {
    for (const v of SCALING_VCPUS) {
      for (const name of SCALING_STRATEGIES) {
        const s = STRATEGIES.find((x) => x.name === name);
        if (s) out.push({ workload: { ...base, name: `scaling-${v}vcpu`, vcpus: v }, strategy: s });
      }
    }
  }
  return out;
}

export async function runSuite(o: SuiteOptions, log: Logger): Promise<BenchReport> {
  const progress = o.onProgress ?? (() => undefined);
  const addon = new URL('../../build/Release/xvgpu_native.node', import.meta.url).pathname;
  progress('measuring the transport floor');
  const floor = await measureFloor(o.floorRounds, addon);
  const all = jobs(o.quick);
  const scenarios: ScenarioResult[] = [];
  const t0 = performance.now();
  for (const [i, job] of all.entries()) {
    const runs: RunSummary[] = [];
    for (let rep = 0; rep < o.repeats; rep++) {
      progress(`[${i + 1}/${all.length}] ${job.workload.name} × ${job.strategy.name} (run ${rep + 1}/${o.repeats}, ${((performance.now() - t0) / 1000).toFixed(0)} s elapsed)`);
      runs.push(await runSimulation({
        vcpus: job.workload.vcpus,
        durationS: job.workload.durationS,
        workload: job.workload.pattern,
        evictRate: job.workload.evictRate,
        strategy: job.strategy.strategy,
        mode: job.strategy.mode,
        faultAround: job.strategy.faultAround,
        hugePages: job.strategy.hugePages,
        blobs: job.workload.blobs,
        blobSize: job.workload.blobSize,
        seed: 1 + rep,
      }, log));
    }
    const byP50 = [...runs].sort((a, b) => a.fault_ns.p50 - b.fault_ns.p50);
    const ms = runs.map(metrics);
    scenarios.push({ workload: job.workload.name, strategy: job.strategy.name, vcpus: job.workload.vcpus, runs: ms, aggregate: aggregate(ms), fault_cdf: byP50[Math.floor((byP50.length - 1) / 2)]?.fault_cdf ?? [] });
  }
  return {
    schema: 'xvgpu-bench/1',
    created: new Date().toISOString(),
    command: o.command,
    quick: o.quick,
    repeats: o.repeats,
    machine: machine(),
    floor,
    scenarios,
    ratios: ratios(floor, scenarios),
    correctness: {
      stale_accesses: scenarios.reduce((n, s) => n + s.runs.reduce((m, r) => m + r.stale_accesses, 0), 0),
      integrity_errors: scenarios.reduce((n, s) => n + s.runs.reduce((m, r) => m + r.integrity_errors, 0), 0),
      guest_crashes: scenarios.reduce((n, s) => n + s.runs.reduce((m, r) => m + r.guest_crashes, 0), 0),
    },
  };
}

function median(s: ScenarioResult | undefined, key: string): number {
  return s?.aggregate[key]?.median ?? 0;
}

function ratios(floor: FloorReport, scenarios: ScenarioResult[]): BenchReport['ratios'] {
  const sweep = (name: string): ScenarioResult | undefined => scenarios.find((s) => s.workload === 'sweep-64MiB' && s.strategy === name);
  const waiter = (placement: string): number => floor.cases.find((c) => c.name === 'waiter tsfn→js→futex' && c.placement === placement)?.p50 ?? 0;
  const r = (a: number, b: number): number => (b > 0 ? Math.round((a / b) * 100) / 100 : 0);
  const faultP50 = median(sweep(XVGPU), 'fault_ns.p50');
  return {
    fault_p50_over_floor_p50: r(faultP50, waiter('same-cpu')),
    fault_p50_over_floor_unpinned_p50: r(faultP50, waiter('unpinned')),
    emulate_all_time_over_fault_time: r(median(sweep('emulate-all'), 'sweep_ns'), median(sweep(XVGPU), 'sweep_ns')),
    eager_time_over_fault_time: r(median(sweep('eager'), 'sweep_ns'), median(sweep(XVGPU), 'sweep_ns')),
  };
}

function machine(): BenchReport['machine'] {
  const c = cpus();
  return {
    cpus: c.length,
    cpu_model: c[0]?.model ?? 'unknown',
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: process.platform === 'linux' ? (process.report.getReport() as { header?: { osRelease?: string } }).header?.osRelease ?? '' : process.platform,
    note: `${c.length} CPUs: vCPU counts above ${c.length} are oversubscribed (worker threads share the cores with the server).`,
  };
}
