/** `xvgpu bench --quick`: the acceptance run of the benchmark suite, and its report files. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { STRATEGIES, copySweep, touchSweep, workloads, type BenchReport, type RunMetrics, type ScenarioResult, type WorkloadSpec } from '../../src/bench/suite.js';
import { floorProbe } from '../../src/session/simulation.js';
import { lineChart } from '../../src/bench/svg.js';
import { distFile } from '../../src/util/dist-path.js';

describe('xvgpu bench --quick', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvgpu-bench-'));
  let report: BenchReport;
  let status: number | null;
  let stderr = '';
  beforeAll(() => {
    const r = spawnSync(process.execPath, [distFile('cli/main.js'), 'bench', '--quick', '--json', join(dir, 'out.json'), '--report', join(dir, 'report')], { encoding: 'utf8', timeout: 300_000 });
    status = r.status;
    stderr = r.stderr;
    report = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as BenchReport;
  }, 320_000);

  const quick = workloads(true);
  const copy = copySweep(true);
  const touch = touchSweep(true);
  const scenario = (w: string, st: string): ScenarioResult => {
    const s = report.scenarios.find((x) => x.workload === w && x.strategy === st);
    if (!s) throw new Error(`no scenario ${w} × ${st}`);
    return s;
  };
  const runs = (): { s: ScenarioResult; r: RunMetrics }[] => report.scenarios.flatMap((s) => s.runs.map((r) => ({ s, r })));

  it('runs every strategy on every workload and passes its correctness checks', () => {
    expect(status, stderr).toBe(0);
    expect(report.schema).toBe('xvgpu-bench/2');
    for (const w of quick) for (const st of STRATEGIES) scenario(w.name, st.name);
    expect(report.scenarios.filter((s) => s.workload.startsWith('scaling-')).length).toBe(12);
    expect(report.correctness).toEqual({ stale_accesses: 0, integrity_errors: 0, guest_crashes: 0 });
    // Every scenario's guest actually ran its workload.
    for (const { s, r } of runs()) expect(r.first_access_ns, `${s.workload} × ${s.strategy}`).toBeGreaterThan(0);
    // Every aggregate carries min <= median <= max.
    for (const s of report.scenarios) for (const a of Object.values(s.aggregate)) expect(a.min <= a.median && a.median <= a.max).toBe(true);
  });

  it('measures in every run the floor of the same exit and wakes (a handler that answers at once), and quotes faults against it', () => {
    for (const { s, r } of runs()) {
      const where = `${s.workload} × ${s.strategy}`;
      expect(r.floor_ns?.count, where).toBe(s.vcpus * floorProbe(s.vcpus).rounds);
      if (r.fault_ns && r.floor_ns) expect(r.fault_over_floor_p50, where).toBeCloseTo(r.fault_ns.p50 / r.floor_ns.p50, 1);
    }
    expect(report.ratios.workload).toBe(copy.name);
    expect(report.touch_ratios.workload).toBe(touch.name);
    for (const t of [report.ratios, report.touch_ratios]) {
      expect(t.null_reasons).toEqual({});
      for (const k of ['fault_p50_over_floor_p50', 'fault_p50_over_waiter_same_cpu_p50', 'emulate_all_time_over_fault_time', 'eager_time_over_fault_time'] as const) expect(t[k], k).toBeGreaterThan(0);
    }
    // The context floors (xvgpu bench floor) are still there.
    expect(report.floor.cases.length).toBeGreaterThanOrEqual(10);
  });

  it('counts in the fault histogram only BAR exits of the workload window', () => {
    for (const { s, r } of runs()) expect(r.fault_ns?.count ?? 0, `${s.workload} × ${s.strategy}`).toBe(r.bar_exits);
    // eager maps every blob when it is placed: its sweeps make no BAR exit (boot's device-register
    // and BAR traffic is outside the window), so there is no fault latency, and it says why.
    for (const w of [copy, touch]) {
      const s = scenario(w.name, 'eager');
      expect(s.runs.map((r) => [r.bar_exits, r.fault_ns])).toEqual(s.runs.map(() => [0, null]));
      expect(s.null_reasons.fault_ns).toBe('no BAR faults in the measured window');
      expect(s.fault_cdf).toEqual([]);
    }
    // One exit per page at fault-around 1, one per access for emulate-all: exactly, boot's faults not included.
    const pages = (w: WorkloadSpec): number => (w.blobs * w.blobSize) / 4096;
    for (const st of ['fault-retry-1', 'fault-emulate-1']) {
      for (const w of [copy, touch]) expect(scenario(w.name, st).runs.map((r) => r.fault_ns?.count), `${w.name} × ${st}`).toEqual([pages(w)]);
    }
    expect(scenario(touch.name, 'emulate-all').runs.map((r) => r.fault_ns?.count)).toEqual([pages(touch)]);
    expect(scenario(copy.name, 'emulate-all').runs.map((r) => r.fault_ns?.count)).toEqual([(2 * copy.blobSize) / 8]);
  });

  it('copies every byte of the blob in the copy sweep and checks it on read-back; times each sweep on its own clock', () => {
    for (const st of STRATEGIES) {
      for (const r of scenario(copy.name, st.name).runs) {
        expect([r.bytes_written, r.bytes_verified, r.integrity_errors], st.name).toEqual([copy.blobSize, copy.blobSize, 0]);
      }
      for (const r of scenario(touch.name, st.name).runs) expect(r.bytes_written, st.name).toBe(touch.blobSize / 512);
      for (const w of [copy, touch]) {
        for (const r of scenario(w.name, st.name).runs) {
          const mib = w.blobSize / 2 ** 20;
          expect(r.sweep_ns, `${w.name} × ${st.name}`).toBeGreaterThan(0);
          expect(Math.abs((r.sweep_mib_per_s ?? 0) - mib / ((r.sweep_ns ?? 0) / 1e9)), `${w.name} × ${st.name}`).toBeLessThanOrEqual(0.01);
        }
      }
    }
  });

  it('docs/benchmarks.md documents exactly the field names the report has', () => {
    const doc = readFileSync(new URL('../../docs/benchmarks.md', import.meta.url), 'utf8');
    const block = /## Report schema[^\n]*\n+```\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    // Lower-case words of the block that are placeholders, not field names.
    const words = new Set(['xvgpu', 'bench', 'time', 'string', 'bool', 'n', 'same', 'cpu', 'cross', 'unpinned', 'latency', 'null', 'field', 'reason', 'or', 'percentile', 'ns', 'the', 'fields', 'as', 'for', 'touch', 'sweep']);
    const documented = new Set((block.match(/[a-z][a-z0-9_]*/g) ?? []).filter((w) => !words.has(w)));
    const keys = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) for (const x of v) walk(x);
      else if (v !== null && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          keys.add(k);
          // Keys of aggregate and null_reasons are field names, not schema; aggregate's values are.
          if (k === 'aggregate') for (const stat of Object.values(x as object)) walk(stat);
          else if (k !== 'null_reasons') walk(x);
        }
      }
    };
    walk(report);
    expect([...keys].filter((k) => !documented.has(k)), 'in the JSON, not in the doc').toEqual([]);
    expect([...documented].filter((k) => !keys.has(k)), 'in the doc, not in the JSON').toEqual([]);
  });

  it('writes the Markdown summary, the HTML page and every plot as SVG and PNG', () => {
    const r = join(dir, 'report');
    for (const f of ['report.json', 'summary.md', 'index.html']) expect(existsSync(join(r, f)), f).toBe(true);
    for (const p of ['fault-cdf', 'throughput-vcpus', 'exits-fault-around']) {
      expect(readFileSync(join(r, 'summary.md'), 'utf8')).toContain(`\`${p}.png\``);
      const png = readFileSync(join(r, `${p}.png`));
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect(statSync(join(r, `${p}.png`)).size).toBeGreaterThan(5000);
    }
    expect(readFileSync(join(r, 'summary.md'), 'utf8')).toMatch(/emulate-all time \/ xvgpu time/);
  });
});

describe('lineChart', () => {
  it('draws each series with its legend and skips points a log axis cannot show', () => {
    const svg = lineChart({ title: 'T', xLabel: 'x', yLabel: 'y', logY: true, series: [{ name: 'a<b', points: [[1, 10], [2, 100]] }, { name: 'zero', points: [[1, 0]] }] });
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('a&lt;b');
    expect(svg.match(/<polyline/g)).toHaveLength(1);
  });
});
