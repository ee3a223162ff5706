/**
 * xvgpu's patched Xen 4.17.7 (hypervisor/, docs/xen-extension.md) on the Xen tier: hypervisor/build.sh
 * builds it (cached by the hash of tarball, patches and config), xen-tier/run.sh boots it under QEMU
 * TCG and runs the xen-ext scenario (xen-tier/scenarios/xen-ext.sh, dom0's xen_ext_test and
 * xen_dmop_helper_test). Needs what tier.test.ts needs plus the Xen tarball, flex and bison
 * (.ci/run installs them); a missing input fails the build or the run, with one line saying what.
 *
 * Imported by tier.test.ts (one Xen boot at a time); the boot is shared with retry.suite.ts
 * (test/xen/patched.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { patchedBootBoundMs, patchedResult } from './patched.js';

interface Check { ok: boolean; detail: string }
type Checks = Record<string, unknown>;
interface Request { type: string; page: number; off: number; size: number; count: number; dir: string; ptr: number; retry: number; answer: string }
interface Result {
  query: { rc: number; version: number; features: number };
  retry_flag: { retry_flag_errno: number; unknown_flag_errno: number };
  xen_info: { extension: { retry: { value: boolean }; mapDmop: { value: boolean }; ioreqRetry: { value: boolean }; dmExtInfo: { value: { version: number; features: number } } } };
  run: Checks & { failures: number; free_pages_delta: number; dom0_tot_pages: [number, number, number] };
  retry: Checks & { failures: number; retry_server: { ioreqs: number; offered: number; retried: number; completed: number } };
  retry_kinds: Checks & { failures: number; requests: Request[] };
  retry_hostile: Record<'noflag' | 'pio' | 'split', Checks & { failures: number; requests: Request[]; xen_crash_site: string }>;
  helper: Checks & { failures: number; stats: { invalidations: number; revoked_pages: number; resident_pages: number } };
}

/** Every hostile argument xen_ext_test tries, with the errno docs/xen-extension.md documents. */
const HOSTILE = [
  'lend_nr_zero', 'lend_dst_wraps', 'lend_dst_beyond_width', 'lend_src_wraps', 'lend_bad_flags', 'lend_bad_pad',
  'lend_not_owned_mfn0', 'lend_mmio_frame', 'lend_over_guest_ram', 'lend_into_caller', 'lend_xen_special_page',
  'lend_through_privcmd_restricted_to_another_domain', 'lend_no_such_domain', 'lend_dying_domain', 'revoke_bad_src',
  'revoke_nr_zero', 'revoke_wraps', 'revoke_guest_ram_is_noop', 'lend_partial_failure_reports_progress',
  'lend_over_lent_entry', 'revoke_partial_leftovers',
];
const NPAGES = 4;

const check = (c: Checks, name: string): Check => {
  const v = c[name] as Check | undefined;
  if (!v) throw new Error(`check ${name} is missing from the results`);
  return v;
};
const expectOk = (c: Checks, names: readonly string[]): void => {
  for (const n of names) expect(check(c, n), n).toMatchObject({ ok: true });
};

describe('Xen tier: the patched hypervisor (xen-ext)', () => {
  let r: Result;
  beforeAll(() => {
    r = patchedResult('xen-ext') as Result;
  }, patchedBootBoundMs());

  it('answers the feature query (version 1, both bits) and xvgpu xen-info reports both', () => {
    expect(r.query).toMatchObject({ rc: 0, version: 1, features: 3 });
    expect(r.retry_flag).toEqual({ retry_flag_errno: 0, unknown_flag_errno: 22 });
    expect(r.xen_info.extension).toMatchObject({ retry: { value: true }, mapDmop: { value: true }, ioreqRetry: { value: true }, dmExtInfo: { value: { version: 1, features: 3 } } });
  });

  it('refuses every hostile argument with its documented errno', () => {
    expectOk(r.run, HOSTILE);
  });

  it('lends rw/ro pages the guest reads and writes, and revokes them', () => {
    expectOk(r.run, ['lend_rw_ro_and_alias', 'guest_reads_lent_pages', 'guest_write_reaches_rw_page', 'guest_write_to_ro_page_dropped', 'revoke_run', 'guest_sees_revocation', 'revoke_again_is_noop']);
  });

  it('a guest destroyed with pages lent gives every reference back (dom0 page count, Xen free memory)', () => {
    expectOk(r.run, ['lend_before_destroy', 'guest_destroyed_with_pages_lent', 'guest_fully_gone', 'dom0_frees_its_pages', 'page_references_returned', 'xen_free_memory_returns']);
    const [before, allocated, freed] = r.run.dom0_tot_pages;
    expect(allocated - before).toBe(NPAGES);
    expect(allocated - freed).toBe(NPAGES); // a leaked reference keeps a page allocated to dom0
    expect(r.run.free_pages_delta).toBeGreaterThanOrEqual(NPAGES);
    expect(r.run.failures).toBe(0);
  });

  it('a RETRY-flagged server lends on first touch and answers STATE_IORESP_RETRY; the guest re-executes and is not crashed', () => {
    expectOk(r.retry, ['retry_server_up', 'retry_guest_reads_lent_pages', 'retry_guest_writes_rw_not_ro', 'retry_guest_completed', 'retry_first_touches_retried', 'retry_guest_not_crashed']);
    expect(r.retry.retry_server.retried).toBe(NPAGES);
    expect(r.retry.failures).toBe(0);
  });

  it('offers a retry only for the first access of an MMIO instruction: split, rep movs (data_is_ptr), rep stos, PIO', () => {
    expectOk(r.retry_kinds, ['kinds_server_up', 'kinds_guest_completed', 'split_read_value', 'split_first_chunk_offered_and_retried', 'split_second_chunk_not_offered', 'rep_movs_ptr_request_not_offered', 'rep_movs_data_arrives', 'rep_stos_offered_and_retried', 'rep_stos_reexecuted_exactly', 'pio_not_offered']);
    const req = r.retry_kinds.requests;
    expect(req.filter((q) => q.ptr === 1 && q.retry === 1)).toEqual([]);
    expect(req.filter((q) => q.type === 'pio' && q.retry === 1)).toEqual([]);
    expect(req.some((q) => q.type === 'mmio' && q.page === 1 && q.off === 0 && q.retry === 0)).toBe(true);
    expect(r.retry_kinds.failures).toBe(0);
  });

  it('a retry Xen did not offer crashes the guest: server without the flag, PIO, a split access\'s second chunk', () => {
    for (const mode of ['noflag', 'pio', 'split'] as const) {
      const h = r.retry_hostile[mode];
      expectOk(h, ['kinds_server_up', 'hostile_retry_sent_to_unoffered_request', 'hostile_retry_crashes_guest', 'hostile_access_never_completed']);
      expect(h.xen_crash_site, mode).toMatch(/domain_crash called from common\/ioreq\.c/);
      expect(h.failures, mode).toBe(0);
    }
    // A server without the flag never sees the bit (ioreq_send() clears it).
    expect(r.retry_hostile.noflag.requests.filter((q) => q.retry === 1)).toEqual([]);
  });

  it('the kernel helper\'s xen-dmop back-end lends a registered buffer and revokes it from its invalidate callback', () => {
    expectOk(r.helper, ['bind_xen_dmop', 'register_and_map', 'guest_reads_buffer', 'guest_writes_rw_not_ro', 'invalidate_revokes', 'helper_counts_revocation']);
    expect(r.helper.stats.revoked_pages).toBe(NPAGES);
    expect(r.helper.stats.resident_pages).toBe(0);
    expect(r.helper.stats.invalidations).toBeGreaterThan(0);
  });
});
