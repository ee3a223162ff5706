/**
 * Bench cells: the campaign schema's `bench` entries, the `xvgpu bench` command a worker runs for
 * one (a real child process), and the aggregation of stored suite reports across hosts. The
 * fixture is the report of one real `xvgpu bench --quick --json` run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/suite.js';
import { SUITE_HELP } from '../../src/cli/bench.js';
import { campaignFrom, cellTimeoutS, type BenchCell, type Cell } from '../../src/fleet/campaign.js';
import { buildReport, fleetMarkdown } from '../../src/fleet/report.js';
import type { CellResult } from '../../src/fleet/results.js';
import { CellFailure, CellRejected, cellCommand, runCell } from '../../src/fleet/runner.js';
import type { CampaignStatus } from '../../src/fleet/status.js';
import { OK_CAMPAIGN, campaignError } from './campaign-errors.js';

const FIXTURE = JSON.parse(readFileSync('test/fleet/fixtures/bench-quick.json', 'utf8')) as BenchReport;
const ok = OK_CAMPAIGN;
const benchOf = (c: { cells: readonly Cell[] }): BenchCell[] => c.cells.flatMap((x) => (x.kind === 'bench' ? [x] : []));

const error = campaignError;

describe('bench cells in a campaign', () => {
  it('expands one entry or a list into one cell per host and repeat, on the simulated platform', () => {
    expect(benchOf(campaignFrom({ ...ok, bench: { quick: true } }, 'c.yaml')).map((c) => c.id)).toEqual(['bench-quick.sim.any.r0']);
    const c = campaignFrom({ ...ok, bench: [{ quick: true, hosts: ['a', 'b'], repeats: 2 }, { repeat: 5, hosts: ['a'], timeout_s: 3600 }] }, 'c.yaml');
    expect(c.cells.filter((x) => x.kind === 'run')).toHaveLength(1);
    expect(benchOf(c).map((x) => [x.id, x.quick, x.repeat, x.platform, x.host, x.timeoutS])).toEqual([
      ['bench-quick.sim.a.r0', true, undefined, 'sim', 'a', undefined],
      ['bench-quick.sim.a.r1', true, undefined, 'sim', 'a', undefined],
      ['bench-quick.sim.b.r0', true, undefined, 'sim', 'b', undefined],
      ['bench-quick.sim.b.r1', true, undefined, 'sim', 'b', undefined],
      ['bench-full-x5.sim.a.r0', false, 5, 'sim', 'a', 3600],
    ]);
    expect(c.cells.map((x) => cellTimeoutS(c, x))).toEqual([900, 900, 900, 900, 900, 3600]);
  });

  it.each([
    [{ ...ok, bench: { quick: 'yes' } }, /^c\.yaml: bench\.quick: Invalid input: expected boolean, received string$/],
    [{ ...ok, bench: { fast: true } }, /^c\.yaml: bench: Unrecognized key: "fast"$/],
    [{ ...ok, bench: [{ quick: true }, { repeat: 0 }] }, /^c\.yaml: bench\[1\]\.repeat: Too small/],
    [{ ...ok, bench: { hosts: ['rack:1'] } }, /^c\.yaml: bench\.hosts\[0\]: letters, digits, _ and - only$/],
    [{ ...ok, bench: [] }, /^c\.yaml: bench: Too small/],
    [{ ...ok, bench: [{ quick: true }, { quick: true }] }, /^c\.yaml: bench: 'bench-quick\.sim\.any\.r0' is listed twice$/],
  ])('rejects bad bench entry %# with a one-line error naming the path', (data, msg) => {
    expect(error(data)).toMatch(msg);
  });
});

describe('the command a worker runs for a bench cell', () => {
  const cell: BenchCell = { kind: 'bench', id: 'b', quick: true, repeat: 2, platform: 'sim', host: 'any', repeatIndex: 0, timeoutS: undefined };
  const opts = { timeoutS: 60, onTick: () => undefined, signal: new AbortController().signal };

  it('is `xvgpu bench --json FILE` with the cell\'s options, all of which `xvgpu bench --help` lists', () => {
    const cmd = cellCommand(cell);
    const file = cmd.argv[2] ?? '';
    expect(cmd.argv).toEqual(['bench', '--json', file, '--quick', '--repeat', '2']);
    expect(file).toMatch(/xvgpu-fleet-bench-[^/]+\/report\.json$/);
    for (const o of cmd.argv.filter((a) => a.startsWith('--'))) expect(SUITE_HELP).toContain(`  ${o} `);
    expect(cellCommand({ ...cell, quick: false, repeat: undefined }).argv.slice(3)).toEqual([]);
    cmd.cleanup();
    expect(existsSync(dirname(file))).toBe(false);
  });

  it('takes the report the child wrote as the result, and refuses one of another schema', () => {
    const cmd = cellCommand(cell);
    const file = cmd.argv[2] ?? '';
    expect(() => cmd.result('')).toThrow(CellFailure);
    expect(() => cmd.result('')).toThrow(/xvgpu bench wrote no readable report: ENOENT/);
    cmd.cleanup();
    expect(file).not.toBe('');
  });

  it('runs as a real `xvgpu bench` child: a rejected option is not retried, a foreign report fails the attempt', async () => {
    await expect(runCell(cellCommand({ ...cell, repeat: 0 }), opts)).rejects.toThrow(CellRejected);
    await expect(runCell(cellCommand({ ...cell, repeat: 0 }), opts)).rejects.toThrow(/^xvgpu bench rejected the cell: .*repeat/);
    const cmd = cellCommand(cell);
    const file = cmd.argv[2] ?? '';
    // `xvgpu bench floor` writes a JSON report to the same place, but not a suite report.
    await expect(runCell({ ...cmd, argv: ['bench', 'floor', '--rounds', '100', '--json', file] }, opts)).rejects.toThrow(/wrote a report of schema '.*', not xvgpu-bench\/2/);
    expect(existsSync(dirname(file))).toBe(false);
  });
});

describe('bench cells in the aggregated report', () => {
  const c = campaignFrom({ ...ok, matrix: { ...ok.matrix, hosts: ['a'] }, bench: { quick: true, hosts: ['a', 'b'] } }, 'c.yaml');
  const [run, benchA, benchB] = c.cells;
  const slower: BenchReport = {
    ...FIXTURE,
    ratios: { ...FIXTURE.ratios, emulate_all_time_over_fault_time: 40.5, fault_p50_over_floor_p50: null, null_reasons: { fault_p50_over_floor_p50: 'no floor measured on this host' } },
  };
  const result = (cell: Cell | undefined, host: string, summary: object): CellResult => {
    if (!cell) throw new Error('no cell');
    return { cell, host, worker: `${host}-1`, machine: `${host}.example`, attempt: 1, finished: '2026-01-01T00:00:00Z', exit_code: 0, summary: summary as Record<string, unknown> };
  };
  const results = [
    result(run, 'a', { accesses: 100, duration_s: 1, stale_accesses: 0, integrity_errors: 0, guest_crashes: [] }),
    result(benchB, 'b', slower),
    result(benchA, 'a', FIXTURE),
  ];
  const status: CampaignStatus = {
    campaign: { campaignId: 'c-1', name: 'c', file: 'c.yaml', submitted: '2026-01-01T00:00:00Z', cells: c.cells.map((x) => ({ id: x.id, queue: 'q' })) },
    finished: true,
    cells: c.cells.map((x) => ({ id: x.id, queue: 'q', state: 'done', failedAttempts: 0, lastError: undefined, host: undefined })),
    results: new Map(results.map((r) => [r.cell.id, r])),
  };
  const r = buildReport(status);
  const md = fleetMarkdown(r);

  it('keeps bench reports apart from the run scenarios, one entry per bench cell by host', () => {
    expect(r.hosts.map((h) => [h.host, h.scenarios.length])).toEqual([['a', 1]]);
    expect(r.bench.map((b) => [b.host, b.cell, b.report.schema])).toEqual([['a', 'bench-quick.sim.a.r0', 'xvgpu-bench/2'], ['b', 'bench-quick.sim.b.r0', 'xvgpu-bench/2']]);
  });

  it('tables the headline ratios of both sweeps across hosts, a null with its reason', () => {
    const a = FIXTURE.ratios;
    expect(md).toContain('| ratio | a (a.example, bench-quick.sim.a.r0) | b (b.example, bench-quick.sim.b.r0) |');
    expect(md).toContain(`| emulate-all time / xvgpu time (\`${a.workload}\`) | ${a.emulate_all_time_over_fault_time}× | 40.5× |`);
    expect(md).toContain(`| xvgpu fault p50 / floor p50 (\`${a.workload}\`) | ${a.fault_p50_over_floor_p50}× | null |`);
    const t = FIXTURE.touch_ratios;
    expect(md).toContain(`| eager time / xvgpu time (\`${t.workload}\`) | ${t.eager_time_over_fault_time}× | ${t.eager_time_over_fault_time}× |`);
    expect(md).toMatch(/null: b \(b\.example, bench-quick\.sim\.b\.r0\) sweep-copy-1MiB fault_p50_over_floor_p50: no floor measured on this host\./);
    expect(md).toContain('| correctness: stale / integrity / crashes | 0 / 0 / 0 | 0 / 0 / 0 |');
  });

  it("includes each suite's own Markdown report under its host, headings moved down", () => {
    expect(md).toMatch(/## bench on host a \(a\.example, bench-quick\.sim\.a\.r0\), exit 0\n\n### xvgpu benchmark \(quick\)/);
    expect(md).toContain('#### Headline ratios');
    expect(md).toContain(`**${FIXTURE.ratios.emulate_all_time_over_fault_time}×**`);
    expect(md.indexOf('## bench on host a')).toBeLessThan(md.indexOf('## bench on host b'));
  });
});
