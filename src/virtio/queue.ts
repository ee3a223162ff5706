/**
 * A split virtqueue, device side (split-ring.tex). Everything in the rings is guest-controlled, so
 * every index, address, length and chain is checked. A violation is a QueueError; the transport
 * turns it into DEVICE_NEEDS_RESET and stops using the queue. It never loops forever, never reads
 * outside guest RAM, and never trusts a length to size an allocation.
 */
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, AVAIL_F_NO_INTERRUPT } from './constants.js';
import type { GuestMemoryAccess } from './guest-memory.js';

export class QueueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueError';
  }
}

export interface DescSegment {
  readonly addr: number;
  readonly len: number;
}

export interface DescChain {
  readonly head: number;
  readonly readable: DescSegment[];
  readonly writable: DescSegment[];
  readonly readBytes: number;
  readonly writeBytes: number;
}

const MAX_QUEUE = 32768;
/** Upper bound on the bytes one chain may describe: keeps a hostile chain's cost bounded. */
export const MAX_CHAIN_BYTES = 64 * 1024 * 1024;

export class SplitQueue {
  size = 0;
  ready = false;
  descAddr = 0;
  availAddr = 0;
  usedAddr = 0;
  /** Negotiated features that change ring behaviour. */
  eventIdx = false;
  indirect = false;
  private lastAvail = 0;
  private usedIdx = 0;
  private signalledUsed = 0;

  constructor(readonly maxSize: number) {}

  reset(): void {
    this.size = 0;
    this.ready = false;
    this.descAddr = this.availAddr = this.usedAddr = 0;
    this.lastAvail = this.usedIdx = this.signalledUsed = 0;
  }

  /** Checked when the driver sets QueueReady: a layout that cannot work is refused up front. */
  validateLayout(mem: GuestMemoryAccess): void {
    const n = this.size;
    if (n === 0 || n > this.maxSize || n > MAX_QUEUE || (n & (n - 1)) !== 0) throw new QueueError(`queue size ${n} (max ${this.maxSize}, power of two)`);
    const area = (name: string, addr: number, len: number, align: number): void => {
      if (addr % align !== 0) throw new QueueError(`${name} area at ${addr.toString(16)} not ${align}-byte aligned`);
      if (addr < 0 || addr + len > mem.size) throw new QueueError(`${name} area [${addr.toString(16)}, +${len}) outside guest RAM`);
    };
    area('descriptor', this.descAddr, 16 * n, 16);
    area('driver', this.availAddr, 6 + 2 * n, 2);
    area('device', this.usedAddr, 6 + 8 * n, 4);
  }

  /** The next available chain, or null when the driver has posted nothing new. */
  pop(mem: GuestMemoryAccess): DescChain | null {
    // EVENT_IDX: the driver notifies only when its new entries pass avail_event (the word after the
    // used ring); a device that never writes it gets one notify per 2^16 entries (Linux's
    // virtqueue_kick_prepare). Asking for the next entry before reading the index means an entry
    // added after this read is notified.
    if (this.eventIdx) mem.publishIndex(this.usedAddr + 4 + 8 * this.size, this.lastAvail);
    const availIdx = mem.loadIndex(this.availAddr + 2);
    const pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending === 0) return null;
    if (pending > this.size) throw new QueueError(`available index moved by ${pending} on a queue of ${this.size}`);
    const head = mem.readU16(this.availAddr + 4 + 2 * (this.lastAvail % this.size));
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (head >= this.size) throw new QueueError(`head ${head} beyond queue size ${this.size}`);
    return this.walk(mem, head);
  }

  private walk(mem: GuestMemoryAccess, head: number): DescChain {
    const readable: DescSegment[] = [];
    const writable: DescSegment[] = [];
    let table = this.descAddr;
    let tableSize = this.size;
    let idx = head;
    let inIndirect = false;
    let steps = 0;
    let total = 0;
    for (;;) {
      // A chain can visit each descriptor of the ring and of one indirect table at most once.
      if (++steps > this.size + (inIndirect ? tableSize : 0)) throw new QueueError(`descriptor chain from ${head} loops or is too long`);
      const d = table + 16 * idx;
      const addr = mem.readU64(d);
      const len = mem.readU32(d + 8);
      const flags = mem.readU16(d + 12);
      const next = mem.readU16(d + 14);
      if ((flags & DESC_F_INDIRECT) !== 0) {
        if (!this.indirect) throw new QueueError('indirect descriptor without VIRTIO_F_INDIRECT_DESC');
        if (inIndirect) throw new QueueError('indirect descriptor inside an indirect table');
        if ((flags & DESC_F_NEXT) !== 0) throw new QueueError('indirect descriptor with NEXT');
        if (len === 0 || len % 16 !== 0 || len / 16 > MAX_QUEUE) throw new QueueError(`indirect table length ${len}`);
        if (addr % 16 !== 0 || addr + len > mem.size) throw new QueueError(`indirect table at ${addr.toString(16)}+${len} outside guest RAM`);
        table = addr;
        tableSize = len / 16;
        idx = 0;
        inIndirect = true;
        steps = 0;
        continue;
      }
      if (addr + len > mem.size) throw new QueueError(`buffer [${addr.toString(16)}, +${len}) outside guest RAM`);
      total += len;
      if (total > MAX_CHAIN_BYTES) throw new QueueError(`chain from ${head} describes more than ${MAX_CHAIN_BYTES} bytes`);
      if ((flags & DESC_F_WRITE) !== 0) writable.push({ addr, len });
      else if (writable.length > 0) throw new QueueError('device-readable descriptor after a writable one');
      else readable.push({ addr, len });
      if ((flags & DESC_F_NEXT) === 0) break;
      if (next >= tableSize) throw new QueueError(`next ${next} beyond table of ${tableSize}`);
      idx = next;
    }
    const sum = (s: DescSegment[]): number => s.reduce((n, x) => n + x.len, 0);
    return { head, readable, writable, readBytes: sum(readable), writeBytes: sum(writable) };
  }

  /** Returns a chain to the driver: the used element first, then (release) the index. */
  pushUsed(mem: GuestMemoryAccess, head: number, written: number): void {
    const e = this.usedAddr + 4 + 8 * (this.usedIdx % this.size);
    mem.writeU32(e, head);
    mem.writeU32(e + 4, written);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    mem.publishIndex(this.usedAddr + 2, this.usedIdx);
  }

  /** Whether the driver wants an interrupt for what was used since the last one (EVENT_IDX aware). */
  needsInterrupt(mem: GuestMemoryAccess): boolean {
    const now = this.usedIdx;
    const old = this.signalledUsed;
    this.signalledUsed = now;
    if (this.eventIdx) {
      const usedEvent = mem.loadIndex(this.availAddr + 4 + 2 * this.size);
      return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff); // vring_need_event()
    }
    return (mem.readU16(this.availAddr) & AVAIL_F_NO_INTERRUPT) === 0;
  }
}

/** Calls `fn(segment address, offset into the data, length)` over segments until `len` bytes are covered. */
function eachSegment(segments: DescSegment[], len: number, fn: (addr: number, off: number, n: number) => void): number {
  let o = 0;
  for (const s of segments) {
    if (o >= len) break;
    const n = Math.min(s.len, len - o);
    fn(s.addr, o, n);
    o += n;
  }
  return o;
}

/** Copies a chain's readable bytes out (bounded by `max`, to size one buffer safely). */
export function readChain(mem: GuestMemoryAccess, chain: DescChain, max: number): Uint8Array {
  const out = new Uint8Array(Math.min(chain.readBytes, max));
  eachSegment(chain.readable, out.length, (addr, o, n) => { mem.read(addr, out.subarray(o, o + n)); });
  return out;
}

/** Writes `data` across a chain's writable segments; returns the bytes written. */
export function writeChain(mem: GuestMemoryAccess, chain: DescChain, data: Uint8Array): number {
  return eachSegment(chain.writable, data.length, (addr, o, n) => { mem.write(addr, data.subarray(o, o + n)); });
}
