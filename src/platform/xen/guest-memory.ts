/**
 * Guest RAM for the device (virtqueues, data_is_ptr requests): guest frames foreign-mapped one page
 * at a time through privcmd, kept in a small cache and unmapped when evicted, on invalidate() (Xen's
 * mapcache invalidation: RAM left the guest) and on close. Every access is bounds-checked against
 * the guest's size; a page Xen refuses to map is an error for that access only.
 */
import type { GuestMemory } from '../ports.js';
import { PAGE_SIZE, type PrivcmdLib } from './privcmd.js';

interface MappedPage {
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly halves: Uint16Array;
}

export class XenGuestMemory implements GuestMemory {
  private readonly pages = new Map<number, MappedPage>();

  constructor(
    private readonly privcmd: PrivcmdLib,
    private readonly domid: number,
    readonly size: number,
    private readonly maxCachedPages = 256,
  ) {}

  read(gpa: number, into: Uint8Array): void {
    this.check(gpa, into.byteLength);
    this.eachChunk(gpa, into.byteLength, (page, off, done, n) => { into.set(page.bytes.subarray(off, off + n), done); });
  }

  write(gpa: number, from: Uint8Array): void {
    this.check(gpa, from.byteLength);
    this.eachChunk(gpa, from.byteLength, (page, off, done, n) => { page.bytes.set(from.subarray(done, done + n), off); });
  }

  load16(gpa: number): number {
    this.check(gpa, 2, true);
    return Atomics.load(this.page(Math.floor(gpa / PAGE_SIZE)).halves, (gpa % PAGE_SIZE) >> 1);
  }

  store16(gpa: number, value: number): void {
    this.check(gpa, 2, true);
    Atomics.store(this.page(Math.floor(gpa / PAGE_SIZE)).halves, (gpa % PAGE_SIZE) >> 1, value);
  }

  get cachedPages(): number {
    return this.pages.size;
  }

  /** Unmaps every cached page (views over them go empty before the pages go). */
  invalidate(): void {
    for (const p of this.pages.values()) this.privcmd.unmap(p.buffer);
    this.pages.clear();
  }

  close(): void {
    this.invalidate();
  }

  private check(gpa: number, len: number, aligned = false): void {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || len < 0 || gpa + len > this.size) {
      throw new RangeError(`guest memory: [${gpa}, +${len}) outside the guest's ${this.size} bytes`);
    }
    if (aligned && gpa % len !== 0) throw new RangeError(`guest memory: ${len}-byte access at ${gpa} is not aligned`);
  }

  private eachChunk(gpa: number, len: number, fn: (page: MappedPage, off: number, done: number, n: number) => void): void {
    let done = 0;
    while (done < len) {
      const at = gpa + done;
      const off = at % PAGE_SIZE;
      const n = Math.min(len - done, PAGE_SIZE - off);
      fn(this.page(Math.floor(at / PAGE_SIZE)), off, done, n);
      done += n;
    }
  }

  private page(gfn: number): MappedPage {
    const hit = this.pages.get(gfn);
    if (hit) {
      // Refresh its place: Map iteration order is insertion order, so the first entry is the oldest.
      this.pages.delete(gfn);
      this.pages.set(gfn, hit);
      return hit;
    }
    if (this.pages.size >= this.maxCachedPages) this.evictOldest();
    const buffer = this.privcmd.mapGuestFrames(this.domid, [gfn]);
    const page = { buffer, bytes: new Uint8Array(buffer), halves: new Uint16Array(buffer) };
    this.pages.set(gfn, page);
    return page;
  }

  private evictOldest(): void {
    for (const [gfn, p] of this.pages) {
      this.pages.delete(gfn);
      this.privcmd.unmap(p.buffer);
      return;
    }
  }
}
