/**
 * `struct ioreq` from Xen's public `hvm/ioreq.h`: one 32-byte slot per vCPU in the shared ioreq
 * page. Layout (checked against Debian's libxen-dev by test/xen/abi/ioreq-layout.test.ts):
 *
 *   0  u64 addr        guest-physical address (or port)
 *   8  u64 data        value, or a guest-physical pointer when data_is_ptr
 *  16  u32 count       repetitions (rep string ops)
 *  20  u32 size        bytes per access
 *  24  u32 vp_eport    the vCPU's event-channel port in the guest
 *  28  u16 _pad0
 *  30  u8  state:4 | data_is_ptr:1 | dir:1 | df:1 | retry:1
 *  31  u8  type
 *
 * `retry` is `_pad1` in stock Xen (always 0); the extension's patch 0003 sets it on a request that
 * may be answered with STATE_IORESP_RETRY (docs/xen-extension.md).
 *
 * Bytes 28..31 form one little-endian 32-bit word (the "control word"); the state lives in its
 * bits 16..19. The state is only ever read and changed through that word with Atomics, which gives
 * the ordering Xen's protocol needs (fields written before the state is published, data written
 * before IORESP_READY), the same role as xen_mb()/xen_wmb() in QEMU and demu.
 */

export const IOREQ_SIZE = 32;
export const IOREQ_PAGE_SIZE = 4096;
/** One 4 KiB page holds this many slots, so at most 128 vCPUs per server (Xen exposes one page). */
export const IOREQ_SLOTS_PER_PAGE = IOREQ_PAGE_SIZE / IOREQ_SIZE;

export const IOREQ_WRITE = 0;
export const IOREQ_READ = 1;

export const STATE_IOREQ_NONE = 0;
export const STATE_IOREQ_READY = 1;
export const STATE_IOREQ_INPROCESS = 2;
export const STATE_IORESP_READY = 3;
/**
 * xvgpu's proposed extension (docs/fault-revoke-protocol.md): "the emulator has made the access
 * possible; re-execute the instruction". Stock Xen crashes the guest on any state above 3, so this
 * value is only ever written when the hypervisor port advertises `retry` support.
 */
export const STATE_IORESP_RETRY = 4;

export const IOREQ_TYPE_PIO = 0;
export const IOREQ_TYPE_COPY = 1;
export const IOREQ_TYPE_PCI_CONFIG = 2;
export const IOREQ_TYPE_TIMEOFFSET = 7;
export const IOREQ_TYPE_INVALIDATE = 8;

export const OFF_ADDR = 0;
export const OFF_DATA = 8;
export const OFF_COUNT = 16;
export const OFF_SIZE = 20;
export const OFF_VP_EPORT = 24;
export const OFF_CONTROL = 28;

// Bit positions inside the little-endian control word at offset 28.
const STATE_SHIFT = 16;
const STATE_MASK = 0xf << STATE_SHIFT;
const DATA_IS_PTR_BIT = 1 << 20;
const DIR_BIT = 1 << 21;
const DF_BIT = 1 << 22;
const RETRY_BIT = 1 << 23;
const TYPE_SHIFT = 24;

/** A decoded request. Numbers, not bigints: guest-physical addresses stay below 2^52. */
export interface Ioreq {
  addr: number;
  /** Low and high 32 bits of `data`, kept apart so the hot path never allocates a bigint. */
  dataLo: number;
  dataHi: number;
  count: number;
  size: number;
  vpEport: number;
  state: number;
  dataIsPtr: boolean;
  dir: number;
  df: boolean;
  type: number;
  /** Xen's `retry` bit: this request may be answered with STATE_IORESP_RETRY (patched Xen only). */
  retryOffered?: boolean;
  /**
   * Set by the ioreq server, not part of the slot: the hypervisor marks retryable requests and did
   * not mark this one (an access of the same instruction already completed), so it must be
   * completed: a retry here would crash the guest.
   */
  mustComplete?: boolean;
}

export function emptyIoreq(): Ioreq {
  return { addr: 0, dataLo: 0, dataHi: 0, count: 0, size: 0, vpEport: 0, state: 0, dataIsPtr: false, dir: 0, df: false, type: 0, retryOffered: false };
}

export function packControl(state: number, dataIsPtr: boolean, dir: number, df: boolean, type: number, retryOffered = false): number {
  return (
    ((state & 0xf) << STATE_SHIFT) |
    (dataIsPtr ? DATA_IS_PTR_BIT : 0) |
    ((dir & 1) !== 0 ? DIR_BIT : 0) |
    (df ? DF_BIT : 0) |
    (retryOffered ? RETRY_BIT : 0) |
    ((type & 0xff) << TYPE_SHIFT)
  );
}

export function stateOfControl(control: number): number {
  return (control & STATE_MASK) >>> STATE_SHIFT;
}

function withState(control: number, state: number): number {
  return (control & ~STATE_MASK) | ((state & 0xf) << STATE_SHIFT);
}

/**
 * A view of a shared ioreq page (or any buffer holding consecutive slots). Every slot access is
 * bounds-checked against the page; the state word is only touched with Atomics.
 */
export class IoreqPage {
  readonly slots: number;
  private readonly view: DataView;
  private readonly words: Int32Array;

  constructor(buffer: SharedArrayBuffer | ArrayBuffer, byteOffset = 0, slots = IOREQ_SLOTS_PER_PAGE) {
    if (!Number.isInteger(slots) || slots < 1 || slots > IOREQ_SLOTS_PER_PAGE) {
      throw new RangeError(`ioreq page: ${slots} slots (1..${IOREQ_SLOTS_PER_PAGE})`);
    }
    if (byteOffset % 4 !== 0 || byteOffset + slots * IOREQ_SIZE > buffer.byteLength) {
      throw new RangeError(`ioreq page: ${slots} slots at ${byteOffset} do not fit a ${buffer.byteLength}-byte buffer`);
    }
    this.slots = slots;
    this.view = new DataView(buffer, byteOffset, slots * IOREQ_SIZE);
    this.words = new Int32Array(buffer, byteOffset, (slots * IOREQ_SIZE) / 4);
  }

  private base(slot: number): number {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      throw new RangeError(`ioreq slot ${slot} out of range 0..${this.slots - 1}`);
    }
    return slot * IOREQ_SIZE;
  }

  /** Index of the slot's control word in `controlWords()`, for Atomics.wait / futex waits. */
  controlIndex(slot: number): number {
    return (this.base(slot) + OFF_CONTROL) >> 2;
  }

  controlWords(): Int32Array {
    return this.words;
  }

  loadState(slot: number): number {
    return stateOfControl(Atomics.load(this.words, this.controlIndex(slot)));
  }

  /** Atomically moves the slot from `from` to `to`; false (and no change) if it was not in `from`. */
  transitionState(slot: number, from: number, to: number): boolean {
    const idx = this.controlIndex(slot);
    for (;;) {
      const cur = Atomics.load(this.words, idx);
      if (stateOfControl(cur) !== from) return false;
      if (Atomics.compareExchange(this.words, idx, cur, withState(cur, to)) === cur) return true;
    }
  }

  /** Decodes a slot into `out` (reused by the hot path; nothing is allocated). */
  read(slot: number, out: Ioreq): Ioreq {
    const b = this.base(slot);
    const v = this.view;
    out.addr = v.getUint32(b + OFF_ADDR, true) + v.getUint32(b + OFF_ADDR + 4, true) * 0x1_0000_0000;
    out.dataLo = v.getUint32(b + OFF_DATA, true);
    out.dataHi = v.getUint32(b + OFF_DATA + 4, true);
    out.count = v.getUint32(b + OFF_COUNT, true);
    out.size = v.getUint32(b + OFF_SIZE, true);
    out.vpEport = v.getUint32(b + OFF_VP_EPORT, true);
    const control = Atomics.load(this.words, (b + OFF_CONTROL) >> 2);
    out.state = stateOfControl(control);
    out.dataIsPtr = (control & DATA_IS_PTR_BIT) !== 0;
    out.dir = (control & DIR_BIT) !== 0 ? IOREQ_READ : IOREQ_WRITE;
    out.df = (control & DF_BIT) !== 0;
    out.retryOffered = (control & RETRY_BIT) !== 0;
    out.type = (control >>> TYPE_SHIFT) & 0xff;
    return out;
  }

  /**
   * Writes every field of a request and publishes `req.state` last, as Xen's ioreq_send() does:
   * the Atomics.store of the control word orders the plain field stores before it.
   */
  post(slot: number, req: Ioreq): void {
    const b = this.base(slot);
    const v = this.view;
    writeU64(v, b + OFF_ADDR, req.addr);
    v.setUint32(b + OFF_DATA, req.dataLo >>> 0, true);
    v.setUint32(b + OFF_DATA + 4, req.dataHi >>> 0, true);
    v.setUint32(b + OFF_COUNT, req.count >>> 0, true);
    v.setUint32(b + OFF_SIZE, req.size >>> 0, true);
    v.setUint32(b + OFF_VP_EPORT, req.vpEport >>> 0, true);
    Atomics.store(this.words, (b + OFF_CONTROL) >> 2, packControl(req.state, req.dataIsPtr, req.dir, req.df, req.type, req.retryOffered === true));
  }

  /** Stores the response data (before the state is published with transitionState). */
  writeData(slot: number, lo: number, hi: number): void {
    const b = this.base(slot);
    this.view.setUint32(b + OFF_DATA, lo >>> 0, true);
    this.view.setUint32(b + OFF_DATA + 4, hi >>> 0, true);
  }

  readVpEport(slot: number): number {
    return this.view.getUint32(this.base(slot) + OFF_VP_EPORT, true);
  }

  writeVpEport(slot: number, port: number): void {
    this.view.setUint32(this.base(slot) + OFF_VP_EPORT, port >>> 0, true);
  }
}

function writeU64(v: DataView, off: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`ioreq: ${value} is not a u64 address`);
  v.setUint32(off, value % 0x1_0000_0000, true);
  v.setUint32(off + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** Encodes one request into a fresh 32-byte buffer (tests and tooling; not the hot path). */
export function encodeIoreq(req: Ioreq): Uint8Array {
  const buf = new ArrayBuffer(IOREQ_SIZE);
  new IoreqPage(buf, 0, 1).post(0, req);
  return new Uint8Array(buf);
}

/** Decodes a 32-byte buffer; throws on a wrong length. */
export function decodeIoreq(bytes: Uint8Array): Ioreq {
  if (bytes.byteLength !== IOREQ_SIZE) throw new RangeError(`ioreq: ${bytes.byteLength} bytes, want ${IOREQ_SIZE}`);
  const copy = new Uint8Array(IOREQ_SIZE);
  copy.set(bytes);
  return new IoreqPage(copy.buffer, 0, 1).read(0, emptyIoreq());
}
