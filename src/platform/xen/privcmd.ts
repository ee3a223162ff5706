/**
 * /dev/xen/privcmd through the native addon: what libxenforeignmemory does on Linux
 * (tools/libs/foreignmemory/linux.c: mmap a privcmd VMA, then IOCTL_PRIVCMD_MMAP_RESOURCE or
 * IOCTL_PRIVCMD_MMAPBATCH_V2 fills it; restrict = IOCTL_PRIVCMD_RESTRICT), plus one raw DM op.
 *
 * Why not libxenforeignmemory through ffi-rs: a Buffer ffi-rs builds over foreign memory cannot be
 * revoked, so a JS view kept past unmap is a SIGSEGV (reference node-ecosystem §1.4.3). The addon's
 * mmap() hands out ArrayBuffers that munmap() detaches first, so a stale view reads as empty.
 *
 * Why a raw DM op: probing the retry extension sets the `flags` byte of
 * xen_dm_op_create_ioreq_server (pad[0] today), which libxendevicemodel's API cannot express.
 * Stock Xen answers -EINVAL (ioreq_server_dm_op() refuses non-zero padding).
 *
 * Layouts and ioctl numbers are checked against the kernel's <xen/privcmd.h> and Xen's
 * <xen/hvm/dm_op.h> by test/platform/xen/abi.test.ts.
 */
import { ftruncateSync } from 'node:fs';
import { native, O_RDWR } from '../../native/index.js';
import { ioc } from '../linux/drm-abi.js';
import { XenCallError, PRIVCMD_DEVICE } from './ffi.js';
import { O_CLOEXEC } from './evtchn.js';

export const PAGE_SIZE = 4096;
const IOC_NONE = 0;
const P = 'P'.charCodeAt(0);
export const PRIVCMD_SIZEOF = { mmapbatchV2: 32, dmOp: 16, dmOpBuf: 16, mmapResource: 32, xenDmOp: 32 } as const;
export const IOCTL_PRIVCMD = {
  MMAPBATCH_V2: ioc(IOC_NONE, P, 4, PRIVCMD_SIZEOF.mmapbatchV2),
  DM_OP: ioc(IOC_NONE, P, 5, PRIVCMD_SIZEOF.dmOp),
  RESTRICT: ioc(IOC_NONE, P, 6, 2),
  MMAP_RESOURCE: ioc(IOC_NONE, P, 7, PRIVCMD_SIZEOF.mmapResource),
} as const;

/** public/memory.h: XENMEM_resource_ioreq_server and its frame numbering (frame 0 = bufioreq). */
export const XENMEM_RESOURCE_IOREQ_SERVER = 0;
export const ioreqServerFrameIoreq = (n: number): number => 1 + n;
/** public/hvm/dm_op.h */
export const XEN_DMOP_CREATE_IOREQ_SERVER = 1;
/** public/hvm/dm_op.h of the patched Xen (hypervisor/patches/0002): {u32 version; u32 features}. */
export const XEN_DMOP_GET_DM_EXT_INFO = 21;
/** public/hvm/hvm_op.h */
export const HVM_IOREQSRV_BUFIOREQ_OFF = 0;
/** xvgpu's proposed flag in the byte that is pad[0] today (docs/fault-revoke-protocol.md). */
export const XEN_DMOP_IOREQ_SERVER_RETRY = 1;

/** The privcmd calls xvgpu makes; a fake implements it in tests. */
export interface PrivcmdLib {
  restrict(domid: number): void;
  /** Maps frames of a resource (XENMEM_acquire_resource) read-write; a detachable view. */
  mapResource(domid: number, type: number, id: number, frame: number, nrFrames: number): ArrayBuffer;
  /** Maps guest frames read-write, one page per gfn; any page failing fails the call. */
  mapGuestFrames(domid: number, gfns: readonly number[]): ArrayBuffer;
  /** Unmaps a buffer from mapResource/mapGuestFrames (views over it go empty first). */
  unmap(buffer: ArrayBuffer): void;
  /** XEN_DMOP_create_ioreq_server with the flags byte set; returns the server id. */
  createIoreqServerFlagged(domid: number, handleBufioreq: number, flags: number): number;
  /** XEN_DMOP_get_dm_ext_info (patched Xen); stock Xen fails it with EOPNOTSUPP. */
  getDmExtInfo(domid: number): { version: number; features: number };
  close(): void;
}

const PROT_RW = native.mmapConstants.PROT_READ | native.mmapConstants.PROT_WRITE;
const DM_OP_BUF_OFF = 0;
const XEN_DM_OP_OFF = 64;

/** The addon takes TypedArrays: a DataView argument is passed as bytes over the same memory. */
function ioctlOrThrow(what: string, fd: number, request: number, arg: ArrayBufferView, fixups?: { offset: number; buffer: ArrayBufferView }[]): void {
  const bytes = arg instanceof DataView ? new Uint8Array(arg.buffer, arg.byteOffset, arg.byteLength) : arg;
  try {
    native.ioctl(fd, request, bytes, fixups);
  } catch (e) {
    const err = e as { errno?: number; message: string };
    throw new XenCallError(what, Math.abs(err.errno ?? 0), err.message);
  }
}

export function openPrivcmd(): PrivcmdLib {
  const fd = native.open(PRIVCMD_DEVICE, O_RDWR | O_CLOEXEC);
  const live = new Set<ArrayBuffer>();
  let scratch: ArrayBuffer | undefined;

  const mapPrivcmdVma = (pages: number): ArrayBuffer => {
    const buf = native.mmap(fd, pages * PAGE_SIZE, PROT_RW, native.mmapConstants.MAP_SHARED, 0);
    live.add(buf);
    return buf;
  };
  const unmap = (buf: ArrayBuffer): void => {
    if (!live.delete(buf)) throw new Error('privcmd: unmap of a buffer this handle did not map');
    native.munmap(buf);
  };
  const filled = (buf: ArrayBuffer, fill: () => void): ArrayBuffer => {
    try {
      fill();
      return buf;
    } catch (e) {
      unmap(buf);
      throw e;
    }
  };
  /** A page of our own memory whose address the kernel can be given for nested user pointers. */
  const scratchPage = (): ArrayBuffer => {
    if (!scratch) {
      const memfd = native.memfdCreate('xvgpu-dmop');
      try {
        ftruncateSync(memfd, PAGE_SIZE); // a memfd starts empty: touching its mapping would be SIGBUS
        scratch = native.mmap(memfd, PAGE_SIZE, PROT_RW, native.mmapConstants.MAP_SHARED, 0);
      } finally {
        native.close(memfd);
      }
    }
    return scratch;
  };

  /**
   * One raw DM op (struct xen_dm_op: u32 op, u32 pad, the union at 8) in the scratch page, whose
   * address the kernel is given; returns a view of the struct as Xen wrote it back.
   */
  const dmOp = (what: string, domid: number, op: number, fill: (v: DataView) => void): DataView => {
    const page = scratchPage();
    const base = native.addressOf(page);
    const v = new DataView(page);
    new Uint8Array(page, XEN_DM_OP_OFF, PRIVCMD_SIZEOF.xenDmOp).fill(0);
    const opView = new DataView(page, XEN_DM_OP_OFF, PRIVCMD_SIZEOF.xenDmOp);
    opView.setUint32(0, op, true);
    fill(opView);
    v.setBigUint64(DM_OP_BUF_OFF, BigInt(base + XEN_DM_OP_OFF), true);
    v.setBigUint64(DM_OP_BUF_OFF + 8, BigInt(PRIVCMD_SIZEOF.xenDmOp), true);
    const a = new DataView(new ArrayBuffer(PRIVCMD_SIZEOF.dmOp));
    a.setUint16(0, domid, true);
    a.setUint16(2, 1, true);
    a.setBigUint64(8, BigInt(base + DM_OP_BUF_OFF), true);
    ioctlOrThrow(what, fd, IOCTL_PRIVCMD.DM_OP, a);
    return opView;
  };

  return {
    restrict(domid) {
      ioctlOrThrow('IOCTL_PRIVCMD_RESTRICT', fd, IOCTL_PRIVCMD.RESTRICT, Uint16Array.of(domid));
    },
    mapResource(domid, type, id, frame, nrFrames) {
      const buf = mapPrivcmdVma(nrFrames);
      return filled(buf, () => {
        const a = new DataView(new ArrayBuffer(PRIVCMD_SIZEOF.mmapResource));
        a.setUint16(0, domid, true);
        a.setUint32(4, type, true);
        a.setUint32(8, id, true);
        a.setUint32(12, frame, true);
        a.setBigUint64(16, BigInt(nrFrames), true);
        a.setBigUint64(24, BigInt(native.addressOf(buf)), true);
        ioctlOrThrow('IOCTL_PRIVCMD_MMAP_RESOURCE', fd, IOCTL_PRIVCMD.MMAP_RESOURCE, a);
      });
    },
    mapGuestFrames(domid, gfns) {
      const buf = mapPrivcmdVma(gfns.length);
      return filled(buf, () => {
        const arr = BigUint64Array.from(gfns, (g) => BigInt(g));
        const err = new Int32Array(gfns.length);
        const a = new DataView(new ArrayBuffer(PRIVCMD_SIZEOF.mmapbatchV2));
        a.setUint32(0, gfns.length, true);
        a.setUint16(4, domid, true);
        a.setBigUint64(8, BigInt(native.addressOf(buf)), true);
        ioctlOrThrow('IOCTL_PRIVCMD_MMAPBATCH_V2', fd, IOCTL_PRIVCMD.MMAPBATCH_V2, a, [{ offset: 16, buffer: arr }, { offset: 24, buffer: err }]);
      });
    },
    unmap,
    createIoreqServerFlagged(domid, handleBufioreq, flags) {
      const v = dmOp('XEN_DMOP_create_ioreq_server', domid, XEN_DMOP_CREATE_IOREQ_SERVER, (op) => {
        op.setUint8(8, handleBufioreq);
        op.setUint8(9, flags);
      });
      return v.getUint16(12, true);
    },
    getDmExtInfo(domid) {
      const v = dmOp('XEN_DMOP_get_dm_ext_info', domid, XEN_DMOP_GET_DM_EXT_INFO, () => undefined);
      return { version: v.getUint32(8, true), features: v.getUint32(12, true) };
    },
    close() {
      for (const buf of live) native.munmap(buf);
      live.clear();
      if (scratch) native.munmap(scratch);
      scratch = undefined;
      native.close(fd);
    },
  };
}
