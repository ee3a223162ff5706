import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/telemetry/log.js';
import { REG, STATUS, F_VERSION_1, F_EVENT_IDX, VIRTIO_MMIO_MAGIC, bit } from '../../src/virtio/constants.js';
import type { DeviceContext, VirtioDevice } from '../../src/virtio/device.js';
import { GuestMemoryAccess } from '../../src/virtio/guest-memory.js';
import { VirtioMmio } from '../../src/virtio/mmio.js';
import { DriverQueue } from '../../src/guest/virtio-queue.js';
import { IOREQ_READ, IOREQ_WRITE, emptyIoreq } from '../../src/xen/abi/ioreq.js';
import type { IoAnswer } from '../../src/ioreq/server.js';

const BASE = 0x2000_0000;
const RAM = 1 << 20;

class EchoDevice implements VirtioDevice {
  readonly deviceId = 16;
  readonly features = bit(F_VERSION_1) | bit(F_EVENT_IDX);
  readonly queueMaxSizes = [16];
  ctx: DeviceContext | undefined;
  resets = 0;
  readConfig(offset: number): number { return offset === 0 ? 0xabcd : 0; }
  writeConfig(): void { /* read-only config */ }
  shmRegion(id: number) { return id === 1 ? { base: 0x1_0000_0000, length: 0x1000_0000 } : undefined; }
  activate(ctx: DeviceContext): void { this.ctx = ctx; }
  notify(q: number): void {
    const ctx = this.ctx;
    const queue = ctx?.queues[q];
    if (!ctx || !queue) return;
    for (let c = queue.pop(ctx.mem); c; c = queue.pop(ctx.mem)) queue.pushUsed(ctx.mem, c.head, 0);
    ctx.signalUsed(q);
  }
  reset(): void { this.resets++; this.ctx = undefined; }
}

function rig() {
  const bytes = new Uint8Array(new SharedArrayBuffer(RAM));
  const u16 = new Uint16Array(bytes.buffer);
  const mem = new GuestMemoryAccess({
    size: RAM,
    read: (g, into) => { if (g + into.length > RAM) throw new RangeError('oob'); into.set(bytes.subarray(g, g + into.length)); },
    write: (g, from) => { if (g + from.length > RAM) throw new RangeError('oob'); bytes.set(from, g); },
    load16: (g) => Atomics.load(u16, g >> 1),
    store16: (g, v) => { Atomics.store(u16, g >> 1, v); },
  });
  let irq = false;
  const dev = new EchoDevice();
  const t = new VirtioMmio('gpu', BASE, dev, mem, { set: (l) => { irq = l; } }, silentLogger());
  const rd = (off: number, size = 4): number => {
    const out: IoAnswer = { retry: false, lo: 0, hi: 0 };
    t.handle({ ...emptyIoreq(), addr: BASE + off, size, count: 1, dir: IOREQ_READ }, 0, out);
    return out.lo;
  };
  const wr = (off: number, v: number, size = 4): void => {
    t.handle({ ...emptyIoreq(), addr: BASE + off, size, count: 1, dir: IOREQ_WRITE, dataLo: v }, 0, { retry: false, lo: 0, hi: 0 });
  };
  return { bytes, t, dev, rd, wr, irq: () => irq };
}

function bringUp(r: ReturnType<typeof rig>, features = [0, 1]): DriverQueue {
  r.wr(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  r.wr(REG.DriverFeaturesSel, 0);
  r.wr(REG.DriverFeatures, features[0] ?? 0);
  r.wr(REG.DriverFeaturesSel, 1);
  r.wr(REG.DriverFeatures, features[1] ?? 0);
  r.wr(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
  const q = new DriverQueue(r.bytes, 0x10000, 16);
  r.wr(REG.QueueSel, 0);
  r.wr(REG.QueueNum, 16);
  r.wr(REG.QueueDescLow, q.layout.desc);
  r.wr(REG.QueueDriverLow, q.layout.avail);
  r.wr(REG.QueueDeviceLow, q.layout.used);
  r.wr(REG.QueueReady, 1);
  r.wr(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
  return q;
}

describe('virtio-mmio transport', () => {
  it('identifies itself and exposes the shared-memory region (all ones when absent)', () => {
    const r = rig();
    expect([r.rd(REG.MagicValue), r.rd(REG.Version), r.rd(REG.DeviceID)]).toEqual([VIRTIO_MMIO_MAGIC, 2, 16]);
    r.wr(REG.SHMSel, 1);
    expect([r.rd(REG.SHMBaseLow), r.rd(REG.SHMBaseHigh), r.rd(REG.SHMLenLow), r.rd(REG.SHMLenHigh)]).toEqual([0, 1, 0x1000_0000, 0]);
    r.wr(REG.SHMSel, 2);
    expect([r.rd(REG.SHMLenLow), r.rd(REG.SHMLenHigh)]).toEqual([0xffff_ffff, 0xffff_ffff]);
    expect(r.rd(REG.Config)).toBe(0xabcd);
  });

  it('runs a queue end to end: notify, used ring, interrupt, ACK', () => {
    const r = rig();
    const q = bringUp(r);
    expect(r.rd(REG.Status) & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
    const h = q.add(Uint8Array.of(1), 4);
    r.wr(REG.QueueNotify, 0);
    expect(q.takeUsed()).toEqual([{ head: h, len: 0 }]);
    expect(r.irq()).toBe(true);
    expect(r.rd(REG.InterruptStatus)).toBe(1);
    r.wr(REG.InterruptACK, 1);
    expect(r.irq()).toBe(false);
  });

  it('counts rises of the interrupt line, not completions while it is already high', () => {
    const r = rig();
    const q = bringUp(r);
    q.add(Uint8Array.of(1), 4);
    r.wr(REG.QueueNotify, 0);
    q.add(Uint8Array.of(2), 4);
    r.wr(REG.QueueNotify, 0); // not acknowledged yet: the line stays high, no new rise
    expect(q.takeUsed()).toHaveLength(2);
    expect(r.t.counters.interruptsRaised).toBe(1);
    expect(r.t.counters.interruptsLowered).toBe(0);
    r.wr(REG.InterruptACK, 1);
    expect(r.t.counters.interruptsLowered).toBe(1);
    q.add(Uint8Array.of(3), 4);
    r.wr(REG.QueueNotify, 0);
    expect(r.irq()).toBe(true);
    expect(r.t.counters.interruptsRaised).toBe(2);
  });

  it('with EVENT_IDX publishes avail_event, so a driver that kicks only when it asks (Linux\'s virtqueue_kick_prepare) keeps kicking', () => {
    const r = rig();
    const q = bringUp(r, [1 << 29, 1]);
    const u16 = new Uint16Array(r.bytes.buffer);
    const availEvent = (): number => u16[(q.layout.used + 4 + 8 * 16) >> 1] ?? 0;
    const needEvent = (event: number, next: number, old: number): boolean => ((next - event - 1) & 0xffff) < ((next - old) & 0xffff);
    let kicks = 0;
    for (let i = 0; i < 5; i++) {
      q.add(Uint8Array.of(i), 4);
      // The index only moves by one per add here: kick if the device's avail_event lies in (old, new].
      if (needEvent(availEvent(), i + 1, i)) {
        kicks++;
        r.wr(REG.QueueNotify, 0);
      }
      r.wr(REG.InterruptACK, 1);
    }
    expect(kicks).toBe(5);
    expect(q.takeUsed()).toHaveLength(5);
    expect(availEvent()).toBe(5);
  });

  it('refuses FEATURES_OK when the driver acknowledges a feature that was not offered, or lacks VERSION_1', () => {
    const r = rig();
    r.wr(REG.DriverFeaturesSel, 0);
    r.wr(REG.DriverFeatures, 1 << 3); // not offered
    r.wr(REG.DriverFeaturesSel, 1);
    r.wr(REG.DriverFeatures, 1);
    r.wr(REG.Status, STATUS.FEATURES_OK);
    expect(r.rd(REG.Status) & STATUS.FEATURES_OK).toBe(0);
    const r2 = rig();
    r2.wr(REG.Status, STATUS.FEATURES_OK); // no VERSION_1
    expect(r2.rd(REG.Status) & STATUS.FEATURES_OK).toBe(0);
  });

  it('refuses a queue layout outside guest RAM (QueueReady reads 0)', () => {
    const r = rig();
    r.wr(REG.QueueNum, 16);
    r.wr(REG.QueueDescLow, RAM - 16);
    r.wr(REG.QueueReady, 1);
    expect(r.rd(REG.QueueReady)).toBe(0);
  });

  it('goes to DEVICE_NEEDS_RESET on a corrupted ring, ignores the queue until reset, and recovers', () => {
    const r = rig();
    const q = bringUp(r);
    new DataView(r.bytes.buffer).setUint16(q.layout.avail + 2, 40, true); // avail idx jumps by 40
    r.wr(REG.QueueNotify, 0);
    expect(r.rd(REG.Status) & STATUS.DEVICE_NEEDS_RESET).toBe(STATUS.DEVICE_NEEDS_RESET);
    expect(r.rd(REG.InterruptStatus) & 2).toBe(2);
    expect(r.t.counters.needsReset).toBe(1);
    r.wr(REG.Status, 0);
    expect(r.rd(REG.Status)).toBe(0);
    expect(r.dev.resets).toBe(1);
    const q2 = bringUp(r);
    const h = q2.add(Uint8Array.of(1), 0);
    r.wr(REG.QueueNotify, 0);
    expect(q2.takeUsed()).toEqual([{ head: h, len: 0 }]);
  });

  it('logs and ignores unknown registers and unaligned or narrow register accesses', () => {
    const r = rig();
    expect(r.rd(0x0c4)).toBe(0);
    r.wr(0x0c4, 5);
    expect(r.t.counters.unknownRegisters).toBe(2);
    expect(r.rd(REG.MagicValue, 2)).toBe(0xffff_ffff);
    r.wr(REG.Status + 1, 1);
    expect(r.t.counters.badAccesses).toBe(2);
  });

  it('never throws and never leaves the register file inconsistent under random accesses (property)', () => {
    const access = fc.record({ off: fc.nat({ max: 0x1ff }), size: fc.constantFrom(1, 2, 4, 8), write: fc.boolean(), v: fc.nat({ max: 0xffff_ffff }) });
    fc.assert(
      fc.property(fc.array(access, { maxLength: 200 }), (ops) => {
        const r = rig();
        for (const o of ops) {
          if (o.write) r.wr(o.off, o.v, o.size);
          else r.rd(o.off, o.size);
        }
        expect(r.rd(REG.MagicValue)).toBe(VIRTIO_MMIO_MAGIC);
      }),
      { numRuns: Number(process.env.XVGPU_FUZZ_CASES ?? 500) },
    );
  });
});
