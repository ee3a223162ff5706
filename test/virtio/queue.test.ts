import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE } from '../../src/virtio/constants.js';
import { GuestMemoryAccess, GuestMemoryError } from '../../src/virtio/guest-memory.js';
import { QueueError, SplitQueue, readChain, writeChain } from '../../src/virtio/queue.js';
import { DriverQueue } from '../../src/guest/virtio-queue.js';
import type { GuestMemory } from '../../src/platform/ports.js';

const RAM = 1 << 20;

function ram(): { bytes: Uint8Array; mem: GuestMemoryAccess } {
  const bytes = new Uint8Array(new SharedArrayBuffer(RAM));
  const u16 = new Uint16Array(bytes.buffer);
  const check = (gpa: number, len: number): void => {
    if (gpa < 0 || gpa + len > RAM) throw new RangeError('outside RAM');
  };
  const port: GuestMemory = {
    size: RAM,
    read: (gpa, into) => { check(gpa, into.length); into.set(bytes.subarray(gpa, gpa + into.length)); },
    write: (gpa, from) => { check(gpa, from.length); bytes.set(from, gpa); },
    load16: (gpa) => { check(gpa, 2); return Atomics.load(u16, gpa >> 1); },
    store16: (gpa, v) => { check(gpa, 2); Atomics.store(u16, gpa >> 1, v); },
  };
  return { bytes, mem: new GuestMemoryAccess(port) };
}

function deviceQueue(d: DriverQueue, size: number): SplitQueue {
  const q = new SplitQueue(size);
  q.size = size;
  q.descAddr = d.layout.desc;
  q.availAddr = d.layout.avail;
  q.usedAddr = d.layout.used;
  return q;
}

describe('SplitQueue with a well-behaved driver', () => {
  it('pops chains, reads requests, writes responses and returns them through the used ring', () => {
    const { bytes, mem } = ram();
    const drv = new DriverQueue(bytes, 0x1000, 16);
    const q = deviceQueue(drv, 16);
    q.validateLayout(mem);
    const h = drv.add(Uint8Array.from([1, 2, 3, 4]), 8);
    const chain = q.pop(mem);
    expect(chain?.head).toBe(h);
    expect(chain?.readBytes).toBe(4);
    expect(chain?.writeBytes).toBe(8);
    if (!chain) throw new Error('no chain');
    expect(Array.from(readChain(mem, chain, 64))).toEqual([1, 2, 3, 4]);
    expect(writeChain(mem, chain, Uint8Array.from([9, 9, 9]))).toBe(3);
    q.pushUsed(mem, chain.head, 3);
    expect(q.needsInterrupt(mem)).toBe(true);
    expect(q.pop(mem)).toBeNull();
    const used = drv.takeUsed();
    expect(used).toEqual([{ head: h, len: 3 }]);
    expect(Array.from(drv.response(h, 4, 3))).toEqual([9, 9, 9]);
  });

  it('wraps its indices past 65535', () => {
    const { bytes, mem } = ram();
    const drv = new DriverQueue(bytes, 0, 8);
    const q = deviceQueue(drv, 8);
    for (let i = 0; i < 70_000; i++) {
      const h = drv.add(Uint8Array.of(i & 0xff), 1);
      const c = q.pop(mem);
      expect(c?.head).toBe(h);
      q.pushUsed(mem, h, 0);
      drv.takeUsed();
      drv.response(h, 1, 0);
    }
  });
});

describe('SplitQueue against a hostile driver', () => {
  function raw(): { mem: GuestMemoryAccess; q: SplitQueue; v: DataView } {
    const { bytes, mem } = ram();
    const q = new SplitQueue(8);
    q.size = 8;
    q.descAddr = 0x1000;
    q.availAddr = 0x2000;
    q.usedAddr = 0x3000;
    q.indirect = true;
    return { mem, q, v: new DataView(bytes.buffer) };
  }
  const desc = (v: DataView, base: number, i: number, addr: number, len: number, flags: number, next: number): void => {
    v.setBigUint64(base + 16 * i, BigInt(addr), true);
    v.setUint32(base + 16 * i + 8, len, true);
    v.setUint16(base + 16 * i + 12, flags, true);
    v.setUint16(base + 16 * i + 14, next, true);
  };
  const post = (v: DataView, head: number, idx = 1): void => {
    v.setUint16(0x2004, head, true);
    v.setUint16(0x2002, idx, true);
  };

  it.each([
    ['a loop', (v: DataView) => { desc(v, 0x1000, 0, 0x5000, 4, DESC_F_NEXT, 1); desc(v, 0x1000, 1, 0x5000, 4, DESC_F_NEXT, 0); post(v, 0); }, /loops/],
    ['a head beyond the queue', (v: DataView) => { post(v, 9); }, /head 9/],
    ['next beyond the table', (v: DataView) => { desc(v, 0x1000, 0, 0x5000, 4, DESC_F_NEXT, 8); post(v, 0); }, /next 8/],
    ['a buffer outside RAM', (v: DataView) => { desc(v, 0x1000, 0, RAM - 2, 4, 0, 0); post(v, 0); }, /outside guest RAM/],
    ['a readable after a writable', (v: DataView) => { desc(v, 0x1000, 0, 0x5000, 4, DESC_F_WRITE | DESC_F_NEXT, 1); desc(v, 0x1000, 1, 0x5000, 4, 0, 0); post(v, 0); }, /readable descriptor after/],
    ['an avail index far ahead', (v: DataView) => { post(v, 0, 100); }, /moved by 100/],
    ['a nested indirect table', (v: DataView) => { desc(v, 0x1000, 0, 0x6000, 16, DESC_F_INDIRECT, 0); desc(v, 0x6000, 0, 0x7000, 16, DESC_F_INDIRECT, 0); post(v, 0); }, /inside an indirect/],
    ['an indirect table of bad length', (v: DataView) => { desc(v, 0x1000, 0, 0x6000, 15, DESC_F_INDIRECT, 0); post(v, 0); }, /indirect table length/],
    ['indirect with NEXT', (v: DataView) => { desc(v, 0x1000, 0, 0x6000, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1); post(v, 0); }, /with NEXT/],
    ['a huge chain', (v: DataView) => { desc(v, 0x1000, 0, 0, 2 ** 31, 0, 0); post(v, 0); }, /outside guest RAM|more than/],
  ])('refuses %s with a QueueError', (_n, setup, msg) => {
    const { mem, q, v } = raw();
    setup(v);
    let err: unknown;
    try {
      q.pop(mem);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QueueError);
    expect((err as Error).message).toMatch(msg);
  });

  it('follows an indirect table when negotiated, and refuses it otherwise', () => {
    const { mem, q, v } = raw();
    desc(v, 0x1000, 0, 0x6000, 32, DESC_F_INDIRECT, 0);
    desc(v, 0x6000, 0, 0x5000, 4, DESC_F_NEXT, 1);
    desc(v, 0x6000, 1, 0x5100, 8, DESC_F_WRITE, 0);
    post(v, 0);
    expect(q.pop(mem)).toMatchObject({ readBytes: 4, writeBytes: 8 });
    const r = raw();
    r.q.indirect = false;
    desc(r.v, 0x1000, 0, 0x6000, 32, DESC_F_INDIRECT, 0);
    post(r.v, 0);
    expect(() => r.q.pop(r.mem)).toThrow(/without VIRTIO_F_INDIRECT_DESC/);
  });

  it('refuses layouts that do not fit or are misaligned', () => {
    const { mem, q } = raw();
    q.size = 6;
    expect(() => { q.validateLayout(mem); }).toThrow(/power of two/);
    q.size = 8;
    q.descAddr = 0x1001;
    expect(() => { q.validateLayout(mem); }).toThrow(/aligned/);
    q.descAddr = RAM - 16;
    expect(() => { q.validateLayout(mem); }).toThrow(/outside guest RAM/);
  });

  it('terminates with a chain or a QueueError whatever the ring contains (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 256, maxLength: 256 }), fc.nat({ max: 0xffff }), fc.boolean(), (descs, availIdx, indirect) => {
        const { mem, q, v } = raw();
        q.indirect = indirect;
        for (let i = 0; i < 128; i++) v.setUint8(0x1000 + i, descs[i] ?? 0);
        for (let i = 0; i < 8; i++) v.setUint16(0x2004 + 2 * i, (descs[128 + i] ?? 0) % 10, true);
        // Indirect tables, if followed, land in RAM we also fill.
        for (let i = 0; i < 128; i++) v.setUint8(0x6000 + i, descs[128 + i] ?? 0);
        v.setUint16(0x2002, availIdx, true);
        try {
          for (let k = 0; k < 10; k++) {
            const c = q.pop(mem);
            if (!c) break;
            expect(c.readBytes + c.writeBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
          }
        } catch (e) {
          expect(e instanceof QueueError || e instanceof GuestMemoryError).toBe(true);
        }
      }),
      { numRuns: Number(process.env.XVGPU_FUZZ_CASES ?? 2000) },
    );
  });
});
