/**
 * The simulated TLB flush protocol, driven by hand on one thread so that every interleaving is
 * forced, not left to timing: vCPUs coming online while a flush is in flight, the IPI arriving a
 * few accesses late, a blocked vCPU flushing on resume, the watchdog, and the stale-access oracle.
 */
import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { SimCpu, SimP2mMemory } from '../../../src/platform/sim/cpu.js';
import { createSimPlatform, type SimPlatform } from '../../../src/platform/sim/index.js';
import { CTL_STOP, IPI_DELAY_MAX, RUN_BLOCKED, RUN_RUNNING } from '../../../src/platform/sim/machine.js';
import { SimXen, StuckFlushError, type SimXenOptions } from '../../../src/platform/sim/xen.js';
import { BAR_BASE, machine } from '../../support/sim.js';

const P = 4096;
const G0 = BAR_BASE / P;
const WATCHDOG_MS = 200;

function vcpu(xen: SimXen, v: number): { cpu: SimCpu; mem: SimP2mMemory } {
  const mem = new SimP2mMemory(xen.config, xen.buffers, v);
  return { cpu: new SimCpu(xen.config, xen.buffers, v, mem, { retryCap: true }), mem };
}

/** One access by hand, as SimCpu does it: the instruction boundary, then the TLB / p2m. */
function touch(mem: SimP2mMemory, page = 0): boolean {
  mem.beforeAccess();
  return mem.access(BAR_BASE + page * P, 8, false, 0, 0, { lo: 0, hi: 0 });
}

/** A platform whose BAR page 0 maps a freshly allocated frame. */
function mappedPage(xen: Partial<SimXenOptions> = {}): { p: SimPlatform; frame: Int32Array } {
  const p = createSimPlatform({ machine: machine(), xen: { retry: true, flushWatchdogMs: WATCHDOG_MS, ...xen } });
  const frame = p.memory.alloc(1) ?? new Int32Array(0);
  p.xen.install(G0, frame[0] ?? 0);
  return { p, frame };
}

describe('sim TLB flush: vCPUs coming online', () => {
  it('a vCPU that comes online while a flush is in flight does not hold it up', () => {
    const xen = new SimXen(machine(), { retry: true, flushWatchdogMs: WATCHDOG_MS });
    const epoch = xen.postFlush(); // the flusher has bumped the epoch and not yet scanned the vCPUs
    vcpu(xen, 0).cpu.online(); // vCPU 0 is created and marked running in between
    expect(() => { xen.awaitFlushAcks(epoch); }).not.toThrow();
    expect(xen.failure).toBeUndefined();
  });

  it('a vCPU created before the flush and onlined during it takes the flush as it starts', () => {
    const xen = new SimXen(machine(), { retry: true, flushWatchdogMs: WATCHDOG_MS });
    const { cpu, mem } = vcpu(xen, 0);
    const epoch = xen.postFlush();
    cpu.online();
    expect(() => { xen.awaitFlushAcks(epoch); }).not.toThrow();
    expect(mem.flushAcks).toBe(1);
  });
});

describe('sim TLB flush: the IPI arrives late', () => {
  it('a running vCPU keeps its translation until it takes the flush, and the flusher waits for it', () => {
    const { p } = mappedPage();
    const { cpu, mem } = vcpu(p.xen, 0);
    cpu.online();
    expect(touch(mem)).toBe(true); // TLB filled
    p.xen.clear(G0);
    const epoch = p.xen.postFlush();
    expect(touch(mem)).toBe(true); // the IPI has not arrived: the old translation is still used
    // Nothing else runs on this thread, so vCPU 0 cannot acknowledge: the watchdog names it.
    expect(() => { p.xen.awaitFlushAcks(epoch); }).toThrow(/^TLB flush 1 stuck: running vCPU 0 did not acknowledge it within 200 ms$/);
    for (let i = 0; i < IPI_DELAY_MAX && mem.flushAcks === 0; i++) touch(mem);
    expect(mem.flushAcks).toBe(1);
    expect(touch(mem)).toBe(false); // the translation is gone: the next access faults
    expect(() => { p.xen.awaitFlushAcks(epoch); }).not.toThrow();
    expect(mem.staleAccesses).toBe(0);
  });

  it('a vCPU blocked during the flush is not waited for, and drops its TLB before it runs again', () => {
    const { p } = mappedPage();
    const { cpu, mem } = vcpu(p.xen, 0);
    cpu.online();
    expect(touch(mem)).toBe(true);
    let waited = true;
    // idleUntil() marks the vCPU halted while `done` runs: the revoke happens then.
    cpu.idleUntil(0, () => {
      p.xen.clear(G0);
      waited = false;
      p.xen.flushTlbs();
      return true;
    });
    expect(waited).toBe(false);
    expect(mem.flushAcks).toBe(1); // taken on resume, before any access
    expect(touch(mem)).toBe(false);
  });
});

describe('sim TLB flush: watchdog', () => {
  it('a flush some running vCPUs never acknowledge fails with an error naming exactly them', () => {
    const xen = new SimXen(machine({ vcpus: 4 }), { retry: true, flushWatchdogMs: WATCHDOG_MS });
    const cpus = [0, 1, 2, 3].map((v) => vcpu(xen, v));
    for (const c of cpus) c.cpu.online();
    xen.views.setRunState(3, RUN_BLOCKED); // blocked in an ioreq: not waited for
    const epoch = xen.postFlush();
    cpus[1]?.mem.resume(); // vCPU 1 takes it
    let err: unknown;
    try {
      xen.awaitFlushAcks(epoch);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StuckFlushError);
    expect((err as StuckFlushError).vcpus).toEqual([0, 2]);
    expect((err as Error).message).toBe(`TLB flush ${epoch} stuck: running vCPUs 0, 2 did not acknowledge it within 200 ms`);
    expect(xen.failure).toBe(err);
  });

  it('a vCPU that runs on past its IPI without acknowledging fails the flush from its progress, before the time limit', async () => {
    const xen = new SimXen(machine(), { retry: true, flushWatchdogMs: 20_000 }); // the time limit would name another cause
    xen.views.setRunState(0, RUN_RUNNING);
    // A broken vCPU: it keeps passing instruction boundaries (publishing its progress) and never
    // acknowledges, as one that took the in-flight epoch as already seen would.
    const broken = new Worker(
      `const { workerData: d } = require('node:worker_threads');
       const progress = new Int32Array(d.progress), ctl = new Int32Array(d.ctl);
       while (Atomics.load(ctl, d.stop) === 0) Atomics.add(progress, d.index, d.step);`,
      { eval: true, workerData: { progress: xen.buffers.progress, ctl: xen.buffers.ctl, stop: CTL_STOP, index: xen.views.progressIndex(0), step: 64 } },
    );
    try {
      while (Atomics.load(xen.views.progress, xen.views.progressIndex(0)) === 0) await new Promise((r) => setTimeout(r, 5));
      const epoch = xen.postFlush();
      expect(() => { xen.awaitFlushAcks(epoch); }).toThrow(/^TLB flush 1 stuck: running vCPU 0 did not acknowledge it after \d+ more instruction boundaries \(its IPI arrives within 64\)$/);
    } finally {
      Atomics.store(xen.views.ctl, CTL_STOP, 1);
      await broken.terminate();
    }
  });

  it('a stuck flush inside an eviction fails closed: the frames stay allocated and the invalidation ends', async () => {
    const p = createSimPlatform({ machine: machine(), xen: { retry: true, flushWatchdogMs: WATCHDOG_MS } });
    p.helper.bind({ domid: 1, firstGfn: G0, pages: 2048 });
    const bo = p.gpu.createBo(4 * P).handle;
    const m = p.gpu.mmapBo(bo);
    const range = p.helper.registerRange(m.va, m.length);
    await p.helper.map({ range, gfn: G0, pageInRange: 0, pages: 4, tryHuge: false });
    vcpu(p.xen, 0).cpu.online(); // running, and never reaching an instruction boundary
    const frame = p.simGpu.frameOf(bo, 0);
    await expect(p.simGpu.evict(bo)).rejects.toThrow(StuckFlushError);
    expect(p.simGpu.frameOf(bo, 0)).toBe(frame); // not moved, not freed
    expect(p.mm.invalidating).toBe(false); // a later MAP does not wait forever in read_begin
    await p.hv.close();
  });
});

describe('sim TLB flush: the stale-access oracle', () => {
  it('counts an access through a translation whose frame was freed', () => {
    const { p, frame } = mappedPage();
    const { cpu, mem } = vcpu(p.xen, 0);
    cpu.online();
    expect(touch(mem)).toBe(true);
    p.memory.release(frame); // freed while vCPU 0 still translates to it
    expect(touch(mem)).toBe(true);
    expect(mem.staleAccesses).toBe(1);
  });

  it('counts a translation made to a frame that was already free', () => {
    const { p, frame } = mappedPage();
    p.memory.release(frame); // a p2m entry left pointing at a free frame
    const { cpu, mem } = vcpu(p.xen, 0);
    cpu.online();
    expect(touch(mem)).toBe(true);
    expect(mem.staleAccesses).toBe(1);
  });

  it('counts a removed translation used after a flush returned without its acknowledgement', () => {
    const { p } = mappedPage({ unsafeSkipFlushAckWait: true });
    const { cpu, mem } = vcpu(p.xen, 0);
    cpu.online();
    expect(touch(mem)).toBe(true);
    p.xen.clear(G0);
    p.xen.flushTlbs(); // returns at once: the revoker now takes the translation as gone
    expect(touch(mem)).toBe(true); // but vCPU 0 has not taken the IPI yet
    expect(mem.staleAccesses).toBe(1);
  });
});
