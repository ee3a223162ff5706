/**
 * The driver side of a split virtqueue, for the synthetic guest: rings and buffers live in guest
 * RAM (the guest's own memory, so plain writes), indices are published with atomic stores. Each
 * descriptor head owns a fixed buffer slot; a request is copied into it, and the response is read
 * back from the writable part of the same slot.
 */

export interface Used {
  readonly head: number;
  readonly len: number;
}

export interface DriverQueueLayout {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  readonly end: number;
}

const SLOT = 16 * 1024;

export function queueLayout(base: number, size: number): DriverQueueLayout {
  const desc = base;
  const avail = desc + 16 * size;
  const used = Math.ceil((avail + 6 + 2 * size) / 4) * 4;
  const data = Math.ceil((used + 6 + 8 * size) / 4096) * 4096;
  return { desc, avail, used, end: data + size * SLOT };
}

export class DriverQueue {
  readonly layout: DriverQueueLayout;
  private readonly view: DataView;
  private readonly ram16: Uint16Array;
  private readonly dataBase: number;
  private readonly free: number[];
  private availIdx = 0;
  private lastUsed = 0;

  /** `ram` is all of guest RAM (a shared buffer); the queue occupies [base, layout.end). */
  constructor(private readonly ram: Uint8Array, base: number, readonly size: number) {
    if (size < 2 || (size & (size - 1)) !== 0) throw new RangeError('virtqueue size must be a power of two >= 2');
    this.layout = queueLayout(base, size);
    if (this.layout.end > ram.byteLength) throw new RangeError('virtqueue does not fit guest RAM');
    this.view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    this.ram16 = new Uint16Array(ram.buffer, ram.byteOffset, ram.byteLength >> 1);
    this.dataBase = this.layout.end - size * SLOT;
    ram.fill(0, base, this.layout.end);
    // Heads use the lower half of the table, their writable descriptors the upper half.
    this.free = Array.from({ length: size / 2 }, (_, i) => i);
  }

  /** Posts `request` (device-readable) with room for a `responseLen`-byte answer; returns the head. */
  add(request: Uint8Array, responseLen: number): number {
    if (request.byteLength + responseLen > SLOT) throw new RangeError('request + response exceed a buffer slot');
    const head = this.free.shift();
    if (head === undefined) throw new Error('virtqueue full');
    const buf = this.dataBase + head * SLOT;
    this.ram.set(request, buf);
    // Two descriptors per head: head (readable) -> head + size/2 (writable); heads use the lower half.
    const d0 = head;
    const d1 = head + this.size / 2;
    this.writeDesc(d0, buf, request.byteLength, responseLen > 0 ? 1 : 0, d1);
    if (responseLen > 0) this.writeDesc(d1, buf + request.byteLength, responseLen, 2, 0);
    const slot = this.layout.avail + 4 + 2 * (this.availIdx % this.size);
    this.view.setUint16(slot, d0, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    Atomics.store(this.ram16, (this.layout.avail + 2) >> 1, this.availIdx); // publish (release)
    return head;
  }

  /** Chains the device has returned since the last call. */
  takeUsed(): Used[] {
    const idx = Atomics.load(this.ram16, (this.layout.used + 2) >> 1);
    const out: Used[] = [];
    while (this.lastUsed !== idx) {
      const e = this.layout.used + 4 + 8 * (this.lastUsed % this.size);
      out.push({ head: this.view.getUint32(e, true), len: this.view.getUint32(e + 4, true) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** The response bytes of a used head (the writable part of its slot); frees the slot. */
  response(head: number, requestLen: number, len: number): Uint8Array {
    const buf = this.dataBase + head * SLOT + requestLen;
    const out = this.ram.slice(buf, buf + len);
    this.free.push(head);
    return out;
  }

  private writeDesc(i: number, addr: number, len: number, flags: number, next: number): void {
    const d = this.layout.desc + 16 * i;
    this.view.setBigUint64(d, BigInt(addr), true);
    this.view.setUint32(d + 8, len, true);
    this.view.setUint16(d + 12, flags, true);
    this.view.setUint16(d + 14, next, true);
  }
}
