/**
 * A GPU port whose buffers' frames really go away: each BO is a memfd (shmem), mapped MAP_SHARED.
 * Eviction does what TTM does when it moves a BO, with real frames:
 *
 *  1. zap the back-end's mappings (MADV_DONTNEED: MMU_NOTIFY_CLEAR, the helper revokes), so no
 *     vCPU can reach the pages while they are copied;
 *  2. copy the content out and free the frames (fallocate PUNCH_HOLE: the pages leave the page
 *     cache and return to the allocator). Fail closed: a page the helper still maps after step 1
 *     (a helper that did not revoke, e.g. test_skip_revoke=1) keeps its frame pinned until the BO
 *     is destroyed, so a missed revocation reads and writes a retired frame, never one the
 *     allocator gave to someone else;
 *  3. write the content back: the memfd gets new frames (zeroed, then filled), and every tagged
 *     page gets a new placement generation (placement-tags.ts) before the move is published.
 *
 * All of it runs synchronously on the main thread, which is also where faults are served: no MAP
 * can install a page between steps 1 and 3. Whether frames really changed is measured from
 * /proc/self/pagemap (pagemap.ts), not assumed: the allocator may hand a freed frame straight back.
 */
import { ftruncateSync } from 'node:fs';
import { native } from '../../native/index.js';
import type { BoInfo, CpuMapping, GpuPort } from '../ports.js';
import { movedFrames, type FrameReader } from './pagemap.js';
import { PAGE, TAG_OFFSET, decodeTag, encodeTag, type PlacementBoard } from './placement-tags.js';
import { PressureErrors } from './pressure-errors.js';
import { recordMapping, releaseMapping } from './cpu-mappings.js';

interface Bo {
  readonly fd: number;
  readonly pages: number;
  /** Our own mapping: writeBo/readBo, the copy of a move, and the pagemap lookups. */
  readonly cpu: ArrayBuffer;
  /** The mappings handed to the back-end (registered with the helper), by address. */
  readonly mappings: Map<number, ArrayBuffer>;
  /** The placement-board id of each page. */
  readonly ids: Int32Array;
  /** Pipes holding retired frames the helper still mapped (closed with the BO). */
  readonly pins: number[];
}

/** Which pages [first, first+n) of the mapping at `va` the kernel helper's p2m maps now. */
export type MappedPages = (va: number, first: number, n: number) => boolean[];

/** Pages per pinPages() call (its limit). */
const PIN_CHUNK = 256;

const WORDS_PER_PAGE = PAGE / 4;

export class MemfdGpu implements GpuPort {
  readonly errors = new PressureErrors();
  private readonly bos = new Map<number, Bo>();
  private nextHandle = 1;
  private moved = 0;

  /** Retired frames kept because the helper still mapped their pages after the zap. */
  pinnedFrames = 0;

  /** `frames`: a pagemap reader, or why frame moves cannot be measured here. */
  constructor(private readonly board: PlacementBoard, private readonly frames: FrameReader | { reason: string }, private readonly mapped: MappedPages) {}

  createBo(size: number): BoInfo {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) throw new RangeError(`BO size ${size}: want a positive multiple of ${PAGE}`);
    const pages = size / PAGE;
    const ids = this.board.allocate(pages);
    if (!ids) throw new Error(`GPU: out of host memory for a ${size}-byte BO (budget ${this.board.capacity} pages)`);
    let fd = -1;
    try {
      fd = native.memfdCreate('xvgpu-bo');
      ftruncateSync(fd, size);
      const { PROT_READ, PROT_WRITE, MAP_SHARED } = native.mmapConstants;
      const cpu = native.mmap(fd, size, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
      const handle = this.nextHandle++;
      this.bos.set(handle, { fd, pages, cpu, mappings: new Map(), ids, pins: [] });
      this.place(new Uint32Array(cpu), ids);
      return { handle, size };
    } catch (e) {
      if (fd >= 0) native.close(fd);
      this.board.release(ids);
      throw e;
    }
  }

  destroyBo(handle: number): void {
    const bo = this.get(handle);
    for (const ab of bo.mappings.values()) native.munmap(ab);
    native.munmap(bo.cpu);
    native.close(bo.fd);
    for (const pin of bo.pins) native.close(pin);
    this.board.release(bo.ids);
    this.bos.delete(handle);
  }

  mmapBo(handle: number): CpuMapping {
    const bo = this.get(handle);
    const { PROT_READ, PROT_WRITE, MAP_SHARED } = native.mmapConstants;
    return recordMapping(bo.mappings, handle, native.mmap(bo.fd, bo.pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0));
  }

  munmapBo(mapping: CpuMapping): void {
    releaseMapping(this.get(mapping.handle).mappings, mapping);
  }

  evict(handle: number, firstPage = 0, pages?: number): Promise<boolean> {
    return this.errors.settle(() => this.move(handle, firstPage, pages));
  }

  writeBo(handle: number, offset: number, data: Uint8Array): void {
    this.view(handle, offset, data.byteLength).set(data);
  }

  readBo(handle: number, offset: number, into: Uint8Array): void {
    into.set(this.view(handle, offset, into.byteLength));
  }

  pagesOf(handle: number): number {
    return this.get(handle).pages;
  }

  /** Pages the helper had mapped whose host frame changed at an eviction, or why that cannot be measured. */
  movedFrames(): number | { reason: string } {
    return 'reason' in this.frames ? this.frames : this.moved;
  }

  /** Steps 1-3 of the header; false (nothing done) for an unknown BO or a bad range. */
  private move(handle: number, first: number, pages: number | undefined): boolean {
    const bo = this.bos.get(handle);
    if (!bo) return false;
    const n = pages ?? bo.pages - first;
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(n) || n <= 0 || first < 0 || first + n > bo.pages) return false;
    const [start, len] = [first * PAGE, n * PAGE];
    const wasMapped = this.mappedPages(bo, first, n);
    for (const ab of bo.mappings.values()) native.madvise(ab, start, len, native.mmapConstants.MADV_DONTNEED);
    this.pinStillMapped(bo, first, this.mappedPages(bo, first, n));
    const before = this.framesOf(bo, first, n);
    const content = new Uint8Array(bo.cpu, start, len).slice();
    const { FALLOC_FL_PUNCH_HOLE, FALLOC_FL_KEEP_SIZE } = native.fallocConstants;
    native.fallocate(bo.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, start, len);
    const epoch = this.board.nextEpoch();
    const retagged = retag(new Uint32Array(content.buffer), bo.ids.subarray(first, first + n), epoch);
    new Uint8Array(bo.cpu, start, len).set(content); // new frames
    const after = this.framesOf(bo, first, n);
    if (before && after) this.moved += movedFrames(before, after, wasMapped);
    this.board.publish(retagged, epoch);
    return true;
  }

  /** Tags every page of a fresh BO and publishes them. */
  private place(words: Uint32Array, ids: Int32Array): void {
    const epoch = this.board.nextEpoch();
    ids.forEach((id, p) => { encodeTag(words, p * WORDS_PER_PAGE + TAG_OFFSET / 4, id, epoch); });
    this.board.publish(ids, epoch);
  }

  /** Pages mapped through any of the BO's mappings. */
  private mappedPages(bo: Bo, first: number, n: number): boolean[] {
    const out = new Array<boolean>(n).fill(false);
    for (const va of bo.mappings.keys()) this.mapped(va, first, n).forEach((m, i) => { if (m) out[i] = true; });
    return out;
  }

  /** Pins the frames of pages the helper still maps, in runs of at most PIN_CHUNK pages. */
  private pinStillMapped(bo: Bo, first: number, still: boolean[]): void {
    for (let i = 0; i < still.length; ) {
      if (still[i] !== true) {
        i++;
        continue;
      }
      let j = i;
      while (j < still.length && still[j] === true && j - i < PIN_CHUNK) j++;
      bo.pins.push(native.pinPages(bo.cpu, (first + i) * PAGE, (j - i) * PAGE));
      this.pinnedFrames += j - i;
      i = j;
    }
  }

  private framesOf(bo: Bo, first: number, n: number): (bigint | null)[] | undefined {
    return 'reason' in this.frames ? undefined : this.frames(native.addressOf(bo.cpu) + first * PAGE, n);
  }

  private view(handle: number, offset: number, len: number): Uint8Array {
    const bo = this.get(handle);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + len > bo.cpu.byteLength) throw new RangeError(`BO ${handle}: access [${offset}, +${len}) outside the buffer`);
    return new Uint8Array(bo.cpu, offset, len);
  }

  private get(handle: number): Bo {
    const bo = this.bos.get(handle);
    if (!bo) throw new Error(`GPU: no BO ${handle}`);
    return bo;
  }
}

/**
 * Gives each page of `content` that still carries its own tag the generation `epoch`; returns the
 * ids retagged. A page whose tag was overwritten (by the host or the guest) keeps its bytes as
 * they are and is no longer checked.
 */
export function retag(content: Uint32Array, ids: Int32Array, epoch: number): number[] {
  const out: number[] = [];
  ids.forEach((id, p) => {
    const at = p * WORDS_PER_PAGE + TAG_OFFSET / 4;
    if (decodeTag(content, at)?.id !== id) return;
    encodeTag(content, at, id, epoch);
    out.push(id);
  });
  return out;
}
