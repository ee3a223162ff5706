/**
 * The virtio-mmio (version 2) transport, served as one ioreq region. One `switch` decodes every
 * register; unknown offsets are logged once and ignored (reads return 0). Feature negotiation never
 * lets the driver acknowledge a feature the device did not offer; a layout that cannot work is
 * refused at QueueReady; a corrupt ring puts the device into DEVICE_NEEDS_RESET, after which it
 * ignores notifications until the driver resets it.
 */
import type { Ioreq } from '../xen/abi/ioreq.js';
import { IOREQ_READ } from '../xen/abi/ioreq.js';
import type { IoAnswer, IoRegion } from '../ioreq/server.js';
import { latencyHistogram, type Histogram } from '../telemetry/histogram.js';
import type { Logger } from '../telemetry/log.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, INT_CONFIG, INT_VRING, REG, STATUS, VENDOR_ID, VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_VERSION, bit } from './constants.js';
import type { DeviceContext, VirtioDevice } from './device.js';
import type { GuestMemoryAccess } from './guest-memory.js';
import { QueueError, SplitQueue } from './queue.js';

export interface InterruptLine {
  set(level: boolean): void;
}

/** A device wired to no interrupt: its driver polls InterruptStatus and the used rings. */
export const NO_INTERRUPT_LINE: InterruptLine = { set: () => undefined };

export interface TransportCounters {
  reads: number;
  writes: number;
  notifies: number;
  unknownRegisters: number;
  badAccesses: number;
  resets: number;
  needsReset: number;
  /** Times the interrupt line went from low to high (what an edge-sensitive PIRQ delivers). */
  interruptsRaised: number;
  /** Times it went from high to low (the driver acknowledged every pending cause, or a reset). */
  interruptsLowered: number;
}

const LOW = 0xffff_ffffn;

export class VirtioMmio implements IoRegion {
  readonly end: number;
  readonly counters: TransportCounters = { reads: 0, writes: 0, notifies: 0, unknownRegisters: 0, badAccesses: 0, resets: 0, needsReset: 0, interruptsRaised: 0, interruptsLowered: 0 };
  /**
   * Register ioreqs: slot taken → answer published, filed by the server. The same exit and wake
   * chain as a BAR fault with a handler that only decodes a register: the baseline a fault's
   * service time is read against on real Xen (xvgpu bench --xen).
   */
  readonly serviceNs: Histogram = latencyHistogram();
  private line = false;
  private status = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private activatedFeatures: bigint | undefined;
  private queueSel = 0;
  private shmSel = 0;
  private readonly queues: SplitQueue[];
  private readonly rlog: RateLimitedLog;
  private readonly warnedOffsets = new Set<number>();

  constructor(
    readonly name: string,
    readonly start: number,
    private readonly device: VirtioDevice,
    private readonly mem: GuestMemoryAccess,
    private readonly irq: InterruptLine,
    private readonly log: Logger,
  ) {
    this.end = start + VIRTIO_MMIO_SIZE;
    this.queues = device.queueMaxSizes.map((n) => new SplitQueue(n));
    this.rlog = new RateLimitedLog(log);
  }

  get deviceStatus(): number {
    return this.status;
  }

  /** The interrupt line's level now (high: a cause the driver has not acknowledged). */
  get lineHigh(): boolean {
    return this.line;
  }

  /** The features the driver had acknowledged at its last DRIVER_OK (undefined: never activated). */
  get negotiatedFeatures(): bigint | undefined {
    return this.activatedFeatures;
  }

  handle(req: Ioreq, _vcpu: number, out: IoAnswer): void {
    const off = req.addr - this.start;
    if (req.dir === IOREQ_READ) {
      this.counters.reads++;
      out.lo = this.read(off, req.size) >>> 0;
      out.hi = 0;
    } else {
      this.counters.writes++;
      this.write(off, req.size, req.dataLo >>> 0);
    }
  }

  // --- register decode ---------------------------------------------------------------------------

  private read(off: number, size: number): number {
    if (off >= REG.Config) return this.device.readConfig(off - REG.Config, size);
    if (!this.wordAccess(off, size)) return 0xffff_ffff;
    const q = this.queues[this.queueSel];
    switch (off) {
      case REG.MagicValue: return VIRTIO_MMIO_MAGIC;
      case REG.Version: return VIRTIO_MMIO_VERSION;
      case REG.DeviceID: return this.device.deviceId;
      case REG.VendorID: return VENDOR_ID;
      case REG.DeviceFeatures: return this.featureWord(this.device.features, this.deviceFeaturesSel);
      case REG.QueueNumMax: return q ? q.maxSize : 0;
      case REG.QueueReady: return q?.ready === true ? 1 : 0;
      case REG.InterruptStatus: return this.interruptStatus;
      case REG.Status: return this.status;
      case REG.SHMLenLow: return this.shmWord('length', false);
      case REG.SHMLenHigh: return this.shmWord('length', true);
      case REG.SHMBaseLow: return this.shmWord('base', false);
      case REG.SHMBaseHigh: return this.shmWord('base', true);
      case REG.ConfigGeneration: return this.configGeneration;
      default: return this.unknown(off, 'read');
    }
  }

  private write(off: number, size: number, v: number): void {
    if (off >= REG.Config) {
      this.device.writeConfig(off - REG.Config, size, v);
      return;
    }
    if (!this.wordAccess(off, size)) return;
    const q = this.queues[this.queueSel];
    switch (off) {
      case REG.DeviceFeaturesSel: this.deviceFeaturesSel = v; return;
      case REG.DriverFeatures: this.writeDriverFeatures(v); return;
      case REG.DriverFeaturesSel: this.driverFeaturesSel = v; return;
      case REG.QueueSel: this.queueSel = v; return;
      case REG.QueueNum: if (q && !q.ready) q.size = v; return;
      case REG.QueueReady: this.setQueueReady(q, v); return;
      case REG.QueueNotify: this.queueNotify(v); return;
      case REG.InterruptACK: this.ackInterrupt(v); return;
      case REG.Status: this.writeStatus(v); return;
      case REG.QueueDescLow: this.queueAddr(q, 'descAddr', v, false); return;
      case REG.QueueDescHigh: this.queueAddr(q, 'descAddr', v, true); return;
      case REG.QueueDriverLow: this.queueAddr(q, 'availAddr', v, false); return;
      case REG.QueueDriverHigh: this.queueAddr(q, 'availAddr', v, true); return;
      case REG.QueueDeviceLow: this.queueAddr(q, 'usedAddr', v, false); return;
      case REG.QueueDeviceHigh: this.queueAddr(q, 'usedAddr', v, true); return;
      case REG.SHMSel: this.shmSel = v; return;
      default: this.unknown(off, 'write');
    }
  }

  // --- helpers -----------------------------------------------------------------------------------

  /** Registers below the config space are 32-bit and aligned; anything else is refused. */
  private wordAccess(off: number, size: number): boolean {
    if (size === 4 && off % 4 === 0) return true;
    this.counters.badAccesses++;
    this.rlog.warn('mmio-size', { off, size }, 'virtio-mmio: register access that is not an aligned 32-bit access');
    return false;
  }

  private unknown(off: number, what: string): number {
    this.counters.unknownRegisters++;
    if (!this.warnedOffsets.has(off)) {
      this.warnedOffsets.add(off);
      this.log.warn({ off: `0x${off.toString(16)}`, what }, 'virtio-mmio: unknown register ignored');
    }
    return 0;
  }

  private featureWord(f: bigint, sel: number): number {
    if (sel > 1) return 0;
    return Number((f >> BigInt(32 * sel)) & LOW);
  }

  private writeDriverFeatures(v: number): void {
    if ((this.status & STATUS.FEATURES_OK) !== 0 || this.driverFeaturesSel > 1) return; // too late, or no such word
    const shift = BigInt(32 * this.driverFeaturesSel);
    this.driverFeatures = (this.driverFeatures & ~(LOW << shift)) | (BigInt(v >>> 0) << shift);
  }

  private shmWord(field: 'length' | 'base', high: boolean): number {
    const r = this.device.shmRegion(this.shmSel);
    if (!r) return 0xffff_ffff; // a missing region reads all ones
    const v = BigInt(r[field]);
    return Number(high ? (v >> 32n) & LOW : v & LOW);
  }

  private queueAddr(q: SplitQueue | undefined, field: 'descAddr' | 'availAddr' | 'usedAddr', v: number, high: boolean): void {
    if (!q || q.ready) return; // addresses are fixed once the queue is live
    const cur = BigInt(q[field]);
    const next = high ? (cur & LOW) | (BigInt(v >>> 0) << 32n) : (cur & ~LOW) | BigInt(v >>> 0);
    q[field] = next > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(next);
  }

  private setQueueReady(q: SplitQueue | undefined, v: number): void {
    if (!q) return;
    if (v === 0) {
      q.ready = false;
      return;
    }
    try {
      q.validateLayout(this.mem);
      q.ready = true;
    } catch (e) {
      // Refused: the driver reads QueueReady back as 0.
      this.rlog.warn('queue-layout', { queue: this.queueSel, err: String(e) }, 'virtio-mmio: queue layout refused');
    }
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset();
      return;
    }
    let next = v & 0xff;
    if ((next & STATUS.FEATURES_OK) !== 0 && (this.status & STATUS.FEATURES_OK) === 0 && !this.featuresAcceptable()) {
      next &= ~STATUS.FEATURES_OK; // the driver reads FEATURES_OK back as clear and gives up
    }
    const becomesOk = (next & STATUS.DRIVER_OK) !== 0 && (this.status & STATUS.DRIVER_OK) === 0;
    this.status = next | (this.status & STATUS.DEVICE_NEEDS_RESET);
    if (becomesOk) this.activate();
  }

  /** Firecracker's rule, avail & acked == acked, plus VERSION_1, which a modern driver must take. */
  private featuresAcceptable(): boolean {
    return (this.driverFeatures & ~this.device.features) === 0n && (this.driverFeatures & bit(F_VERSION_1)) !== 0n;
  }

  private activate(): void {
    if ((this.status & STATUS.FEATURES_OK) === 0) {
      this.fail('DRIVER_OK without FEATURES_OK');
      return;
    }
    for (const q of this.queues) {
      q.eventIdx = (this.driverFeatures & bit(F_EVENT_IDX)) !== 0n;
      q.indirect = (this.driverFeatures & bit(F_INDIRECT_DESC)) !== 0n;
    }
    const ctx: DeviceContext = {
      queues: this.queues,
      mem: this.mem,
      signalUsed: (qi) => { this.signalUsed(qi); },
      fail: (reason) => { this.fail(reason); },
    };
    this.activatedFeatures = this.driverFeatures;
    this.device.activate(ctx, this.driverFeatures);
  }

  private queueNotify(v: number): void {
    this.counters.notifies++;
    const live = (this.status & STATUS.DRIVER_OK) !== 0 && (this.status & STATUS.DEVICE_NEEDS_RESET) === 0;
    if (!live || this.queues[v]?.ready !== true) return; // spurious notifications are tolerated
    try {
      this.device.notify(v);
    } catch (e) {
      if (e instanceof QueueError || (e instanceof Error && e.name === 'GuestMemoryError')) this.fail(e.message);
      else throw e;
    }
  }

  private signalUsed(q: number): void {
    const queue = this.queues[q];
    if (!queue || !queue.needsInterrupt(this.mem)) return;
    this.interruptStatus |= INT_VRING;
    this.setLine(true);
  }

  private ackInterrupt(v: number): void {
    this.interruptStatus &= ~v;
    if (this.interruptStatus === 0) this.setLine(false);
  }

  /** DEVICE_NEEDS_RESET: stop touching the rings and tell the driver with a config interrupt. */
  private fail(reason: string): void {
    this.counters.needsReset++;
    this.rlog.warn('needs-reset', { reason }, 'virtio-mmio: device needs reset');
    this.status |= STATUS.DEVICE_NEEDS_RESET;
    this.interruptStatus |= INT_CONFIG;
    this.configGeneration++;
    this.setLine(true);
  }

  private reset(): void {
    this.counters.resets++;
    this.device.reset();
    this.status = 0;
    this.interruptStatus = 0;
    this.driverFeatures = 0n;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = this.shmSel = 0;
    for (const q of this.queues) q.reset();
    this.setLine(false);
  }

  /** The line is level-triggered: every change is passed on; a rise is counted. */
  private setLine(level: boolean): void {
    if (level && !this.line) this.counters.interruptsRaised++;
    if (!level && this.line) this.counters.interruptsLowered++;
    this.line = level;
    this.irq.set(level);
  }
}
