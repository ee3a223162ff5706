/**
 * The VM tier: builds the kernel helper against the headers of Debian's linux-image-amd64, boots
 * that kernel under QEMU (TCG) with DRM, vgem and the module loaded, and runs the C selftest (real
 * MMU notifiers, real vgem buffers, the invalidation race) and its fault-injection counterpart.
 * Needs qemu-system-x86, linux-image-amd64, linux-headers-amd64, busybox-static, cpio, kmod
 * (.ci/run installs them); without them it fails, it does not skip.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('kernel helper in a VM (Debian kernel, vgem)', () => {
  it('passes the C selftest, and the race test catches a helper that does not revoke', () => {
    const r = spawnSync('bash', ['kernel-helper/vm/run.sh', '--timeout', '420'], { encoding: 'utf8', timeout: 480_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(out, out).toMatch(/^7 passed, 0 failed$/m);
    expect(out).toMatch(/# race: \d+ guest reads, \d+ guest faults, 0 stale/);
    expect(out).toMatch(/# broken race: \d+ guest reads, [1-9]\d* stale/);
    expect(out).toMatch(/^1 passed, 0 failed$/m);
    expect(out).not.toMatch(/dmesg: .*(BUG:|WARNING:|Oops)/);
    expect(r.status, out).toBe(0);
  }, 500_000);
});
