import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BAD_IOREQ_NAMES, BadIoreq, allOnes, validateIoreq } from '../../src/ioreq/validate.js';
import { IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG, IOREQ_TYPE_PIO, decodeIoreq } from '../../src/xen/abi/ioreq.js';
import { request } from '../support/sim.js';

describe('validateIoreq', () => {
  it('accepts a plain MMIO access of every legal size', () => {
    for (const size of [1, 2, 4, 8]) expect(validateIoreq(request({ addr: 0x1000, size }))).toBe(BadIoreq.None);
  });

  it.each([
    ['size 3', { size: 3 }, BadIoreq.Size],
    ['size 16', { size: 16 }, BadIoreq.Size],
    ['count 0', { count: 0 }, BadIoreq.Count],
    ['count beyond a page', { count: 513 }, BadIoreq.Count],
    ['data_is_ptr', { dataIsPtr: true }, BadIoreq.DataIsPtr],
    ['PIO', { type: IOREQ_TYPE_PIO }, BadIoreq.Pio],
    ['PCI config', { type: IOREQ_TYPE_PCI_CONFIG }, BadIoreq.PciConfig],
    ['unknown type', { type: 5 }, BadIoreq.Type],
    ['crossing a page', { addr: 0x1ffc, size: 8 }, BadIoreq.CrossesPage],
    ['rep crossing a page', { addr: 0x1f00, size: 8, count: 64 }, BadIoreq.CrossesPage],
    ['rep down below the page (df)', { addr: 0x1008, size: 8, count: 4, df: true }, BadIoreq.CrossesPage],
    ['address beyond 52 bits', { addr: 2 ** 52 }, BadIoreq.Address],
  ])('refuses %s', (_name, over, reason) => {
    expect(validateIoreq(request({ addr: 0x1000, ...over }))).toBe(reason);
  });

  it('accepts a rep access that stays inside its page, in either direction', () => {
    expect(validateIoreq(request({ addr: 0x1000, size: 8, count: 512 }))).toBe(BadIoreq.None);
    expect(validateIoreq(request({ addr: 0x1ff8, size: 8, count: 512, df: true }))).toBe(BadIoreq.None);
  });

  it('never throws and always names its verdict, whatever the 32 bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        const r = decodeIoreq(b);
        const v = validateIoreq(r);
        expect(BAD_IOREQ_NAMES[v]).toBeDefined();
        if (v === BadIoreq.None) {
          // Whatever passes is a COPY of a legal size whose span stays in one page.
          expect(r.type).toBe(IOREQ_TYPE_COPY);
          expect([1, 2, 4, 8]).toContain(r.size);
          const first = r.df ? r.addr - (r.count - 1) * r.size : r.addr;
          expect(Math.floor(first / 4096)).toBe(Math.floor((first + r.count * r.size - 1) / 4096));
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('reads of refused MMIO return all ones in the access size', () => {
    expect(allOnes(1)).toEqual({ lo: 0xff, hi: 0 });
    expect(allOnes(2)).toEqual({ lo: 0xffff, hi: 0 });
    expect(allOnes(4)).toEqual({ lo: 0xffff_ffff, hi: 0 });
    expect(allOnes(8)).toEqual({ lo: 0xffff_ffff, hi: 0xffff_ffff });
  });
});
