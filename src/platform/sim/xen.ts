/**
 * The simulated Xen: one guest domain whose vCPUs are worker threads (see src/guest/), its BAR
 * p2m, one ioreq server with the real shared-page layout, per-vCPU event channels and the flush
 * protocol. Everything the back-end sees goes through HypervisorPort, as it would on Xen.
 */
import { native, type Waiter } from '../../native/index.js';
import type { EventChannels, GuestMemory, HypervisorCaps, HypervisorPort, IoRangeKind, IoreqServerHandle } from '../ports.js';
import { IoreqPage, STATE_IOREQ_NONE } from '../../xen/abi/ioreq.js';
import {
  CTL_ACK_SEQ,
  CTL_DOORBELL,
  CTL_FLUSH_DONE,
  CTL_FLUSH_EPOCH,
  CTL_IRQ_LINES,
  CTL_SERVER_ENABLED,
  CTL_STOP,
  IPI_DELAY_MAX,
  MAX_IO_RANGES,
  MachineViews,
  PAGE_SHIFT,
  PROGRESS_STEP,
  RUN_RUNNING,
  VP_EPORT_BASE,
  allocateMachine,
  type MachineBuffers,
  type MachineConfig,
} from './machine.js';

export interface SimXenOptions {
  /** Advertise the STATE_IORESP_RETRY extension (the proposal); false models stock Xen. */
  readonly retry: boolean;
  /**
   * A flush some running vCPU has not acknowledged after this many ms is an error (default 60 s:
   * long, since a vCPU thread the host does not schedule cannot acknowledge; one that runs on
   * without acknowledging is caught at once by its progress).
   */
  readonly flushWatchdogMs?: number;
  /** Test-only fault injection: revoke without flushing TLBs (stale accesses must show). */
  readonly unsafeSkipTlbFlush?: boolean;
  /** Test-only fault injection: post the flush but do not wait for the acknowledgements. */
  readonly unsafeSkipFlushAckWait?: boolean;
}

const DEFAULT_FLUSH_WATCHDOG_MS = 60_000;
/**
 * Instruction boundaries a running vCPU may pass after a flush was posted without acknowledging
 * it: it notices the flush at the first and takes it within IPI_DELAY_MAX more; the published
 * count lags by up to PROGRESS_STEP at each end.
 */
const FLUSH_BOUNDARY_BUDGET = 1 + IPI_DELAY_MAX + 2 * PROGRESS_STEP;

/** A TLB flush that running vCPUs did not acknowledge: the machine is wedged. */
export class StuckFlushError extends Error {
  constructor(readonly epoch: number, readonly vcpus: readonly number[], why: string) {
    super(`TLB flush ${epoch} stuck: running vCPU${vcpus.length === 1 ? '' : 's'} ${vcpus.join(', ')} did not acknowledge it ${why}`);
    this.name = 'StuckFlushError';
  }
}

/** p2m operations the simulated kernel helper's `soft`-like back-end uses. */
export interface SimP2m {
  readonly firstGfn: number;
  readonly pages: number;
  install(gfn: number, frame: number): void;
  /** Clears an entry; true if one was present. */
  clear(gfn: number): boolean;
  /** Flush every vCPU's TLB and wait until each running vCPU has acknowledged (a flush IPI). */
  flushTlbs(): void;
}

export class SimXen implements HypervisorPort, SimP2m {
  readonly kind = 'sim' as const;
  readonly domid = 1;
  readonly caps: HypervisorCaps;
  readonly vcpus: number;
  readonly views: MachineViews;
  readonly buffers: MachineBuffers;
  readonly firstGfn: number;
  readonly pages: number;
  flushes = 0;
  /** The first flush that got stuck; the run that owns this machine must end with it. */
  failure: StuckFlushError | undefined;
  private server: SimIoreqServer | undefined;
  private readonly irqLevels = new Map<number, boolean>();

  constructor(readonly config: MachineConfig, private readonly opts: SimXenOptions) {
    this.buffers = allocateMachine(config);
    this.views = new MachineViews(config, this.buffers);
    this.caps = { retry: opts.retry };
    this.vcpus = config.vcpus;
    this.firstGfn = Math.floor(config.barBase / 2 ** PAGE_SHIFT);
    this.pages = config.barPages;
  }

  createIoreqServer(): IoreqServerHandle {
    if (this.server) throw new Error('sim: one ioreq server per domain in this simulation');
    this.server = new SimIoreqServer(this.views, this.vcpus);
    return this.server;
  }

  openEventChannels(): EventChannels {
    return new SimEventChannels(this.views, this.vcpus);
  }

  guestMemory(): GuestMemory {
    return new SimGuestMemory(new Uint8Array(this.buffers.ram));
  }

  /** Level-triggered lines, visible to the vCPUs as bits of a shared word (an interrupt controller). */
  setIrqLevel(irq: number, level: boolean): void {
    if (!Number.isInteger(irq) || irq < 0 || irq > 31) throw new RangeError(`sim: irq ${irq} (0..31)`);
    this.irqLevels.set(irq, level);
    if (level) Atomics.or(this.views.ctl, CTL_IRQ_LINES, 1 << irq);
    else Atomics.and(this.views.ctl, CTL_IRQ_LINES, ~(1 << irq));
    Atomics.notify(this.views.ctl, CTL_IRQ_LINES);
  }

  irqLevel(irq: number): boolean {
    return this.irqLevels.get(irq) ?? false;
  }

  install(gfn: number, frame: number): void {
    Atomics.store(this.views.p2m, this.index(gfn), frame + 1);
  }

  clear(gfn: number): boolean {
    return Atomics.exchange(this.views.p2m, this.index(gfn), 0) !== 0;
  }

  flushTlbs(): void {
    if (this.opts.unsafeSkipTlbFlush === true) return;
    const epoch = this.postFlush();
    if (this.opts.unsafeSkipFlushAckWait === true) this.markFlushed(epoch);
    else this.awaitFlushAcks(epoch);
  }

  /** Posts a flush request to every vCPU (the IPI); returns its epoch. */
  postFlush(): number {
    this.flushes++;
    return Atomics.add(this.views.ctl, CTL_FLUSH_EPOCH, 1) + 1;
  }

  /**
   * Waits until every vCPU has acknowledged `epoch` or is not running, then publishes it as done.
   * The watchdog throws StuckFlushError (and records it in `failure`) instead of hanging: at once
   * when a running vCPU has gone on past the point where its IPI must have arrived (call this right
   * after postFlush), or when the flush is still unacknowledged after flushWatchdogMs.
   */
  awaitFlushAcks(epoch: number): void {
    const ctl = this.views.ctl;
    const ms = this.opts.flushWatchdogMs ?? DEFAULT_FLUSH_WATCHDOG_MS;
    const deadline = performance.now() + ms;
    const progress = this.views.progress;
    for (let v = 0; v < this.vcpus; v++) {
      const start = Atomics.load(progress, this.views.progressIndex(v));
      for (;;) {
        const seen = Atomics.load(ctl, CTL_ACK_SEQ); // before the check: no wake can be lost
        if (!this.holdsEpoch(v, epoch)) break;
        const ran = (Atomics.load(progress, this.views.progressIndex(v)) - start) | 0;
        if (ran > FLUSH_BOUNDARY_BUDGET) throw this.stuck(epoch, [v], `after ${ran} more instruction boundaries (its IPI arrives within ${IPI_DELAY_MAX})`);
        const left = deadline - performance.now();
        if (left <= 0) throw this.stuck(epoch, this.holdersOf(epoch), `within ${ms} ms`);
        Atomics.wait(ctl, CTL_ACK_SEQ, seen, Math.min(50, left));
      }
    }
    this.markFlushed(epoch);
  }

  /**
   * From here on the revoker takes every translation cleared before `epoch` as gone: a vCPU that
   * still uses one is making a stale access (SimP2mMemory checks this).
   */
  private markFlushed(epoch: number): void {
    Atomics.store(this.views.ctl, CTL_FLUSH_DONE, epoch);
  }

  /**
   * Is vCPU v running without having acknowledged `epoch`? A vCPU that is blocked or offline holds
   * no live translation: it takes every pending flush before it runs again.
   */
  private holdsEpoch(v: number, epoch: number): boolean {
    const ctl = this.views.ctl;
    if (Atomics.load(ctl, this.views.runStateIndex(v)) !== RUN_RUNNING) return false;
    return Atomics.load(ctl, this.views.ackedEpochIndex(v)) - epoch < 0;
  }

  private holdersOf(epoch: number): number[] {
    const late: number[] = [];
    for (let v = 0; v < this.vcpus; v++) if (this.holdsEpoch(v, epoch)) late.push(v);
    return late;
  }

  private stuck(epoch: number, vcpus: number[], why: string): StuckFlushError {
    const e = new StuckFlushError(epoch, vcpus, why);
    this.failure ??= e;
    return e;
  }

  /** Asks every vCPU to stop at its next instruction boundary. */
  requestStop(): void {
    Atomics.store(this.views.ctl, CTL_STOP, 1);
    for (let v = 0; v < this.vcpus; v++) this.views.sendToVcpu(v);
  }

  close(): Promise<void> {
    this.requestStop();
    this.server?.destroy();
    return Promise.resolve();
  }

  private index(gfn: number): number {
    const i = gfn - this.firstGfn;
    if (!Number.isInteger(i) || i < 0 || i >= this.pages) throw new RangeError(`sim p2m: gfn ${gfn.toString(16)} outside the BAR window`);
    return i;
  }
}

class SimIoreqServer implements IoreqServerHandle {
  readonly id = 1;
  readonly page: IoreqPage;

  private portsPublished = false;

  constructor(private readonly views: MachineViews, private readonly vcpus: number) {
    this.page = new IoreqPage(views.buffers.ioreq, 0, vcpus);
    this.publishPorts(0);
  }

  /** Xen allocates one unbound port per vCPU but writes it to vp_eport only when the server is enabled (common/ioreq.c). */
  private publishPorts(base: number): void {
    for (let v = 0; v < this.vcpus; v++) {
      this.page.post(v, { addr: 0, dataLo: 0, dataHi: 0, count: 0, size: 0, vpEport: base === 0 ? 0 : base + v, state: STATE_IOREQ_NONE, dataIsPtr: false, dir: 0, df: false, type: 0 });
    }
  }

  mapRange(kind: IoRangeKind, start: number, end: number): void {
    if (kind !== 'mmio') throw new Error('sim: only MMIO ranges are modelled');
    if (!(start <= end)) throw new RangeError('map_io_range: start > end');
    const r = this.views.ranges;
    const n = r[0] ?? 0;
    if (n >= MAX_IO_RANGES) throw new Error('map_io_range: -ENOSPC (MAX_NR_IO_RANGES)');
    r[1 + 2 * n] = start;
    r[2 + 2 * n] = end;
    r[0] = n + 1;
  }

  unmapRange(kind: IoRangeKind, start: number, end: number): void {
    if (kind !== 'mmio') return;
    const r = this.views.ranges;
    const n = r[0] ?? 0;
    for (let i = 0; i < n; i++) {
      if (r[1 + 2 * i] === start && r[2 + 2 * i] === end) {
        r.copyWithin(1 + 2 * i, 3 + 2 * i, 1 + 2 * n);
        r[0] = n - 1;
        return;
      }
    }
    throw new Error('unmap_io_range: -ENOENT');
  }

  setEnabled(enabled: boolean): void {
    if (enabled && !this.portsPublished) this.publishPorts(VP_EPORT_BASE);
    if (enabled) this.portsPublished = true;
    Atomics.store(this.views.ctl, CTL_SERVER_ENABLED, enabled ? 1 : 0);
  }

  destroy(): void {
    this.setEnabled(false);
    this.views.ranges[0] = 0;
  }
}

class SimEventChannels implements EventChannels {
  private readonly vcpuOfPort = new Map<number, number>();
  private readonly masked = new Set<number>();
  private readonly deferred = new Set<number>();
  private handler: ((port: number) => void) | undefined;
  private waiter: Waiter | undefined;


  constructor(private readonly views: MachineViews, private readonly vcpus: number) {}

  bindInterdomain(remotePort: number): number {
    const v = remotePort - VP_EPORT_BASE;
    if (!Number.isInteger(v) || v < 0 || v >= this.vcpus) throw new Error(`evtchn bind: remote port ${remotePort} is not a vCPU ioreq port (-EINVAL)`);
    const local = v + 1;
    this.vcpuOfPort.set(local, v);
    Atomics.store(this.views.ctl, this.views.boundPortIndex(v), local);
    return local;
  }

  /** The native waiter sleeps on the doorbell word; each wake drains every pending port. */
  onPending(handler: (localPort: number) => void): void {
    if (this.handler) throw new Error('evtchn: one pending handler');
    this.handler = handler;
    const w = new native.Waiter(() => { this.views.drainServerPending((port) => { this.deliver(port); }); });
    w.addFutex(this.views.ctl, CTL_DOORBELL, 0);
    w.start();
    this.waiter = w;
    // Ports that fired before the waiter started are still pending: take them now.
    this.views.drainServerPending((port) => { this.deliver(port); });
  }

  unmask(localPort: number): void {
    this.masked.delete(localPort);
    if (this.deferred.delete(localPort)) this.deliver(localPort);
  }

  notify(localPort: number): void {
    const v = this.vcpuOfPort.get(localPort);
    if (v === undefined) throw new Error(`evtchn notify: port ${localPort} not bound`);
    this.views.sendToVcpu(v);
  }

  close(): void {
    this.waiter?.close();
    this.waiter = undefined;
    for (const [, v] of this.vcpuOfPort) Atomics.store(this.views.ctl, this.views.boundPortIndex(v), 0);
  }

  private deliver(port: number): void {
    if (this.masked.has(port)) {
      this.deferred.add(port);
      return;
    }
    this.masked.add(port);
    this.handler?.(port);
  }
}

class SimGuestMemory implements GuestMemory {
  readonly size: number;
  private readonly ram16: Uint16Array;
  constructor(private readonly ram: Uint8Array) {
    this.size = ram.byteLength;
    this.ram16 = new Uint16Array(ram.buffer, ram.byteOffset, ram.byteLength >> 1);
  }
  // Atomics on shared memory are sequentially consistent, which covers acquire and release.
  load16(gpa: number): number {
    this.check(gpa, 2);
    if (gpa % 2 !== 0) throw new RangeError(`guest memory: unaligned 16-bit load at ${gpa}`);
    return Atomics.load(this.ram16, gpa >> 1);
  }
  store16(gpa: number, value: number): void {
    this.check(gpa, 2);
    if (gpa % 2 !== 0) throw new RangeError(`guest memory: unaligned 16-bit store at ${gpa}`);
    Atomics.store(this.ram16, gpa >> 1, value);
  }
  read(gpa: number, into: Uint8Array): void {
    this.check(gpa, into.byteLength);
    into.set(this.ram.subarray(gpa, gpa + into.byteLength));
  }
  write(gpa: number, from: Uint8Array): void {
    this.check(gpa, from.byteLength);
    this.ram.set(from, gpa);
  }
  private check(gpa: number, len: number): void {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa + len > this.size) throw new RangeError(`guest memory: [${gpa}, +${len}) outside RAM of ${this.size} bytes`);
  }
}
