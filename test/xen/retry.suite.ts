/**
 * The Xen tier on the patched hypervisor (hypervisor/build.sh, cached): scenarios pvh-retry
 * (xen-tier/scenarios/pvh-retry.sh) and hvm-retry (the HVM scenario in retry mode). A PVH guest served in map-then-retry mode on memfd RAM lent
 * through the kernel helper's xen-dmop back-end, the same workload in map-and-emulate and
 * emulate-all, a notifier revocation by hole punching, kill -9 of xvgpu and destruction of the
 * guest with pages lent. Ratios are reported in OUT/pvh-retry.json, not asserted; only structural
 * facts are (retry takes fewer BAR ioreqs per MiB than emulate-all). Imported by tier.test.ts; the
 * boot is shared with ext.suite.ts (test/xen/patched.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { expectHvmClientServed, type HvmResult } from './hvm-checks.js';
import { patchedBootBoundMs, patchedResult } from './patched.js';

interface Summary {
  mode: string; p2m_backend: string; buffers: string; extension: { version: number; features: number } | null;
  requests: number; answered_retry: number;
  bar: { faults: number; retries: number; emulated: number; forward_progress: number; not_offered: number; revokes: number; revoked_pages: number };
  helper: { installed_pages: number; revoked_pages: number; invalidations: number };
}
interface Guest { ok: boolean; stale_reads: number; post_unmap_not_all_ones: number; mismatches: number; fill_mismatches: number; refault_mismatches: number }
interface Run { guest: Guest | null; xvgpu: Summary | null; xvgpu_exit?: number; helper_refcnt_after_kill?: number; helper_unloaded?: boolean; domains_left?: number }
interface Figures { bar_ioreqs_per_mib: number; ioreqs_per_mib: number }
interface Result {
  figures: { emulate_all: Figures; map_and_emulate: Figures; retry: Figures };
  pages: Record<'kl' | 'ds', { dom0_tot_pages_delta: number; xen_free_pages_delta: number }>;
  runs: Record<'ea' | 'me' | 'rt' | 'rv' | 'kl' | 'ds', Run>;
  problems: string[];
}

describe('Xen tier: the patched Xen 4.17.7, xvgpu in map-then-retry mode (pvh-retry)', () => {
  let r: Result;
  beforeAll(() => {
    r = patchedResult('pvh-retry') as Result;
  }, patchedBootBoundMs());

  it('passes with no problem reported', () => {
    expect(r.problems).toEqual([]);
  });

  it('chooses retry on memfd through xen-dmop by default, where Xen reports both features', () => {
    expect(r.runs.rt.xvgpu).toMatchObject({ mode: 'retry', p2m_backend: 'xen-dmop', buffers: 'memfd', extension: { version: 1, features: 3 } });
    expect(r.runs.me.xvgpu).toMatchObject({ mode: 'emulate', p2m_backend: 'xen-dmop', buffers: 'memfd' });
  });

  it('answers each first touch with a retry; the re-execution reaches the lent page; emulation only with a reason', () => {
    const x = r.runs.rt.xvgpu as Summary;
    expect(r.runs.rt.guest).toMatchObject({ ok: true, mismatches: 0, stale_reads: 0, post_unmap_not_all_ones: 0, fill_mismatches: 0, refault_mismatches: 0 });
    expect(x.answered_retry).toBe(x.bar.retries);
    expect(x.bar.retries).toBeGreaterThanOrEqual(32); // 2 blobs x 16 pages, each first touched once
    expect(x.bar.emulated).toBe(x.bar.forward_progress + x.bar.not_offered);
    expect(x.helper.installed_pages).toBeGreaterThanOrEqual(32);
    expect(r.runs.me.xvgpu?.answered_retry).toBe(0);
    expect(r.runs.ea.xvgpu?.helper.installed_pages).toBe(0);
  });

  it('takes fewer BAR ioreqs per MiB touched in retry and map-and-emulate than in emulate-all', () => {
    const f = r.figures;
    expect(f.retry.bar_ioreqs_per_mib).toBeLessThan(f.emulate_all.bar_ioreqs_per_mib);
    expect(f.map_and_emulate.bar_ioreqs_per_mib).toBeLessThan(f.emulate_all.bar_ioreqs_per_mib);
  });

  it('revokes inside the MMU notifier when the host takes the frames; the next reads fault and see the new content, never the old', () => {
    const rv = r.runs.rv;
    expect(rv.xvgpu?.bar.revokes).toBeGreaterThan(0);
    expect(rv.xvgpu?.bar.revoked_pages).toBeGreaterThanOrEqual(16);
    expect(rv.guest).toMatchObject({ stale_reads: 0, post_unmap_not_all_ones: 16 });
  });

  it('leaves no lent entry and no helper reference after kill -9, and every page back after the guest is destroyed', () => {
    expect(r.runs.kl.guest).toMatchObject({ stale_reads: 0, post_unmap_not_all_ones: 0 });
    expect(r.runs.kl.helper_refcnt_after_kill).toBe(0);
    expect(r.runs.ds).toMatchObject({ xvgpu_exit: 0, helper_unloaded: true, domains_left: 0 });
    for (const n of ['kl', 'ds'] as const) {
      expect(r.pages[n].dom0_tot_pages_delta).toBe(0);
      expect(r.pages[n].xen_free_pages_delta).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('Xen tier: the patched Xen 4.17.7, an HVM guest\'s own virtio-gpu driver served in map-then-retry mode (hvm-retry)', () => {
  it('serves the guest\'s drivers as on stock Xen, with memfd blobs lent through xen-dmop and first touches answered with a retry', () => {
    const r = patchedResult('hvm-retry') as HvmResult;
    expectHvmClientServed(r);
    expect(r).toMatchObject({ mode: 'retry', p2m_backend: 'xen-dmop', blobs_backed_by: { kind: 'memfd' } });
    const bar = r.bar as NonNullable<HvmResult['bar']>;
    // The guest touched its mapped blobs: each first touch of a page is a fault answered with a retry
    // (the vCPU re-executes against the lent page); emulation only where Xen offered no retry or for
    // forward progress.
    expect(bar.retries).toBeGreaterThan(0);
    expect(r.answered_retry).toBe(bar.retries);
    expect(bar.emulated).toBe(bar.forward_progress + bar.not_offered);
    expect(r.helper?.installed_pages).toBeGreaterThan(0);
  }, patchedBootBoundMs());
});
