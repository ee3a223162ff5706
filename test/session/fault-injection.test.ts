/**
 * Fault injection end to end: each test breaks the revoke protocol in one way (the test-only
 * `inject` switches of runSimulation, never CLI options) and the run must report stale accesses or
 * integrity errors, while a control run with the same seed and configuration and no injection
 * reports none. Runs end on a count of host evictions, not on time, and nothing here asserts a
 * duration.
 */
import { describe, expect, it } from 'vitest';
import type { SimFaultInjection } from '../../src/platform/sim/index.js';
import { runSimulation, type RunSummary, type SimRunOptions } from '../../src/session/simulation.js';
import { silentLogger } from '../../src/telemetry/log.js';

// Two 16-page blobs mapped 16 pages per fault: every vCPU's TLB holds nearly every page nearly all
// the time, so each revoke removes translations the vCPUs are using at that moment.
const warm: SimRunOptions = {
  vcpus: 2,
  durationS: 300, // a cap only: each run ends after EVICTIONS host evictions
  workload: 'random',
  evictRate: 500,
  mode: 'retry',
  faultAround: 16,
  hugePages: false,
  blobs: 2,
  blobSize: 16 * 4096,
  seed: 11,
};
const EVICTIONS = 300;

async function run(o: SimRunOptions, inject?: SimFaultInjection): Promise<RunSummary> {
  return runSimulation({ ...o, ...(inject ? { inject } : {}), until: (p) => p.evictions >= EVICTIONS }, silentLogger());
}

/** The control: same seed and configuration, nothing broken. */
function expectClean(r: RunSummary): void {
  expect(r.evictions).toBeGreaterThanOrEqual(EVICTIONS);
  expect(r.revokes).toBeGreaterThan(0);
  expect([r.stale_accesses, r.integrity_errors, r.guest_crashes.length]).toEqual([0, 0, 0]);
}

describe('fault injection: every broken revoke shows, every control is clean', () => {
  it('revoke without a TLB flush: stale accesses', async () => {
    expectClean(await run(warm));
    const r = await run(warm, { skipTlbFlush: true });
    expect(r.tlb_flushes).toBe(0);
    expect(r.stale_accesses).toBeGreaterThan(0);
  });

  it('flush without waiting for the acknowledgements: stale accesses', async () => {
    expectClean(await run(warm));
    const r = await run(warm, { skipFlushAckWait: true });
    expect(r.tlb_flushes).toBeGreaterThan(0);
    expect(r.stale_accesses).toBeGreaterThan(0);
  });

  it('MAP without the read_retry check, racing an eviction every 4th MAP: stale accesses', async () => {
    const control = await run(warm, { evictDuringMapEvery: 4 });
    expectClean(control);
    expect(control.map_collisions).toBeGreaterThan(0); // the race happened, and read_retry caught it
    const r = await run(warm, { evictDuringMapEvery: 4, skipReadRetry: true });
    expect(r.stale_accesses).toBeGreaterThan(0);
  });

  it('revoke after the invalidate callback returned (frames already moved): stale accesses', async () => {
    expectClean(await run(warm));
    const r = await run(warm, { revokeAfterCallback: true });
    expect(r.stale_accesses).toBeGreaterThan(0);
  });

  it('eviction that loses buffer content: integrity errors', async () => {
    const o: SimRunOptions = { ...warm, workload: 'write-heavy' };
    expectClean(await run(o));
    const r = await run(o, { gpu: { dropContentOnEvict: true } });
    expect(r.integrity_errors).toBeGreaterThan(0);
    expect(r.integrity_samples.length).toBeGreaterThan(0);
  });
});

describe('a stuck TLB flush ends the run with an error', () => {
  it('names the vCPUs that did not acknowledge instead of hanging', async () => {
    // A 0 ms watchdog: the first flush that finds a vCPU running before its IPI arrived is "stuck".
    await expect(run(warm, { flushWatchdogMs: 0 })).rejects.toThrow(/^TLB flush \d+ stuck: running vCPUs? [\d, ]+ did not acknowledge it within 0 ms$/);
  });
});
