/** Placement tags: the codec, and the stale rule under the orderings a move and a read can take. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PlacementBoard, StaleCheck, TAG_OFFSET, decodeTag, encodeTag } from '../../../src/platform/linux/placement-tags.js';

const AT = TAG_OFFSET / 4;

/** One page's words carrying the tag (id, gen). */
function page(id: number, gen: number): Uint32Array {
  const w = new Uint32Array(1024);
  encodeTag(w, AT, id, gen);
  return w;
}

describe('tag codec', () => {
  it('decodes what it encodes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 0xffff_ffff }), (id, gen) => {
        expect(decodeTag(page(id, gen), AT)).toEqual({ id, gen });
      }),
    );
  });

  it('rejects a tag with any single bit flipped (content that merely resembles a tag)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 127 }), (id, gen, bit) => {
        const w = page(id, gen);
        const i = AT + (bit >> 5);
        w[i] = ((w[i] ?? 0) ^ (1 << (bit & 31))) >>> 0;
        expect(decodeTag(w, AT)).toBeUndefined();
      }),
    );
  });

  it('reads zeroed frames, arbitrary words and out-of-range offsets as no tag', () => {
    expect(decodeTag(new Uint32Array(1024), AT)).toBeUndefined();
    fc.assert(fc.property(fc.uint32Array({ minLength: 4, maxLength: 4 }), (w) => { expect(decodeTag(w, 0)).toBeUndefined(); }));
    expect(decodeTag(page(1, 1), 1022)).toBeUndefined();
    expect(decodeTag(page(1, 1), -1)).toBeUndefined();
  });
});

describe('placement board and stale check', () => {
  /** A board with one page of id `id`, placed at the first epoch. */
  function setup(): { board: PlacementBoard; check: StaleCheck; id: number; gen0: number } {
    const board = new PlacementBoard(8);
    const id = board.allocate(1)?.[0] ?? 0;
    const gen0 = board.nextEpoch();
    board.publish([id], gen0);
    return { board, check: new StaleCheck(board.buffer, 4), id, gen0 };
  }

  it('never flags reads of the current frame, before or after moves', () => {
    const { board, check, id, gen0 } = setup();
    expect(check.isStale(0, page(id, gen0), AT, check.epoch())).toBe(false);
    for (let i = 0; i < 3; i++) {
      const g = board.nextEpoch();
      board.publish([id], g);
      expect(check.isStale(0, page(id, g), AT, check.epoch())).toBe(false);
    }
  });

  it('flags a read of the retired frame once the move was published before the read began', () => {
    const { board, check, id, gen0 } = setup();
    expect(check.isStale(0, page(id, gen0), AT, check.epoch())).toBe(false);
    board.publish([id], board.nextEpoch());
    expect(check.isStale(0, page(id, gen0), AT, check.epoch())).toBe(true);
  });

  it('does not flag an old frame read by an access that began before the move was published', () => {
    const { board, check, id, gen0 } = setup();
    const before = check.epoch(); // the access starts, reaches the old frame legitimately ...
    board.publish([id], board.nextEpoch()); // ... and the move completes meanwhile
    expect(check.isStale(0, page(id, gen0), AT, before)).toBe(false);
  });

  it('does not flag a frame whose new tag is written but not yet published', () => {
    const { board, check, id } = setup();
    expect(check.isStale(0, page(id, board.nextEpoch()), AT, check.epoch())).toBe(false);
  });

  it("flags a BAR page that reaches another page's frame (a freed frame reused)", () => {
    const { board, check, id, gen0 } = setup();
    const other = board.allocate(1)?.[0] ?? 0;
    board.publish([other], board.nextEpoch());
    expect(check.isStale(2, page(id, gen0), AT, check.epoch())).toBe(false);
    expect(check.isStale(2, page(other, board.nextEpoch() - 1), AT, check.epoch())).toBe(true);
  });

  it('does not check pages without a tag, or with an id outside the board', () => {
    const { check } = setup();
    expect(check.isStale(0, new Uint32Array(1024), AT, check.epoch())).toBe(false);
    expect(check.isStale(0, page(99, 0), AT, check.epoch())).toBe(false);
  });

  it('hands out each id once until released, and refuses past its capacity', () => {
    const board = new PlacementBoard(3);
    const a = board.allocate(2);
    expect(a && [...a]).toEqual([1, 2]);
    expect(board.allocate(2)).toBeUndefined();
    const b = board.allocate(1);
    expect(b && [...b]).toEqual([3]);
    if (a) board.release(a);
    expect(board.allocate(2)?.length).toBe(2);
    expect(() => new PlacementBoard(0)).toThrow(RangeError);
  });
});
