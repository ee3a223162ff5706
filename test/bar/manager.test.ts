import { afterEach, describe, expect, it } from 'vitest';
import { IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_WRITE, STATE_IORESP_READY, STATE_IORESP_RETRY, emptyIoreq } from '../../src/xen/abi/ioreq.js';
import { HelperSignal } from '../../src/platform/ports.js';
import { BAR_BASE, exchange, fixture, type Fixture } from '../support/sim.js';

const P = 4096;
let f: Fixture | undefined;
afterEach(async () => { f?.backend.stop(); await f?.platform.hv.close(); f = undefined; });

function p2mFrame(fx: Fixture, barPage: number): number {
  return Atomics.load(fx.platform.xen.views.p2m, barPage) - 1;
}

describe('BarManager fault policy', () => {
  it('maps the fault-around run that holds the page, clipped to the blob, and answers retry', async () => {
    f = fixture({ mode: 'retry', faultAround: 16, hugePages: false });
    const blob = f.backend.createBlob(20 * P);
    f.backend.mapBlob(blob.id, 8 * P); // BAR pages 8..27
    const r = await exchange(f.platform, 0, { addr: BAR_BASE + 18 * P, dir: IOREQ_READ });
    expect(r.state).toBe(STATE_IORESP_RETRY);
    // The aligned block [16, 32) clipped to the blob's [8, 28).
    expect(f.platform.helper.query(BAR_BASE / P, 64)).toEqual([{ gfn: BAR_BASE / P + 16, pages: 12, range: blob.range, pageInRange: 8, huge: false }]);
    for (let p = 16; p < 28; p++) expect(p2mFrame(f, p)).toBe(f.platform.simGpu.frameOf(blob.bo, p - 8));
    expect(p2mFrame(f, 15)).toBe(-1);
    expect(f.backend.bar.counters).toMatchObject({ faults: 1, retries: 1, installedPages: 12, residentPages: 12 });
  });

  it('in emulate mode completes reads and writes against the buffer', async () => {
    f = fixture({ mode: 'emulate', faultAround: 1, hugePages: false });
    const blob = f.backend.createBlob(4 * P);
    f.backend.mapBlob(blob.id, 0);
    const w = await exchange(f.platform, 0, { addr: BAR_BASE + 2 * P + 16, dir: IOREQ_WRITE, dataLo: 0xcafe, dataHi: 0xbeef });
    expect(w.state).toBe(STATE_IORESP_READY);
    // The write landed in the BO frame itself.
    const frame = f.platform.simGpu.frameOf(blob.bo, 2);
    expect(f.platform.xen.views.host32[(frame * P + 16) / 4]).toBe(0xcafe);
    expect(f.platform.xen.views.host32[(frame * P + 20) / 4]).toBe(0xbeef);
    // Unmap it, so the read faults again, and read back through emulation with a 2-byte access.
    f.backend.unmapBlob(blob.id);
    f.backend.mapBlob(blob.id, 0);
    const r = await exchange(f.platform, 1, { addr: BAR_BASE + 2 * P + 16, size: 2, dir: IOREQ_READ });
    expect([r.state, r.dataLo, r.dataHi]).toEqual([STATE_IORESP_READY, 0xcafe, 0]);
    expect(f.backend.bar.counters.emulated).toBe(2);
  });

  it('maps a whole 2 MiB superpage when frames and offsets align, and revokes exactly what is evicted', async () => {
    f = fixture({ mode: 'retry', faultAround: 1, hugePages: true });
    const blob = f.backend.createBlob(1024 * P);
    f.backend.mapBlob(blob.id, 0);
    await exchange(f.platform, 0, { addr: BAR_BASE + 700 * P, dir: IOREQ_READ });
    const runs = f.platform.helper.query(BAR_BASE / P, 1024);
    expect(runs).toEqual([{ gfn: BAR_BASE / P + 512, pages: 512, range: blob.range, pageInRange: 512, huge: true }]);
    expect(f.backend.bar.counters.hugeMaps).toBe(1);
    // Evict 3 pages in the middle: only those lose their p2m entries; the superpage is split.
    await f.platform.simGpu.evict(blob.bo, 600, 3);
    expect([p2mFrame(f, 599), p2mFrame(f, 600), p2mFrame(f, 602), p2mFrame(f, 603)].map((x) => x >= 0)).toEqual([true, false, false, true]);
    const after = f.platform.helper.query(BAR_BASE / P, 1024);
    expect(after.reduce((n, r) => n + r.pages, 0)).toBe(509);
    expect(after.every((r) => !r.huge)).toBe(true);
    await new Promise((r) => setImmediate(r)); // the event reaches the manager
    expect(f.backend.bar.counters).toMatchObject({ revokes: 1, revokedPages: 3, residentPages: 509 });
  });

  it('falls back to the fault-around run when the frames are not contiguous', async () => {
    f = fixture({ mode: 'retry', faultAround: 4, hugePages: true });
    const blob = f.backend.createBlob(512 * P);
    f.backend.mapBlob(blob.id, 0);
    await f.platform.simGpu.evict(blob.bo, 100, 1); // page 100 now lives elsewhere
    await exchange(f.platform, 0, { addr: BAR_BASE + 9 * P, dir: IOREQ_READ });
    expect(f.platform.helper.query(BAR_BASE / P, 512)).toEqual([{ gfn: BAR_BASE / P + 8, pages: 4, range: blob.range, pageInRange: 8, huge: false }]);
  });

  it('serves a vCPU by emulation after retryLimit retries on the same page (forward progress)', async () => {
    f = fixture({ mode: 'retry', faultAround: 1, hugePages: false, retryLimit: 2 });
    const blob = f.backend.createBlob(4 * P);
    f.backend.mapBlob(blob.id, 0);
    const states: number[] = [];
    for (let i = 0; i < 3; i++) {
      // A revoke storm: the page is taken back before every re-execution.
      states.push((await exchange(f.platform, 0, { addr: BAR_BASE + P, dir: IOREQ_READ })).state);
      await f.platform.simGpu.evict(blob.bo, 1, 1);
    }
    expect(states).toEqual([STATE_IORESP_RETRY, STATE_IORESP_RETRY, STATE_IORESP_READY]);
    expect(f.backend.bar.counters.forwardProgress).toBe(1);
    // Another vCPU on the same page has its own streak.
    expect((await exchange(f.platform, 1, { addr: BAR_BASE + P, dir: IOREQ_READ })).state).toBe(STATE_IORESP_RETRY);
    // The forced vCPU's next ioreq on that page (the second 8-byte chunk of the same vector move)
    // is emulated too: a retry now would re-execute an instruction whose first chunk completed
    // (the model's MUT_RETRY_CONT). Emulation holds until the vCPU faults on another page.
    await f.platform.simGpu.evict(blob.bo, 1, 1);
    expect((await exchange(f.platform, 0, { addr: BAR_BASE + P + 8, dir: IOREQ_READ })).state).toBe(STATE_IORESP_READY);
    expect((await exchange(f.platform, 0, { addr: BAR_BASE + 2 * P, dir: IOREQ_READ })).state).toBe(STATE_IORESP_RETRY);
  });

  it('in retry mode emulates a fault the hypervisor offered no retry on (a later access of an instruction), keeping the streak', async () => {
    f = fixture({ mode: 'retry', faultAround: 1, hugePages: false, retryLimit: 2 });
    const blob = f.backend.createBlob(4 * P);
    f.backend.mapBlob(blob.id, 0);
    f.platform.simGpu.writeBo(blob.bo, P + 8, Uint8Array.of(0x78, 0x56, 0x34, 0x12));
    const out = { retry: false, lo: 0, hi: 0 };
    const req = { ...emptyIoreq(), addr: BAR_BASE + P + 8, size: 4, count: 1, dir: IOREQ_READ, type: IOREQ_TYPE_COPY, mustComplete: true };
    await f.backend.bar.handle(req, 0, out);
    expect([out.retry, out.lo]).toEqual([false, 0x12345678]);
    expect(f.backend.bar.counters).toMatchObject({ faults: 1, retries: 0, emulated: 1, notOffered: 1, forwardProgress: 0 });
    // The same request with the offer is retried.
    const offered = { retry: false, lo: 0, hi: 0 };
    await f.backend.bar.handle({ ...req, mustComplete: false }, 0, offered);
    expect(offered.retry).toBe(true);
  });

  it('reads holes in the BAR as all ones; a rep fault in retry mode maps and retries like any other', async () => {
    f = fixture({ mode: 'retry', faultAround: 1, hugePages: false });
    const blob = f.backend.createBlob(4 * P);
    f.backend.mapBlob(blob.id, 0);
    const hole = await exchange(f.platform, 0, { addr: BAR_BASE + 100 * P, dir: IOREQ_READ });
    expect([hole.state, hole.dataLo, hole.dataHi]).toEqual([STATE_IORESP_READY, 0xffff_ffff, 0xffff_ffff]);
    const rep = await exchange(f.platform, 0, { addr: BAR_BASE + P, dir: IOREQ_READ, count: 4, dataIsPtr: true, dataLo: 0x100 });
    expect(rep.state).toBe(STATE_IORESP_RETRY);
    expect(p2mFrame(f, 1)).toBe(f.platform.simGpu.frameOf(blob.bo, 1));
    expect(f.backend.bar.counters).toMatchObject({ holes: 1, rejected: 0, faults: 1, retries: 1, strings: 0 });
  });

  it('revokes every mapped page before RESOURCE_UNMAP_BLOB returns', async () => {
    f = fixture({ mode: 'retry', faultAround: 16, hugePages: false });
    const blob = f.backend.createBlob(32 * P);
    f.backend.mapBlob(blob.id, 0);
    await exchange(f.platform, 0, { addr: BAR_BASE, dir: IOREQ_READ });
    await exchange(f.platform, 0, { addr: BAR_BASE + 20 * P, dir: IOREQ_READ });
    expect(f.platform.helper.stats().residentPages).toBe(32);
    f.backend.unmapBlob(blob.id);
    expect(f.platform.helper.stats().residentPages).toBe(0);
    for (let p = 0; p < 32; p++) expect(p2mFrame(f, p)).toBe(-1);
    expect(f.backend.bar.counters.residentPages).toBe(0);
  });

  it('ignores a revoke event older than the mapping it would clear', async () => {
    f = fixture({ mode: 'retry', faultAround: 1, hugePages: false });
    const blob = f.backend.createBlob(4 * P);
    f.backend.mapBlob(blob.id, 0);
    await exchange(f.platform, 0, { addr: BAR_BASE, dir: IOREQ_READ });
    // Evict, and fault the page back in before the event is delivered to the manager.
    const evicted = f.platform.simGpu.evict(blob.bo, 0, 1);
    await evicted;
    const again = exchange(f.platform, 0, { addr: BAR_BASE, dir: IOREQ_READ });
    await again;
    await new Promise((r) => setImmediate(r));
    expect(p2mFrame(f, 0)).toBe(f.platform.simGpu.frameOf(blob.bo, 0));
    expect(f.backend.bar.counters.residentPages).toBe(1);
  });
});

describe('BarManager and the helper\'s own events', () => {
  const signal = (event: number, lost = 0) => ({ range: 0, firstPage: 0, pages: 0, revoked: 0, event: event as typeof HelperSignal.Overflow, seq: 0, startNs: 0n, doneNs: 0n, lost });

  it('on Overflow counts the lost events and resyncs residency from QUERY', async () => {
    f = fixture({ mode: 'retry', faultAround: 16, hugePages: false });
    const blob = f.backend.createBlob(16 * P);
    f.backend.mapBlob(blob.id, 0);
    await exchange(f.platform, 0, { addr: BAR_BASE, dir: IOREQ_READ });
    expect(f.backend.bar.counters.residentPages).toBe(16);
    // Revocations whose events were lost: the entries are gone, the manager never heard of it.
    f.platform.helper.unmap(BAR_BASE / P + 4, 8);
    expect(f.backend.bar.counters.residentPages).toBe(16);
    f.backend.bar.onHelperEvent(signal(HelperSignal.Overflow, 5));
    expect(f.backend.bar.counters).toMatchObject({ eventsLost: 5, residentPages: 8, invalidations: 0 });
  });

  it('counts a Fatal event, which fails the run', () => {
    f = fixture({ mode: 'retry', faultAround: 1, hugePages: false });
    f.backend.bar.onHelperEvent(signal(HelperSignal.Fatal));
    expect(f.backend.bar.counters).toMatchObject({ helperFatal: 1, invalidations: 0 });
  });
});
