/** `xvgpu bench --quick`: the acceptance run of the benchmark suite, and its report files. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { STRATEGIES, type BenchReport } from '../../src/bench/suite.js';
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

  it('holds the floor, every strategy on every workload, and the headline ratios', () => {
    expect(status, stderr).toBe(0);
    expect(report.schema).toBe('xvgpu-bench/1');
    expect(report.floor.cases.length).toBeGreaterThanOrEqual(10);
    for (const w of ['sweep-64MiB', 'random-256MiB', 'hotset-evict']) {
      for (const s of STRATEGIES) expect(report.scenarios.find((x) => x.workload === w && x.strategy === s.name), `${w} × ${s.name}`).toBeDefined();
    }
    expect(report.scenarios.filter((s) => s.workload.startsWith('scaling-')).length).toBe(12);
    expect(report.ratios.fault_p50_over_floor_p50).toBeGreaterThan(0);
    expect(report.ratios.emulate_all_time_over_fault_time).toBeGreaterThan(0);
    expect(report.correctness).toEqual({ stale_accesses: 0, integrity_errors: 0, guest_crashes: 0 });
    // Every scenario's guest actually ran its workload.
    for (const s of report.scenarios) expect(s.aggregate.first_access_ns?.min, `${s.workload} × ${s.strategy}`).toBeGreaterThan(0);
    // Every aggregate carries min <= median <= max.
    for (const s of report.scenarios) for (const a of Object.values(s.aggregate)) expect(a.min <= a.median && a.median <= a.max).toBe(true);
  });

  it('writes the Markdown summary, the HTML page and every plot as SVG and PNG', () => {
    const r = join(dir, 'report');
    for (const f of ['report.json', 'summary.md', 'index.html']) expect(existsSync(join(r, f)), f).toBe(true);
    for (const p of ['fault-cdf', 'throughput-vcpus', 'exits-fault-around']) {
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
