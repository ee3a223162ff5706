/** The virtio-gpu device against a well-behaved guest driver and against hostile commands. */
import { afterEach, describe, expect, it } from 'vitest';
import { BLOB_FLAG_USE_MAPPABLE, BLOB_MEM_GUEST, BLOB_MEM_HOST3D, CMD, RESP } from '../../src/gpu/protocol.js';
import { STATUS, REG } from '../../src/virtio/constants.js';
import { BAR_BASE } from '../support/sim.js';
import { MMIO, cmd, gpuRig, type GpuRig } from '../support/gpu.js';

let rig: GpuRig | undefined;
afterEach(async () => { await rig?.close(); rig = undefined; });

const MiB = 1024 * 1024;

function ready(): GpuRig {
  rig = gpuRig();
  rig.guest.probe();
  rig.guest.checkCapset();
  rig.guest.createContext(1);
  rig.guest.createBlob(1, 1, 0, 16384); // shmem
  rig.guest.mapBlob(1, 8 * MiB);
  return rig;
}

function createBlobCmd(ctx: number, res: number, blobId: number, size: number, mem = BLOB_MEM_HOST3D, flags = BLOB_FLAG_USE_MAPPABLE): Uint8Array {
  const c = cmd(CMD.RESOURCE_CREATE_BLOB, ctx, 32);
  c.v.setUint32(24, res, true);
  c.v.setUint32(28, mem, true);
  c.v.setUint32(32, flags, true);
  c.v.setBigUint64(40, BigInt(blobId), true);
  c.v.setBigUint64(48, BigInt(size), true);
  return c.bytes;
}

function mapCmd(res: number, offset: number): Uint8Array {
  const c = cmd(CMD.RESOURCE_MAP_BLOB, 0, 16);
  c.v.setUint32(24, res, true);
  c.v.setBigUint64(32, BigInt(offset), true);
  return c.bytes;
}

function resCmd(type: number, res: number, ctx = 0): Uint8Array {
  const c = cmd(type, ctx, 8);
  c.v.setUint32(24, res, true);
  return c.bytes;
}

describe('virtio-gpu with a well-behaved driver', () => {
  it('probes, negotiates, exposes the BAR as shared-memory region 1, and serves a native context', () => {
    const r = ready();
    expect(r.guest.shmBase).toBe(BAR_BASE);
    expect(r.guest.shmLen).toBe(4096 * 4096);
    expect(r.cpu.load32(MMIO + REG.Status) & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
    r.guest.createBlob(1, 10, 100, 64 * 1024);
    const gpa = r.guest.mapBlob(10, 0);
    expect(gpa).toBe(BAR_BASE);
    // The host fills the blob; the guest reads the pattern through the BAR (a fault maps it).
    expect(r.guest.fill(1, BAR_BASE + 8 * MiB, 10, 0x5a5a5a5a, 4096, 8192)).toBe(0);
    expect(r.cpu.load32(gpa + 4096)).toBe(0x5a5a5a5a);
    expect(r.cpu.load32(gpa + 3 * 4096)).toBe(0);
    expect(r.guest.gemInfo(1, BAR_BASE + 8 * MiB, 10)).toBe(64 * 1024);
    expect(r.device.counters).toMatchObject({ blobsCreated: 2, blobsMapped: 2, errors: 0 });
  });

  it('revokes every mapped page before RESOURCE_UNMAP_BLOB answers; the range then reads as a hole', () => {
    const r = ready();
    r.guest.createBlob(1, 10, 100, 16 * 4096);
    const gpa = r.guest.mapBlob(10, 0);
    for (let p = 0; p < 16; p++) r.cpu.load32(gpa + p * 4096);
    expect(r.platform.helper.stats().residentPages).toBeGreaterThanOrEqual(16);
    r.guest.unmapBlob(10);
    for (let p = 0; p < 16; p++) expect(Atomics.load(r.platform.xen.views.p2m, p)).toBe(0);
    expect(r.cpu.load64(gpa)).toEqual({ lo: 0xffff_ffff, hi: 0xffff_ffff });
    expect(r.backend.bar.counters.holes).toBeGreaterThan(0);
    r.guest.unref(10);
    expect(r.device.resourceCount()).toBe(1); // the shmem blob
  });

  it('a device reset frees every resource and context and revokes their mappings', () => {
    const r = ready();
    r.guest.createBlob(1, 10, 100, 4096);
    r.cpu.load32(r.guest.mapBlob(10, 0));
    r.cpu.store32(MMIO + REG.Status, 0);
    expect(r.device.resourceCount()).toBe(0);
    expect(r.platform.helper.stats().residentPages).toBe(0);
  });
});

describe('virtio-gpu against hostile commands', () => {
  it.each([
    ['overlapping MAP_BLOB offsets', (r: GpuRig) => { r.guest.createBlob(1, 10, 100, 8192); r.guest.createBlob(1, 11, 101, 8192); r.guest.mapBlob(10, 0); return r.raw(mapCmd(11, 4096)); }, RESP.ERR_INVALID_PARAMETER],
    ['an offset beyond the BAR', (r: GpuRig) => { r.guest.createBlob(1, 10, 100, 8192); return r.raw(mapCmd(10, 4096 * 4096)); }, RESP.ERR_INVALID_PARAMETER],
    ['an unaligned offset', (r: GpuRig) => { r.guest.createBlob(1, 10, 100, 8192); return r.raw(mapCmd(10, 100)); }, RESP.ERR_INVALID_PARAMETER],
    ['a huge offset', (r: GpuRig) => { r.guest.createBlob(1, 10, 100, 8192); return r.raw(mapCmd(10, 2 ** 60)); }, RESP.ERR_INVALID_PARAMETER],
    ['mapping a blob twice', (r: GpuRig) => { r.guest.createBlob(1, 10, 100, 8192); r.guest.mapBlob(10, 0); return r.raw(mapCmd(10, 65536)); }, RESP.ERR_INVALID_PARAMETER],
    ['a zero-size blob', (r: GpuRig) => r.raw(createBlobCmd(1, 10, 100, 0)), RESP.ERR_INVALID_PARAMETER],
    ['an unaligned blob size', (r: GpuRig) => r.raw(createBlobCmd(1, 10, 100, 5000)), RESP.ERR_INVALID_PARAMETER],
    ['a blob_id no GEM_NEW created', (r: GpuRig) => r.raw(createBlobCmd(1, 10, 777, 4096)), RESP.ERR_INVALID_PARAMETER],
    ['guest-memory blobs', (r: GpuRig) => r.raw(createBlobCmd(1, 10, 100, 4096, BLOB_MEM_GUEST)), RESP.ERR_INVALID_PARAMETER],
    ['resource id 0', (r: GpuRig) => r.raw(createBlobCmd(1, 0, 100, 4096)), RESP.ERR_INVALID_RESOURCE_ID],
    ['a resource id in use', (r: GpuRig) => r.raw(createBlobCmd(1, 1, 100, 4096)), RESP.ERR_INVALID_RESOURCE_ID],
    ['a second shmem blob', (r: GpuRig) => r.raw(createBlobCmd(1, 10, 0, 16384)), RESP.ERR_INVALID_PARAMETER],
    ['double UNREF', (r: GpuRig) => { r.guest.createBlob(1, 10, 100, 4096); r.guest.unref(10); return r.raw(resCmd(CMD.RESOURCE_UNREF, 10)); }, RESP.ERR_INVALID_RESOURCE_ID],
    ['UNMAP of an unmapped blob', (r: GpuRig) => { r.guest.createBlob(1, 10, 100, 4096); return r.raw(resCmd(CMD.RESOURCE_UNMAP_BLOB, 10)); }, RESP.ERR_INVALID_PARAMETER],
    ['a command for an unknown context', (r: GpuRig) => r.raw(createBlobCmd(99, 10, 100, 4096)), RESP.ERR_INVALID_CONTEXT_ID],
    ['SUBMIT_3D to an unknown context', (r: GpuRig) => { const c = cmd(CMD.SUBMIT_3D, 42, 8); return r.raw(c.bytes); }, RESP.ERR_INVALID_CONTEXT_ID],
    ['a wrong capset id', (r: GpuRig) => { const c = cmd(CMD.GET_CAPSET, 0, 8); c.v.setUint32(24, 4, true); return r.raw(c.bytes); }, RESP.ERR_INVALID_PARAMETER],
    ['a capset index beyond num_capsets', (r: GpuRig) => { const c = cmd(CMD.GET_CAPSET_INFO, 0, 8); c.v.setUint32(24, 1, true); return r.raw(c.bytes); }, RESP.ERR_INVALID_PARAMETER],
    ['a venus context', (r: GpuRig) => { const c = cmd(CMD.CTX_CREATE, 2, 72); c.v.setUint32(28, 4, true); return r.raw(c.bytes); }, RESP.ERR_INVALID_PARAMETER],
    ['a context id in use', (r: GpuRig) => { const c = cmd(CMD.CTX_CREATE, 1, 72); c.v.setUint32(28, 6, true); return r.raw(c.bytes); }, RESP.ERR_INVALID_CONTEXT_ID],
    ['a truncated command', (r: GpuRig) => r.raw(createBlobCmd(1, 10, 100, 4096).subarray(0, 30)), RESP.ERR_INVALID_PARAMETER],
    ['a command shorter than its header', (r: GpuRig) => r.raw(new Uint8Array(10)), RESP.ERR_INVALID_PARAMETER],
    ['an unknown command', (r: GpuRig) => r.raw(cmd(0x0777, 0, 8).bytes), RESP.ERR_UNSPEC],
    ['a SUBMIT_3D size beyond its buffer', (r: GpuRig) => { const c = cmd(CMD.SUBMIT_3D, 1, 8); c.v.setUint32(24, 1000, true); return r.raw(c.bytes); }, RESP.ERR_INVALID_PARAMETER],
  ])('refuses %s with the spec error and keeps serving', (_n, act, want) => {
    const r = ready();
    expect(act(r)).toBe(want);
    expect(r.raw(cmd(CMD.GET_DISPLAY_INFO, 0, 0).bytes, 24 + 16 * 24)).toBe(RESP.OK_DISPLAY_INFO);
    expect(r.device.counters.errors).toBeGreaterThanOrEqual(1);
  });

  it('writes no response into a buffer too small for it, and counts it', () => {
    const r = ready();
    expect(r.raw(cmd(CMD.GET_DISPLAY_INFO, 0, 0).bytes, 16)).toBe(0);
    expect(r.device.counters.errors).toBe(1);
  });

  it('reports bad native-context packets through async_error, never a crash', () => {
    const r = ready();
    const c = cmd(CMD.SUBMIT_3D, 1, 8 + 16);
    c.v.setUint32(24, 16, true);
    c.v.setUint32(32, 99, true); // unknown ccmd
    c.v.setUint32(36, 16, true);
    expect(r.raw(c.bytes)).toBe(RESP.OK_NODATA);
    expect(r.guest.asyncErrors(BAR_BASE + 8 * MiB)).toBe(1);
  });
});
