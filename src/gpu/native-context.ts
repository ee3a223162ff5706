/**
 * A DRM native context with the vdrm wire format (Mesa src/virtio/vdrm; shared/reference
 * virtio-gpu-native-context.md §4.3): SUBMIT_3D carries packets with a 16-byte header
 * {cmd, len, seqno, rsp_off}; responses go to the context's shared "shmem" blob (blob_id 0) at
 * rsp_mem_offset + rsp_off, and shmem.seqno is set to the packet's seqno when it is done.
 *
 * Our context type is the simulated GPU's own (XVGPU_CONTEXT_TYPE, not a real driver's). Its
 * commands: NOP, GEM_NEW (allocate a BO under a guest-chosen blob_id, later exported by
 * RESOURCE_CREATE_BLOB), GEM_INFO (query a resource), FILL (the host writes a pattern into a BO, so
 * the guest can see host writes through the BAR), GEM_FREE (drop a BO never exported).
 *
 * Every packet is validated (length, alignment, bounds of the response); a bad packet stops the
 * buffer and bumps shmem.async_error, which the guest treats as a lost context.
 */
import type { GpuPort } from '../platform/ports.js';

export const XVGPU_CONTEXT_TYPE = 0x7876;
export const CCMD = { NOP: 1, GEM_NEW: 2, GEM_INFO: 3, FILL: 4, GEM_FREE: 5 } as const;
export const CCMD_HDR = 16;
export const SHMEM = { seqno: 0, rspMemOffset: 4, asyncError: 8, rspArea: 64 } as const;
export const SHMEM_MIN = 4096;
export const MAX_BO_SIZE = 256 * 1024 * 1024;
/** Host memory one context may hold in BOs it allocated: a guest cannot exhaust the host. */
export const MAX_CONTEXT_BYTES = 4 * 1024 * 1024 * 1024;
const ALIGN = 4;
const PAGE = 4096;

/** The capset (virgl_renderer_capset_drm): header, then our context type's caps. */
export function drmCapset(): Uint8Array {
  const b = new Uint8Array(40);
  const v = new DataView(b.buffer);
  v.setUint32(0, 1, true); // wire_format_version
  v.setUint32(4, 0, true); // version_major
  v.setUint32(8, 1, true); // version_minor
  v.setUint32(12, 0, true); // version_patchlevel
  v.setUint32(16, XVGPU_CONTEXT_TYPE, true);
  v.setBigUint64(24, BigInt(MAX_BO_SIZE), true);
  v.setUint32(32, PAGE, true); // BO size alignment
  return b;
}

export interface ContextBo {
  readonly handle: number;
  readonly size: number;
}

export class NativeContextError extends Error {}

export class NativeContext {
  readonly blobTable = new Map<number, ContextBo>();
  shmem: ContextBo | undefined;
  asyncErrors = 0;
  packets = 0;
  private allocated = 0;

  constructor(
    readonly id: number,
    private readonly gpu: GpuPort,
    /** A resource's BO, for commands that name resources (GEM_INFO, FILL). */
    private readonly resourceBo: (resId: number) => ContextBo | undefined,
    /** Told why a packet was refused (the device logs it, rate-limited). */
    private readonly onRefuse: (why: string) => void = () => undefined,
  ) {}

  /** blob_id 0: the shared page (one per context, at least a page, at most 4 GiB). */
  createShmem(size: number): ContextBo {
    if (this.shmem) throw new NativeContextError('the context already has its shmem blob');
    if (size < SHMEM_MIN || size % PAGE !== 0 || size > 2 ** 32) throw new NativeContextError(`shmem size ${size}`);
    const bo = { handle: this.gpu.createBo(size).handle, size };
    const hdr = new Uint8Array(8);
    new DataView(hdr.buffer).setUint32(4, SHMEM.rspArea, true);
    this.gpu.writeBo(bo.handle, 0, hdr);
    this.shmem = bo;
    return bo;
  }

  /** RESOURCE_CREATE_BLOB consumes a GEM_NEW object: a blob_id is exported once. */
  takeBlob(blobId: number): ContextBo | undefined {
    const bo = this.blobTable.get(blobId);
    if (bo) this.blobTable.delete(blobId);
    return bo;
  }

  /** Runs the packets of one SUBMIT_3D; returns false if a packet was refused. */
  submit(payload: Uint8Array): boolean {
    const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    let off = 0;
    while (off < payload.byteLength) {
      if (payload.byteLength - off < CCMD_HDR) return this.refuse('trailing bytes after the last packet');
      const cmd = v.getUint32(off, true);
      const len = v.getUint32(off + 4, true);
      const seqno = v.getUint32(off + 8, true);
      const rspOff = v.getUint32(off + 12, true);
      if (len < CCMD_HDR || len > payload.byteLength - off || len % ALIGN !== 0 || rspOff % ALIGN !== 0) return this.refuse(`bad packet header (len ${len}, rsp_off ${rspOff})`);
      this.packets++;
      // Copy into a zero-padded buffer of the size we expect, so a short (older) packet reads zeros.
      const pkt = new Uint8Array(Math.max(len, 48));
      pkt.set(payload.subarray(off, off + len));
      if (!this.run(cmd, new DataView(pkt.buffer), rspOff)) return this.refuse(`packet ${cmd} failed`);
      this.setSeqno(seqno);
      off += len;
    }
    return true;
  }

  /** Frees every BO the guest allocated but never exported. */
  destroy(): void {
    for (const bo of this.blobTable.values()) this.gpu.destroyBo(bo.handle);
    this.blobTable.clear();
    this.allocated = 0;
  }

  private run(cmd: number, p: DataView, rspOff: number): boolean {
    switch (cmd) {
      case CCMD.NOP:
        return true;
      case CCMD.GEM_NEW:
        return this.gemNew(Number(p.getBigUint64(16, true)), p.getUint32(24, true));
      case CCMD.GEM_INFO: {
        const bo = this.resourceBo(p.getUint32(16, true));
        const rsp = new Uint8Array(16);
        const r = new DataView(rsp.buffer);
        r.setUint32(0, 16, true);
        r.setInt32(4, bo ? 0 : -2, true); // -ENOENT
        r.setBigUint64(8, BigInt(bo?.size ?? 0), true);
        return this.respond(rspOff, rsp);
      }
      case CCMD.FILL:
        return this.fill(p.getUint32(16, true), p.getUint32(20, true), Number(p.getBigUint64(24, true)), Number(p.getBigUint64(32, true)), rspOff);
      case CCMD.GEM_FREE: {
        const bo = this.takeBlob(p.getUint32(16, true));
        if (!bo) return false;
        this.gpu.destroyBo(bo.handle);
        this.allocated -= bo.size;
        return true;
      }
      default:
        return false; // unknown command
    }
  }

  private gemNew(size: number, blobId: number): boolean {
    if (blobId === 0 || this.blobTable.has(blobId)) return false;
    if (size === 0 || size % PAGE !== 0 || size > MAX_BO_SIZE || this.allocated + size > MAX_CONTEXT_BYTES) return false;
    let handle: number;
    try {
      handle = this.gpu.createBo(size).handle;
    } catch {
      return false; // host out of memory: an async error for the guest, not a crash for us
    }
    this.allocated += size;
    this.blobTable.set(blobId, { handle, size });
    return true;
  }

  /** The host writes `value` over [offset, offset+length) of a resource's BO. */
  private fill(resId: number, value: number, offset: number, length: number, rspOff: number): boolean {
    const bo = this.resourceBo(resId);
    const ok = bo !== undefined && length % 4 === 0 && offset % 4 === 0 && offset + length <= bo.size && length <= MAX_BO_SIZE;
    if (ok) {
      const chunk = new Uint8Array(Math.min(length, 64 * 1024));
      const cv = new DataView(chunk.buffer);
      for (let i = 0; i < chunk.length; i += 4) cv.setUint32(i, value, true);
      for (let done = 0; done < length; done += chunk.length) {
        this.gpu.writeBo(bo.handle, offset + done, chunk.subarray(0, Math.min(chunk.length, length - done)));
      }
    }
    const rsp = new Uint8Array(8);
    new DataView(rsp.buffer).setUint32(0, 8, true);
    new DataView(rsp.buffer).setInt32(4, ok ? 0 : -22, true); // -EINVAL
    return this.respond(rspOff, rsp) && ok;
  }

  /** Writes a response into the shmem response area, bounds-checked against the shared page. */
  private respond(rspOff: number, rsp: Uint8Array): boolean {
    const sh = this.shmem;
    if (!sh) return false;
    const at = SHMEM.rspArea + rspOff;
    if (at + rsp.byteLength > sh.size) return false;
    this.gpu.writeBo(sh.handle, at, rsp);
    return true;
  }

  private setSeqno(seqno: number): void {
    if (!this.shmem) return;
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, seqno, true);
    this.gpu.writeBo(this.shmem.handle, SHMEM.seqno, b);
  }

  private refuse(why: string): boolean {
    this.asyncErrors++;
    this.onRefuse(why);
    if (this.shmem) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, this.asyncErrors, true);
      this.gpu.writeBo(this.shmem.handle, SHMEM.asyncError, b);
    }
    return false;
  }
}
