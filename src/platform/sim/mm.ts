/**
 * The back-end process's address space as the host kernel sees it: VMAs over BO frames and the
 * mmu_interval_notifier core (mm/mmu_notifier.c) with its sequence protocol, modelled exactly:
 *
 *  - the per-mm `invalidateSeq` is even when idle and odd while any invalidation is in flight;
 *  - invalidate start makes it odd and calls every intersecting interval's callback with that odd
 *    `cur_seq`; the callback must call setSeq(sub, cur_seq) under the driver lock;
 *  - invalidate end makes it even again and wakes readBegin() waiters;
 *  - readBegin(sub) returns sub.seq, first waiting while sub is being invalidated;
 *  - readRetry(sub, seq) is `sub.seq !== seq`.
 *
 * Main thread only: "the driver lock" in the simulation is the JS thread itself, since callbacks and
 * map critical sections are synchronous and therefore cannot interleave.
 */
import { NotifyEvent } from '../ports.js';
import { PAGE_SIZE } from './machine.js';

export interface NotifierRange {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
  readonly event: NotifyEvent;
  readonly blockable: boolean;
}

export interface IntervalSub {
  readonly start: number;
  readonly end: number;
  seq: number;
  readonly invalidate: (range: NotifierRange, curSeq: number) => boolean;
  removed: boolean;
}

/** Backing of a VMA: the frame behind a page, or -1 when its PTE is not present. */
export interface VmaBacking {
  frameOf(page: number): number;
  /** fixup_user_fault(): makes the page's PTE present. */
  faultIn(page: number): void;
}

interface Vma {
  readonly start: number;
  readonly end: number;
  readonly backing: VmaBacking;
}

const VA_BASE = 0x7f00_0000_0000;
const VA_ALIGN = 2 * 1024 * 1024;

export class SimMm {
  private invalidateSeq = 2;
  private active = 0;
  private readonly subs = new Set<IntervalSub>();
  private readonly vmas: Vma[] = [];
  private nextVa = VA_BASE;
  private waiters: (() => void)[] = [];
  private exited = false;

  /** mmap(): places a VMA at a fresh 2 MiB-aligned address. */
  mmap(length: number, backing: VmaBacking): number {
    if (this.exited) throw new Error('mm: process has exited');
    if (length <= 0 || length % PAGE_SIZE !== 0) throw new RangeError(`mmap length ${length}`);
    const start = this.nextVa;
    this.nextVa += Math.ceil(length / VA_ALIGN) * VA_ALIGN + VA_ALIGN;
    this.vmas.push({ start, end: start + length, backing });
    return start;
  }

  munmap(start: number, length: number): void {
    this.invalidate(start, start + length, NotifyEvent.Unmap, () => {
      const i = this.vmas.findIndex((v) => v.start === start && v.end === start + length);
      if (i < 0) throw new Error(`munmap: no VMA at ${start.toString(16)}+${length}`);
      this.vmas.splice(i, 1);
    });
  }

  /** mprotect(): fires PROTECTION_VMA over the range (our VMAs are always populated). */
  mprotect(start: number, length: number): void {
    this.invalidate(start, start + length, NotifyEvent.ProtectionVma, () => undefined);
  }

  /** Process exit: RELEASE over everything, then UNMAP of every VMA (exit_mmap order). */
  exit(): void {
    this.invalidate(0, Number.MAX_SAFE_INTEGER, NotifyEvent.Release, () => undefined);
    for (const v of [...this.vmas]) this.munmap(v.start, v.end - v.start);
    this.exited = true;
  }

  /** Finds the VMA covering [start, end) entirely, or undefined. */
  vmaCovering(start: number, end: number): { start: number; backing: VmaBacking } | undefined {
    return this.vmas.find((v) => v.start <= start && end <= v.end);
  }

  insert(start: number, length: number, invalidate: IntervalSub['invalidate']): IntervalSub {
    if (length <= 0 || !Number.isSafeInteger(start + length)) throw new RangeError('mmu_interval_notifier_insert: -EOVERFLOW');
    // A subscription inserted during an invalidation must wait for its end (the kernel defers it).
    const seq = this.active > 0 ? this.invalidateSeq : this.invalidateSeq - 1;
    const sub: IntervalSub = { start, end: start + length, seq, invalidate, removed: false };
    this.subs.add(sub);
    return sub;
  }

  remove(sub: IntervalSub): void {
    sub.removed = true;
    this.subs.delete(sub);
  }

  readBegin(sub: IntervalSub): number | Promise<number> {
    if (sub.seq !== this.invalidateSeq || this.active === 0) return sub.seq;
    return new Promise((resolve) => this.waiters.push(() => { resolve(sub.seq); }));
  }

  readRetry(sub: IntervalSub, seq: number): boolean {
    return sub.seq !== seq;
  }

  setSeq(sub: IntervalSub, curSeq: number): void {
    sub.seq = curSeq;
  }

  /** True while an invalidation is in flight (between start and end). */
  get invalidating(): boolean {
    return this.active > 0;
  }

  /** invalidate_range_start → `during` (the core's PTE zap) → invalidate_range_end, synchronously. */
  invalidate(start: number, end: number, event: NotifyEvent, during: () => void): void {
    this.invalidateStart(start, end, event);
    try {
      during();
    } finally {
      this.invalidateEnd();
    }
  }

  /** The same around work that takes time (a migration's copy); end runs when `during` settles. */
  async invalidateWhile(start: number, end: number, event: NotifyEvent, during: () => Promise<void> | void): Promise<void> {
    this.invalidateStart(start, end, event);
    try {
      await during();
    } finally {
      this.invalidateEnd();
    }
  }

  private invalidateStart(start: number, end: number, event: NotifyEvent): void {
    if (this.active++ === 0) this.invalidateSeq++; // even → odd
    const curSeq = this.invalidateSeq;
    const range: NotifierRange = { start, end, event, blockable: true };
    try {
      for (const sub of [...this.subs]) {
        if (sub.start < end && start < sub.end) sub.invalidate(range, curSeq);
      }
    } catch (e) {
      // A callback failed (a stuck TLB flush): the caller skips its work; end the invalidation so
      // that read_begin() never waits on it forever.
      this.invalidateEnd();
      throw e;
    }
  }

  private invalidateEnd(): void {
    if (--this.active === 0) {
      this.invalidateSeq++; // odd → even
      const w = this.waiters;
      this.waiters = [];
      for (const wake of w) wake();
    }
  }
}
