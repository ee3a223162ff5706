/**
 * The geometry of a string (rep) MMIO request, as Xen defines it and QEMU serves it
 * (docs/fault-revoke-protocol.md, "String and vector accesses"; reference xen-ioreq-p2m.md §1.2, §2.4):
 *
 *   element i (0 <= i < count) is at  addr ± i*size  on the MMIO side and, with data_is_ptr, at
 *   data ± i*size  in guest RAM; the sign is minus when df is set (Xen's hvmemul_do_io_addr and
 *   hvmemul_rep_movs in xen/arch/x86/hvm/emulate.c, QEMU's rw_phys_req_item).
 *
 * Both sides step by the same `size` in the same direction, so the elements cover one contiguous
 * block on each side and the request is a single block copy between them: MMIO [mmioFirst,
 * mmioFirst+bytes) <-> RAM [ramFirst, ramFirst+bytes), element order being irrelevant because a
 * BAR page and guest RAM never alias.
 */
import type { Ioreq } from '../xen/abi/ioreq.js';

export interface RepExtent {
  /** Lowest MMIO address the request touches. */
  readonly mmioFirst: number;
  /** Lowest guest-RAM address (data_is_ptr only; NaN otherwise). */
  readonly ramFirst: number;
  /** count * size. */
  readonly bytes: number;
}

/** The 64-bit `data` field as a number (exact below 2^53; callers bound it first). */
export function dataAsNumber(r: Ioreq): number {
  return (r.dataHi >>> 0) * 0x1_0000_0000 + (r.dataLo >>> 0);
}

/** The blocks a request covers; the caller has validated size and count. */
export function repExtent(r: Ioreq): RepExtent {
  const bytes = r.count * r.size;
  const back = r.df ? bytes - r.size : 0; // with df the request names the highest element
  return {
    mmioFirst: r.addr - back,
    ramFirst: r.dataIsPtr ? dataAsNumber(r) - back : NaN,
    bytes,
  };
}

/** Is this more than one plain access (a rep op, or a copy with guest RAM)? */
export function isStringAccess(r: Ioreq): boolean {
  return r.count !== 1 || r.dataIsPtr;
}
