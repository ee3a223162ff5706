import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BAD_IOREQ_NAMES, BadIoreq, allOnes, validateIoreq } from '../../src/ioreq/validate.js';
import { IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG, IOREQ_TYPE_PIO, IOREQ_WRITE, decodeIoreq, type Ioreq } from '../../src/xen/abi/ioreq.js';
import { repExtent } from '../../src/ioreq/rep.js';
import { request } from '../support/sim.js';

/** Guest RAM of the tests: 1 MiB. */
const RAM = 1 << 20;
const check = (r: Ioreq): BadIoreq => validateIoreq(r, RAM);
const ptr = (gpa: number): Partial<Ioreq> => ({ dataIsPtr: true, dataLo: gpa % 2 ** 32, dataHi: Math.floor(gpa / 2 ** 32) });

describe('validateIoreq', () => {
  it('accepts a plain MMIO access of every legal size', () => {
    for (const size of [1, 2, 4, 8]) expect(check(request({ addr: 0x1000, size }))).toBe(BadIoreq.None);
  });

  it.each([
    ['size 3', { size: 3 }, BadIoreq.Size],
    ['size 16', { size: 16 }, BadIoreq.Size],
    ['count 0', { count: 0 }, BadIoreq.Count],
    ['count beyond a page', { count: 513 }, BadIoreq.Count],
    ['a rep read into one register (no emulator path does that)', { count: 2, dir: IOREQ_READ }, BadIoreq.RepRead],
    ['data_is_ptr past the end of RAM', { count: 8, ...ptr(RAM - 32) }, BadIoreq.PtrOutsideRam],
    ['data_is_ptr below RAM (df)', { count: 8, df: true, addr: 0x1ff8, ...ptr(8) }, BadIoreq.PtrOutsideRam],
    ['data_is_ptr at 2^63', { ...ptr(2 ** 63) }, BadIoreq.PtrOutsideRam],
    ['data_is_ptr rep crossing a RAM page', { count: 4, ...ptr(0x2ff0) }, BadIoreq.PtrCrossesPage],
    ['count * size beyond a page (u32 count)', { count: 0xffff_ffff, ...ptr(0) }, BadIoreq.Count],
    ['PIO', { type: IOREQ_TYPE_PIO }, BadIoreq.Pio],
    ['PCI config', { type: IOREQ_TYPE_PCI_CONFIG }, BadIoreq.PciConfig],
    ['unknown type', { type: 5 }, BadIoreq.Type],
    ['crossing a page', { addr: 0x1ffc, size: 8 }, BadIoreq.CrossesPage],
    ['rep crossing a page', { addr: 0x1f00, size: 8, count: 64 }, BadIoreq.CrossesPage],
    ['rep down below the page (df)', { addr: 0x1008, size: 8, count: 4, df: true }, BadIoreq.CrossesPage],
    ['address beyond 52 bits', { addr: 2 ** 52 }, BadIoreq.Address],
  ])('refuses %s', (_name, over, reason) => {
    expect(check(request({ addr: 0x1000, ...over }))).toBe(reason);
  });

  it('accepts a rep access that stays inside its page, in either direction', () => {
    expect(check(request({ addr: 0x1000, size: 8, count: 512 }))).toBe(BadIoreq.None);
    expect(check(request({ addr: 0x1ff8, size: 8, count: 512, df: true }))).toBe(BadIoreq.None);
  });

  it('accepts what Xen sends for rep MOVS and rep STOS (count > 1, data_is_ptr, df)', () => {
    // rep movsq RAM -> BAR, one page forward; and backward with df (addr names the highest element).
    expect(check(request({ addr: 0x1000, size: 8, count: 512, dir: IOREQ_WRITE, ...ptr(0x4000) }))).toBe(BadIoreq.None);
    expect(check(request({ addr: 0x1ff8, size: 8, count: 511, df: true, dir: IOREQ_READ, ...ptr(0x4ff0) }))).toBe(BadIoreq.None);
    // A single element straddling two RAM pages (hvmemul_do_io_addr's count == 0 case).
    expect(check(request({ addr: 0x1000, size: 8, count: 1, ...ptr(0x4ffc) }))).toBe(BadIoreq.None);
    // rep stosd: the same value 1024 times.
    expect(check(request({ addr: 0x1000, size: 4, count: 1024, dir: IOREQ_WRITE, dataLo: 0xabcd }))).toBe(BadIoreq.None);
  });

  it('the extent of a request follows df on both sides (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 4, 8), fc.integer({ min: 1, max: 64 }), fc.boolean(), fc.integer({ min: 0, max: 4096 }), (size, count, df, ram) => {
        const r = request({ addr: 0x10_0000 + 0x800, size, count, df, ...ptr(0x8_0000 + ram) });
        const e = repExtent(r);
        expect(e.bytes).toBe(size * count);
        // The named element is the first (df = 0) or the last (df = 1) element of each block.
        expect(df ? e.mmioFirst + e.bytes - size : e.mmioFirst).toBe(r.addr);
        expect(df ? e.ramFirst + e.bytes - size : e.ramFirst).toBe(0x8_0000 + ram);
      }),
    );
  });

  it('never throws and always names its verdict, whatever the 32 bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        const r = decodeIoreq(b);
        const v = validateIoreq(r, RAM);
        expect(BAD_IOREQ_NAMES[v]).toBeDefined();
        if (v === BadIoreq.None) {
          // Whatever passes is a COPY of a legal size whose span stays in one page.
          expect(r.type).toBe(IOREQ_TYPE_COPY);
          expect([1, 2, 4, 8]).toContain(r.size);
          const first = r.df ? r.addr - (r.count - 1) * r.size : r.addr;
          expect(Math.floor(first / 4096)).toBe(Math.floor((first + r.count * r.size - 1) / 4096));
          expect(r.count * r.size).toBeLessThanOrEqual(4096);
          if (r.count > 1 && !r.dataIsPtr) expect(r.dir).toBe(IOREQ_WRITE);
          if (r.dataIsPtr) {
            const e = repExtent(r);
            expect(e.ramFirst).toBeGreaterThanOrEqual(0);
            expect(e.ramFirst + e.bytes).toBeLessThanOrEqual(RAM);
            if (r.count > 1) expect(Math.floor(e.ramFirst / 4096)).toBe(Math.floor((e.ramFirst + e.bytes - 1) / 4096));
          }
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('structured hostile string requests: whatever passes stays in one MMIO page and inside RAM (property)', () => {
    const near = (edge: number): fc.Arbitrary<number> => fc.integer({ min: -16, max: 16 }).map((d) => Math.max(0, edge + d));
    const arb = fc.record({
      addr: fc.oneof(near(0x1000), near(0x1ff8), fc.integer({ min: 0, max: 2 ** 40 }), fc.constant(2 ** 52 - 8)),
      size: fc.constantFrom(0, 1, 2, 3, 4, 8, 16),
      count: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constant(0xffff_ffff), fc.constant(0x2000_0001)),
      df: fc.boolean(),
      dir: fc.constantFrom(IOREQ_READ, IOREQ_WRITE),
      gpa: fc.oneof(near(0), near(RAM), near(0x3000), fc.constant(2 ** 53), fc.integer({ min: 0, max: 2 ** 52 })),
      dataIsPtr: fc.boolean(),
    });
    let accepted = 0;
    fc.assert(
      fc.property(arb, (a) => {
        const r = request({ addr: a.addr, size: a.size, count: a.count, df: a.df, dir: a.dir, ...(a.dataIsPtr ? ptr(a.gpa) : {}) });
        const v = check(r);
        expect(BAD_IOREQ_NAMES[v]).toBeDefined();
        if (v !== BadIoreq.None) return;
        accepted++;
        const e = repExtent(r);
        expect(e.bytes).toBeLessThanOrEqual(4096);
        expect(Math.floor(e.mmioFirst / 4096)).toBe(Math.floor((e.mmioFirst + e.bytes - 1) / 4096));
        if (r.dataIsPtr) expect(e.ramFirst >= 0 && e.ramFirst + e.bytes <= RAM).toBe(true);
      }),
      { numRuns: 20_000 },
    );
    expect(accepted).toBeGreaterThan(100); // the generator reaches the accepting side too
  });

  it('reads of refused MMIO return all ones in the access size', () => {
    expect(allOnes(1)).toEqual({ lo: 0xff, hi: 0 });
    expect(allOnes(2)).toEqual({ lo: 0xffff, hi: 0 });
    expect(allOnes(4)).toEqual({ lo: 0xffff_ffff, hi: 0 });
    expect(allOnes(8)).toEqual({ lo: 0xffff_ffff, hi: 0xffff_ffff });
  });
});
