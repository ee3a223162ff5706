/** The aggregated report, the host capability probe and the runner's outcome classes, without Redis. */
import { describe, expect, it } from 'vitest';
import { campaignFrom } from '../../src/fleet/campaign.js';
import { detectCapabilities } from '../../src/fleet/capabilities.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, flattenSummary, fleetMarkdown, writeFleetReport } from '../../src/fleet/report.js';
import type { CellResult } from '../../src/fleet/results.js';
import type { CampaignStatus } from '../../src/fleet/status.js';

const campaign = campaignFrom({ name: 'r', matrix: { workloads: ['hotset-evict'], strategies: ['eager'], vcpus: [2], hosts: ['a', 'b'], repeats: 3 } }, 'r.yaml');

function result(i: number, host: string, accesses: number, p50: number): CellResult {
  const cell = campaign.cells[i];
  if (!cell) throw new Error('no cell');
  return {
    cell, host, worker: `${host}-1`, machine: `${host}.example`, attempt: 1, finished: '2026-01-01T00:00:00Z', exit_code: 0,
    summary: { accesses, duration_s: 2, fault_ns: { p50, p99: p50 * 10 }, stale_accesses: 0, integrity_errors: 0, guest_crashes: [], platform: 'sim' },
  };
}

function status(results: CellResult[], dead: string[] = []): CampaignStatus {
  return {
    campaign: { campaignId: 'r-1', name: 'r', file: 'r.yaml', submitted: '2026-01-01T00:00:00Z', cells: campaign.cells.map((c) => ({ id: c.id, queue: 'q' })) },
    finished: true,
    cells: campaign.cells.map((c) => ({
      id: c.id, queue: 'q', state: dead.includes(c.id) ? 'dead' : results.some((r) => r.cell.id === c.id) ? 'done' : 'waiting',
      failedAttempts: dead.includes(c.id) ? 3 : 0, lastError: dead.includes(c.id) ? 'timed out after 1 s' : undefined, host: results.find((r) => r.cell.id === c.id)?.host,
    })),
    results: new Map(results.map((r) => [r.cell.id, r])),
  };
}

describe('fleet report', () => {
  it('flattens a run summary: numbers, nested latency summaries, crash lists as counts, derived accesses/s', () => {
    expect(flattenSummary({ accesses: 1000, duration_s: 4, fault_ns: { p50: 5, p99: 9 }, guest_crashes: ['x'], platform: 'sim', pinned: null }))
      .toEqual({ accesses: 1000, duration_s: 4, 'fault_ns.p50': 5, 'fault_ns.p99': 9, guest_crashes: 1, accesses_per_s: 250 });
  });

  it('aggregates repeats per host into min / median / max, and keeps hosts apart', () => {
    // cells: host a r0..r2 are 0..2, host b r0..r2 are 3..5
    const r = buildReport(status([result(0, 'a', 200, 10), result(1, 'a', 600, 30), result(2, 'a', 400, 20), result(3, 'b', 1000, 5)], [campaign.cells[4]?.id ?? '']));
    expect(r.hosts.map((h) => h.host)).toEqual(['a', 'b']);
    const a = r.hosts[0]?.scenarios[0];
    expect(a?.runs).toBe(3);
    expect(a?.aggregate.accesses_per_s).toEqual({ min: 100, median: 200, max: 300, runs: 3 });
    expect(a?.aggregate['fault_ns.p50']).toEqual({ min: 10, median: 20, max: 30, runs: 3 });
    expect(r.hosts[1]?.scenarios[0]?.runs).toBe(1);
    expect(r.cells).toEqual({ total: 6, with_result: 4, dead: 1, pending: 1 });
    expect(r.dead).toEqual([{ id: campaign.cells[4]?.id, attempts: 3, error: 'timed out after 1 s' }]);
    const md = fleetMarkdown(r);
    expect(md).toMatch(/\| hotset-evict × eager × 2 vCPU \(sim\) \| 200 \(100–300\) \| 500 \|/);
    expect(md).toMatch(/## host a \(a\.example\)/);
    expect(md).toMatch(/## Dead letter[\s\S]*hotset-evict\.eager\.v2\.sim\.b\.r1: 3 attempt\(s\): timed out after 1 s/);
  });

  it('writes the JSON, the summary and a throughput plot per workload with a line per host', () => {
    const r = buildReport(status([result(0, 'a', 200, 10), result(3, 'b', 1000, 5)]));
    const dir = mkdtempSync(join(tmpdir(), 'xvgpu-fleet-report-'));
    expect(writeFleetReport(r, dir).map((f) => f.slice(dir.length + 1))).toEqual(['report.json', 'summary.md', 'throughput-hotset-evict.svg']);
    expect((JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as { schema: string }).schema).toBe('xvgpu-fleet/1');
    const svg = readFileSync(join(dir, 'throughput-hotset-evict.svg'), 'utf8');
    expect(svg).toMatch(/>a eager</);
    expect(svg).toMatch(/>b eager</);
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows a metric a summary lacks as –, never as 0', () => {
    const r = buildReport(status([result(0, 'a', 200, 10)]));
    expect(fleetMarkdown(r)).toMatch(/\| eager \| sim \| 2 \| 1 \| 100 \| 0\.0 \| 0\.1 \| – \| – \| – \| – \| – \|/);
  });
});

describe('host capabilities', () => {
  it('serves sim always, linux with the kernel helper, xen with either Xen evidence file', () => {
    const caps = (present: string[]): readonly string[] => detectCapabilities((p) => present.includes(p)).platforms;
    expect(caps([])).toEqual(['sim']);
    expect(caps(['/dev/xvgpu_helper'])).toEqual(['sim', 'linux']);
    expect(caps(['/proc/xen/capabilities'])).toEqual(['sim', 'xen']);
    expect(caps(['/dev/xen/privcmd', '/dev/xvgpu_helper'])).toEqual(['sim', 'linux', 'xen']);
    expect(detectCapabilities(() => false).notes.join('\n')).toMatch(/xvgpu xen-info|\/proc\/xen\/capabilities/);
  });
});
