import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  IOREQ_SIZE,
  IoreqPage,
  STATE_IOREQ_INPROCESS,
  STATE_IOREQ_READY,
  decodeIoreq,
  encodeIoreq,
  type Ioreq,
} from '../../../src/xen/abi/ioreq.js';

const ioreqArb: fc.Arbitrary<Ioreq> = fc.record({
  addr: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  dataLo: fc.nat({ max: 0xffff_ffff }),
  dataHi: fc.nat({ max: 0xffff_ffff }),
  count: fc.nat({ max: 0xffff_ffff }),
  size: fc.nat({ max: 0xffff_ffff }),
  vpEport: fc.nat({ max: 0xffff_ffff }),
  state: fc.nat({ max: 15 }),
  dataIsPtr: fc.boolean(),
  dir: fc.nat({ max: 1 }),
  df: fc.boolean(),
  type: fc.nat({ max: 255 }),
  retryOffered: fc.boolean(),
});

describe('ioreq codec', () => {
  it('places every field at its ABI offset', () => {
    const b = encodeIoreq({ addr: 0x1_2345_6789, dataLo: 0xdeadbeef, dataHi: 0x01020304, count: 7, size: 8, vpEport: 33, state: 3, dataIsPtr: true, dir: 1, df: true, type: 8 });
    const v = new DataView(b.buffer);
    expect(b.byteLength).toBe(32);
    expect(v.getBigUint64(0, true)).toBe(0x1_2345_6789n);
    expect(v.getUint32(8, true)).toBe(0xdeadbeef);
    expect(v.getUint32(12, true)).toBe(0x01020304);
    expect(v.getUint32(16, true)).toBe(7);
    expect(v.getUint32(20, true)).toBe(8);
    expect(v.getUint32(24, true)).toBe(33);
    expect(v.getUint16(28, true)).toBe(0);
    expect(b[30]).toBe(0x03 | 0x10 | 0x20 | 0x40);
    expect(b[31]).toBe(8);
  });

  it('carries the patched Xen\'s retry offer in bit 7 of byte 30 (stock Xen\'s _pad1, always 0 there)', () => {
    const base = { addr: 0, dataLo: 0, dataHi: 0, count: 1, size: 4, vpEport: 0, state: 1, dataIsPtr: false, dir: 1, df: false, type: 1 };
    expect(encodeIoreq({ ...base, retryOffered: true })[30]).toBe(0x01 | 0x20 | 0x80);
    const bytes = encodeIoreq({ ...base, retryOffered: false });
    expect(decodeIoreq(bytes).retryOffered).toBe(false);
    bytes[30] = (bytes[30] ?? 0) | 0x80;
    expect(decodeIoreq(bytes)).toMatchObject({ retryOffered: true, state: 1, dir: 1, dataIsPtr: false, df: false });
  });

  it('round-trips any request (property)', () => {
    fc.assert(fc.property(ioreqArb, (r) => { expect(decodeIoreq(encodeIoreq(r))).toEqual(r); }));
  });

  it('decodes any 32 bytes and re-encodes them, minus the padding (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const r = decodeIoreq(bytes);
        // Addresses at or above 2^53 cannot be represented exactly; the validator refuses them, and
        // the encoder refuses to write them back rather than round them.
        if (!Number.isSafeInteger(r.addr)) {
          expect(() => encodeIoreq(r)).toThrow(RangeError);
          return;
        }
        const again = encodeIoreq(r);
        const want = Uint8Array.from(bytes);
        want[28] = 0;
        want[29] = 0;
        expect(Array.from(again)).toEqual(Array.from(want));
      }),
    );
  });

  it('refuses buffers of the wrong size and slots out of range', () => {
    expect(() => decodeIoreq(new Uint8Array(31))).toThrow(RangeError);
    const page = new IoreqPage(new ArrayBuffer(4096), 0, 2);
    expect(() => page.loadState(2)).toThrow(RangeError);
    expect(() => page.loadState(-1)).toThrow(RangeError);
    expect(() => new IoreqPage(new ArrayBuffer(64), 0, 3)).toThrow(RangeError);
    expect(() => new IoreqPage(new ArrayBuffer(4096), 0, 129)).toThrow(RangeError);
  });

  it('changes state only from the expected state, keeping the other control bits', () => {
    const page = new IoreqPage(new SharedArrayBuffer(IOREQ_SIZE * 2), 0, 2);
    page.post(1, { addr: 4096, dataLo: 1, dataHi: 2, count: 1, size: 4, vpEport: 9, state: STATE_IOREQ_READY, dataIsPtr: false, dir: 1, df: true, type: 1 });
    expect(page.transitionState(1, STATE_IOREQ_INPROCESS, 3)).toBe(false);
    expect(page.transitionState(1, STATE_IOREQ_READY, STATE_IOREQ_INPROCESS)).toBe(true);
    expect(page.loadState(1)).toBe(STATE_IOREQ_INPROCESS);
    const r = page.read(1, decodeIoreq(new Uint8Array(32)));
    expect([r.dir, r.df, r.type, r.vpEport, r.addr]).toEqual([1, true, 1, 9, 4096]);
    expect(page.loadState(0)).toBe(0);
  });

  it('refuses addresses that are not u64-safe integers', () => {
    const page = new IoreqPage(new ArrayBuffer(32), 0, 1);
    const base = decodeIoreq(new Uint8Array(32));
    expect(() => { page.post(0, { ...base, addr: -1 }); }).toThrow(RangeError);
    expect(() => { page.post(0, { ...base, addr: 1.5 }); }).toThrow(RangeError);
  });
});
