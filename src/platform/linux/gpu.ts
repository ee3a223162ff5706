/**
 * The GPU port over a DRM device (vgem in the VM tier): BOs are dumb buffers, CPU mappings are the
 * addon's mmap of the DRM fd. `evict` stands in for TTM moving a BO: vgem never evicts, so it asks
 * the kernel helper's test-only EVICT to zap the mapping's PTEs, which fires MMU_NOTIFY_CLEAR.
 */
import { native } from '../../native/index.js';
import type { BoInfo, CpuMapping, GpuPort } from '../ports.js';
import type { DrmDevice, DumbBuffer } from './drm.js';
import { PressureErrors } from './pressure-errors.js';
import { recordMapping, releaseMapping } from './cpu-mappings.js';

const PAGE = 4096;

interface Bo {
  readonly buf: DumbBuffer;
  readonly mappings: Map<number, ArrayBuffer>; // va -> the mmap buffer (registered with the helper)
  /** Our own mapping for writeBo/readBo, made on first use (a BO may be written before it is mapped). */
  cpu?: ArrayBuffer;
}

export class DrmGpu implements GpuPort {
  readonly errors = new PressureErrors();
  private readonly bos = new Map<number, Bo>();

  constructor(private readonly dev: DrmDevice, private readonly zap: (va: number, firstPage: number, pages: number) => void) {}

  createBo(size: number): BoInfo {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) throw new RangeError(`BO size ${size}: want a positive multiple of ${PAGE}`);
    // 1024 pixels of 32 bits = one page per row.
    const buf = this.dev.createDumb(1024, size / PAGE, 32);
    if (buf.size < size) throw new Error(`DRM returned a ${buf.size}-byte dumb buffer for ${size} bytes`);
    this.bos.set(buf.handle, { buf, mappings: new Map() });
    return { handle: buf.handle, size };
  }

  destroyBo(handle: number): void {
    const bo = this.get(handle);
    for (const [va, ab] of bo.mappings) this.munmapBo({ handle, va, length: ab.byteLength });
    if (bo.cpu) native.munmap(bo.cpu);
    this.dev.destroyDumb(handle);
    this.bos.delete(handle);
  }

  mmapBo(handle: number): CpuMapping {
    const bo = this.get(handle);
    return recordMapping(bo.mappings, handle, this.dev.mmapDumb(bo.buf));
  }

  munmapBo(mapping: CpuMapping): void {
    releaseMapping(this.get(mapping.handle).mappings, mapping);
  }

  evict(handle: number, firstPage = 0, pages?: number): Promise<boolean> {
    return this.errors.settle(() => {
      const bo = this.bos.get(handle);
      if (!bo) return false;
      const total = bo.buf.size / PAGE;
      const n = pages ?? total - firstPage;
      if (n <= 0 || firstPage < 0 || firstPage + n > total) return false;
      for (const va of bo.mappings.keys()) this.zap(va, firstPage, n);
      return true;
    });
  }

  writeBo(handle: number, offset: number, data: Uint8Array): void {
    this.view(handle, offset, data.byteLength).set(data);
  }

  readBo(handle: number, offset: number, into: Uint8Array): void {
    into.set(this.view(handle, offset, into.byteLength));
  }

  /** A view through our own CPU mapping of the BO. */
  private view(handle: number, offset: number, len: number): Uint8Array {
    const bo = this.get(handle);
    bo.cpu ??= this.dev.mmapDumb(bo.buf);
    const ab = bo.cpu;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + len > ab.byteLength) throw new RangeError(`BO ${handle}: access [${offset}, +${len}) outside the buffer`);
    return new Uint8Array(ab, offset, len);
  }

  pagesOf(handle: number): number {
    return this.get(handle).buf.size / PAGE;
  }

  private get(handle: number): Bo {
    const bo = this.bos.get(handle);
    if (!bo) throw new Error(`GPU: no BO ${handle}`);
    return bo;
  }
}
