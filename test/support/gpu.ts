/** A virtio-gpu device on the simulated platform, driven from the test thread like a guest. */
import type { VirtioGpuDevice } from '../../src/gpu/device.js';
import { HDR_SIZE } from '../../src/gpu/protocol.js';
import { DriverQueue } from '../../src/guest/virtio-queue.js';
import { VirtioGpuGuest, type MmioCpu } from '../../src/guest/virtio-gpu-driver.js';
import type { IoAnswer } from '../../src/ioreq/server.js';
import { REG } from '../../src/virtio/constants.js';
import { IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_WRITE, emptyIoreq } from '../../src/xen/abi/ioreq.js';
import { BAR_BASE, fixture, machine, type Fixture } from './sim.js';

export const MMIO = 0x2000_0000;
const PAGE = 4096;

export interface GpuRig extends Fixture {
  readonly device: VirtioGpuDevice;
  readonly cpu: MmioCpu & { load64(gpa: number): { lo: number; hi: number } };
  readonly ram: Uint8Array;
  readonly guest: VirtioGpuGuest;
  /** Posts raw command bytes on the control queue; returns the response type (0 if none written). */
  raw(req: Uint8Array, respLen?: number): number;
  close(): Promise<void>;
}

export function gpuRig(): GpuRig {
  const f = fixture({ mode: 'emulate', faultAround: 1, hugePages: false }, { machine: machine({ guestRamBytes: 4 << 20, barPages: 4096 }) });
  const device = f.backend.attachVirtioGpu(MMIO, 5);
  const ram = new Uint8Array(f.platform.xen.buffers.ram);
  const transport = f.backend.transport;
  if (!transport) throw new Error('no transport');
  const mmio = (gpa: number, write: boolean, v: number, size = 4): number => {
    const out: IoAnswer = { retry: false, lo: 0, hi: 0 };
    transport.handle({ ...emptyIoreq(), addr: gpa, size, count: 1, type: IOREQ_TYPE_COPY, dir: write ? IOREQ_WRITE : IOREQ_READ, dataLo: v }, 0, out);
    return out.lo >>> 0;
  };
  /** A BAR load as a guest does it: through the p2m, faulting (emulate mode answers with data). */
  const bar = (gpa: number, size: 4 | 8): { lo: number; hi: number } => {
    const out: IoAnswer = { retry: false, lo: 0, hi: 0 };
    const r = f.backend.bar.handle({ ...emptyIoreq(), addr: gpa, size, count: 1, type: IOREQ_TYPE_COPY, dir: IOREQ_READ }, 0, out);
    if (r instanceof Promise) throw new Error('test BAR access waited for an invalidation');
    return { lo: out.lo >>> 0, hi: out.hi >>> 0 };
  };
  const inBar = (gpa: number): boolean => gpa >= BAR_BASE && gpa < BAR_BASE + 4096 * PAGE;
  const cpu = {
    load32: (gpa: number) => (inBar(gpa) ? bar(gpa, 4).lo : mmio(gpa, false, 0)),
    store32: (gpa: number, v: number) => { mmio(gpa, true, v); },
    load64: (gpa: number) => bar(gpa, 8),
  };
  const guest = new VirtioGpuGuest(cpu, ram, MMIO, 0);
  // Raw commands go on the guest driver's own control queue (a new one after every probe).
  const raw = (req: Uint8Array, respLen = 64): number => {
    const q = (guest as unknown as { q: DriverQueue | undefined }).q;
    if (!q) throw new Error('probe the guest first');
    const head = q.add(req, respLen);
    cpu.store32(MMIO + REG.QueueNotify, 0);
    const used = q.takeUsed().find((u) => u.head === head);
    if (!used) throw new Error('not completed');
    const resp = q.response(head, req.byteLength, respLen);
    return used.len >= HDR_SIZE ? new DataView(resp.buffer).getUint32(0, true) : 0;
  };
  return {
    ...f,
    device,
    cpu,
    ram,
    guest,
    raw,
    close: async () => { f.backend.stop(); await f.platform.hv.close(); },
  };
}

export function cmd(type: number, ctx: number, body: number): { bytes: Uint8Array; v: DataView } {
  const bytes = new Uint8Array(HDR_SIZE + body);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, type, true);
  v.setUint32(16, ctx, true);
  return { bytes, v };
}
