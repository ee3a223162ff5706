/**
 * The simulated machine's shared memory: what the simulated Xen (main thread) and the guest vCPUs
 * (worker threads) both see. Only Xen itself is replaced (D6): the ioreq page is the real 32-byte
 * slot layout, p2m entries change with single atomic stores, and a revoke ends with a TLB flush that
 * every running vCPU acknowledges, like Xen's flush IPI.
 *
 * Layout of the control words (Int32Array `ctl`):
 *   0  STOP           set to 1 to ask every vCPU to finish
 *   1  FLUSH_EPOCH    bumped by every TLB flush request
 *   2  ACK_SEQ        bumped (and notified) whenever a vCPU acknowledges a flush or changes run state
 *   3  DOORBELL       the server side of every event channel: bumped and notified on each send
 *   4..7              pending bitmap of the server's local ports (128 ports)
 *   8  SERVER_ENABLED the ioreq server is enabled (requests in its ranges go to it)
 *   9  GUEST_BOOT     guest-side: 0 booting, 1 the boot vCPU set the device up, 2 it failed
 *   10 GUEST_DONE     guest-side: vCPUs that finished their workload
 *   11 IRQ_LINES      interrupt lines the device raised (bit per line), notified on change
 *   12 SWEEP_DONE     guest-side: vCPUs that finished a `sweep` workload
 *   13 FLUSH_DONE     the newest flush epoch whose flushTlbs() returned (the revoker's view)
 *   16 + 4*v ...      per vCPU: RUN_STATE, ACKED_EPOCH, EVTCHN (guest side of its ioreq port), spare
 */

import { native } from '../../native/index.js';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const HUGE_PAGES = 512; // 2 MiB / 4 KiB

export const CTL_STOP = 0;
export const CTL_FLUSH_EPOCH = 1;
export const CTL_ACK_SEQ = 2;
export const CTL_DOORBELL = 3;
export const CTL_PENDING = 4;
export const CTL_SERVER_ENABLED = 8;
export const CTL_GUEST_BOOT = 9;
export const CTL_GUEST_DONE = 10;
export const CTL_IRQ_LINES = 11;
export const CTL_SWEEP_DONE = 12;
export const CTL_FLUSH_DONE = 13;
const PENDING_WORDS = 4;
const VCPU_BASE = 16;
const VCPU_STRIDE = 4;
export const MAX_VCPUS = 128;
const CTL_WORDS = VCPU_BASE + VCPU_STRIDE * MAX_VCPUS;

export const RUN_OFFLINE = 0;
export const RUN_RUNNING = 1;
export const RUN_BLOCKED = 2;

/**
 * Instruction boundaries between a flush request and a running vCPU taking it, at most: the IPI is
 * delivered "a little later", never at once (sim/cpu.ts). Long enough that a flusher that does not
 * wait for the acknowledgement frees frames a vCPU still reaches.
 */
export const IPI_DELAY_MAX = 64;

/** Guest-side event-channel port of vCPU v's ioreq channel (what Xen publishes in vp_eport). */
export const VP_EPORT_BASE = 32;

export interface MachineConfig {
  readonly vcpus: number;
  /** Guest-physical base and size (pages) of the BAR window. */
  readonly barBase: number;
  readonly barPages: number;
  /** Host physical memory, in 4 KiB frames. */
  readonly hostFrames: number;
  readonly guestRamBytes: number;
}

export interface MachineBuffers {
  readonly host: SharedArrayBuffer;
  readonly frameGen: SharedArrayBuffer;
  readonly p2m: SharedArrayBuffer;
  readonly ctl: SharedArrayBuffer;
  readonly ioreq: SharedArrayBuffer;
  readonly ram: SharedArrayBuffer;
  /** The server's MMIO ranges, as Xen's rangeset: [count, start0, end0 (inclusive), ...]. */
  readonly ranges: SharedArrayBuffer;
  /** Per vCPU, on a cache line of its own: instruction boundaries passed (published every 64). */
  readonly progress: SharedArrayBuffer;
}

/** Int32 words per vCPU in `progress`: 64 bytes, so vCPUs never share the line they write. */
const PROGRESS_STRIDE = 16;
/** A vCPU publishes its boundary count when it is a multiple of this. */
export const PROGRESS_STEP = 64;

export const MAX_IO_RANGES = 256;

export function validateMachineConfig(c: MachineConfig): void {
  const int = (n: number, min: number, max: number, what: string): void => {
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new RangeError(`${what} = ${n}, want ${min}..${max}`);
  };
  int(c.vcpus, 1, MAX_VCPUS, 'vcpus');
  int(c.barPages, 1, 1 << 20, 'BAR pages');
  int(c.hostFrames, 1, 1 << 20, 'host frames');
  int(c.guestRamBytes, 0, 1 << 30, 'guest RAM bytes');
  if (c.barBase % PAGE_SIZE !== 0 || !Number.isSafeInteger(c.barBase)) throw new RangeError('BAR base must be page aligned');
}

export function allocateMachine(c: MachineConfig): MachineBuffers {
  validateMachineConfig(c);
  return {
    host: new SharedArrayBuffer(c.hostFrames * PAGE_SIZE),
    frameGen: new SharedArrayBuffer(c.hostFrames * 4),
    p2m: new SharedArrayBuffer(c.barPages * 4),
    ctl: new SharedArrayBuffer(CTL_WORDS * 4),
    ioreq: new SharedArrayBuffer(PAGE_SIZE),
    ram: new SharedArrayBuffer(Math.max(c.guestRamBytes, 8)),
    ranges: new SharedArrayBuffer(8 * (1 + 2 * MAX_IO_RANGES)),
    progress: new SharedArrayBuffer(4 * PROGRESS_STRIDE * c.vcpus),
  };
}

/** Typed views over the shared buffers, built the same way on both sides. */
export class MachineViews {
  readonly host32: Uint32Array;
  readonly frameGen: Int32Array;
  /** p2m of the BAR window: entry = host frame + 1, 0 = not present. */
  readonly p2m: Int32Array;
  readonly ctl: Int32Array;
  readonly ranges: Float64Array;
  readonly progress: Int32Array;

  constructor(readonly config: MachineConfig, readonly buffers: MachineBuffers) {
    this.host32 = new Uint32Array(buffers.host);
    this.frameGen = new Int32Array(buffers.frameGen);
    this.p2m = new Int32Array(buffers.p2m);
    this.ctl = new Int32Array(buffers.ctl);
    this.ranges = new Float64Array(buffers.ranges);
    this.progress = new Int32Array(buffers.progress);
  }

  /** Does a registered MMIO range of an enabled server hold [addr, addr+size)? (Xen forwards only then.) */
  serverClaims(addr: number, size: number): boolean {
    if (Atomics.load(this.ctl, CTL_SERVER_ENABLED) === 0) return false;
    const n = this.ranges[0] ?? 0;
    for (let i = 0; i < n; i++) {
      const s = this.ranges[1 + 2 * i] ?? 0;
      const e = this.ranges[2 + 2 * i] ?? -1;
      if (s <= addr && addr + size - 1 <= e) return true;
    }
    return false;
  }

  runStateIndex(vcpu: number): number {
    return VCPU_BASE + VCPU_STRIDE * vcpu;
  }
  ackedEpochIndex(vcpu: number): number {
    return VCPU_BASE + VCPU_STRIDE * vcpu + 1;
  }
  evtchnIndex(vcpu: number): number {
    return VCPU_BASE + VCPU_STRIDE * vcpu + 2;
  }
  progressIndex(vcpu: number): number {
    return PROGRESS_STRIDE * vcpu;
  }
  /** The server's local port bound to vCPU v's ioreq channel, 0 while unbound. */
  boundPortIndex(vcpu: number): number {
    return VCPU_BASE + VCPU_STRIDE * vcpu + 3;
  }

  /**
   * Marks a local port pending on the server side and rings the doorbell (EVTCHNOP_send). The
   * server sleeps in the addon's native waiter on the doorbell word, which only a real futex wake
   * reaches (V8's Atomics.notify does not): the same kernel wake path as an event-channel IRQ.
   */
  sendToServer(localPort: number): void {
    const word = CTL_PENDING + (localPort >>> 5);
    if (localPort < 0 || localPort >= PENDING_WORDS * 32) throw new RangeError(`event channel port ${localPort}`);
    Atomics.or(this.ctl, word, 1 << (localPort & 31));
    Atomics.add(this.ctl, CTL_DOORBELL, 1);
    native.futexWake(this.ctl, CTL_DOORBELL, 1);
  }

  /** Takes and clears every pending server port, calling `fn` for each. */
  drainServerPending(fn: (localPort: number) => void): void {
    for (let w = 0; w < PENDING_WORDS; w++) {
      let bits = Atomics.exchange(this.ctl, CTL_PENDING + w, 0);
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        fn(w * 32 + bit);
      }
    }
  }

  /** Wakes the guest side of vCPU v's event channel. */
  sendToVcpu(vcpu: number): void {
    const i = this.evtchnIndex(vcpu);
    Atomics.add(this.ctl, i, 1);
    Atomics.notify(this.ctl, i);
  }

  setRunState(vcpu: number, state: number): void {
    Atomics.store(this.ctl, this.runStateIndex(vcpu), state);
    this.wakeFlusher();
  }

  /** vCPU v has flushed its TLB for every flush up to `epoch`. */
  publishAck(vcpu: number, epoch: number): void {
    Atomics.store(this.ctl, this.ackedEpochIndex(vcpu), epoch);
    this.wakeFlusher();
  }

  private wakeFlusher(): void {
    Atomics.add(this.ctl, CTL_ACK_SEQ, 1);
    Atomics.notify(this.ctl, CTL_ACK_SEQ);
  }
}
