/**
 * The memcpy pattern end to end: vCPU threads copy whole pages between guest RAM and the BAR with
 * rep MOVS (forwards and with df) and 16/32-byte vector moves, as Xen presents them, while the host
 * evicts. Both answer modes must keep every byte; each test-only string fault must be caught by the
 * guest's integrity checks.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type SimRunOptions } from '../../src/session/simulation.js';
import { silentLogger } from '../../src/telemetry/log.js';

const base: SimRunOptions = {
  vcpus: 2,
  durationS: 2,
  workload: 'memcpy',
  evictRate: 300,
  mode: 'retry',
  faultAround: 1,
  hugePages: false,
  blobs: 2,
  blobSize: 256 * 1024,
  seed: 3,
};

describe('memcpy workload end to end', () => {
  it.each(['retry', 'emulate'] as const)('mode %s: string and vector copies keep every byte under eviction', async (mode) => {
    const r = await runSimulation({ ...base, mode }, silentLogger());
    expect(r.faults).toBeGreaterThan(0);
    expect(r.revokes).toBeGreaterThan(0);
    expect([r.stale_accesses, r.integrity_errors, r.bad_ioreqs, r.guest_crashes.length]).toEqual([0, 0, 0, 0]);
    if (mode === 'emulate') {
      expect(r.string_copies).toBeGreaterThan(0);
      // Vector moves arrive as plain 8-byte requests and are emulated one by one.
      expect(r.emulated).toBeGreaterThan(r.string_copies);
    } else {
      // Every fault is retried, except the forward-progress emulations a revoke storm can force
      // (a loaded machine makes them): no other emulation, so no string copy outside those.
      expect(r.retries + r.forward_progress).toBe(r.faults);
      expect(r.emulated).toBe(r.forward_progress);
      expect(r.string_copies).toBeLessThanOrEqual(r.forward_progress);
    }
  });

  it.each(['ignore-count', 'ignore-df', 'drop-ptr'] as const)('fault injection %s: the guest sees integrity errors', async (stringFault) => {
    const r = await runSimulation({ ...base, mode: 'emulate', inject: { stringFault } }, silentLogger());
    expect(r.string_copies).toBeGreaterThan(0);
    expect(r.integrity_errors).toBeGreaterThan(0);
    expect(r.integrity_samples.join('\n')).toMatch(/memcpy blob/);
  });
});
