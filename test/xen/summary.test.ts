/**
 * xen-tier/lib/summary.mjs: the per-scenario summary line run.sh prints after a Xen tier run
 * (issue 11's figures: ioreqs, faults, maps, revokes, stale reads, guest-visible errors, wall times).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const guest = { ok: true, error: '', error_line: 0, reads: 100, writes: 50, mismatches: 0, stale_reads: 0, post_unmap_not_all_ones: 0, fill_mismatches: 0, refault_mismatches: 0, first_touch_ns_avg: 9000, later_touch_ns_avg: 300 };
const xvgpu = { requests: 40, bar: { faults: 3, emulated: 20, revokes: 2 }, helper: { maps: 3, installed_pages: 12, revoked_pages: 12 } };
const run = { guest, xvgpu, xen_memory_map: { add: 12, remove: 12, fail: 0 }, wall_ms: 5000 };

function summarize(tier: unknown, result: unknown): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'xt-summary-'));
  writeFileSync(join(dir, 'tier.json'), JSON.stringify(tier));
  writeFileSync(join(dir, 'result.json'), JSON.stringify(result));
  const line = execFileSync('node', ['xen-tier/lib/summary.mjs', join(dir, 'tier.json'), `pvh=${join(dir, 'result.json')}`, `smoke=${join(dir, 'absent.json')}`], { encoding: 'utf8' }).trim().split('\n');
  expect(line).toHaveLength(2);
  expect(line[1]).toBe('XVGPU-TIER summary smoke {"status":"not run","wall_s":null}');
  const prefix = 'XVGPU-TIER summary pvh ';
  expect(line[0]?.startsWith(prefix)).toBe(true);
  return JSON.parse(line[0]?.slice(prefix.length) ?? '') as Record<string, unknown>;
}

describe('xen-tier summary line', () => {
  it('gives each pvh run its ioreqs, faults, maps, revokes, stale reads, guest errors and wall time', () => {
    const s = summarize({ scenarios: { pvh: { status: 'ok', wall_s: 812.5 } } }, { runs: ['b'], b: run, problems: [] });
    expect(s).toMatchObject({ status: 'ok', wall_s: 812.5, problems: [] });
    expect((s.runs as Record<string, unknown>).b).toEqual({
      ioreqs: 40, faults: 3, emulated: 20, maps: 3, installed_pages: 12, revokes: 2, revoked_pages: 12, stale_reads: 0, guest_errors: 0, guest_error: null,
      first_touch_ns_avg: 9000, later_touch_ns_avg: 300, xen_frames_mapped: 12, xen_frames_unmapped: 12, wall_ms: 5000,
    });
  });

  it('counts every guest-visible error and keeps a missing figure null with its reason', () => {
    const bad = { ...run, guest: { ...guest, ok: false, error: 'command never completed', error_line: 90, mismatches: 2, fill_mismatches: 1 }, xvgpu: null };
    const s = summarize({ scenarios: { pvh: { status: 'fail rc=1', wall_s: 100 } } }, { runs: ['a', 'd'], a: bad, d: null, problems: ['a: x'] });
    const runs = s.runs as Record<string, Record<string, unknown>>;
    expect(runs.a).toMatchObject({ ioreqs: null, faults: null, guest_errors: 4, guest_error: 'command never completed (line 90)', null_reasons: { xvgpu: 'xvgpu wrote no --json summary' } });
    expect(runs.d).toEqual({ null_reasons: { run: 'the run wrote no summary' } });
  });

  it('labels the unsafe run and gives its unmeasurable stale reads as null with the reason', () => {
    const c = { ...run, unsafe: true, unsafe_reason: 'RAM as p2m_mmio_direct', stale_reads_null_reason: 'RAM is not poisoned' };
    const s = summarize({ scenarios: { pvh: { status: 'ok', wall_s: 1 } } }, { runs: ['c'], c, problems: [] });
    expect((s.runs as Record<string, unknown>).c).toMatchObject({ unsafe: true, unsafe_reason: 'RAM as p2m_mmio_direct', stale_reads: null, null_reasons: { stale_reads: 'RAM is not poisoned' } });
  });
});
