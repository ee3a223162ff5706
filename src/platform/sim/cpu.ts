/**
 * One simulated vCPU (runs inside a worker thread): loads and stores on guest-physical addresses
 * through its BarMemory, exactly as the hardware + Xen would treat them:
 *
 *  - a TLB flush request (the IPI) is taken at an instruction boundary a few accesses after it was
 *    posted, and acknowledged then; meanwhile the vCPU keeps using its old translations. A vCPU
 *    that was not running (blocked in an ioreq, halted, offline) takes every pending flush the
 *    moment it runs again, since the flusher did not wait for it;
 *  - a mapped page is reached with no exit at all;
 *  - an unmapped page inside the ioreq server's ranges fills this vCPU's ioreq slot, sends on the
 *    event channel and blocks until the slot reads IORESP_READY (the access completes with the
 *    slot's data) or IORESP_RETRY (the instruction re-executes);
 *  - anything else is unclaimed MMIO: reads return all ones, writes are dropped.
 *
 * SimP2mMemory counts a stale access (an access through a translation after its revoke completed)
 * when the frame reached was free when the translation was made, or was freed since, or when the
 * translation was removed from the p2m by a flush that has already returned to the revoker.
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
import { xenMmioChunks, xenRepMovsCount } from './xen-emulate.js';
import { CTL_FLUSH_DONE, CTL_FLUSH_EPOCH, CTL_STOP, IPI_DELAY_MAX, MachineViews, PAGE_SHIFT, PAGE_SIZE, PROGRESS_STEP, RUN_BLOCKED, RUN_RUNNING, type MachineBuffers, type MachineConfig } from './machine.js';
import { unitOf, xorshift32 } from '../../util/xorshift.js';

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
  /** At every instruction boundary: the flush IPI may arrive (take and acknowledge a pending flush). */
  beforeAccess(): void;
  /** The vCPU has just been marked running again: take every flush posted meanwhile, now. */
  resume(): void;
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
  /** Guest RAM, which the vCPU reaches directly (the RAM side of string and vector moves). */
  private readonly ram: DataView;
  private readonly piece = { lo: 0, hi: 0 };

  constructor(config: MachineConfig, buffers: MachineBuffers, readonly vcpu: number, readonly memory: BarMemory, private readonly opts: CpuOptions) {
    this.views = new MachineViews(config, buffers);
    this.page = new IoreqPage(buffers.ioreq, 0, config.vcpus);
    this.barBase = config.barBase;
    this.barEnd = config.barBase + config.barPages * PAGE_SIZE;
    this.ram = new DataView(buffers.ram);
  }

  online(): void {
    this.running();
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
      this.running();
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

  // --- string and vector moves (what a guest's memcpy to or from a BAR page executes) -----------

  /**
   * `rep movs` of `reps` elements of `size` bytes from `src` to `dst`, one of them guest RAM and
   * the other the BAR; with `df` the elements go down from the given (highest) addresses. Elements
   * on a mapped BAR page run natively; an unmapped one traps, and Xen sends one ioreq for as many
   * elements as its clips allow (xenRepMovsCount), with data_is_ptr = 1 and data = the RAM address.
   * IORESP_READY: the emulator did `count` elements; IORESP_RETRY: the instruction re-executes.
   */
  repMovs(dst: number, src: number, size: 4 | 8, reps: number, df: boolean): void {
    const toBar = this.inBar(dst, size);
    if (toBar === this.inBar(src, size)) throw new Error('sim rep movs: exactly one side must be the BAR');
    this.counters.accesses++;
    let i = 0;
    while (i < reps) {
      this.memory.beforeAccess(); // each iteration is an interruptible step of the instruction
      const step = (df ? -i : i) * size;
      const bar = (toBar ? dst : src) + step;
      const ram = (toBar ? src : dst) + step;
      if (this.movsElementNatively(bar, ram, size, toBar)) {
        i++;
        continue;
      }
      const count = xenRepMovsCount(bar, ram, size, reps - i, df);
      const first = df ? bar - (count - 1) * size : bar;
      if (!this.views.serverClaims(first, count * size)) {
        this.counters.unclaimed++; // Xen's null handler: reads give all ones, writes vanish
        if (!toBar) new Uint8Array(this.ram.buffer, df ? ram - (count - 1) * size : ram, count * size).fill(0xff);
        i += count;
        continue;
      }
      const state = this.exchange(bar, size, count, toBar, ram % 0x1_0000_0000, Math.floor(ram / 0x1_0000_0000), true, df);
      if (state === STATE_IORESP_RETRY) this.counters.retries++;
      else i += count;
    }
  }

  /** A 16- or 32-byte vector store (movdqa / vmovdqa) of `from` to the BAR at `gpa`, aligned to its size. */
  vectorStore(gpa: number, from: Uint8Array): void {
    this.vector(gpa, from, true);
  }

  /** A 16- or 32-byte vector load from the BAR at `gpa` into `into`, aligned to its size. */
  vectorLoad(gpa: number, into: Uint8Array): void {
    this.vector(gpa, into, false);
  }

  /**
   * One vector instruction: natively on a mapped page; otherwise Xen emulates it and sends one
   * count-1 ioreq per chunk (xenMmioChunks: 8-byte pieces for an aligned 16/32-byte access). A
   * retry answer restarts the whole instruction, which then finds the page mapped.
   */
  private vector(gpa: number, buf: Uint8Array, write: boolean): void {
    const bytes = buf.byteLength;
    if ((bytes !== 16 && bytes !== 32) || gpa % bytes !== 0 || !this.inBar(gpa, bytes)) throw new Error(`sim vector access: ${bytes} bytes at ${gpa.toString(16)} (aligned 16/32 inside the BAR)`);
    const dv = new DataView(buf.buffer, buf.byteOffset, bytes);
    this.counters.accesses++;
    for (;;) {
      this.memory.beforeAccess();
      if (this.vectorNatively(gpa, dv, write)) return;
      if (!this.views.serverClaims(gpa, bytes)) {
        this.counters.unclaimed++;
        if (!write) buf.fill(0xff);
        return;
      }
      if (this.vectorByIoreqs(gpa, dv, write)) return;
      this.counters.retries++;
    }
  }

  /** All pieces of an aligned vector share one page, hence one translation. */
  private vectorNatively(gpa: number, dv: DataView, write: boolean): boolean {
    for (let off = 0; off < dv.byteLength; off += 8) {
      const lo = write ? dv.getUint32(off, true) : 0;
      const hi = write ? dv.getUint32(off + 4, true) : 0;
      if (!this.memory.access(gpa + off, 8, write, lo, hi, this.piece)) {
        if (off === 0) return false;
        throw new Error('sim vector access: page unmapped in the middle of one instruction');
      }
      if (!write) {
        dv.setUint32(off, this.piece.lo, true);
        dv.setUint32(off + 4, this.piece.hi, true);
      }
    }
    return true;
  }

  /** Sends the chunks in order; false as soon as one is answered "retry". */
  private vectorByIoreqs(gpa: number, dv: DataView, write: boolean): boolean {
    for (const [off, size] of xenMmioChunks(gpa, dv.byteLength)) {
      const lo = write ? readLe(dv, off, Math.min(size, 4)) : 0;
      const hi = write && size === 8 ? dv.getUint32(off + 4, true) : 0;
      if (this.exchange(gpa + off, size, 1, write, lo, hi, false, false) === STATE_IORESP_RETRY) return false;
      if (!write) {
        writeLe(dv, off, Math.min(size, 4), this.lo);
        if (size === 8) dv.setUint32(off + 4, this.hi, true);
      }
    }
    return true;
  }

  /** One element of a rep movs against a mapped BAR page; false when the page is not mapped. */
  private movsElementNatively(bar: number, ram: number, size: 4 | 8, toBar: boolean): boolean {
    const lo = toBar ? this.ram.getUint32(ram, true) : 0;
    const hi = toBar && size === 8 ? this.ram.getUint32(ram + 4, true) : 0;
    if (!this.memory.access(bar, size, toBar, lo, hi, this.piece)) return false;
    if (!toBar) {
      this.ram.setUint32(ram, this.piece.lo, true);
      if (size === 8) this.ram.setUint32(ram + 4, this.piece.hi, true);
    }
    return true;
  }

  private inBar(gpa: number, size: number): boolean {
    return gpa >= this.barBase && gpa + size <= this.barEnd;
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
  private ioreq(gpa: number, size: number, write: boolean, lo: number, hi: number): boolean {
    return this.exchange(gpa, size, 1, write, lo, hi, false, false) === STATE_IORESP_RETRY;
  }

  /**
   * Xen's ioreq_send() + wait_for_io() for this vCPU: posts the request, blocks until it is answered
   * and returns the answer's state; a read's data lands in `lo` / `hi`.
   */
  private exchange(addr: number, size: number, count: number, write: boolean, lo: number, hi: number, dataIsPtr: boolean, df: boolean): number {
    const v = this.vcpu;
    const port = Atomics.load(this.views.ctl, this.views.boundPortIndex(v));
    if (port === 0) throw new DomainCrash(`vCPU ${v}: ioreq with no server port bound`);
    if (this.page.loadState(v) !== STATE_IOREQ_NONE) throw new DomainCrash(`vCPU ${v}: device model set bad IO state`);
    const r = this.req;
    r.addr = addr;
    r.dataLo = write || dataIsPtr ? lo : 0;
    r.dataHi = write || dataIsPtr ? hi : 0;
    r.count = count;
    r.size = size;
    r.vpEport = this.page.readVpEport(v);
    r.state = STATE_IOREQ_READY;
    r.dataIsPtr = dataIsPtr;
    r.dir = write ? IOREQ_WRITE : IOREQ_READ;
    r.df = df;
    r.type = IOREQ_TYPE_COPY;
    this.counters.ioreqs++;
    const t0 = performance.now();
    this.views.setRunState(v, RUN_BLOCKED);
    this.page.post(v, r);
    this.views.sendToServer(port);
    const state = this.waitForAnswer();
    // With data_is_ptr the emulator already wrote guest RAM; `data` is not consumed (ioreq_needs_completion).
    if (state === STATE_IORESP_READY && !write && !dataIsPtr) {
      this.page.read(v, r);
      this.lo = r.dataLo;
      this.hi = r.dataHi;
    }
    // wait_for_io(): consume the answer and hand the slot back.
    this.page.transitionState(v, state, STATE_IOREQ_NONE);
    this.running();
    this.opts.onIoreqDone?.((performance.now() - t0) * 1e6, addr);
    return state;
  }

  /**
   * Marks this vCPU running, then takes any flush posted while it was not (Dekker with the flusher:
   * run state stored before the epoch is read, both sequentially consistent).
   */
  private running(): void {
    this.views.setRunState(this.vcpu, RUN_RUNNING);
    this.memory.resume();
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
 * The simulated machine's BAR memory: a private TLB over the shared p2m. A flush request is noticed
 * at an instruction boundary but taken (TLB dropped, epoch acknowledged) only after a random number
 * of further accesses, 1..IPI_DELAY_MAX, during which the old translations stay in use; the
 * flusher waits for the acknowledgement. Each access through the TLB is checked (see `isStale`).
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
  /** The last flush epoch this vCPU took (and acknowledged). */
  private seenFlush: number;
  /** Accesses left until a noticed flush IPI is taken; 0 when none is pending. */
  private ipiIn = 0;
  /** Instruction boundaries passed; published (views.progress) every PROGRESS_STEP for the flush watchdog. */
  private boundaries = 0;
  private readonly progressIndex: number;
  private rng: number;

  constructor(config: MachineConfig, buffers: MachineBuffers, private readonly vcpu: number) {
    this.views = new MachineViews(config, buffers);
    this.barBase = config.barBase;
    this.tlbFrame = new Int32Array(config.barPages);
    this.tlbGen = new Int32Array(config.barPages);
    this.tlbEpoch = new Int32Array(config.barPages);
    this.rng = (vcpu * 2654435761 + 1) >>> 0 || 1;
    this.progressIndex = this.views.progressIndex(vcpu);
    // An empty TLB has taken every flush so far: acknowledge it, or a flush already in flight
    // waits forever for this vCPU once it comes online.
    this.seenFlush = Atomics.load(this.views.ctl, CTL_FLUSH_EPOCH);
    this.views.publishAck(vcpu, this.seenFlush);
  }

  beforeAccess(): void {
    if (++this.boundaries % PROGRESS_STEP === 0) Atomics.store(this.views.progress, this.progressIndex, this.boundaries);
    if (this.ipiIn > 0) {
      if (--this.ipiIn === 0) this.takeFlush();
      return;
    }
    if (Atomics.load(this.views.ctl, CTL_FLUSH_EPOCH) !== this.seenFlush) this.ipiIn = 1 + this.randomBelow(IPI_DELAY_MAX);
  }

  resume(): void {
    this.ipiIn = 0;
    this.takeFlush();
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
    // Still inside the same "instruction": no flush can have been taken in between.
    if (this.isStale(idx, frame)) this.staleAccesses++;
    return true;
  }

  /**
   * Was this access through a dead translation? Yes if the frame was free when the translation was
   * made (odd generation: HostMemory bumps it on alloc and on free) or has been freed since, or if
   * a flush this vCPU has not taken yet already returned to the revoker while the p2m no longer
   * holds this translation (the revoker believes no vCPU can reach the frame any more).
   */
  private isStale(idx: number, frame: number): boolean {
    const gen = this.tlbGen[idx] ?? 0;
    if ((gen & 1) !== 0 || Atomics.load(this.views.frameGen, frame) !== gen) return true;
    const completedUntaken = (Atomics.load(this.views.ctl, CTL_FLUSH_DONE) - this.seenFlush) | 0;
    return completedUntaken > 0 && Atomics.load(this.views.p2m, idx) !== this.tlbFrame[idx];
  }

  /** Drops every TLB entry and acknowledges the newest epoch, if one was posted since the last. */
  private takeFlush(): void {
    const epoch = Atomics.load(this.views.ctl, CTL_FLUSH_EPOCH);
    if (epoch === this.seenFlush) return;
    this.localEpoch++; // invalidates every TLB entry at once
    this.seenFlush = epoch;
    this.flushAcks++;
    this.views.publishAck(this.vcpu, epoch);
  }

  private translate(idx: number): number {
    if (this.tlbEpoch[idx] === this.localEpoch) return (this.tlbFrame[idx] ?? 0) - 1;
    const entry = Atomics.load(this.views.p2m, idx);
    if (entry === 0) return -1;
    const frame = entry - 1;
    this.tlbFrame[idx] = entry;
    // Read after the entry: a correct revoke frees the frame only after this vCPU acknowledged a
    // flush, so the generation seen here is the one of the frame the entry was installed for.
    this.tlbGen[idx] = Atomics.load(this.views.frameGen, frame);
    this.tlbEpoch[idx] = this.localEpoch;
    return frame;
  }

  /** xorshift32, seeded per vCPU: reproducible IPI delays. */
  private randomBelow(n: number): number {
    this.rng = xorshift32(this.rng);
    return Math.floor(unitOf(this.rng) * n);
  }
}

function readLe(dv: DataView, off: number, size: number): number {
  return size === 4 ? dv.getUint32(off, true) : size === 2 ? dv.getUint16(off, true) : dv.getUint8(off);
}

function writeLe(dv: DataView, off: number, size: number, v: number): void {
  if (size === 4) dv.setUint32(off, v, true);
  else if (size === 2) dv.setUint16(off, v & 0xffff, true);
  else dv.setUint8(off, v & 0xff);
}
