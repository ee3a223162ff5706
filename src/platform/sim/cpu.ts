/**
 * One simulated vCPU (runs inside a worker thread): loads and stores on guest-physical addresses
 * through its BarMemory, exactly as the hardware + Xen would treat them:
 *
 *  - every access first honours a pending TLB flush and acknowledges it (the flush IPI);
 *  - a mapped page is reached with no exit at all;
 *  - an unmapped page inside the ioreq server's ranges fills this vCPU's ioreq slot, sends on the
 *    event channel and blocks until the slot reads IORESP_READY (the access completes with the
 *    slot's data) or IORESP_RETRY (the instruction re-executes);
 *  - anything else is unclaimed MMIO: reads return all ones, writes are dropped.
 *
 * SimP2mMemory checks each frame reached against the generation it had when the translation was
 * made: a mismatch is an access to a frame after its revoke completed (stale).
 */
import {
  IOREQ_READ,
  IOREQ_TYPE_COPY,
  IOREQ_WRITE,
  IoreqPage,
  STATE_IOREQ_NONE,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
  STATE_IORESP_RETRY,
  emptyIoreq,
} from '../../xen/abi/ioreq.js';
import { CTL_FLUSH_EPOCH, CTL_STOP, MachineViews, PAGE_SHIFT, PAGE_SIZE, RUN_BLOCKED, RUN_RUNNING, type MachineBuffers, type MachineConfig } from './machine.js';

/** Thrown out of an access when the domain must die (Xen's domain_crash on a bad ioreq state). */
export class DomainCrash extends Error {}
/** Thrown out of an access when the machine is being torn down while the vCPU waits. */
export class VcpuStopped extends Error {}

export interface CpuCounters {
  accesses: number;
  ioreqs: number;
  retries: number;
  unclaimed: number;
}

/**
 * How a vCPU reaches mapped BAR pages: the simulated p2m with a TLB (SimP2mMemory, below), or the
 * kernel helper's soft p2m (src/platform/linux/soft-p2m-memory.ts). Either way an unmapped page
 * makes `access` return false and the vCPU raises an ioreq.
 */
export interface BarMemory {
  /** At every instruction boundary: honour and acknowledge a pending TLB flush. */
  beforeAccess(): void;
  /** Performs an aligned 4- or 8-byte access to a BAR page if it is mapped (a load's value goes to `out`). */
  access(gpa: number, size: 4 | 8, write: boolean, lo: number, hi: number, out: { lo: number; hi: number }): boolean;
  /** Accesses that reached a frame after its revoke completed. */
  readonly staleAccesses: number;
  readonly flushAcks: number;
}

export interface CpuOptions {
  /** The hypervisor advertises the retry state (otherwise state 4 crashes the domain, as on Xen). */
  readonly retryCap: boolean;
  /** Called with the ns a vCPU spent blocked on one ioreq, and the address it was for. */
  readonly onIoreqDone?: (ns: number, gpa: number) => void;
}

export class SimCpu {
  readonly counters: CpuCounters = { accesses: 0, ioreqs: 0, retries: 0, unclaimed: 0 };
  /** Result of the last load: low and high 32 bits. */
  lo = 0;
  hi = 0;

  private readonly views: MachineViews;
  private readonly page: IoreqPage;
  private readonly barBase: number;
  private readonly barEnd: number;
  private readonly req = emptyIoreq();

  constructor(config: MachineConfig, buffers: MachineBuffers, readonly vcpu: number, readonly memory: BarMemory, private readonly opts: CpuOptions) {
    this.views = new MachineViews(config, buffers);
    this.page = new IoreqPage(buffers.ioreq, 0, config.vcpus);
    this.barBase = config.barBase;
    this.barEnd = config.barBase + config.barPages * PAGE_SIZE;
  }

  online(): void {
    this.views.setRunState(this.vcpu, RUN_RUNNING);
  }

  offline(): void {
    this.views.setRunState(this.vcpu, 0);
  }

  stopRequested(): boolean {
    return Atomics.load(this.views.ctl, CTL_STOP) !== 0;
  }

  /** Control words shared by the guest's vCPUs (boot and completion handshakes). */
  get ctl(): Int32Array {
    return this.views.ctl;
  }

  /**
   * Waits (halted, as a vCPU in HLT: not running, so a TLB flush never waits for it) until
   * `done()`, re-checking whenever ctl[index] changes. Returns false on a hard stop.
   */
  idleUntil(index: number, done: () => boolean): boolean {
    this.views.setRunState(this.vcpu, RUN_BLOCKED);
    try {
      while (!done()) {
        if (Atomics.load(this.views.ctl, CTL_STOP) === 2) return false;
        Atomics.wait(this.views.ctl, index, Atomics.load(this.views.ctl, index), 50);
      }
      return true;
    } finally {
      this.views.setRunState(this.vcpu, RUN_RUNNING);
    }
  }

  /** 8-byte load; the value lands in `lo` / `hi`. */
  load64(gpa: number): void {
    this.access(gpa, 8, false, 0, 0);
  }

  store64(gpa: number, lo: number, hi: number): void {
    this.access(gpa, 8, true, lo, hi);
  }

  /** 4-byte load (device registers, shared pages); returns the value. */
  load32(gpa: number): number {
    this.access(gpa, 4, false, 0, 0);
    return this.lo >>> 0;
  }

  store32(gpa: number, v: number): void {
    this.access(gpa, 4, true, v >>> 0, 0);
  }

  private access(gpa: number, size: 4 | 8, write: boolean, lo: number, hi: number): void {
    this.counters.accesses++;
    for (;;) {
      this.memory.beforeAccess();
      if (gpa >= this.barBase && gpa + size <= this.barEnd && this.memory.access(gpa, size, write, lo, hi, this)) return;
      if (!this.views.serverClaims(gpa, size)) {
        this.counters.unclaimed++;
        if (!write) {
          this.lo = 0xffff_ffff;
          this.hi = size === 8 ? 0xffff_ffff : 0;
        }
        return;
      }
      if (!this.ioreq(gpa, size, write, lo, hi)) return; // completed by the server
      this.counters.retries++; // the server mapped the page: re-execute the instruction
    }
  }

  /** Posts an ioreq and blocks; returns true when the answer is "retry". */
  private ioreq(gpa: number, size: 4 | 8, write: boolean, lo: number, hi: number): boolean {
    const v = this.vcpu;
    const port = Atomics.load(this.views.ctl, this.views.boundPortIndex(v));
    if (port === 0) throw new DomainCrash(`vCPU ${v}: ioreq with no server port bound`);
    if (this.page.loadState(v) !== STATE_IOREQ_NONE) throw new DomainCrash(`vCPU ${v}: device model set bad IO state`);
    const r = this.req;
    r.addr = gpa;
    r.dataLo = write ? lo : 0;
    r.dataHi = write ? hi : 0;
    r.count = 1;
    r.size = size;
    r.vpEport = this.page.readVpEport(v);
    r.state = STATE_IOREQ_READY;
    r.dataIsPtr = false;
    r.dir = write ? IOREQ_WRITE : IOREQ_READ;
    r.df = false;
    r.type = IOREQ_TYPE_COPY;
    this.counters.ioreqs++;
    const t0 = performance.now();
    this.views.setRunState(v, RUN_BLOCKED);
    this.page.post(v, r);
    this.views.sendToServer(port);
    const state = this.waitForAnswer();
    if (state === STATE_IORESP_READY && !write) {
      this.page.read(v, r);
      this.lo = r.dataLo;
      this.hi = r.dataHi;
    }
    // wait_for_io(): consume the answer and hand the slot back.
    this.page.transitionState(v, state, STATE_IOREQ_NONE);
    this.views.setRunState(v, RUN_RUNNING);
    this.opts.onIoreqDone?.((performance.now() - t0) * 1e6, gpa);
    return state === STATE_IORESP_RETRY;
  }

  private waitForAnswer(): number {
    const ctl = this.views.ctl;
    const ev = this.views.evtchnIndex(this.vcpu);
    for (;;) {
      const seen = Atomics.load(ctl, ev);
      const state = this.page.loadState(this.vcpu);
      if (state === STATE_IORESP_READY) return state;
      if (state === STATE_IORESP_RETRY) {
        if (!this.opts.retryCap) throw new DomainCrash(`vCPU ${this.vcpu}: Weird HVM iorequest state ${state}`);
        return state;
      }
      if (state > STATE_IORESP_RETRY || state === STATE_IOREQ_NONE) throw new DomainCrash(`vCPU ${this.vcpu}: Weird HVM iorequest state ${state}`);
      if (Atomics.load(ctl, CTL_STOP) === 2) throw new VcpuStopped();
      Atomics.wait(ctl, ev, seen, 100);
    }
  }
}

/**
 * The simulated machine's BAR memory: a private TLB over the shared p2m, flushed (and the flush
 * acknowledged) at instruction boundaries, with every frame reached checked against the generation
 * it had when the translation was made.
 */
export class SimP2mMemory implements BarMemory {
  staleAccesses = 0;
  flushAcks = 0;
  private readonly views: MachineViews;
  private readonly barBase: number;
  // TLB: per BAR page, the frame + 1, the frame's generation, and the TLB epoch of the entry.
  private readonly tlbFrame: Int32Array;
  private readonly tlbGen: Int32Array;
  private readonly tlbEpoch: Int32Array;
  private localEpoch = 1;
  private seenFlush: number;

  constructor(config: MachineConfig, buffers: MachineBuffers, private readonly vcpu: number) {
    this.views = new MachineViews(config, buffers);
    this.barBase = config.barBase;
    this.tlbFrame = new Int32Array(config.barPages);
    this.tlbGen = new Int32Array(config.barPages);
    this.tlbEpoch = new Int32Array(config.barPages);
    this.seenFlush = Atomics.load(this.views.ctl, CTL_FLUSH_EPOCH);
  }

  beforeAccess(): void {
    const epoch = Atomics.load(this.views.ctl, CTL_FLUSH_EPOCH);
    if (epoch === this.seenFlush) return;
    this.localEpoch++; // invalidates every TLB entry at once
    this.seenFlush = epoch;
    this.flushAcks++;
    Atomics.store(this.views.ctl, this.views.ackedEpochIndex(this.vcpu), epoch);
    this.views.setRunState(this.vcpu, RUN_RUNNING); // bumps ACK_SEQ and wakes the flusher
  }

  access(gpa: number, size: 4 | 8, write: boolean, lo: number, hi: number, out: { lo: number; hi: number }): boolean {
    const idx = (gpa - this.barBase) >>> PAGE_SHIFT;
    const frame = this.translate(idx);
    if (frame < 0) return false;
    const w = (frame * PAGE_SIZE + ((gpa - this.barBase) & (PAGE_SIZE - 1))) >>> 2;
    const h = this.views.host32;
    if (write) {
      h[w] = lo;
      if (size === 8) h[w + 1] = hi;
    } else {
      out.lo = h[w] ?? 0;
      out.hi = size === 8 ? (h[w + 1] ?? 0) : 0;
    }
    // Still inside the same "instruction": no flush can have been acknowledged in between.
    if (Atomics.load(this.views.frameGen, frame) !== this.tlbGen[idx]) this.staleAccesses++;
    return true;
  }

  private translate(idx: number): number {
    if (this.tlbEpoch[idx] === this.localEpoch) return (this.tlbFrame[idx] ?? 0) - 1;
    const entry = Atomics.load(this.views.p2m, idx);
    if (entry === 0) return -1;
    const frame = entry - 1;
    this.tlbFrame[idx] = entry;
    // Safe to read after the entry: the frame cannot be freed before this vCPU acknowledges a flush.
    this.tlbGen[idx] = Atomics.load(this.views.frameGen, frame);
    this.tlbEpoch[idx] = this.localEpoch;
    return frame;
  }
}
