/**
 * A vCPU's BAR memory on the Linux tier: every load and store goes to the kernel helper's soft p2m
 * through GUEST_ACCESS, exactly as a guest access would: a page the helper has not mapped (or has
 * revoked) is reported as a fault, never served from a stale frame. There is no TLB to flush: the
 * helper looks the entry up under its lock on every access.
 */
import { native, type IoctlFixup } from '../../native/index.js';
import type { BarMemory } from '../sim/cpu.js';
import { HELPER_IOCTL, SIZEOF, arg, setU64 } from './helper-abi.js';

export class SoftP2mMemory implements BarMemory {
  readonly staleAccesses = 0; // detected by the workload's stamps on this tier (see docs/kernel-helper.md)
  readonly flushAcks = 0;
  private readonly a = arg(SIZEOF.guestAccess);
  private readonly data = new Uint32Array(2);
  private readonly fixups: IoctlFixup[];

  constructor(private readonly helperFd: number) {
    this.fixups = [{ offset: 16, buffer: this.data }];
  }

  beforeAccess(): void {
    // Nothing cached: the soft p2m is consulted on every access.
  }

  resume(): void {
    // Nothing cached, so no flush to take.
  }

  access(gpa: number, size: 4 | 8, write: boolean, lo: number, hi: number, out: { lo: number; hi: number }): boolean {
    const v = this.a.view;
    v.setUint32(4, size, true); // len
    setU64(v, 8, gpa);
    v.setUint32(24, write ? 1 : 0, true);
    if (write) {
      this.data[0] = lo;
      this.data[1] = hi;
    }
    native.ioctl(this.helperFd, HELPER_IOCTL.GUEST_ACCESS, this.a.bytes, this.fixups);
    if (v.getUint32(28, true) !== 0) return false; // faulted: the page is not mapped
    if (!write) {
      out.lo = this.data[0] ?? 0;
      out.hi = size === 8 ? (this.data[1] ?? 0) : 0;
    }
    return true;
  }
}
