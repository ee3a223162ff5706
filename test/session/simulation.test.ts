/**
 * End to end on the simulated platform: vCPU threads, the ioreq server, the BAR manager, the kernel
 * helper and host evictions all running at once. Revocation must be airtight (no stale access, no
 * integrity error) over at least 100k faults and 1k revokes, in both answer modes. The detectors
 * behind those two numbers are shown to fire in fault-injection.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type SimRunOptions } from '../../src/session/simulation.js';
import { silentLogger } from '../../src/telemetry/log.js';

const base: SimRunOptions = {
  vcpus: 2,
  durationS: 90,
  workload: 'random',
  evictRate: 1000,
  mode: 'retry',
  faultAround: 1,
  hugePages: false,
  blobs: 8,
  blobSize: 1024 * 1024,
  seed: 7,
};

const enough = (p: { faults: number; revokes: number }): boolean => p.faults >= 100_000 && p.revokes >= 1_000;

describe('simulation end to end', () => {
  it.each(['retry', 'emulate'] as const)('mode %s: 100k faults and 1k revokes with no stale access and no integrity error', async (mode) => {
    const r = await runSimulation({ ...base, mode, until: enough }, silentLogger());
    expect(r.faults).toBeGreaterThanOrEqual(100_000);
    expect(r.revokes).toBeGreaterThanOrEqual(1_000);
    expect(r.stale_accesses).toBe(0);
    expect(r.integrity_errors).toBe(0);
    expect(r.guest_crashes).toEqual([]);
    expect(r.bad_ioreqs).toBe(0);
    if (mode === 'retry') expect(r.retries).toBeGreaterThan(0);
    else expect([r.emulated, r.retries]).toEqual([r.faults, 0]);
    // Reads and writes both ran, and the guest saw its faults answered.
    expect(r.fault_ns?.count).toBe(r.bar_exits);
    // Every blob came through the virtio-gpu device, and went back through it.
    expect(r.virtio.errors).toBe(0);
    expect(r.virtio.blobs_mapped).toBeGreaterThan(base.blobs);
    expect(r.virtio.blobs_unmapped).toBe(r.virtio.blobs_mapped);
    expect(r.revoke_ns?.count).toBe(r.revokes);
  });

  it('hot-set workload with fault-around and superpages stays correct under eviction', async () => {
    const r = await runSimulation({ ...base, workload: 'hotset', faultAround: 16, hugePages: true, blobSize: 4 * 1024 * 1024, durationS: 3, evictRate: 300 }, silentLogger());
    expect(r.faults).toBeGreaterThan(0);
    expect(r.huge_maps).toBeGreaterThan(0);
    expect(r.revokes).toBeGreaterThan(0);
    expect([r.stale_accesses, r.integrity_errors, r.guest_crashes.length]).toEqual([0, 0, 0]);
  });

  it('stock Xen (no retry state) works in emulate mode', async () => {
    const r = await runSimulation({ ...base, mode: 'emulate', stockXen: true, durationS: 2, workload: 'write-heavy' }, silentLogger());
    expect(r.faults).toBeGreaterThan(0);
    expect([r.retries, r.stale_accesses, r.integrity_errors, r.guest_crashes.length]).toEqual([0, 0, 0, 0]);
  });
});
