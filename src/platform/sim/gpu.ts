/**
 * The simulated GPU: buffer objects whose frames the host may move at any time (TTM-style eviction:
 * content preserved, new frames). CPU mappings are VMAs of the back-end's SimMm, so moving a BO
 * fires MMU_NOTIFY_CLEAR on every mapping before the frames change, exactly as ttm_bo_unmap_virtual()
 * → unmap_mapping_range() does on Linux.
 */
import type { BoInfo, CpuMapping, GpuPort } from '../ports.js';
import { NotifyEvent } from '../ports.js';
import type { HostMemory } from './host-memory.js';
import { PAGE_SIZE } from './machine.js';
import type { SimMm } from './mm.js';

interface Bo {
  readonly handle: number;
  readonly pages: number;
  frames: Int32Array;
  /** Per page: is the CPU PTE present (zapped by eviction until faulted in again). */
  readonly present: Uint8Array;
  readonly mappings: CpuMapping[];
  migrating: boolean;
}

export interface SimGpuOptions {
  /** Test-only fault injection: move frames without copying content (integrity checks must fire). */
  readonly dropContentOnEvict?: boolean;
  /** Wait one macrotask between the PTE zap and invalidate end (a migration that takes time). */
  readonly asyncMigration?: boolean;
}

export class SimGpu implements GpuPort {
  private readonly bos = new Map<number, Bo>();
  private nextHandle = 1;
  evictions = 0;

  constructor(private readonly mem: HostMemory, private readonly mm: SimMm, private readonly opts: SimGpuOptions = {}) {}

  createBo(size: number): BoInfo {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) throw new RangeError(`BO size ${size}: want a positive multiple of ${PAGE_SIZE}`);
    const pages = size / PAGE_SIZE;
    const frames = this.mem.alloc(pages);
    if (!frames) throw new Error(`GPU: out of memory for a ${size}-byte BO`);
    const handle = this.nextHandle++;
    this.bos.set(handle, { handle, pages, frames, present: new Uint8Array(pages).fill(1), mappings: [], migrating: false });
    return { handle, size };
  }

  destroyBo(handle: number): void {
    const bo = this.get(handle);
    for (const m of [...bo.mappings]) this.munmapBo(m);
    this.mem.release(bo.frames);
    this.bos.delete(handle);
  }

  mmapBo(handle: number): CpuMapping {
    const bo = this.get(handle);
    const length = bo.pages * PAGE_SIZE;
    const va = this.mm.mmap(length, {
      frameOf: (page) => (bo.present[page] === 1 ? (bo.frames[page] ?? -1) : -1),
      faultIn: (page) => {
        if (page >= 0 && page < bo.pages) bo.present[page] = 1;
      },
    });
    const mapping = { handle, va, length };
    bo.mappings.push(mapping);
    return mapping;
  }

  munmapBo(mapping: CpuMapping): void {
    const bo = this.get(mapping.handle);
    const i = bo.mappings.indexOf(mapping);
    if (i < 0) throw new Error('munmap: not a mapping of this BO');
    bo.mappings.splice(i, 1);
    this.mm.munmap(mapping.va, mapping.length);
  }

  /**
   * Moves pages [firstPage, firstPage+pages) of a BO to new frames. Returns false (and does
   * nothing) when the BO is already migrating or memory is short, as TTM would skip a busy BO.
   */
  evict(handle: number, firstPage = 0, pages?: number): Promise<boolean> {
    const bo = this.bos.get(handle);
    const n = pages ?? (bo ? bo.pages - firstPage : 0);
    if (!bo || bo.migrating || n <= 0 || firstPage < 0 || firstPage + n > bo.pages) return Promise.resolve(false);
    const fresh = this.mem.alloc(n);
    if (!fresh) return Promise.resolve(false);
    bo.migrating = true;
    this.evictions++;
    const [start, end] = [firstPage * PAGE_SIZE, (firstPage + n) * PAGE_SIZE];
    // One notifier span per CPU mapping; the copy happens while every span is invalidating.
    const spans = bo.mappings.map((m) => ({ start: m.va + start, end: m.va + end }));
    const move = (): void => {
      bo.present.fill(0, firstPage, firstPage + n); // the core's PTE zap
      const old = bo.frames.slice(firstPage, firstPage + n);
      for (let i = 0; i < n; i++) {
        if (this.opts.dropContentOnEvict !== true) this.mem.copyFrame(old[i] ?? 0, fresh[i] ?? 0);
        bo.frames[firstPage + i] = fresh[i] ?? 0;
      }
      this.mem.release(old);
    };
    const done = (): boolean => {
      bo.migrating = false;
      return true;
    };
    return this.invalidateSpans(spans, move).then(done, (e: unknown) => {
      bo.migrating = false;
      throw e;
    });
  }

  /** Moves the one page mapped at `va` (any CPU mapping of any BO); false when none is there. */
  evictAt(va: number): Promise<boolean> {
    for (const bo of this.bos.values()) {
      const m = bo.mappings.find((x) => x.va <= va && va < x.va + x.length);
      if (m) return this.evict(bo.handle, Math.floor((va - m.va) / PAGE_SIZE), 1);
    }
    return Promise.resolve(false);
  }

  private async invalidateSpans(spans: { start: number; end: number }[], move: () => void): Promise<void> {
    const [first, ...rest] = spans;
    if (!first) {
      move();
      return;
    }
    // Nest the spans so that every mapping is invalidated before the frames move.
    await this.mm.invalidateWhile(first.start, first.end, NotifyEvent.Clear, () =>
      rest.length > 0 ? this.invalidateSpans(rest, move) : this.migrate(move),
    );
  }

  private migrate(move: () => void): void | Promise<void> {
    move();
    if (this.opts.asyncMigration === true) return new Promise((r) => setImmediate(r));
  }

  boCount(): number {
    return this.bos.size;
  }

  handles(): number[] {
    return [...this.bos.keys()];
  }

  writeBo(handle: number, offset: number, data: Uint8Array): void {
    this.boAccess(handle, offset, data, true);
  }

  readBo(handle: number, offset: number, into: Uint8Array): void {
    this.boAccess(handle, offset, into, false);
  }

  private boAccess(handle: number, offset: number, data: Uint8Array, write: boolean): void {
    const bo = this.get(handle);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.byteLength > bo.pages * PAGE_SIZE) throw new RangeError(`BO ${handle}: access [${offset}, +${data.byteLength}) outside the buffer`);
    let done = 0;
    while (done < data.byteLength) {
      const at = offset + done;
      const n = Math.min(PAGE_SIZE - (at % PAGE_SIZE), data.byteLength - done);
      this.mem.access(bo.frames[Math.floor(at / PAGE_SIZE)] ?? 0, at % PAGE_SIZE, data.subarray(done, done + n), write);
      done += n;
    }
  }

  /** The host frame behind page `page` of a BO now (whether or not its CPU PTE is present). */
  frameOf(handle: number, page: number): number {
    return this.get(handle).frames[page] ?? -1;
  }

  pagesOf(handle: number): number {
    return this.get(handle).pages;
  }

  private get(handle: number): Bo {
    const bo = this.bos.get(handle);
    if (!bo) throw new Error(`GPU: no BO ${handle}`);
    return bo;
  }
}
