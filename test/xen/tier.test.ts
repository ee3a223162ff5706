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
  xvgpu: { requests: number; bad: number; reclaimed_server: number | null; bar: { faults: number; emulated: number }; helper: { maps: number; installed_pages: number; revoked_pages: number; invalidations: number } } | null;
  xen_memory_map: { add: number; remove: number };
}
interface KillResult extends CaseResult { at_kill: { frames_added: number; frames_removed: number; helper_refcnt: number }; xvgpu_exit: number }
interface DestroyResult extends CaseResult { xvgpu_alive_after_destroy: boolean; xvgpu_exit: number; helper_unloaded: boolean; domains_left: number }
interface PvhResult { a: CaseResult; b: CaseResult; inject: CaseResult; d: KillResult; e: DestroyResult; problems: string[] }

const SCENARIOS = ['smoke', 'pvh'];
const TIMEOUT_S = 1500;

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

  it('kill -9 of xvgpu leaves nothing mapped, no read reaches the old frames, a restarted xvgpu serves', () => {
    const { d } = pvh();
    expect(d.at_kill.frames_added, JSON.stringify(d)).toBeGreaterThan(0);
    expect(d.at_kill.frames_removed).toBe(d.at_kill.frames_added);
    expect(d.at_kill.helper_refcnt).toBe(0);
    expect(d.guest?.ok, JSON.stringify(d)).toBe(true);
    expect([d.guest?.stale_reads, d.guest?.post_unmap_not_all_ones, d.guest?.mismatches, d.guest?.fill_mismatches]).toEqual([0, 0, 0, 0]);
    expect(d.xvgpu?.requests).toBeGreaterThan(0);
    expect(d.xvgpu?.reclaimed_server).not.toBeNull(); // the killed xvgpu's server, destroyed at restart
    expect(d.xvgpu_exit).toBe(0);
  });

  it('xl destroy of the guest while pages are mapped: xvgpu exits 0 with its summary, the helper unloads, no domain left', () => {
    const { e } = pvh();
    expect(e.xvgpu?.helper.installed_pages, JSON.stringify(e)).toBeGreaterThan(0);
    expect(e.xvgpu_exit).toBe(0);
    expect(e.helper_unloaded).toBe(true);
    expect(e.domains_left).toBe(0);
  });
});
