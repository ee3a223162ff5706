/**
 * The synthetic guest's virtio-gpu driver (the shape of Linux's virtio-gpu + Mesa's vdrm): probe
 * over virtio-mmio, negotiate features, set up the control queue, read the DRM capset, create a
 * native context and its shmem page, create HOST3D blobs from GEM_NEW objects, and place them in the
 * host-visible region with RESOURCE_MAP_BLOB. Register accesses are real loads and stores of a vCPU
 * (ioreqs); rings live in guest RAM.
 */
import { CCMD, SHMEM, XVGPU_CONTEXT_TYPE } from '../gpu/native-context.js';
import { BLOB_FLAG_USE_MAPPABLE, BLOB_MEM_HOST3D, CAPSET_DRM, CMD, HDR_SIZE, RESP } from '../gpu/protocol.js';
import { REG, STATUS, VIRTIO_MMIO_MAGIC } from '../virtio/constants.js';
import { DriverQueue } from './virtio-queue.js';

/** The loads and stores the driver needs from its vCPU. */
export interface MmioCpu {
  load32(gpa: number): number;
  store32(gpa: number, v: number): void;
}

export class GuestDriverError extends Error {}

const QUEUE_SIZE = 64;
// VERSION_1 (32), VIRGL (0), RESOURCE_BLOB (3), CONTEXT_INIT (4)
const WANT_LOW = (1 << 0) | (1 << 3) | (1 << 4);
const WANT_HIGH = 1;

export interface DriverCounters {
  commands: number;
  errorResponses: number;
}

export class VirtioGpuGuest {
  readonly counters: DriverCounters = { commands: 0, errorResponses: 0 };
  shmBase = 0;
  shmLen = 0;
  private q: DriverQueue | undefined;
  private seqno = 0;

  constructor(private readonly cpu: MmioCpu, private readonly ram: Uint8Array, private readonly mmio: number, private readonly queueBase: number) {}

  /** Probe and bring-up, as virtio_mmio + virtio_gpu_init do. */
  probe(): void {
    const r = (off: number): number => this.cpu.load32(this.mmio + off);
    const w = (off: number, v: number): void => { this.cpu.store32(this.mmio + off, v); };
    if (r(REG.MagicValue) !== VIRTIO_MMIO_MAGIC || r(REG.Version) !== 2 || r(REG.DeviceID) !== 16) throw new GuestDriverError('no virtio-mmio v2 GPU at the expected address');
    w(REG.Status, 0);
    w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    w(REG.DeviceFeaturesSel, 0);
    const low = r(REG.DeviceFeatures);
    w(REG.DeviceFeaturesSel, 1);
    const high = r(REG.DeviceFeatures);
    if ((low & WANT_LOW) !== WANT_LOW || (high & WANT_HIGH) !== WANT_HIGH) throw new GuestDriverError(`device lacks blob/context features (0x${high.toString(16)}:${low.toString(16)})`);
    w(REG.DriverFeaturesSel, 0);
    w(REG.DriverFeatures, WANT_LOW);
    w(REG.DriverFeaturesSel, 1);
    w(REG.DriverFeatures, WANT_HIGH);
    w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    if ((r(REG.Status) & STATUS.FEATURES_OK) === 0) throw new GuestDriverError('device refused our features');
    const q = new DriverQueue(this.ram, this.queueBase, QUEUE_SIZE);
    w(REG.QueueSel, 0);
    if (r(REG.QueueNumMax) < QUEUE_SIZE) throw new GuestDriverError('control queue too small');
    w(REG.QueueNum, QUEUE_SIZE);
    w(REG.QueueDescLow, q.layout.desc);
    w(REG.QueueDescHigh, 0);
    w(REG.QueueDriverLow, q.layout.avail);
    w(REG.QueueDriverHigh, 0);
    w(REG.QueueDeviceLow, q.layout.used);
    w(REG.QueueDeviceHigh, 0);
    w(REG.QueueReady, 1);
    if (r(REG.QueueReady) !== 1) throw new GuestDriverError('device refused the control queue');
    w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    this.q = q;
    w(REG.SHMSel, 1);
    const lenLo = r(REG.SHMLenLow);
    const lenHi = r(REG.SHMLenHigh);
    if (lenLo === 0xffff_ffff && lenHi === 0xffff_ffff) throw new GuestDriverError('no host-visible region');
    this.shmLen = lenHi * 2 ** 32 + lenLo;
    this.shmBase = r(REG.SHMBaseHigh) * 2 ** 32 + r(REG.SHMBaseLow);
  }

  /** GET_CAPSET_INFO + GET_CAPSET: the DRM capset must name our context type. */
  checkCapset(): void {
    const info = this.command(this.req(CMD.GET_CAPSET_INFO, 0, 8), 40, RESP.OK_CAPSET_INFO);
    const iv = dv(info);
    if (iv.getUint32(24, true) !== CAPSET_DRM) throw new GuestDriverError('capset 0 is not DRM');
    const size = iv.getUint32(32, true);
    const req = this.req(CMD.GET_CAPSET, 0, 8);
    dv(req).setUint32(24, CAPSET_DRM, true);
    const cap = this.command(req, HDR_SIZE + size, RESP.OK_CAPSET);
    if (dv(cap).getUint32(HDR_SIZE + 16, true) !== XVGPU_CONTEXT_TYPE) throw new GuestDriverError('unexpected context type');
  }

  createContext(ctx: number): void {
    const req = this.req(CMD.CTX_CREATE, ctx, 72);
    const v = dv(req);
    v.setUint32(24, 5, true);
    v.setUint32(28, CAPSET_DRM, true);
    req.set(new TextEncoder().encode('xvgpu'), 32);
    this.command(req, HDR_SIZE, RESP.OK_NODATA);
  }

  /** A HOST3D blob: GEM_NEW (blob_id > 0) through SUBMIT_3D first, or the shmem page (blob_id 0). */
  createBlob(ctx: number, resId: number, blobId: number, size: number): void {
    if (blobId !== 0) {
      const pkt = ccmd(CCMD.GEM_NEW, 32, ++this.seqno);
      const p = dv(pkt);
      p.setBigUint64(16, BigInt(size), true);
      p.setUint32(24, blobId, true);
      this.submit(ctx, pkt);
    }
    const req = this.req(CMD.RESOURCE_CREATE_BLOB, ctx, 32);
    const v = dv(req);
    v.setUint32(24, resId, true);
    v.setUint32(28, BLOB_MEM_HOST3D, true);
    v.setUint32(32, BLOB_FLAG_USE_MAPPABLE, true);
    v.setBigUint64(40, BigInt(blobId), true);
    v.setBigUint64(48, BigInt(size), true);
    this.command(req, HDR_SIZE, RESP.OK_NODATA);
  }

  /** RESOURCE_MAP_BLOB at `offset` of the host-visible region; returns the guest-physical address. */
  mapBlob(resId: number, offset: number): number {
    const req = this.req(CMD.RESOURCE_MAP_BLOB, 0, 16);
    dv(req).setUint32(24, resId, true);
    dv(req).setBigUint64(32, BigInt(offset), true);
    this.command(req, 32, RESP.OK_MAP_INFO);
    return this.shmBase + offset;
  }

  unmapBlob(resId: number): void {
    const req = this.req(CMD.RESOURCE_UNMAP_BLOB, 0, 8);
    dv(req).setUint32(24, resId, true);
    this.command(req, HDR_SIZE, RESP.OK_NODATA);
  }

  unref(resId: number): void {
    const req = this.req(CMD.RESOURCE_UNREF, 0, 8);
    dv(req).setUint32(24, resId, true);
    this.command(req, HDR_SIZE, RESP.OK_NODATA);
  }

  destroyContext(ctx: number): void {
    this.command(this.req(CMD.CTX_DESTROY, ctx, 0), HDR_SIZE, RESP.OK_NODATA);
  }

  /** FILL through the native context; the result is read from the shmem page through the BAR. */
  fill(ctx: number, shmemGpa: number, resId: number, value: number, offset: number, length: number): number {
    const seq = ++this.seqno;
    const pkt = ccmd(CCMD.FILL, 40, seq);
    const p = dv(pkt);
    p.setUint32(12, 0, true); // rsp_off
    p.setUint32(16, resId, true);
    p.setUint32(20, value, true);
    p.setBigUint64(24, BigInt(offset), true);
    p.setBigUint64(32, BigInt(length), true);
    this.submit(ctx, pkt);
    this.waitSeqno(shmemGpa, seq);
    return this.cpu.load32(shmemGpa + SHMEM.rspArea + 4) | 0;
  }

  /** GEM_INFO: a resource's size as the host sees it (response through the shmem page). */
  gemInfo(ctx: number, shmemGpa: number, resId: number): number {
    const seq = ++this.seqno;
    const pkt = ccmd(CCMD.GEM_INFO, 24, seq);
    dv(pkt).setUint32(12, 16, true); // rsp_off
    dv(pkt).setUint32(16, resId, true);
    this.submit(ctx, pkt);
    this.waitSeqno(shmemGpa, seq);
    if ((this.cpu.load32(shmemGpa + SHMEM.rspArea + 16 + 4) | 0) !== 0) return -1;
    return this.cpu.load32(shmemGpa + SHMEM.rspArea + 16 + 8);
  }

  asyncErrors(shmemGpa: number): number {
    return this.cpu.load32(shmemGpa + SHMEM.asyncError);
  }

  /** vdrm_host_sync(): wait for the host to publish our seqno in the shared page (read via the BAR). */
  private waitSeqno(shmemGpa: number, seq: number): void {
    for (let i = 0; i < 1000; i++) if (this.cpu.load32(shmemGpa + SHMEM.seqno) >= seq) return;
    throw new GuestDriverError(`native context never completed seqno ${seq}`);
  }

  private submit(ctx: number, packets: Uint8Array): void {
    const req = this.req(CMD.SUBMIT_3D, ctx, 8 + packets.byteLength);
    dv(req).setUint32(24, packets.byteLength, true);
    req.set(packets, 32);
    this.command(req, HDR_SIZE, RESP.OK_NODATA);
  }

  private req(type: number, ctx: number, body: number): Uint8Array {
    const b = new Uint8Array(HDR_SIZE + body);
    dv(b).setUint32(0, type, true);
    dv(b).setUint32(16, ctx, true);
    return b;
  }

  /** Posts a command, notifies, and takes the response (the device answers before the notify returns). */
  private command(req: Uint8Array, respLen: number, want: number): Uint8Array {
    const q = this.q;
    if (!q) throw new GuestDriverError('driver not probed');
    this.counters.commands++;
    const head = q.add(req, respLen);
    this.cpu.store32(this.mmio + REG.QueueNotify, 0);
    const isr = this.cpu.load32(this.mmio + REG.InterruptStatus);
    if (isr !== 0) this.cpu.store32(this.mmio + REG.InterruptACK, isr);
    const used = q.takeUsed().find((u) => u.head === head);
    if (!used) throw new GuestDriverError('command not completed');
    const resp = q.response(head, req.byteLength, respLen);
    const type = dv(resp).getUint32(0, true);
    if (type !== want) {
      this.counters.errorResponses++;
      throw new GuestDriverError(`command 0x${dv(req).getUint32(0, true).toString(16)} answered 0x${type.toString(16)}`);
    }
    return resp;
  }
}

function ccmd(cmd: number, len: number, seqno: number): Uint8Array {
  const b = new Uint8Array(len);
  const v = dv(b);
  v.setUint32(0, cmd, true);
  v.setUint32(4, len, true);
  v.setUint32(8, seqno, true);
  return b;
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

