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
  xvgpu: { requests: number; reclaimed_server: number | null; bar: { faults: number; emulated: number; revokes: number }; helper: { maps: number; installed_pages: number; revoked_pages: number } } | null;
  xen_memory_map: { add: number; remove: number };
  xvgpu_exit: number | null;
}
interface KillResult extends CaseResult { at_kill: { frames_added: number; frames_removed: number; helper_refcnt: number } }
interface DestroyResult extends CaseResult { helper_unloaded: boolean; domains_left: number }
interface UnsafeResult extends CaseResult { unsafe: boolean; unsafe_reason: string; works: boolean; failure?: unknown }
interface PvhResult { a: CaseResult; b: CaseResult; inject: CaseResult; c: UnsafeResult; d: KillResult; e: DestroyResult; problems: string[] }

// hvm-virtio-gpu (issue 11 scenario 2) is not in this list: it has not passed on real Xen yet
// (xen-tier/README.md says where it stands). It joins once green.
const SCENARIOS = ['smoke', 'helper-xen', 'pvh'];
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
    // run.sh's per-scenario summaries (issue 11's figures), for the CI log.
    for (const line of r.stdout.split('\n')) if (line.startsWith('XVGPU-TIER summary ')) console.log(line);
  }, (360 + SCENARIOS.length * (TIMEOUT_S + 60)) * 1000);

  const load = (name: string): unknown => JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8'));
  const pvh = (): PvhResult => load('pvh') as PvhResult;
  const guestErrors = (g: GuestResult | null | undefined): unknown[] => [g?.ok, g?.mismatches, g?.fill_mismatches, g?.refault_mismatches, g?.post_unmap_not_all_ones];

  it('boots dom0 with the Xen tools, loads the helper and runs a PVH guest', () => {
    expect(status, log).toBe(0);
    expect((load('smoke') as { xen_version: string }).xen_version).toMatch(/^4\.17\./);
  });

  it('runs the kernel helper\'s xen back-end selftest in dom0 against real domains: all cases pass, every Xen mapping removed', () => {
    const h = load('helper-xen') as { selftest_rc: number; passed: number; failed: number; xen_memory_map_adds: number; xen_memory_map_unremoved: number };
    expect(h, log).toMatchObject({ selftest_rc: 0, failed: 0, xen_memory_map_unremoved: 0 });
    expect(h.passed).toBe(8);
    expect(h.xen_memory_map_adds).toBeGreaterThan(0);
  });

  it('pvh a: a PVH guest served emulate-all: nothing mapped, every access an ioreq, data intact', () => {
    const { a } = pvh();
    expect(guestErrors(a.guest), JSON.stringify(a)).toEqual([true, 0, 0, 0, 0]);
    expect(a.guest?.stale_reads).toBe(0);
    // Nothing in the guest's p2m: every BAR access exits to xvgpu and is emulated there.
    expect(a.xvgpu?.helper.installed_pages).toBe(0);
    expect(a.xen_memory_map.add).toBe(0);
    expect(a.xvgpu?.bar.faults).toBeGreaterThan(0);
    expect(a.xvgpu?.bar.emulated).toBe(a.xvgpu?.bar.faults);
  });

  it('pvh b: map-and-emulate maps MMIO frames on fault, revokes them, re-faults, never reads stale data, fewer ioreqs than a', () => {
    const { a, b } = pvh();
    expect(guestErrors(b.guest), JSON.stringify(b)).toEqual([true, 0, 0, 0, 0]);
    expect(b.guest?.stale_reads).toBe(0);
    expect(b.xvgpu?.helper.installed_pages).toBeGreaterThan(0);
    expect(b.xvgpu?.helper.revoked_pages).toBeGreaterThan(0);
    expect(b.xvgpu?.requests).toBeLessThan(a.xvgpu?.requests ?? 0);
  });

  it('pvh inject: with the helper losing revocations (test_lose_revoke=1) the guest reads freed frames and the detector counts them', () => {
    const { inject } = pvh();
    expect(inject.guest?.stale_reads, JSON.stringify(inject)).toBeGreaterThan(0);
  });

  it('pvh c (unsafe prototype, RAM as MMIO on vgem buffers) is labelled unsafe and either serves the guest or says why not', () => {
    const { c } = pvh();
    expect(c.unsafe, JSON.stringify(c)).toBe(true);
    expect(c.unsafe_reason).toMatch(/p2m_mmio_direct/);
    if (!c.works) expect(c.failure).toBeDefined();
  });

  it('pvh d: kill -9 of xvgpu removes every mapped frame, releases the helper; a restarted xvgpu reclaims the old server and serves', () => {
    const { d } = pvh();
    expect(d.at_kill.frames_added, JSON.stringify(d)).toBeGreaterThan(0);
    expect(d.at_kill.frames_removed).toBe(d.at_kill.frames_added);
    expect(d.at_kill.helper_refcnt).toBe(0);
    expect(guestErrors(d.guest)).toEqual([true, 0, 0, 0, 0]);
    expect(d.guest?.stale_reads).toBe(0);
    expect(d.xvgpu?.requests).toBeGreaterThan(0);
    expect(d.xvgpu?.reclaimed_server).not.toBeNull();
    expect(d.xvgpu_exit).toBe(0);
  });

  it('pvh e: xl destroy of the guest while pages are mapped: xvgpu exits 0, the helper unloads, no domain is left', () => {
    const { e } = pvh();
    expect(e.xvgpu?.helper.installed_pages, JSON.stringify(e)).toBeGreaterThan(0);
    expect(e.xvgpu_exit).toBe(0);
    expect(e.helper_unloaded).toBe(true);
    expect(e.domains_left).toBe(0);
  });

  it('pvh: the scenario found no problem', () => {
    expect(pvh().problems).toEqual([]);
  });
});
