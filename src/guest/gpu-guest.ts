/**
 * What the boot vCPU does with the virtio-gpu device around the workload: bring-up and blob
 * placement before it, and after it unmap + unref with a check that the old BAR ranges no longer
 * reach the buffers. Also a host-write check: FILL a probe blob through the native context and
 * read it back through the BAR.
 */
import { SHMEM_MIN } from '../gpu/native-context.js';
import type { SimCpu } from '../platform/sim/cpu.js';
import { GuestDriverError, VirtioGpuGuest } from './virtio-gpu-driver.js';

export interface GuestGpuPlan {
  readonly mmioBase: number;
  readonly queueBase: number;
  /** Workload blobs: size and offset in the host-visible region. */
  readonly blobs: readonly { readonly size: number; readonly offset: number }[];
  readonly shmemOffset: number;
  readonly probeOffset: number;
}

export interface GpuGuestResult {
  error?: string;
  commands: number;
  errorResponses: number;
  /** Words of the FILLed probe blob that did not read back as written. */
  fillMismatches: number;
  /** GEM_INFO reported the blob size through the shmem page. */
  gemInfoOk: boolean;
  /** Reads of an unmapped blob's old range that returned anything but all ones. */
  postUnmapHits: number;
  asyncErrors: number;
}

const CTX = 1;
const SHMEM_RES = 1;
const PROBE_RES = 2;
const PROBE_BLOB_ID = 2;
const FIRST_RES = 10;
const FIRST_BLOB_ID = 100;
const PROBE_VALUE = 0xc0ffee00;

let driver: VirtioGpuGuest | undefined;
let shmemGpa = 0;

export function bootGpu(cpu: SimCpu, ram: Uint8Array, plan: GuestGpuPlan): GpuGuestResult {
  const r: GpuGuestResult = { commands: 0, errorResponses: 0, fillMismatches: 0, gemInfoOk: false, postUnmapHits: 0, asyncErrors: 0 };
  const d = new VirtioGpuGuest(cpu, ram, plan.mmioBase, plan.queueBase);
  driver = d;
  try {
    d.probe();
    d.checkCapset();
    d.createContext(CTX);
    d.createBlob(CTX, SHMEM_RES, 0, SHMEM_MIN * 4);
    shmemGpa = d.mapBlob(SHMEM_RES, plan.shmemOffset);
    plan.blobs.forEach((b, i) => {
      d.createBlob(CTX, FIRST_RES + i, FIRST_BLOB_ID + i, b.size);
      d.mapBlob(FIRST_RES + i, b.offset);
    });
    // The host writes a pattern into a probe blob; the guest must read exactly that through the BAR.
    d.createBlob(CTX, PROBE_RES, PROBE_BLOB_ID, 4096);
    const probeGpa = d.mapBlob(PROBE_RES, plan.probeOffset);
    if (d.fill(CTX, shmemGpa, PROBE_RES, PROBE_VALUE, 0, 4096) !== 0) r.fillMismatches++;
    for (let off = 0; off < 4096; off += 512) if (cpu.load32(probeGpa + off) !== PROBE_VALUE) r.fillMismatches++;
    r.gemInfoOk = d.gemInfo(CTX, shmemGpa, FIRST_RES) === plan.blobs[0]?.size;
  } catch (e) {
    if (!(e instanceof GuestDriverError)) throw e;
    r.error = e.message;
  }
  return collect(d, r);
}

export function teardownGpu(cpu: SimCpu, plan: GuestGpuPlan, r: GpuGuestResult): void {
  const d = driver;
  if (!d) return;
  try {
    r.asyncErrors = d.asyncErrors(shmemGpa);
    plan.blobs.forEach((b, i) => {
      d.unmapBlob(FIRST_RES + i);
      // After UNMAP_BLOB the range is a hole: a read must not reach the old buffer.
      cpu.load64(d.shmBase + b.offset);
      if (cpu.lo >>> 0 !== 0xffff_ffff || cpu.hi >>> 0 !== 0xffff_ffff) r.postUnmapHits++;
      d.unref(FIRST_RES + i);
    });
    d.unmapBlob(PROBE_RES);
    d.unref(PROBE_RES);
    d.unmapBlob(SHMEM_RES);
    d.unref(SHMEM_RES);
    d.destroyContext(CTX);
  } catch (e) {
    if (!(e instanceof GuestDriverError)) throw e;
    r.error = `teardown: ${e.message}`;
  }
  collect(d, r);
}

function collect(d: VirtioGpuGuest, r: GpuGuestResult): GpuGuestResult {
  r.commands = d.counters.commands;
  r.errorResponses = d.counters.errorResponses;
  return r;
}
