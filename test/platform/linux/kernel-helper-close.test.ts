/**
 * The exit summary reads the helper's counters after Backend.stop() closed its fd: close() keeps
 * the module's last answer to STATS (the ioctl is stubbed here; the module itself is tested in the
 * VM and Xen tiers).
 */
import { openSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { native } from '../../../src/native/index.js';
import { HELPER_IOCTL, STATS_OFF } from '../../../src/platform/linux/helper-abi.js';
import { LinuxKernelHelper } from '../../../src/platform/linux/kernel-helper.js';

afterEach(() => { vi.restoreAllMocks(); });

describe('LinuxKernelHelper.close', () => {
  it('keeps the statistics the module reported at close, for a summary read afterwards', () => {
    const closed = new Set<number>();
    const realClose = native.close.bind(native);
    vi.spyOn(native, 'close').mockImplementation((fd) => { closed.add(fd); realClose(fd); });
    vi.spyOn(native, 'ioctl').mockImplementation((fd, request, bytes) => {
      if (closed.has(fd)) throw new Error('ioctl: EBADF (Bad file descriptor)'); // what the tier saw
      if (request === HELPER_IOCTL.STATS && ArrayBuffer.isView(bytes)) new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(STATS_OFF.revokedPages, 16n, true);
      return 0;
    });
    const h = LinuxKernelHelper.fromFd(openSync('/dev/null', 'r'));
    h.close();
    expect(h.stats().revokedPages).toBe(16);
  });

  it('says so when the module could not answer at close', () => {
    vi.spyOn(native, 'ioctl').mockImplementation(() => { throw new Error('ioctl: ENOTTY'); });
    const h = LinuxKernelHelper.fromFd(openSync('/dev/null', 'r'));
    h.close();
    expect(() => h.stats()).toThrow(/closed, and its statistics could not be read at close/);
  });
});
