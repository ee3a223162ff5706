/**
 * What the benchmark's figures are made of, piece by piece: which ioreqs the fault and floor
 * histograms count, how the window's figures (sweep throughput, nulls) are derived, and the copy
 * sweep's every-byte integrity check, each against a deliberately broken guest memory.
 */
import { describe, expect, it } from 'vitest';
import { Workload, sweepWord, type BlobView, type GuestCpu, type PatternName } from '../../src/guest/workload.js';
import type { GuestResult, VcpuResult } from '../../src/guest/synthetic.js';
import type { WindowMeasures } from '../../src/guest/vcpu-worker.js';
import { windowFigures, type SimRunOptions } from '../../src/session/simulation.js';
import { latencyHistogram, record } from '../../src/telemetry/histogram.js';
import { IoreqRecorder } from '../../src/telemetry/ioreq-recorder.js';
import { lineChart } from '../../src/bench/svg.js';

const BAR = 0x1_0000_0000;
const BAR_END = BAR + 64 * 4096;
const MMIO = 0x2000_0000;
const PROBE = 0x3000_0000;

describe('IoreqRecorder', () => {
  it('counts BAR exits only inside the workload window, and floor probes only while the floor is measured', () => {
    const r = new IoreqRecorder(BAR, BAR_END, PROBE);
    r.onIoreqDone(1000, BAR); // boot: a BAR fault before the window
    r.onIoreqDone(1000, MMIO); // boot: device registers
    r.phase = 'workload';
    r.onIoreqDone(2000, BAR + 4096);
    r.onIoreqDone(3000, BAR_END - 8);
    r.onIoreqDone(9000, MMIO); // device registers inside the window: not a BAR fault
    r.onIoreqDone(9000, BAR_END); // one past the BAR
    r.onIoreqDone(9000, PROBE);
    r.phase = 'outside';
    r.onIoreqDone(9000, BAR); // teardown
    r.onIoreqDone(9000, PROBE); // warm-up probe
    r.phase = 'floor';
    r.onIoreqDone(500, PROBE);
    r.onIoreqDone(9000, BAR);
    r.onIoreqDone(9000, MMIO);
    expect([r.barFaultNs.totalCount, r.barExits, r.blockedNs]).toEqual([2, 2, 5000]);
    expect(r.floorNs.totalCount).toBe(1);
    expect(r.floorNs.maxValue).toBeLessThan(1000);
  });
});

const window = (over: Partial<WindowMeasures>): WindowMeasures => ({ firstAccessNs: 1000, workloadNs: 3e9, sweepNs: null, blockedNs: 0, accesses: 100, barExits: 0, ...over });

function guest(windows: WindowMeasures[], faultNs: number[], floorNs: number[]): GuestResult {
  const barFaultNs = latencyHistogram();
  for (const ns of faultNs) record(barFaultNs, ns);
  const floor = latencyHistogram();
  for (const ns of floorNs) record(floor, ns);
  const vcpus = windows.map((w, vcpu) => ({ vcpu, window: w }) as unknown as VcpuResult);
  const totals = { accesses: 0, ioreqs: 0, retries: 0, unclaimed: 0, staleAccesses: 0, flushAcks: 0, reads: 0, writes: 0, integrityErrors: 0, staleReads: 0, bytesWritten: 0, bytesVerified: 0 };
  return { vcpus, totals, barFaultNs, floorNs: floor, crashes: [], samples: [] };
}

const opts = (workload: PatternName): SimRunOptions => ({ vcpus: 2, durationS: 60, workload, evictRate: 0, mode: 'retry', faultAround: 16, hugePages: false, blobs: 1, blobSize: 8 << 20, seed: 1 });

describe('windowFigures', () => {
  it("takes a sweep's throughput from the sweep's own clock (the slowest vCPU), not the window's length", () => {
    const g = guest([window({ sweepNs: 1e9, workloadNs: 3e9 }), window({ sweepNs: 2e9, workloadNs: 3e9 })], [20_000], [10_000]);
    const { figures } = windowFigures(g, opts('sweep'));
    expect(figures.sweep_ns).toBe(2e9);
    expect(figures.sweep_mib_per_s).toBe(4); // 8 MiB in 2 s
  });

  it('has no sweep time when a vCPU did not finish its share, and says why', () => {
    const { figures, nullReasons } = windowFigures(guest([window({ sweepNs: 1e9 }), window({})], [20_000], [10_000]), opts('sweep'));
    expect([figures.sweep_ns, figures.sweep_mib_per_s]).toEqual([null, null]);
    expect(nullReasons.sweep_ns).toMatch(/did not finish/);
    expect(nullReasons.sweep_mib_per_s).toBeDefined();
  });

  it('reports no fault latency, with its reason, when the window saw no BAR fault', () => {
    const { figures, nullReasons } = windowFigures(guest([window({}), window({})], [], [10_000]), opts('random'));
    expect(figures.fault_ns).toBeNull();
    expect(figures.fault_over_floor_p50).toBeNull();
    expect(nullReasons.fault_ns).toBe('no BAR faults in the measured window');
    expect(figures.floor_ns?.count).toBe(1);
  });

  it('quotes the fault p50 over the same run\'s floor p50', () => {
    const { figures } = windowFigures(guest([window({ barExits: 16 })], [30_000, 30_000, 90_000], [10_000, 10_000, 10_000]), opts('random'));
    expect(figures.fault_over_floor_p50).toBeCloseTo(3, 1);
    expect(figures.exits_per_mib).toBe(2); // 16 exits over 8 MiB
  });
});

/** A guest memory that stores and loads faithfully, except where `corrupt` says otherwise. */
class Memory implements GuestCpu {
  lo = 0;
  hi = 0;
  stores = 0;
  private readonly words = new Map<number, [number, number]>();
  constructor(private readonly corrupt: (gpa: number, lo: number, hi: number, n: number) => { gpa: number; lo: number; hi: number } | null = (gpa, lo, hi) => ({ gpa, lo, hi })) {}
  store64(gpa: number, lo: number, hi: number): void {
    const w = this.corrupt(gpa, lo, hi, this.stores++);
    if (w) this.words.set(w.gpa, [w.lo >>> 0, w.hi >>> 0]);
  }
  load64(gpa: number): void {
    [this.lo, this.hi] = this.words.get(gpa) ?? [0, 0];
  }
}

const blobs: BlobView[] = [{ id: 10, gpa: BAR, pages: 8 }, { id: 11, gpa: BAR + 16 * 4096, pages: 8 }];

function sweep(cpu: GuestCpu, vcpu = 0, vcpus = 1, pattern: PatternName = 'sweep'): Workload {
  const w = new Workload({ pattern, blobs, seed: 1 }, vcpu, vcpus);
  for (let i = 0; i < 100_000 && !w.finished; i++) w.step(cpu);
  expect(w.finished).toBe(true);
  return w;
}

describe('the copy sweep (every byte written and read back)', () => {
  it('writes every 8-byte word of its blobs once, with distinct contents, and checks every one on read-back', () => {
    const m = new Memory();
    const w = sweep(m);
    const bytes = 16 * 4096;
    expect(w.counters).toMatchObject({ bytesWritten: bytes, bytesVerified: bytes, writes: bytes / 8, reads: bytes / 8, integrityErrors: 0 });
    const seen = new Set<string>();
    for (const b of blobs) for (let p = 0; p < b.pages; p++) for (let q = 0; q < 512; q++) {
      m.load64(b.gpa + p * 4096 + q * 8);
      const want = sweepWord(b.id, p, q);
      expect([m.lo, m.hi]).toEqual([want.lo, want.hi]);
      seen.add(`${m.lo}:${m.hi}`);
    }
    expect(seen.size).toBe(16 * 512);
  });

  it('splits the blobs between vCPUs with no page left out or covered twice', () => {
    const m = new Memory();
    const parts = [0, 1, 2].map((v) => sweep(m, v, 3));
    expect(parts.reduce((n, w) => n + w.counters.bytesWritten, 0)).toBe(16 * 4096);
    expect(parts.reduce((n, w) => n + w.counters.integrityErrors, 0)).toBe(0);
  });

  const broken: [string, (gpa: number, lo: number, hi: number, n: number) => { gpa: number; lo: number; hi: number } | null][] = [
    ['one flipped byte', (gpa, lo, hi, n) => ({ gpa, lo, hi: n === 3001 ? hi ^ 0x0000_ff00 : hi })],
    ['one dropped store', (gpa, lo, hi, n) => (n === 4095 ? null : { gpa, lo, hi })],
    ['a store that lands one word off', (gpa, lo, hi, n) => ({ gpa: n === 777 ? gpa + 8 : gpa, lo, hi })],
    ['two pages aliased to one frame', (gpa, lo, hi) => ({ gpa: gpa >= BAR + 4096 && gpa < BAR + 2 * 4096 ? gpa - 4096 : gpa, lo, hi })],
  ];
  it.each(broken)('finds %s on read-back', (_name, corrupt) => {
    const w = sweep(new Memory(corrupt));
    expect(w.counters.integrityErrors).toBeGreaterThan(0);
    expect(w.counters.samples[0]).toMatch(/blob \d+ page \d+ word \d+: read/);
  });

  it('the touch sweep writes one word per page', () => {
    const w = sweep(new Memory(), 0, 1, 'sweep-touch');
    expect([w.counters.writes, w.counters.bytesWritten, w.counters.bytesVerified]).toEqual([16, 16 * 8, 0]);
  });
});

describe('lineChart', () => {
  it('leaves out a series with nothing to draw: no line, no legend entry', () => {
    const svg = lineChart({ title: 'T', xLabel: 'x', yLabel: 'y', logY: true, series: [{ name: 'ran', points: [[1, 10], [2, 100]] }, { name: 'did-not-run', points: [[1, 0]] }] });
    expect(svg).toContain('>ran<');
    expect(svg).not.toContain('did-not-run');
  });
});
