/**
 * A vCPU's BAR memory on the Linux tier: every load and store goes to the kernel helper's soft p2m
 * through GUEST_ACCESS, exactly as a guest access would: a page the helper has not mapped (or has
 * revoked) is reported as a fault, never served from a stale frame. There is no TLB to flush: the
 * helper looks the entry up under its lock on every access.
 *
 * With host buffers whose frames move (memfd-gpu.ts), every read also fetches the page's placement
 * tag in the same GUEST_ACCESS (one copy, one lock hold, so data and tag come from one frame) and
 * counts the read as stale when the tag proves a retired frame (placement-tags.ts).
 */
import { native, type IoctlFixup } from '../../native/index.js';
import type { BarMemory } from '../sim/cpu.js';
import type { MachineConfig } from '../sim/machine.js';
import { HELPER_IOCTL, SIZEOF, arg, setU64 } from './helper-abi.js';
import { PAGE, StaleCheck, TAG_OFFSET } from './placement-tags.js';

/** What a vCPU worker gets: the helper fd, and the placement board when frames really move. */
export interface KernelSoftMemory {
  readonly kind: 'kernel-soft';
  readonly helperFd: number;
  readonly placementBoard?: SharedArrayBuffer;
}

/** One GUEST_ACCESS of `len` bytes at `gpa` from/into `buf`; false when the page is not mapped. */
export type GuestAccess = (gpa: number, len: number, write: boolean, buf: Uint32Array) => boolean;

/** GUEST_ACCESS on the helper fd. */
export function helperGuestAccess(helperFd: number): GuestAccess {
  const a = arg(SIZEOF.guestAccess);
  let fixups: IoctlFixup[] = [];
  return (gpa, len, write, buf) => {
    const v = a.view;
    v.setUint32(4, len, true);
    setU64(v, 8, gpa);
    v.setUint32(24, write ? 1 : 0, true);
    if (fixups[0]?.buffer !== buf) fixups = [{ offset: 16, buffer: buf }]; // the fault path allocates nothing
    native.ioctl(helperFd, HELPER_IOCTL.GUEST_ACCESS, a.bytes, fixups);
    return v.getUint32(28, true) === 0;
  };
}

export class SoftP2mMemory implements BarMemory {
  staleAccesses = 0;
  readonly flushAcks = 0;
  /** Room for a read from any 4-byte boundary to the end of the page. */
  private readonly buf = new Uint32Array(PAGE / 4);
  private readonly check: StaleCheck | undefined;

  constructor(private readonly guest: GuestAccess, private readonly barBase: number, barPages: number, placementBoard?: SharedArrayBuffer) {
    this.check = placementBoard ? new StaleCheck(placementBoard, barPages) : undefined;
  }

  static forWorker(m: KernelSoftMemory, config: MachineConfig): SoftP2mMemory {
    return new SoftP2mMemory(helperGuestAccess(m.helperFd), config.barBase, config.barPages, m.placementBoard);
  }

  beforeAccess(): void {
    // Nothing cached: the soft p2m is consulted on every access.
  }

  resume(): void {
    // Nothing cached, so no flush to take.
  }

  access(gpa: number, size: 4 | 8, write: boolean, lo: number, hi: number, out: { lo: number; hi: number }): boolean {
    const b = this.buf;
    if (write) {
      b[0] = lo;
      b[1] = hi;
      return this.guest(gpa, size, true, b);
    }
    const off = gpa % PAGE;
    const check = this.check !== undefined && off % 4 === 0 && off + size <= TAG_OFFSET ? this.check : undefined;
    const epochBefore = check?.epoch() ?? 0; // before the access: see placement-tags.ts
    if (!this.guest(gpa, check ? PAGE - off : size, false, b)) return false; // faulted: not mapped
    out.lo = b[0] ?? 0;
    out.hi = size === 8 ? (b[1] ?? 0) : 0;
    if (check?.isStale(Math.floor((gpa - this.barBase) / PAGE), b, (TAG_OFFSET - off) / 4, epochBefore) === true) this.staleAccesses++;
    return true;
  }
}
