/**
 * The `memcpy` access pattern: each vCPU copies whole BAR pages of its own to and from guest RAM
 * the way a guest's memcpy does, rotating through rep MOVSQ / MOVSD forwards and backwards (df) and
 * 16- / 32-byte vector moves, from RAM buffers that are page aligned or start mid-page (so Xen's
 * RAM-side clip splits the rep). Every page copied in is read back at once and again before its
 * next overwrite; each read must return exactly the bytes last written (integrity).
 *
 * Pages are private to one vCPU (page g belongs to vCPU g mod vcpus): a whole-page copy has no
 * per-vCPU slot, unlike the other patterns.
 */
import type { BlobView, WorkloadCounters, WorkloadSpec } from './workload.js';
import { unitOf, xorshift32 } from '../util/xorshift.js';

/** What the pattern executes; SimCpu provides it. */
export interface MemcpyCpu {
  repMovs(dst: number, src: number, size: 4 | 8, reps: number, df: boolean): void;
  vectorStore(gpa: number, from: Uint8Array): void;
  vectorLoad(gpa: number, into: Uint8Array): void;
}

export const COPY_OPS = ['movsq', 'movsd', 'movsq-df', 'movsd-df', 'vec16', 'vec32'] as const;
export type CopyOp = (typeof COPY_OPS)[number];

const PAGE = 4096;
/** Guest RAM the pattern uses: 16 KiB per vCPU from 2 MiB (the virtqueue and its 1 MiB of buffers live below). */
export const MEMCPY_RAM_BASE = 2 << 20;
const PER_VCPU = 4 * PAGE;

/** Copies one page between `bar` and `ram` (to the BAR when `toBar`) with `op`. */
export function copyPage(cpu: MemcpyCpu, ramView: Uint8Array, op: CopyOp, bar: number, ram: number, toBar: boolean): void {
  const [dst, src] = toBar ? [bar, ram] : [ram, bar];
  switch (op) {
    case 'movsq':
      cpu.repMovs(dst, src, 8, PAGE / 8, false);
      return;
    case 'movsd':
      cpu.repMovs(dst, src, 4, PAGE / 4, false);
      return;
    case 'movsq-df': // backwards: rsi/rdi name the last element
      cpu.repMovs(dst + PAGE - 8, src + PAGE - 8, 8, PAGE / 8, true);
      return;
    case 'movsd-df':
      cpu.repMovs(dst + PAGE - 4, src + PAGE - 4, 4, PAGE / 4, true);
      return;
    case 'vec16':
    case 'vec32': {
      const w = op === 'vec16' ? 16 : 32;
      for (let off = 0; off < PAGE; off += w) {
        const reg = ramView.subarray(ram + off, ram + off + w); // the vector register's RAM side
        if (toBar) cpu.vectorStore(bar + off, reg);
        else cpu.vectorLoad(bar + off, reg);
      }
    }
  }
}

/** The content of page (blob, page) at generation `gen`: 32-bit words from a cheap mix. */
export function fillPage(into: Uint8Array, blobId: number, page: number, gen: number): void {
  const dv = new DataView(into.buffer, into.byteOffset, PAGE);
  const seed = Math.imul(blobId + 1, 0x9e3779b1) ^ Math.imul(page + 1, 0x85ebca6b) ^ Math.imul(gen, 0xc2b2ae35);
  for (let i = 0; i < PAGE / 4; i++) {
    let x = seed ^ Math.imul(i + 1, 0x27d4eb2d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x2c1b3c6d);
    x ^= x >>> 12;
    dv.setUint32(i * 4, x >>> 0, true);
  }
}

export class MemcpyWorkload {
  readonly counters: WorkloadCounters = { reads: 0, writes: 0, integrityErrors: 0, staleReads: 0, bytesWritten: 0, bytesVerified: 0, samples: [] };
  readonly finished = false; // timed, like every pattern but sweep
  private readonly pages: { blob: BlobView; page: number }[] = [];
  private readonly gen: Uint32Array;
  private readonly want = new Uint8Array(PAGE);
  private readonly ramBase: number;
  private rng: number;
  private copies = 0;

  constructor(spec: WorkloadSpec, vcpu: number, vcpus: number, private readonly ram: Uint8Array) {
    let g = 0;
    for (const blob of spec.blobs) {
      for (let p = 0; p < blob.pages; p++, g++) if (g % vcpus === vcpu) this.pages.push({ blob, page: p });
    }
    this.gen = new Uint32Array(this.pages.length);
    this.ramBase = MEMCPY_RAM_BASE + vcpu * PER_VCPU;
    if (this.ramBase + PER_VCPU > ram.byteLength) throw new RangeError(`memcpy: vCPU ${vcpu} has no room in ${ram.byteLength} bytes of guest RAM`);
    this.rng = (spec.seed * 2654435761 + vcpu * 40503 + 1) >>> 0 || 1;
  }

  /** Check the page's current content, copy a new generation in, read it back. */
  step(cpu: MemcpyCpu): void {
    if (this.pages.length === 0) return;
    const k = this.randomBelow(this.pages.length);
    const { blob, page } = this.pages[k] ?? { blob: { id: 0, gpa: 0, pages: 0 }, page: 0 };
    const bar = blob.gpa + page * PAGE;
    const gen = this.gen[k] ?? 0;
    if (gen > 0) this.readBack(cpu, bar, blob.id, page, gen);
    const next = gen + 1;
    const src = this.ramBuffer(0);
    fillPage(this.ram.subarray(src, src + PAGE), blob.id, page, next);
    copyPage(cpu, this.ram, this.nextOp(), bar, src, true);
    this.gen[k] = next;
    this.counters.writes++;
    this.counters.bytesWritten += PAGE;
    this.readBack(cpu, bar, blob.id, page, next);
  }

  private readBack(cpu: MemcpyCpu, bar: number, blobId: number, page: number, gen: number): void {
    const dst = this.ramBuffer(2 * PAGE);
    const got = this.ram.subarray(dst, dst + PAGE);
    got.fill(0);
    copyPage(cpu, this.ram, this.nextOp(), bar, dst, false);
    this.counters.reads++;
    this.counters.bytesVerified += PAGE;
    fillPage(this.want, blobId, page, gen);
    if (equal(got, this.want)) return;
    this.counters.integrityErrors++;
    fillPage(this.want, blobId, page, gen - 1);
    if (gen > 1 && equal(got, this.want)) this.counters.staleReads++;
    if (this.counters.samples.length < 5) this.counters.samples.push(`memcpy blob ${blobId} page ${page} gen ${gen}: ${firstDiff(got, blobId, page, gen)}`);
  }

  /** Source and destination buffers alternate between page-aligned and mid-page starts. */
  private ramBuffer(base: number): number {
    return this.ramBase + base + ((this.copies & 1) === 0 ? 0 : PAGE / 2);
  }

  private nextOp(): CopyOp {
    const op = COPY_OPS[this.copies % COPY_OPS.length] ?? 'movsq';
    this.copies++;
    return op;
  }

  private randomBelow(n: number): number {
    this.rng = xorshift32(this.rng);
    return Math.floor(unitOf(this.rng) * n);
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  const wa = new Int32Array(a.buffer, a.byteOffset, a.byteLength >> 2);
  const wb = new Int32Array(b.buffer, b.byteOffset, b.byteLength >> 2);
  for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return false;
  return true;
}

function firstDiff(got: Uint8Array, blobId: number, page: number, gen: number): string {
  const want = new Uint8Array(PAGE);
  fillPage(want, blobId, page, gen);
  let i = 0;
  while (i < PAGE && got[i] === want[i]) i++;
  let n = 0;
  for (let j = 0; j < PAGE; j++) if (got[j] !== want[j]) n++;
  return `${n} bytes differ, first at ${i} (read ${got[i] ?? 0}, want ${want[i] ?? 0})`;
}
