/**
 * Every device access to guest memory goes through this small interface (rust-vmm vm-memory style):
 * little-endian typed reads and writes on guest-physical addresses, each bounds-checked by the
 * hypervisor port. A bad address is a GuestMemoryError, which the caller turns into the protocol's
 * error (for a virtqueue: DEVICE_NEEDS_RESET); it never reaches outside guest RAM.
 */
import type { GuestMemory } from '../platform/ports.js';

export class GuestMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuestMemoryError';
  }
}

export class GuestMemoryAccess {
  private readonly scratch = new Uint8Array(8);
  private readonly view = new DataView(this.scratch.buffer);

  constructor(private readonly mem: GuestMemory) {}

  get size(): number {
    return this.mem.size;
  }

  read(gpa: number, into: Uint8Array): void {
    this.checked(() => { this.mem.read(gpa, into); }, gpa, into.byteLength);
  }

  write(gpa: number, from: Uint8Array): void {
    this.checked(() => { this.mem.write(gpa, from); }, gpa, from.byteLength);
  }

  readU16(gpa: number): number {
    this.read(gpa, this.scratch.subarray(0, 2));
    return this.view.getUint16(0, true);
  }

  readU32(gpa: number): number {
    this.read(gpa, this.scratch.subarray(0, 4));
    return this.view.getUint32(0, true);
  }

  /** u64 as a number: guest-physical addresses and lengths stay below 2^53; larger ones are refused. */
  readU64(gpa: number): number {
    this.read(gpa, this.scratch);
    const v = this.view.getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GuestMemoryError(`u64 at ${gpa.toString(16)} is beyond 2^53`);
    return Number(v);
  }

  /** A ring index published by the guest (acquire). */
  loadIndex(gpa: number): number {
    let v = 0;
    this.checked(() => { v = this.mem.load16(gpa); }, gpa, 2);
    return v;
  }

  /** Publishes a ring index (release): the elements written before it are visible first. */
  publishIndex(gpa: number, v: number): void {
    this.checked(() => { this.mem.store16(gpa, v & 0xffff); }, gpa, 2);
  }

  writeU16(gpa: number, v: number): void {
    this.view.setUint16(0, v, true);
    this.write(gpa, this.scratch.subarray(0, 2));
  }

  writeU32(gpa: number, v: number): void {
    this.view.setUint32(0, v, true);
    this.write(gpa, this.scratch.subarray(0, 4));
  }

  private checked(op: () => void, gpa: number, len: number): void {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(gpa + len)) throw new GuestMemoryError(`bad guest address ${String(gpa)}+${len}`);
    try {
      op();
    } catch (e) {
      throw new GuestMemoryError(e instanceof Error ? e.message : String(e));
    }
  }
}
