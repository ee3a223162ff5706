/**
 * The synthetic guest's access patterns and its integrity bookkeeping. Every write stores a stamp
 * (blob, page, generation) in this vCPU's own 8-byte slot of the page; every read of that slot must
 * return exactly the latest stamp this vCPU wrote there (or zero if it never wrote). Pages are
 * shared between vCPUs (each has its own slot), so faults on one page race across vCPUs.
 */
import { unitOf, xorshift32 } from '../util/xorshift.js';

/**
 * The two sweeps cover the vCPU's share of the blobs once, then the vCPU is done:
 *  - `sweep` writes every byte of the share (8-byte stores, as a guest copying a buffer into the
 *    BAR would), then reads every byte back and checks it: each 8-byte word carries its blob, page
 *    and word index, so a lost, misplaced or torn write shows as an integrity error;
 *  - `sweep-touch` writes one word per page (the first-touch cost alone, with no work between
 *    exits; it hides what an exit costs a guest that actually moves data).
 * `memcpy` copies whole pages between guest RAM and the BAR with string and vector moves (memcpy.ts).
 */
export const PATTERNS = ['seq', 'random', 'hotset', 'write-heavy', 'sweep', 'sweep-touch', 'memcpy'] as const;
export type PatternName = (typeof PATTERNS)[number];

export interface BlobView {
  readonly id: number;
  readonly gpa: number;
  readonly pages: number;
}

export interface WorkloadSpec {
  readonly pattern: PatternName;
  readonly blobs: readonly BlobView[];
  readonly seed: number;
  /** Pages in the hot set of `hotset` (default 64). */
  readonly hotPages?: number;
}

/** The memory operations a workload needs; SimCpu satisfies it. */
export interface GuestCpu {
  lo: number;
  hi: number;
  load64(gpa: number): void;
  store64(gpa: number, lo: number, hi: number): void;
}

export interface WorkloadCounters {
  reads: number;
  writes: number;
  /** Reads that returned anything but the latest stamp this vCPU wrote there. */
  integrityErrors: number;
  /** Of those, reads that returned an older stamp of the same slot: the signature of a read served
   * from a frame revoked before a later write went elsewhere. */
  staleReads: number;
  /** Bytes stored, and bytes loaded and checked against what this vCPU wrote there. */
  bytesWritten: number;
  bytesVerified: number;
  /** The first few mismatches, for the log. */
  samples: string[];
}

const WRITE_FRACTION: Record<Exclude<PatternName, 'memcpy'>, number> = { seq: 0.5, random: 0.3, hotset: 0.3, 'write-heavy': 0.8, sweep: 1, 'sweep-touch': 1 };

const PAGE_BYTES = 4096;
const WORDS_PER_PAGE = PAGE_BYTES / 8;
/** High half of every `sweep` word: a marker (never 0, never all ones) and the word's index in its page. */
const SWEEP_MARK = 0x5e00_0000;

export function stampTag(blobId: number, page: number): number {
  return (((blobId & 0x3ff) << 22) | (page & 0x3f_ffff)) >>> 0;
}

/** What `sweep` stores at word `word` of `page` of blob `blobId`: low and high halves. */
export function sweepWord(blobId: number, page: number, word: number): { lo: number; hi: number } {
  return { lo: stampTag(blobId, page), hi: (SWEEP_MARK | word) >>> 0 };
}

export class Workload {
  readonly counters: WorkloadCounters = { reads: 0, writes: 0, integrityErrors: 0, staleReads: 0, bytesWritten: 0, bytesVerified: 0, samples: [] };
  private readonly firstPage: Int32Array; // prefix sums: global page index of each blob's page 0
  private readonly totalPages: number;
  private readonly gen: Uint32Array;
  private rng: number;
  private cursor: number;
  private readonly sweepStart: number;
  private readonly sweepEnd: number;
  /** `sweep`: the word of the cursor's page, and whether the write pass is over. */
  private word = 0;
  private readingBack = false;
  private readonly hot: number;
  private readonly writeFraction: number;

  constructor(private readonly spec: WorkloadSpec, private readonly vcpu: number, vcpus: number) {
    if (spec.blobs.length === 0) throw new Error('workload: no blobs');
    this.firstPage = new Int32Array(spec.blobs.length + 1);
    spec.blobs.forEach((b, i) => (this.firstPage[i + 1] = (this.firstPage[i] ?? 0) + b.pages));
    this.totalPages = this.firstPage[spec.blobs.length] ?? 0;
    this.gen = new Uint32Array(this.totalPages);
    this.rng = (spec.seed * 2654435761 + vcpu * 40503 + 1) >>> 0 || 1;
    this.sweepStart = Math.floor((this.totalPages * vcpu) / vcpus);
    this.cursor = this.sweepStart;
    this.sweepEnd = Math.floor((this.totalPages * (vcpu + 1)) / vcpus);
    this.readingBack = this.sweepEnd <= this.sweepStart; // an empty share has nothing to write
    this.hot = Math.max(1, Math.min(spec.hotPages ?? 64, this.totalPages));
    if (spec.pattern === 'memcpy') throw new Error('workload: memcpy is MemcpyWorkload (memcpy.ts)');
    this.writeFraction = WRITE_FRACTION[spec.pattern];
  }

  /** Sweeps only: this vCPU has covered its share (for `sweep`, written and read back). */
  get finished(): boolean {
    if (this.spec.pattern === 'sweep') return this.readingBack && this.cursor >= this.sweepEnd;
    return this.spec.pattern === 'sweep-touch' && this.cursor >= this.sweepEnd;
  }

  /** One guest memory operation. */
  step(cpu: GuestCpu): void {
    if (this.finished) return;
    if (this.spec.pattern === 'sweep') {
      this.sweepStep(cpu);
      return;
    }
    const g = this.nextPage();
    const bi = this.blobOf(g);
    const blob = this.spec.blobs[bi];
    if (!blob) return;
    const page = g - (this.firstPage[bi] ?? 0);
    const gpa = blob.gpa + page * 4096 + this.vcpu * 8;
    if (this.random() < this.writeFraction) {
      const next = ((this.gen[g] ?? 0) + 1) >>> 0 || 1;
      cpu.store64(gpa, stampTag(blob.id, page), next);
      this.gen[g] = next;
      this.counters.writes++;
      this.counters.bytesWritten += 8;
    } else {
      cpu.load64(gpa);
      this.counters.reads++;
      this.verify(cpu, blob.id, page, this.gen[g] ?? 0);
    }
  }

  /** `sweep`: the next word of the write pass, or of the read-back pass once every word is written. */
  private sweepStep(cpu: GuestCpu): void {
    const g = this.cursor;
    const bi = this.blobOf(g);
    const blob = this.spec.blobs[bi];
    if (!blob) return;
    const page = g - (this.firstPage[bi] ?? 0);
    const w = this.word;
    const gpa = blob.gpa + page * PAGE_BYTES + w * 8;
    const want = sweepWord(blob.id, page, w);
    if (this.readingBack) {
      cpu.load64(gpa);
      this.counters.reads++;
      this.counters.bytesVerified += 8;
      this.checkWord(cpu, blob.id, page, w, want);
    } else {
      cpu.store64(gpa, want.lo, want.hi);
      this.counters.writes++;
      this.counters.bytesWritten += 8;
    }
    if (++this.word < WORDS_PER_PAGE) return;
    this.word = 0;
    if (++this.cursor < this.sweepEnd || this.readingBack) return;
    this.readingBack = true;
    this.cursor = this.sweepStart;
  }

  private checkWord(cpu: GuestCpu, blobId: number, page: number, word: number, want: { lo: number; hi: number }): void {
    if (cpu.lo >>> 0 === want.lo && cpu.hi >>> 0 === want.hi) return;
    this.mismatch(`blob ${blobId} page ${page} word ${word}: read ${(cpu.hi >>> 0).toString(16)}:${(cpu.lo >>> 0).toString(16)}, want ${want.hi.toString(16)}:${want.lo.toString(16)}`);
  }

  private mismatch(sample: string): void {
    this.counters.integrityErrors++;
    if (this.counters.samples.length < 5) this.counters.samples.push(sample);
  }

  private verify(cpu: GuestCpu, blobId: number, page: number, gen: number): void {
    const wantLo = gen === 0 ? 0 : stampTag(blobId, page);
    this.counters.bytesVerified += 8;
    if (cpu.lo >>> 0 === wantLo && cpu.hi >>> 0 === gen) return;
    if (cpu.lo >>> 0 === wantLo && cpu.hi >>> 0 < gen) this.counters.staleReads++;
    this.mismatch(`blob ${blobId} page ${page}: read ${(cpu.hi >>> 0).toString(16)}:${(cpu.lo >>> 0).toString(16)}, want ${gen.toString(16)}:${wantLo.toString(16)}`);
  }

  private nextPage(): number {
    switch (this.spec.pattern) {
      case 'sweep':
      case 'sweep-touch':
        return this.cursor++;
      case 'seq':
        this.cursor = (this.cursor + 1) % this.totalPages;
        return this.cursor;
      case 'hotset':
        return this.random() < 0.9 ? this.randomBelow(this.hot) : this.randomBelow(this.totalPages);
      case 'random':
      case 'write-heavy':
      case 'memcpy': // never constructed with it (see the constructor)
        return this.randomBelow(this.totalPages);
    }
  }

  private blobOf(g: number): number {
    let lo = 0;
    let hi = this.spec.blobs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.firstPage[mid] ?? 0) <= g) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** xorshift32: cheap, seeded, reproducible per vCPU. */
  private random(): number {
    this.rng = xorshift32(this.rng);
    return unitOf(this.rng);
  }

  private randomBelow(n: number): number {
    return Math.floor(this.random() * n);
  }
}
