import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BarWindow, PlacementError } from '../../src/bar/window.js';

const P = 4096;

describe('BarWindow', () => {
  it('places, finds and removes blobs', () => {
    const w = new BarWindow(0x1_0000_0000, 64);
    const a = w.place(0, 4 * P, 7);
    const b = w.place(8 * P, 2 * P, 9, 3);
    expect(w.at(0)).toBe(a);
    expect(w.at(3)).toBe(a);
    expect(w.at(4)).toBeUndefined();
    expect(w.at(9)).toEqual({ id: b.id, firstPage: 8, pages: 2, range: 9, pageInRange: 3 });
    w.remove(a.id);
    expect(w.at(0)).toBeUndefined();
    expect(w.placements()).toEqual([b]);
  });

  it.each([
    ['unaligned offset', 100, P, 'unaligned'],
    ['unaligned size', 0, P + 1, 'unaligned'],
    ['zero size', 0, 0, 'empty'],
    ['beyond the BAR', 63 * P, 2 * P, 'outside'],
    ['negative offset', -P, P, 'outside'],
    ['huge size', 0, 2 ** 60, 'unaligned'],
  ])('refuses a placement with %s', (_n, offset, size, reason) => {
    const w = new BarWindow(0, 64);
    expect(() => w.place(offset, size, 1)).toThrow(PlacementError);
    try { w.place(offset, size, 1); } catch (e) { expect((e as PlacementError).reason).toBe(reason); }
  });

  it('refuses overlaps and unknown removals', () => {
    const w = new BarWindow(0, 64);
    w.place(4 * P, 4 * P, 1);
    expect(() => w.place(7 * P, 2 * P, 2)).toThrow(/overlaps/);
    expect(() => w.remove(99)).toThrow(PlacementError);
  });

  it('agrees with a simple model under any sequence of placements and removals (property)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('place' as const), offset: fc.integer({ min: -2, max: 70 }), pages: fc.integer({ min: -1, max: 20 }) }),
      fc.record({ kind: fc.constant('remove' as const), which: fc.nat({ max: 10 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const w = new BarWindow(0, 64);
        const model = new Array<number>(64).fill(0);
        const live: number[] = [];
        for (const o of ops) {
          if (o.kind === 'place') {
            const free = o.pages > 0 && o.offset >= 0 && o.offset + o.pages <= 64 && model.slice(o.offset, o.offset + o.pages).every((x) => x === 0);
            let id = 0;
            try { id = w.place(o.offset * P, o.pages * P, 1).id; } catch (e) { expect(e).toBeInstanceOf(PlacementError); }
            expect(id !== 0).toBe(free);
            if (id !== 0) { model.fill(id, o.offset, o.offset + o.pages); live.push(id); }
          } else if (live.length > 0) {
            const id = live.splice(o.which % live.length, 1)[0] ?? 0;
            w.remove(id);
            for (let i = 0; i < 64; i++) if (model[i] === id) model[i] = 0;
          }
          for (let i = 0; i < 64; i++) expect(w.at(i)?.id ?? 0).toBe(model[i]);
        }
      }),
      { numRuns: 300 },
    );
  });
});
