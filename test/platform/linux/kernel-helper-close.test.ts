/**
 * After close the helper's fd number may already belong to another file: stats() must refuse
 * rather than ioctl it (the exit summary reads Backend.helperStatsAtStop, taken before the close;
 * run-xen-privsep.test.ts). The ioctl is stubbed here; the module itself is tested in the VM and
 * Xen tiers.
 */
import { openSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { native } from '../../../src/native/index.js';
import { HELPER_IOCTL, STATS_OFF } from '../../../src/platform/linux/helper-abi.js';
import { LinuxKernelHelper } from '../../../src/platform/linux/kernel-helper.js';

afterEach(() => { vi.restoreAllMocks(); });

describe('LinuxKernelHelper.close', () => {
  it('answers STATS while open, refuses after close without touching the fd', () => {
    const ioctls: number[] = [];
    vi.spyOn(native, 'ioctl').mockImplementation((fd, request, bytes) => {
      ioctls.push(fd);
      if (request === HELPER_IOCTL.STATS && ArrayBuffer.isView(bytes)) new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(STATS_OFF.revokedPages, 16n, true);
      return 0;
    });
    const h = LinuxKernelHelper.fromFd(openSync('/dev/null', 'r'));
    expect(h.stats().revokedPages).toBe(16);
    h.close();
    const before = ioctls.length;
    expect(() => h.stats()).toThrow(/kernel helper: closed/);
    expect(ioctls.length).toBe(before);
  });

  it('closes once', () => {
    const closes: number[] = [];
    const realClose = native.close.bind(native);
    vi.spyOn(native, 'close').mockImplementation((fd) => { closes.push(fd); realClose(fd); });
    const h = LinuxKernelHelper.fromFd(openSync('/dev/null', 'r'));
    h.close();
    h.close();
    expect(closes).toHaveLength(1);
  });
});
