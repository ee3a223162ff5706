/**
 * A randomized race stress test of the real code on the simulated platform, driving the
 * interleavings the model (model/fault-revoke.pml) explores: many vCPUs faulting on a few pages
 * of one small blob while host eviction fires at a high rate. Every run must show zero stale
 * accesses and integrity errors, no lost fault (every ioreq the guest posted was taken and
 * answered), and retries bounded by the forward-progress limit (D5). The seed is random per run
 * and printed; XVGPU_STRESS_SEED=N replays one.
 */
import { randomInt } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BarManager, DEFAULT_POLICY } from '../../src/bar/manager.js';
import { BAR_PAGE } from '../../src/bar/window.js';
import { IoreqServer } from '../../src/ioreq/server.js';
import { runSimulation, type SimRunOptions } from '../../src/session/simulation.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { FaultLedger } from './fault-ledger.js';

const stress: SimRunOptions = {
  vcpus: 8,
  durationS: 2,
  workload: 'random',
  evictRate: 20_000,
  mode: 'retry',
  faultAround: 1,
  hugePages: false,
  blobs: 1,
  blobSize: 64 * 1024,
  seed: 1,
};

function seed(): number {
  const fixed = process.env.XVGPU_STRESS_SEED;
  return fixed !== undefined ? Number(fixed) : randomInt(1, 2 ** 31);
}

/** Observes every BAR fault the back-end handles, and the ioreq server it runs, during one run. */
function watch(): { ledger: FaultLedger; servers: IoreqServer[] } {
  const ledger = new FaultLedger();
  const servers: IoreqServer[] = [];
  // The originals are called with the instance as `this` (`.call` below).
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const realHandle = BarManager.prototype.handle;
  vi.spyOn(BarManager.prototype, 'handle').mockImplementation(function (this: BarManager, req, vcpu, out) {
    ledger.take();
    const page = Math.floor((req.addr - this.start) / BAR_PAGE);
    const r = realHandle.call(this, req, vcpu, out);
    if (!(r instanceof Promise)) {
      ledger.answer(vcpu, page, out);
      return r;
    }
    return r.then(
      () => { ledger.answer(vcpu, page, out); },
      (e: unknown) => { ledger.fail(); throw e; },
    );
  });
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const realStart = IoreqServer.prototype.start;
  vi.spyOn(IoreqServer.prototype, 'start').mockImplementation(function (this: IoreqServer) {
    servers.push(this);
    realStart.call(this);
  });
  return { ledger, servers };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('race stress of the simulated platform', () => {
  it.each([
    ['retry, one page per fault', { mode: 'retry', faultAround: 1, workload: 'random' }],
    ['retry, fault-around 16', { mode: 'retry', faultAround: 16, workload: 'hotset' }],
    ['emulate, one page per fault', { mode: 'emulate', faultAround: 1, workload: 'write-heavy' }],
    ['emulate, stock Xen, fault-around 4', { mode: 'emulate', faultAround: 4, workload: 'random', stockXen: true }],
  ] as [string, Partial<SimRunOptions>][])('%s: no stale access, no lost fault, bounded retries', async (name, over) => {
    const s = seed();
    const { ledger, servers } = watch();
    const r = await runSimulation({ ...stress, ...over, seed: s }, silentLogger());
    const server = servers[0];
    if (!server) throw new Error('the run started no ioreq server');
    const c = server.counters;
    console.log(`stress ${name} seed ${s}: ${r.faults} faults (${r.retries} retried, ${r.emulated} emulated, ${r.forward_progress} forced), ${r.revokes} revokes of ${r.revoked_pages} pages from ${r.evictions} evictions, ${r.map_collisions} MAP collisions, longest retry run ${ledger.longestRetryRun}, ${r.ioreqs} guest ioreqs, stale ${r.stale_accesses}, integrity ${r.integrity_errors}`);
    // The run really raced: faults were served while pages were being revoked.
    expect(r.faults).toBeGreaterThan(0);
    expect(r.revokes).toBeGreaterThan(0);
    // Safety.
    expect([r.stale_accesses, r.integrity_errors, r.bad_ioreqs], `seed ${s}`).toEqual([0, 0, 0]);
    expect(r.guest_crashes, `seed ${s}`).toEqual([]);
    // No lost fault: every ioreq the guest posted was taken once and answered, and every BAR
    // fault the manager took was answered.
    expect(c.requests, `seed ${s}`).toBe(r.ioreqs);
    expect(c.answeredReady + c.answeredRetry, `seed ${s}`).toBe(c.requests);
    expect([c.slotLost, c.handlerErrors, ledger.failed], `seed ${s}`).toEqual([0, 0, 0]);
    expect(ledger.answered, `seed ${s}`).toBe(ledger.taken);
    // BAR ioreqs are faults, holes and refusals (rep ops; not counted in the summary).
    expect(ledger.taken, `seed ${s}`).toBeGreaterThanOrEqual(r.faults + r.holes);
    // Bounded retries (D5): never more than the limit in a row on one page for one vCPU.
    expect(ledger.longestRetryRun, `seed ${s}`).toBeLessThanOrEqual(DEFAULT_POLICY.retryLimit);
    if (over.mode === 'emulate') expect(ledger.retries).toBe(0);
  }, 120_000);
});

describe('the fault ledger (the stress test detector)', () => {
  const out = (retry: boolean) => ({ retry, lo: 0, hi: 0 });
  it('measures the longest run of retries on one page, reset by an emulated answer or another page', () => {
    const l = new FaultLedger();
    for (let i = 0; i < DEFAULT_POLICY.retryLimit + 1; i++) l.answer(0, 7, out(true));
    expect(l.longestRetryRun).toBe(DEFAULT_POLICY.retryLimit + 1); // a run past the limit is seen
    l.answer(0, 7, out(false));
    l.answer(0, 7, out(true));
    l.answer(1, 7, out(true));
    l.answer(0, 8, out(true));
    expect(l.longestRetryRun).toBe(DEFAULT_POLICY.retryLimit + 1);
    expect([l.answered, l.retries, l.emulated]).toEqual([DEFAULT_POLICY.retryLimit + 5, DEFAULT_POLICY.retryLimit + 4, 1]);
  });
  it('counts a taken fault that was never answered', () => {
    const l = new FaultLedger();
    l.take();
    l.take();
    l.answer(0, 1, out(false));
    expect(l.answered).toBeLessThan(l.taken);
  });
});
