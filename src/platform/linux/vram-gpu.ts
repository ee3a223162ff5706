/**
 * A GPU port whose buffers are carved out of a PCI memory BAR (`--vram /sys/bus/pci/devices/
 * <bdf>/resource<N>`): a GPU's VRAM, or in the Xen tier QEMU's ivshmem-plain stand-in. The frames
 * are MMIO (outside every RAM range, !pfn_valid), which is what stock Xen's memory_mapping may safely
 * give a guest. The resource file's mmap is a VM_IO | VM_PFNMAP mapping.
 *
 * Allocation is next-fit from a cursor that only moves forward (wrapping at the end), so a buffer
 * freed now is not handed out again at once; and a freed buffer's pages are overwritten with
 * VRAM_POISON. A guest that still reaches an old frame after its buffer was revoked (a missed
 * revocation) then reads the poison instead of plausible data: stale reads are detectable.
 */
import { statSync } from 'node:fs';
import { O_RDWR, native } from '../../native/index.js';
import type { BoInfo, CpuMapping, GpuPort } from '../ports.js';
import { recordMapping, releaseMapping } from './cpu-mappings.js';

const PAGE = 4096;
/** Written over every word of a freed buffer (xen-tier/guest/bar_client.c checks for it). */
export const VRAM_POISON = 0xdead5a1e;

interface Bo {
  readonly firstPage: number;
  readonly pages: number;
  readonly mappings: Map<number, ArrayBuffer>;
}

export class VramGpu implements GpuPort {
  private readonly used: Uint8Array;
  private readonly bos = new Map<number, Bo>();
  private nextHandle = 1;
  private cursor = 0;

  private constructor(private readonly fd: number, private readonly cpu: ArrayBuffer) {
    this.used = new Uint8Array(cpu.byteLength / PAGE);
  }

  /** Maps the whole resource (our own CPU view); a sysfs resource file's size is the BAR's. */
  static open(path: string): VramGpu {
    const size = statSync(path).size;
    if (size < PAGE || size % PAGE !== 0) throw new RangeError(`${path}: size ${size} is not a positive multiple of ${PAGE}`);
    const fd = native.open(path, O_RDWR);
    try {
      const { PROT_READ, PROT_WRITE, MAP_SHARED } = native.mmapConstants;
      return new VramGpu(fd, native.mmap(fd, size, PROT_READ | PROT_WRITE, MAP_SHARED, 0));
    } catch (e) {
      native.close(fd);
      throw e;
    }
  }

  createBo(size: number): BoInfo {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) throw new RangeError(`BO size ${size}: want a positive multiple of ${PAGE}`);
    const pages = size / PAGE;
    const first = this.findFree(pages);
    if (first === undefined) throw new Error(`VRAM: no ${pages} free contiguous pages (${this.used.length} in all)`);
    this.used.fill(1, first, first + pages);
    this.cursor = (first + pages) % this.used.length;
    new Uint8Array(this.cpu, first * PAGE, size).fill(0);
    const handle = this.nextHandle++;
    this.bos.set(handle, { firstPage: first, pages, mappings: new Map() });
    return { handle, size };
  }

  destroyBo(handle: number): void {
    const bo = this.get(handle);
    for (const [va, ab] of bo.mappings) this.munmapBo({ handle, va, length: ab.byteLength });
    new Uint32Array(this.cpu, bo.firstPage * PAGE, (bo.pages * PAGE) / 4).fill(VRAM_POISON);
    this.used.fill(0, bo.firstPage, bo.firstPage + bo.pages);
    this.bos.delete(handle);
  }

  mmapBo(handle: number): CpuMapping {
    const bo = this.get(handle);
    const { PROT_READ, PROT_WRITE, MAP_SHARED } = native.mmapConstants;
    return recordMapping(bo.mappings, handle, native.mmap(this.fd, bo.pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, bo.firstPage * PAGE));
  }

  munmapBo(mapping: CpuMapping): void {
    releaseMapping(this.get(mapping.handle).mappings, mapping);
  }

  /** VRAM buffers do not move here: nothing on this platform evicts them. */
  evict(): Promise<boolean> {
    return Promise.resolve(false);
  }

  writeBo(handle: number, offset: number, data: Uint8Array): void {
    this.view(handle, offset, data.byteLength).set(data);
  }

  readBo(handle: number, offset: number, into: Uint8Array): void {
    into.set(this.view(handle, offset, into.byteLength));
  }

  close(): void {
    for (const handle of [...this.bos.keys()]) this.destroyBo(handle);
    native.munmap(this.cpu);
    native.close(this.fd);
  }

  /** First run of `pages` free pages at or after the cursor, wrapping once. */
  private findFree(pages: number): number | undefined {
    const n = this.used.length;
    for (let k = 0; k < n; k++) {
      const start = (this.cursor + k) % n;
      if (start + pages > n) continue;
      const busy = this.used.subarray(start, start + pages).indexOf(1);
      if (busy < 0) return start;
      k += busy; // skip past the busy page
    }
    return undefined;
  }

  private view(handle: number, offset: number, len: number): Uint8Array {
    const bo = this.get(handle);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + len > bo.pages * PAGE) throw new RangeError(`BO ${handle}: access [${offset}, +${len}) outside the buffer`);
    return new Uint8Array(this.cpu, bo.firstPage * PAGE + offset, len);
  }

  private get(handle: number): Bo {
    const bo = this.bos.get(handle);
    if (!bo) throw new Error(`GPU: no BO ${handle}`);
    return bo;
  }
}
