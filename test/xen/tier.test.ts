/**
 * The Xen tier (xen-tier/run.sh): Debian's Xen 4.17 under QEMU TCG, a PV dom0 with the Xen daemons,
 * the kernel helper (`xen` back-end) and xvgpu, and the scenarios run in dom0. Each scenario's JSON
 * summary lands in OUT/NAME.json. Needs qemu-system-x86, debootstrap, the Debian kernel and apt
 * (.ci/run installs them); without them run.sh fails with one line naming what is missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

interface GuestResult { ok: boolean; error: string; reads: number; writes: number; mismatches: number; stale_reads: number; post_unmap_not_all_ones: number; fill_mismatches: number; refault_mismatches: number }
interface CaseResult {
  guest: GuestResult | null;
  xvgpu: { requests: number; bad: number; bar: { faults: number; emulated: number }; helper: { maps: number; installed_pages: number; revoked_pages: number; invalidations: number } } | null;
  xen_memory_map: { add: number; remove: number };
}
interface PvhResult { a: CaseResult; b: CaseResult; inject: CaseResult; problems: string[] }

const SCENARIOS = ['smoke', 'pvh'];
const TIMEOUT_S = 600;

describe('Xen tier: stock Xen 4.17 under QEMU', () => {
  const out = mkdtempSync(join(tmpdir(), 'xen-tier-'));
  let log = '';
  let status: number | null = null;
  beforeAll(() => {
    const r = spawnSync('bash', ['xen-tier/run.sh', '--hypervisor', 'debian', '--scenarios', SCENARIOS.join(','), '--out', out, '--timeout', String(TIMEOUT_S)], {
      encoding: 'utf8',
      timeout: (300 + SCENARIOS.length * (TIMEOUT_S + 60)) * 1000,
    });
    log = `${r.stdout}\n${r.stderr}`;
    status = r.status;
  }, (360 + SCENARIOS.length * (TIMEOUT_S + 60)) * 1000);

  const load = (name: string): unknown => JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8'));
  const pvh = (): PvhResult => load('pvh') as PvhResult;

  it('boots dom0 with the Xen tools, loads the helper and runs a PVH guest', () => {
    expect(status, log).toBe(0);
    expect((load('smoke') as { xen_version: string }).xen_version).toMatch(/^4\.17\./);
  });

  it('serves a PVH guest emulate-all: every access an ioreq, nothing mapped, data intact', () => {
    const { a } = pvh();
    expect(a.guest?.ok, JSON.stringify(a)).toBe(true);
    expect([a.guest?.mismatches, a.guest?.stale_reads, a.guest?.fill_mismatches, a.guest?.post_unmap_not_all_ones]).toEqual([0, 0, 0, 0]);
    expect(a.xvgpu?.helper.installed_pages).toBe(0);
    expect(a.xvgpu?.requests).toBeGreaterThan(a.guest?.reads ?? 0);
  });

  it('maps MMIO frames on fault (memory_mapping), revokes them, re-faults, never reads stale data', () => {
    const { a, b } = pvh();
    expect(b.guest?.ok, JSON.stringify(b)).toBe(true);
    expect([b.guest?.mismatches, b.guest?.stale_reads, b.guest?.fill_mismatches, b.guest?.refault_mismatches, b.guest?.post_unmap_not_all_ones]).toEqual([0, 0, 0, 0, 0]);
    expect(b.xvgpu?.helper.installed_pages).toBeGreaterThan(0);
    expect(b.xvgpu?.helper.revoked_pages).toBeGreaterThan(0);
    expect(b.xvgpu?.requests).toBeLessThan(a.xvgpu?.requests ?? 0);
  });

  it('counts stale reads when the helper skips revocation (test_skip_revoke=1)', () => {
    const { inject } = pvh();
    expect(inject.guest?.stale_reads).toBeGreaterThan(0);
  });
});
