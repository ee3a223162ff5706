/**
 * The Xen tier on the patched hypervisor (hypervisor/build.sh, cached): scenario pvh-retry
 * (xen-tier/scenarios/pvh-retry.sh). A PVH guest served in map-then-retry mode on memfd RAM lent
 * through the kernel helper's xen-dmop back-end, the same workload in map-and-emulate and
 * emulate-all, a notifier revocation by hole punching, kill -9 of xvgpu and destruction of the
 * guest with pages lent. Ratios are reported in OUT/pvh-retry.json, not asserted; only structural
 * facts are (retry takes fewer BAR ioreqs per MiB than emulate-all).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

// The scenario took 719 s and 855 s of wall time on a shared 2-core host (six guest boots of 80-95 s,
// ea's 8200 ioreqs 263 s; README.md); TCG under more load is slower.
const TIMEOUT_S = 1200;
const BUILD_S = 1200;

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
  const out = mkdtempSync(join(tmpdir(), 'xen-tier-retry-'));
  let log = '';
  let status: number | null = null;
  let r: Result;
  beforeAll(() => {
    const build = spawnSync('hypervisor/build.sh', [], { encoding: 'utf8', timeout: BUILD_S * 1000 });
    if (build.status !== 0) throw new Error(`hypervisor/build.sh failed (${build.status}): ${build.stderr}`);
    const xen = build.stdout.trim().split('\n').pop() ?? '';
    const run = spawnSync('bash', ['xen-tier/run.sh', '--hypervisor', xen, '--scenarios', 'pvh-retry', '--out', out, '--timeout', String(TIMEOUT_S)], {
      encoding: 'utf8',
      timeout: (300 + TIMEOUT_S + 60) * 1000,
    });
    log = `${run.stdout}\n${run.stderr}`;
    status = run.status;
    try {
      r = JSON.parse(readFileSync(join(out, 'pvh-retry.json'), 'utf8')) as Result;
    } catch (e) {
      throw new Error(`no pvh-retry.json (${String(e)}); run.sh exited ${status}:\n${log.slice(-8000)}`, { cause: e });
    }
  }, (BUILD_S + 360 + TIMEOUT_S + 60) * 1000);

  it('passes with no problem reported', () => {
    expect(status, log).toBe(0);
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
