/**
 * The VM tier: builds the kernel helper against the headers of Debian's linux-image-amd64, boots
 * that kernel under QEMU (TCG) with DRM, vgem and the module loaded, and runs
 *  1. the C selftest (real MMU notifiers, real vgem buffers, the invalidation race) and its
 *     fault-injection counterpart, then
 *  2. the TypeScript back-end against the real module (`xvgpu run --platform linux`): vgem BOs,
 *     the soft p2m as the guest p2m, EVICT as host pressure.
 * Needs qemu-system-x86, linux-image-amd64, linux-headers-amd64, busybox-static, cpio, kmod
 * (.ci/run installs them); without them it fails, it does not skip.
 */
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../src/session/simulation.js';

describe('kernel helper in a VM (Debian kernel, vgem)', () => {
  let out = '';
  let status: number | null = null;
  beforeAll(() => {
    const r = spawnSync('bash', ['kernel-helper/vm/run.sh', '--with-node', '--timeout', '600'], { encoding: 'utf8', timeout: 660_000 });
    out = `${r.stdout}\n${r.stderr}`;
    status = r.status;
  }, 700_000);

  it('passes the C selftest, and the race test catches a helper that does not revoke', () => {
    expect(out, out).toMatch(/^7 passed, 0 failed$/m);
    expect(out).toMatch(/# race: \d+ guest reads, \d+ guest faults, 0 stale/);
    expect(out).toMatch(/# broken race: \d+ guest reads, [1-9]\d* stale/);
    expect(out).toMatch(/^1 passed, 0 failed$/m);
    expect(out).not.toMatch(/dmesg: .*(BUG:|WARNING:|Oops)/);
  });

  it('runs the TypeScript back-end on the real module with no stale access and no integrity error', () => {
    const line = /^xvgpu-vm: summary (\{.*\})$/m.exec(out);
    expect(line, out).not.toBeNull();
    const s = JSON.parse(line?.[1] ?? '{}') as RunSummary;
    expect(s.platform).toBe('linux-soft');
    expect(s.faults).toBeGreaterThan(1000);
    expect(s.revokes).toBeGreaterThan(50);
    expect([s.stale_accesses, s.integrity_errors, s.guest_crashes.length, s.bad_ioreqs]).toEqual([0, 0, 0, 0]);
    expect(s.kernel_helper?.invalidations).toBeGreaterThan(0);
    expect(s.kernel_helper?.events_dropped).toBe(0);
    // The blobs were created and placed through the virtio-gpu device, on vgem BOs.
    expect(s.virtio.blobs_mapped).toBeGreaterThan(0);
    expect(s.virtio.errors).toBe(0);
    expect(status, out).toBe(0);
  });
});
