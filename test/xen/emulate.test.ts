/**
 * The simulated vCPU presents a guest's string and vector accesses to the BAR as Xen 4.17's
 * instruction emulator does (xen/arch/x86/hvm/emulate.c): the clipping functions on their own, then
 * a vCPU thread running rep MOVS and vector moves against the back-end with every ioreq recorded.
 */
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { xenMmioChunks, xenRepMovsCount } from '../../src/platform/sim/xen-emulate.js';
import { distFile } from '../../src/util/dist-path.js';
import { IOREQ_READ, IOREQ_WRITE, type Ioreq } from '../../src/xen/abi/ioreq.js';
import { BAR_BASE, fixture, type Fixture } from '../support/sim.js';

const P = 4096;

describe('Xen rep MOVS clipping (hvmemul_linear_to_phys, hvmemul_do_io_addr, hvmemul_do_io)', () => {
  it.each([
    ['a page from page-aligned RAM', BAR_BASE, 0x4000, 8, 512, false, 512],
    ['RAM starting mid-page: the RAM side is clipped', BAR_BASE, 0x4800, 8, 512, false, 256],
    ['backwards from a page-aligned RAM page: one short of what fits', BAR_BASE + 4088, 0x4ff8, 8, 512, true, 511],
    ['backwards at the first element of a RAM page: one element over two pages', BAR_BASE + 8, 0x4000, 8, 2, true, 1],
    ['byte reps: at most 4096', BAR_BASE, 0x4000, 1, 10_000, false, 4096],
    ['MMIO side clipped at its page end', BAR_BASE + 4000, 0x4000, 8, 100, false, 12],
    ['an MMIO element that straddles a page: one rep', BAR_BASE + 4092, 0x4000, 8, 100, false, 1],
    ['backwards, MMIO side clipped at its page start', BAR_BASE + 0x40, 0x4ff8, 8, 100, true, 9],
  ])('%s', (_n, mmio, ram, size, reps, df, want) => {
    expect(xenRepMovsCount(mmio, ram, size, reps, df)).toBe(want);
  });
});

describe('Xen vector MMIO chunking (linear_write → hvmemul_phys_mmio_access)', () => {
  it.each([
    ['aligned 16 bytes', 0x1000, 16, [[0, 8], [8, 8]]],
    ['aligned 32 bytes', 0x1000, 32, [[0, 8], [8, 8], [16, 8], [24, 8]]],
    ['16 bytes across a page: split there first', 0x1ffc, 16, [[0, 4], [4, 8], [12, 4]]],
    ['3 bytes', 0x1000, 3, [[0, 2], [2, 1]]],
  ])('%s', (_n, gpa, bytes, want) => {
    expect(xenMmioChunks(gpa, bytes)).toEqual(want);
  });
});

type Op =
  | { kind: 'movs'; dst: number; src: number; size: 4 | 8; reps: number; df: boolean }
  | { kind: 'vstore'; gpa: number; bytes: number[] }
  | { kind: 'vload'; gpa: number; length: number };

/** Runs `ops` on vCPU 0 in a worker thread (a real SimCpu blocking on its ioreq slot). */
function runVcpu(fx: Fixture, ops: Op[]): Promise<{ loads: number[][]; retries: number; ioreqs: number }> {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.cpuUrl).then(({ SimCpu, SimP2mMemory }) => {
      const d = workerData;
      const cpu = new SimCpu(d.config, d.buffers, 0, new SimP2mMemory(d.config, d.buffers, 0), { retryCap: d.retry });
      cpu.online();
      const loads = [];
      for (const op of d.ops) {
        if (op.kind === 'movs') cpu.repMovs(op.dst, op.src, op.size, op.reps, op.df);
        else if (op.kind === 'vstore') cpu.vectorStore(op.gpa, Uint8Array.from(op.bytes));
        else { const b = new Uint8Array(op.length); cpu.vectorLoad(op.gpa, b); loads.push([...b]); }
      }
      cpu.offline();
      parentPort.postMessage({ loads, retries: cpu.counters.retries, ioreqs: cpu.counters.ioreqs });
    });`;
  const xen = fx.platform.xen;
  const w = new Worker(code, { eval: true, workerData: { cpuUrl: pathToFileURL(distFile('platform/sim/cpu.js')).href, config: xen.config, buffers: xen.buffers, retry: xen.caps.retry, ops } });
  return new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
}

/** Records every request the BAR manager is handed, in order. */
function record(fx: Fixture): Partial<Ioreq>[] {
  const seen: Partial<Ioreq>[] = [];
  const bar = fx.backend.bar;
  const handle = bar.handle.bind(bar);
  bar.handle = (req, vcpu, out) => {
    const { addr, count, size, dataIsPtr, dir, df, dataLo } = req;
    seen.push({ addr: addr - BAR_BASE, count, size, dataIsPtr, dir, df, ...(dataIsPtr ? { dataLo } : {}) });
    return handle(req, vcpu, out);
  };
  return seen;
}

const pattern = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => (i * 11 + seed * 29 + (i >> 7)) & 0xff);

let f: Fixture | undefined;
afterEach(async () => { f?.backend.stop(); await f?.platform.hv.close(); f = undefined; });

describe('the simulated vCPU presents string and vector accesses as Xen does', () => {
  it('emulate mode: one data_is_ptr ioreq per clipped rep run, one 8-byte ioreq per vector chunk, bytes intact', async () => {
    f = fixture({ mode: 'emulate', faultAround: 1, hugePages: false });
    const fx = f;
    const blob = fx.backend.createBlob(8 * P);
    fx.backend.mapBlob(blob.id, 0);
    const seen = record(fx);
    const ram = new Uint8Array(fx.platform.xen.buffers.ram);
    ram.set(pattern(P, 1), 0x2800); // a source buffer that starts mid-page
    ram.set(pattern(P, 2), 0x4000);
    fx.platform.gpu.writeBo(blob.bo, 3 * P, Uint8Array.from(pattern(P, 3)));
    fx.platform.gpu.writeBo(blob.bo, 5 * P, Uint8Array.from(pattern(16, 5)));
    const vec = pattern(32, 4);
    const r = await runVcpu(fx, [
      { kind: 'movs', dst: BAR_BASE + P, src: 0x2800, size: 8, reps: 512, df: false },
      { kind: 'movs', dst: BAR_BASE + 2 * P + 4088, src: 0x4ff8, size: 8, reps: 512, df: true },
      { kind: 'movs', dst: 0x6000, src: BAR_BASE + 3 * P, size: 4, reps: 1024, df: false },
      { kind: 'vstore', gpa: BAR_BASE + 4 * P + 32, bytes: vec },
      { kind: 'vload', gpa: BAR_BASE + 5 * P, length: 16 },
    ]);
    expect(seen).toEqual([
      // The RAM side is clipped at its page end; the page is mapped by then, the rest runs natively.
      { addr: P, count: 256, size: 8, dataIsPtr: true, dir: IOREQ_WRITE, df: false, dataLo: 0x2800 },
      // Backwards: the request names the highest element; Xen's df clip leaves one element over.
      { addr: 2 * P + 4088, count: 511, size: 8, dataIsPtr: true, dir: IOREQ_WRITE, df: true, dataLo: 0x4ff8 },
      { addr: 3 * P, count: 1024, size: 4, dataIsPtr: true, dir: IOREQ_READ, df: false, dataLo: 0x6000 },
      // A 32-byte store: four 8-byte requests, all emulated (the instruction stays in the emulator).
      ...[0, 8, 16, 24].map((o) => ({ addr: 4 * P + 32 + o, count: 1, size: 8, dataIsPtr: false, dir: IOREQ_WRITE, df: false })),
      ...[0, 8].map((o) => ({ addr: 5 * P + o, count: 1, size: 8, dataIsPtr: false, dir: IOREQ_READ, df: false })),
    ]);
    const bo = (off: number, n: number): number[] => { const b = new Uint8Array(n); fx.platform.gpu.readBo(blob.bo, off, b); return [...b]; };
    expect(bo(P, P)).toEqual(pattern(P, 1));
    expect(bo(2 * P, P)).toEqual(pattern(P, 2));
    expect([...ram.subarray(0x6000, 0x7000)]).toEqual(pattern(P, 3));
    expect(bo(4 * P + 32, 32)).toEqual(vec);
    expect(r.loads).toEqual([pattern(16, 5)]);
    expect(fx.backend.bar.counters.strings).toBe(3);
  });

  it('retry mode: the rep faults once, is retried, and completes natively', async () => {
    f = fixture({ mode: 'retry', faultAround: 1, hugePages: false });
    const fx = f;
    const blob = fx.backend.createBlob(2 * P);
    fx.backend.mapBlob(blob.id, 0);
    const seen = record(fx);
    new Uint8Array(fx.platform.xen.buffers.ram).set(pattern(P, 6), 0x2800);
    const r = await runVcpu(fx, [{ kind: 'movs', dst: BAR_BASE + P, src: 0x2800, size: 8, reps: 512, df: false }]);
    expect(seen).toEqual([{ addr: P, count: 256, size: 8, dataIsPtr: true, dir: IOREQ_WRITE, df: false, dataLo: 0x2800 }]);
    expect([r.ioreqs, r.retries]).toEqual([1, 1]);
    const b = new Uint8Array(P);
    fx.platform.gpu.readBo(blob.bo, P, b);
    expect([...b]).toEqual(pattern(P, 6));
  });
});
