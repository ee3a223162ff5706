/**
 * The benchmark's xen section (src/bench/xen.ts) over tier output directories written here: the
 * ratios come from the figures of the same tier run, and every figure a run did not measure is null
 * with a reason (a 0 from the guest program means "timed nothing", not "took no time").
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { xenMarkdown, xenSection } from '../../src/bench/xen.js';

const lat = (p50: number, count = 10): Record<string, number> => ({ count, p50, p90: p50, p99: p50 * 2, p999: p50 * 2, max: p50 * 3 });

function pvhRun(requests: number, latency: Record<string, unknown>, firstNs: number, laterNs: number): Record<string, unknown> {
  return { guest: { ok: true, first_touch_ns_avg: firstNs, later_touch_ns_avg: laterNs }, xvgpu: { requests, latency } };
}

function tierDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'xen-bench-'));
  for (const [name, v] of Object.entries(files)) writeFileSync(join(dir, `${name}.json`), typeof v === 'string' ? v : JSON.stringify(v));
  return dir;
}

const B_LATENCY = { bar_service_ns: lat(300_000), register_service_ns: lat(30_000), revoke_ns: lat(500_000) };
const FULL = {
  pvh: {
    a: pvhRun(40_000, { bar_service_ns: lat(90_000), register_service_ns: lat(30_000), revoke_ns: null, null_reasons: { revoke_ns: 'nothing mapped was revoked' } }, 200_000, 180_000),
    b: pvhRun(4_000, B_LATENCY, 900_000, 300),
  },
  baseline: { service_ns: lat(60_000), revoke_ns: lat(100_000), null_reasons: {} },
  tier: { wall_s: 600 },
};

describe('bench xen section', () => {
  it('computes each ratio from the same tier run\'s figures', () => {
    const x = xenSection(tierDir(FULL));
    expect(x.ratios).toEqual({
      fault_service_over_register_p50: 10,
      fault_service_over_soft_p2m_p50: 5,
      guest_fault_over_emulated_read: 5,
      guest_fault_over_mapped_read: 3000,
      revoke_over_soft_p2m_p50: 5,
      ioreqs_emulate_all_over_map_and_emulate: 10,
    });
    expect(x.null_reasons).toEqual({});
    expect(x.tier).toEqual({ wall_s: 600 });
    expect(xenMarkdown(x)).toContain('fault service on Xen / on the soft p2m (p50): **5×**');
  });

  it('files a missing baseline scenario as null with the reason, keeping the pvh figures', () => {
    const x = xenSection(tierDir({ pvh: FULL.pvh, tier: FULL.tier }));
    expect(x.figures.soft_p2m_revoke_ns).toBeNull();
    expect(x.ratios.revoke_over_soft_p2m_p50).toBeNull();
    expect(x.null_reasons.soft_p2m_revoke_ns).toMatch(/baseline\.json is not in/);
    expect(x.null_reasons.revoke_over_soft_p2m_p50).toMatch(/soft_p2m_revoke_ns: baseline\.json is not in/);
    expect(x.ratios.fault_service_over_register_p50).toBe(10);
    expect(xenMarkdown(x)).toMatch(/revoke on Xen \/ on the soft p2m \(p50\): null \(soft_p2m_revoke_ns: baseline\.json/);
  });

  it('reads a guest average of 0 as "timed nothing": null, not a ratio of 0 or infinity', () => {
    const dir = tierDir({ ...FULL, pvh: { ...FULL.pvh, b: pvhRun(4_000, B_LATENCY, 0, 0) } });
    const x = xenSection(dir);
    expect(x.figures.guest_fault_ns).toBeNull();
    expect(x.ratios.guest_fault_over_mapped_read).toBeNull();
    expect(x.null_reasons.guest_fault_ns).toBe("run b's guest timed no page");
  });

  it('passes on xvgpu\'s own reason for an empty histogram', () => {
    const b = pvhRun(4_000, { bar_service_ns: lat(300_000), register_service_ns: lat(30_000), revoke_ns: null, null_reasons: { revoke_ns: 'nothing mapped was revoked' } }, 900_000, 300);
    const x = xenSection(tierDir({ ...FULL, pvh: { ...FULL.pvh, b } }));
    expect(x.figures.revoke_ns).toBeNull();
    expect(x.null_reasons.revoke_ns).toBe('nothing mapped was revoked');
  });

  it('refuses a directory with no tier results, and says what is wrong with a corrupt one', () => {
    expect(() => xenSection(tierDir({}))).toThrow(/no Xen tier results/);
    const x = xenSection(tierDir({ pvh: '{not json', baseline: FULL.baseline }));
    expect(x.null_reasons.fault_service_ns).toMatch(/pvh\.json is not JSON/);
  });

  it('`xvgpu bench xen --results DIR --json -` prints the section as JSON', () => {
    const dir = tierDir(FULL);
    const r = spawnSync(process.execPath, ['dist/cli/main.js', 'bench', 'xen', '--results', dir, '--json', '-'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ source: dir, ratios: { fault_service_over_soft_p2m_p50: 5 } });
    expect(r.stderr).toContain('## Real Xen');
  });

  it('`xvgpu bench xen` with a bad option is a usage error', () => {
    const r = spawnSync(process.execPath, ['dist/cli/main.js', 'bench', 'xen', '--resutls', '/tmp'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/resutls/);
  });
});
