/**
 * The benchmark suite: every strategy on the same workloads, through the same ioreq server and
 * simulated Xen, so only the strategy differs; the transport floor measured in the same run; each
 * scenario repeated, with min / median / max of every reported number so the noise is visible.
 */
import { cpus, totalmem } from 'node:os';
import type { AnswerMode, Strategy } from '../bar/manager.js';
import type { PatternName } from '../guest/workload.js';
import { runSimulation, type RunSummary } from '../session/simulation.js';
import type { LatencySummary, NullReasons } from '../telemetry/histogram.js';
import type { Logger } from '../telemetry/log.js';
import type { XenBenchSection } from './xen.js';
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

/**
 * The sweeps run on one vCPU: a copying vCPU never blocks, so a second one would compete with the
 * server thread for these machines' two cores and its faults would measure the scheduler. The
 * copy sweep is small because emulate-all exits on every 8-byte access (256 Ki exits per MiB).
 */
export function workloads(quick: boolean): WorkloadSpec[] {
  const copyMiB = quick ? 1 : 8;
  return [
    { name: `sweep-copy-${copyMiB}MiB`, pattern: 'sweep', blobs: 1, blobSize: copyMiB * MiB, vcpus: 1, evictRate: 0, durationS: 600 },
    { name: 'sweep-touch-64MiB', pattern: 'sweep-touch', blobs: 1, blobSize: 64 * MiB, vcpus: 1, evictRate: 0, durationS: 120 },
    { name: quick ? 'random-256MiB' : 'random-1GiB', pattern: 'random', blobs: quick ? 4 : 16, blobSize: 64 * MiB, vcpus: 2, evictRate: 0, durationS: quick ? 1 : 4 },
    { name: 'hotset-evict', pattern: 'hotset', blobs: 8, blobSize: 4 * MiB, vcpus: 2, evictRate: 500, durationS: quick ? 1 : 4 },
  ];
}

/** The sweep the headline ratios come from (every byte written and read back), and the one-touch one. */
export function copySweep(quick: boolean): WorkloadSpec {
  return workloads(quick).find((w) => w.pattern === 'sweep') as WorkloadSpec;
}
export function touchSweep(quick: boolean): WorkloadSpec {
  return workloads(quick).find((w) => w.pattern === 'sweep-touch') as WorkloadSpec;
}

export const SCALING_VCPUS = [1, 2, 4, 8];
export const SCALING_STRATEGIES = ['emulate-all', 'eager', XVGPU];

export interface Stat {
  min: number;
  median: number;
  max: number;
  /** Runs that measured this figure (the others had it null: see the scenario's null_reasons). */
  runs: number;
}

/** The numbers kept per run, and aggregated over repeats; null figures carry a reason. */
export interface RunMetrics {
  duration_s: number;
  accesses: number;
  bar_exits: number;
  accesses_per_s: number | null;
  faults: number;
  exits_per_mib: number;
  first_access_ns: number | null;
  sweep_ns: number | null;
  sweep_mib_per_s: number | null;
  blob_bytes: number;
  bytes_written: number;
  bytes_verified: number;
  stall_ms_per_s: number | null;
  revokes: number;
  revoked_pages: number;
  stale_accesses: number;
  integrity_errors: number;
  guest_crashes: number;
  boot_s: number;
  fault_ns: LatencySummary | null;
  floor_ns: LatencySummary | null;
  fault_over_floor_p50: number | null;
  service_ns: LatencySummary | null;
  revoke_ns: LatencySummary | null;
  null_reasons: NullReasons;
}

export interface ScenarioResult {
  readonly workload: string;
  readonly pattern: PatternName;
  readonly strategy: string;
  readonly vcpus: number;
  readonly runs: RunMetrics[];
  /** Every numeric figure (latencies as fault_ns.p50 ...) over the runs that measured it. */
  readonly aggregate: Record<string, Stat>;
  /** Figures no run measured, and why (the first run's reason). */
  readonly null_reasons: NullReasons;
  /** The fault-latency CDF of the median run (by fault p50); empty when no run had a fault. */
  readonly fault_cdf: [number, number][];
}

/** Ratios of one sweep, each a median over runs; null when a figure it needs is null. */
export interface SweepRatios {
  readonly workload: string;
  /** xvgpu's guest-visible fault p50 over the same run's floor p50 (the null region: same exit, wakes and placement). */
  fault_p50_over_floor_p50: number | null;
  /** Context: the same fault p50 over the suite's waiter floor (native thread → TSFN → JS → back), one CPU and unpinned. */
  fault_p50_over_waiter_same_cpu_p50: number | null;
  fault_p50_over_waiter_unpinned_p50: number | null;
  /** Sweep time (sweep_ns) of emulate-all, and of eager, over xvgpu's. */
  emulate_all_time_over_fault_time: number | null;
  eager_time_over_fault_time: number | null;
  null_reasons: NullReasons;
}

export interface BenchReport {
  schema: 'xvgpu-bench/2';
  created: string;
  command: string;
  quick: boolean;
  repeats: number;
  machine: { cpus: number; cpu_model: string; memory_gib: number; node: string; kernel: string; note: string };
  /** Context floors (`xvgpu bench floor`); each run carries its own floor_ns. */
  floor: FloorReport;
  scenarios: ScenarioResult[];
  /** The headline: from the copy sweep (every byte written and read back). */
  ratios: SweepRatios;
  /** The same from the one-touch-per-page sweep, beside it. */
  touch_ratios: SweepRatios;
  correctness: { stale_accesses: number; integrity_errors: number; guest_crashes: number };
  /** With --xen / --xen-results: the same figures on real Xen (src/bench/xen.ts). */
  xen?: XenBenchSection;
}

function metrics(r: RunSummary, blobBytes: number): RunMetrics {
  return {
    duration_s: r.duration_s,
    accesses: r.accesses,
    bar_exits: r.bar_exits,
    accesses_per_s: r.accesses_per_s,
    faults: r.faults,
    exits_per_mib: r.exits_per_mib,
    first_access_ns: r.first_access_ns,
    sweep_ns: r.sweep_ns,
    sweep_mib_per_s: r.sweep_mib_per_s,
    blob_bytes: blobBytes,
    bytes_written: r.bytes_written,
    bytes_verified: r.bytes_verified,
    stall_ms_per_s: r.stall_ms_per_s,
    revokes: r.revokes,
    revoked_pages: r.revoked_pages,
    stale_accesses: r.stale_accesses ?? Number.NaN, // never null: the bench runs on sim, which detects them
    integrity_errors: r.integrity_errors,
    guest_crashes: r.guest_crashes.length,
    boot_s: r.boot_s,
    fault_ns: r.fault_ns,
    floor_ns: r.floor_ns,
    fault_over_floor_p50: r.fault_over_floor_p50,
    service_ns: r.service_ns,
    revoke_ns: r.revoke_ns,
    null_reasons: Object.fromEntries(Object.entries(r.null_reasons).filter(([k]) => k in RUN_METRIC_FIELDS)),
  };
}

/** The RunSummary fields RunMetrics keeps (null reasons of the others are dropped). */
const RUN_METRIC_FIELDS: Record<string, true> = Object.fromEntries(
  ['accesses_per_s', 'first_access_ns', 'sweep_ns', 'sweep_mib_per_s', 'stall_ms_per_s', 'fault_ns', 'floor_ns', 'fault_over_floor_p50', 'service_ns', 'revoke_ns'].map((k) => [k, true]),
);

function stat(values: number[]): Stat {
  const v = [...values].sort((a, b) => a - b);
  return { min: v[0] ?? 0, median: v[Math.floor((v.length - 1) / 2)] ?? 0, max: v[v.length - 1] ?? 0, runs: v.length };
}

/** A run's numeric figures, flat: latency summaries as fault_ns.p50 ...; null figures left out. */
function flatten(r: RunMetrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) {
    if (typeof v === 'number') out[k] = v;
    else if (v !== null && k !== 'null_reasons') for (const [p, n] of Object.entries(v as Record<string, number>)) out[`${k}.${p}`] = n;
  }
  return out;
}

/** Aggregates each figure over the runs that measured it; a figure no run measured keeps its reason. */
function aggregate(runs: RunMetrics[]): { aggregate: Record<string, Stat>; null_reasons: NullReasons } {
  const flat = runs.map(flatten);
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))];
  const agg = Object.fromEntries(keys.map((k) => [k, stat(flat.flatMap((f) => (f[k] === undefined ? [] : [f[k]])))]));
  const reasons: NullReasons = {};
  for (const r of runs) {
    for (const [k, why] of Object.entries(r.null_reasons)) if (!keys.some((x) => x === k || x.startsWith(`${k}.`)) && !(k in reasons)) reasons[k] = why;
  }
  return { aggregate: agg, null_reasons: reasons };
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
  const base = workloads(true).find((w) => w.pattern === 'random');
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
    const withFaults = runs.filter((r) => r.fault_ns !== null).sort((a, b) => (a.fault_ns?.p50 ?? 0) - (b.fault_ns?.p50 ?? 0));
    const ms = runs.map((r) => metrics(r, job.workload.blobs * job.workload.blobSize));
    const agg = aggregate(ms);
    scenarios.push({
      workload: job.workload.name, pattern: job.workload.pattern, strategy: job.strategy.name, vcpus: job.workload.vcpus,
      runs: ms, aggregate: agg.aggregate, null_reasons: agg.null_reasons,
      fault_cdf: withFaults[Math.floor((withFaults.length - 1) / 2)]?.fault_cdf ?? [],
    });
  }
  return {
    schema: 'xvgpu-bench/2',
    created: new Date().toISOString(),
    command: o.command,
    quick: o.quick,
    repeats: o.repeats,
    machine: machine(),
    floor,
    scenarios,
    ratios: sweepRatios(floor, scenarios, copySweep(o.quick).name),
    touch_ratios: sweepRatios(floor, scenarios, touchSweep(o.quick).name),
    correctness: {
      stale_accesses: scenarios.reduce((n, s) => n + s.runs.reduce((m, r) => m + r.stale_accesses, 0), 0),
      integrity_errors: scenarios.reduce((n, s) => n + s.runs.reduce((m, r) => m + r.integrity_errors, 0), 0),
      guest_crashes: scenarios.reduce((n, s) => n + s.runs.reduce((m, r) => m + r.guest_crashes, 0), 0),
    },
  };
}

function median(s: ScenarioResult | undefined, key: string): number | null {
  return s?.aggregate[key]?.median ?? null;
}

function sweepRatios(floor: FloorReport, scenarios: ScenarioResult[], workload: string): SweepRatios {
  const sweep = (name: string): ScenarioResult | undefined => scenarios.find((s) => s.workload === workload && s.strategy === name);
  const waiter = (placement: string): number | null => floor.cases.find((c) => c.name === 'waiter tsfn→js→futex' && c.placement === placement)?.p50 ?? null;
  const reasons: NullReasons = {};
  const xvgpu = sweep(XVGPU);
  const faultP50 = median(xvgpu, 'fault_ns.p50');
  const orWhy = (field: string, v: number | null, why: string): number | null => {
    if (v === null) reasons[field] = why;
    return v;
  };
  const ratio = (field: string, a: number | null, b: number | null, why: string): number | null =>
    orWhy(field, a !== null && b !== null && b > 0 ? Math.round((a / b) * 100) / 100 : null, why);
  const noFault = `${XVGPU} had no BAR fault in the window: ${xvgpu?.null_reasons.fault_ns ?? 'scenario missing'}`;
  const noTime = (name: string): string => `no sweep time for ${name} or ${XVGPU} (see their sweep_ns)`;
  return {
    workload,
    fault_p50_over_floor_p50: orWhy('fault_p50_over_floor_p50', median(xvgpu, 'fault_over_floor_p50'), `${XVGPU}: ${xvgpu?.null_reasons.fault_over_floor_p50 ?? 'scenario missing'}`),
    fault_p50_over_waiter_same_cpu_p50: ratio('fault_p50_over_waiter_same_cpu_p50', faultP50, waiter('same-cpu'), faultP50 === null ? noFault : 'no same-CPU waiter floor (one CPU allowed?)'),
    fault_p50_over_waiter_unpinned_p50: ratio('fault_p50_over_waiter_unpinned_p50', faultP50, waiter('unpinned'), noFault),
    emulate_all_time_over_fault_time: ratio('emulate_all_time_over_fault_time', median(sweep('emulate-all'), 'sweep_ns'), median(xvgpu, 'sweep_ns'), noTime('emulate-all')),
    eager_time_over_fault_time: ratio('eager_time_over_fault_time', median(sweep('eager'), 'sweep_ns'), median(xvgpu, 'sweep_ns'), noTime('eager')),
    null_reasons: reasons,
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
