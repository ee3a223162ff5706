/**
 * Emulation of string requests on the BAR (rep MOVS with data_is_ptr, rep STOS): a block copy
 * between guest RAM and the buffer object behind the BAR page, with the geometry of src/ioreq/rep.ts.
 *
 * The kernel helper's ACCESS completes at most one 8-byte access under its lock; a rep request
 * moves up to a page, and the RAM side is a guest page the helper cannot touch under the spinlock
 * its invalidate callback takes. So the bytes go through the back-end's own CPU mapping of the BO
 * (GpuPort.readBo/writeBo) and guest RAM through the hypervisor port's bounds-checked accessor; the
 * BAR manager brackets the copy with the helper's sequence check (manager.ts, settleString), which
 * is what makes it one atomic step against the guest's mapping. Why that split is safe:
 * docs/fault-revoke-protocol.md, "String and vector accesses".
 */
import type { GuestMemory, RangeId } from '../platform/ports.js';
import { repExtent } from '../ioreq/rep.js';
import { IOREQ_WRITE, type Ioreq } from '../xen/abi/ioreq.js';

/** Where the bytes of a string request come from and go to. */
export interface StringTarget {
  /** Guest RAM (data_is_ptr side), bounds-checked. */
  readonly ram: GuestMemory;
  /** Bytes of the BO behind helper range `range`, through the back-end's CPU mapping. */
  boAccess(range: RangeId, offset: number, data: Uint8Array, write: boolean): void;
}

/**
 * Test-only fault injection (never set outside tests): each value breaks one rule a real guest's
 * memcpy depends on, so the synthetic guest's integrity checks can be shown to catch it.
 */
export type StringFault = 'ignore-count' | 'ignore-df' | 'drop-ptr';

const PAGE = 4096;

export class StringAccess {
  /** One page of scratch per vCPU: a validated request never moves more than a page. */
  private readonly scratch: Uint8Array[];
  private readonly fault: StringFault | undefined;

  constructor(private readonly target: StringTarget, vcpus: number, fault?: StringFault) {
    this.scratch = Array.from({ length: vcpus }, () => new Uint8Array(PAGE));
    this.fault = fault;
  }

  /**
   * Performs a validated string request. `boOffset` is the BO offset of the request's lowest MMIO
   * byte (repExtent(req).mmioFirst). Idempotent: the manager may run it again after a collision.
   */
  perform(req: Ioreq, vcpu: number, range: RangeId, boOffset: number): void {
    const r = this.injected(req);
    const ext = repExtent(r);
    const buf = (this.scratch[vcpu] ?? new Uint8Array(PAGE)).subarray(0, ext.bytes);
    const at = boOffset + (ext.mmioFirst - repExtent(req).mmioFirst);
    if (!r.dataIsPtr) {
      // rep STOS: the low `size` bytes of data, `count` times (only writes get here; validate.ts).
      fillRepeated(buf, r.dataLo, r.dataHi, r.size);
      this.target.boAccess(range, at, buf, true);
    } else if (r.dir === IOREQ_WRITE) {
      this.target.ram.read(ext.ramFirst, buf); // RAM -> BAR
      this.target.boAccess(range, at, buf, true);
    } else {
      this.target.boAccess(range, at, buf, false); // BAR -> RAM
      this.target.ram.write(ext.ramFirst, buf);
    }
  }

  private injected(req: Ioreq): Ioreq {
    switch (this.fault) {
      case undefined:
        return req;
      case 'ignore-count':
        return { ...req, count: 1 };
      case 'ignore-df':
        return { ...req, df: false };
      case 'drop-ptr':
        return { ...req, dataIsPtr: false, dir: IOREQ_WRITE };
    }
  }
}

function fillRepeated(buf: Uint8Array, lo: number, hi: number, size: number): void {
  for (let i = 0; i < buf.byteLength; i++) {
    const b = i % size;
    buf[i] = (b < 4 ? lo >>> (8 * b) : hi >>> (8 * (b - 4))) & 0xff;
  }
}
