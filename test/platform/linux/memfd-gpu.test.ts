/**
 * The memfd GPU port on this host (no kernel module needed): content survives a move onto new
 * frames, frame moves are measured from pagemap, and the soft-p2m stale check (driven through a
 * stand-in for GUEST_ACCESS) counts reads of retired frames and nothing else.
 */
import { describe, expect, it } from 'vitest';
import { MemfdGpu, retag } from '../../../src/platform/linux/memfd-gpu.js';
import { decodePagemap, movedFrames, openPagemap, type FrameReader } from '../../../src/platform/linux/pagemap.js';
import { PAGE, PlacementBoard, TAG_OFFSET, decodeTag, encodeTag } from '../../../src/platform/linux/placement-tags.js';
import { PressureErrors } from '../../../src/platform/linux/pressure-errors.js';
import { SoftP2mMemory, type GuestAccess } from '../../../src/platform/linux/soft-p2m-memory.js';

const PAGES = 64;

function pagemapReader(): FrameReader {
  const pm = openPagemap();
  if ('reason' in pm) throw new Error(`this test needs /proc/self/pagemap: ${pm.reason}`);
  return pm.read;
}

const ALL_MAPPED = (_va: number, _first: number, n: number): boolean[] => new Array<boolean>(n).fill(true);
const NONE_MAPPED = (_va: number, _first: number, n: number): boolean[] => new Array<boolean>(n).fill(false);

/**
 * A BO with one back-end mapping. `mapped` stands in for the helper's QUERY, before and after the
 * zap alike: ALL_MAPPED is a helper that had every page mapped and did not revoke.
 */
function gpuWithBo(mapped = ALL_MAPPED): { gpu: MemfdGpu; handle: number; board: PlacementBoard } {
  const board = new PlacementBoard(4 * PAGES);
  const gpu = new MemfdGpu(board, pagemapReader(), mapped);
  const handle = gpu.createBo(PAGES * PAGE).handle;
  gpu.mmapBo(handle);
  return { gpu, board, handle };
}


/** The tag of page `p` as the host sees it. */
function tagOf(gpu: MemfdGpu, handle: number, p: number): { id: number; gen: number } | undefined {
  const b = new Uint8Array(16);
  gpu.readBo(handle, p * PAGE + TAG_OFFSET, b);
  return decodeTag(new Uint32Array(b.buffer), 0);
}

describe('MemfdGpu', () => {
  it('keeps the content across a move, gives every tagged page a new generation, and the frames change', async () => {
    const { gpu, handle } = gpuWithBo(NONE_MAPPED);
    const data = new Uint8Array(TAG_OFFSET).map((_, i) => (i * 7 + 3) & 0xff);
    for (let p = 0; p < PAGES; p++) gpu.writeBo(handle, p * PAGE, data);
    const before = Array.from({ length: PAGES }, (_, p) => tagOf(gpu, handle, p));
    expect(await gpu.evict(handle)).toBe(true);
    for (let p = 0; p < PAGES; p++) {
      const got = new Uint8Array(TAG_OFFSET);
      gpu.readBo(handle, p * PAGE, got);
      expect(Buffer.from(got).equals(Buffer.from(data))).toBe(true);
      const t = tagOf(gpu, handle, p);
      expect(t?.id).toBe(before[p]?.id);
      expect(t?.gen).toBeGreaterThan(before[p]?.gen ?? Infinity);
    }
    // Only pages the helper had mapped count, and none was: nothing pinned either.
    expect([gpu.movedFrames(), gpu.pinnedFrames]).toEqual([0, 0]);
    gpu.destroyBo(handle);
  });

  it('pins the retired frames of pages the helper still maps, so every mapped page really moves', async () => {
    const { gpu, handle } = gpuWithBo(ALL_MAPPED);
    expect(await gpu.evict(handle, 0, 10)).toBe(true);
    expect(await gpu.evict(handle, 20, 44)).toBe(true);
    // A pinned frame cannot be handed back by the allocator: the new frames are all different.
    expect([gpu.movedFrames(), gpu.pinnedFrames]).toEqual([54, 54]);
    gpu.destroyBo(handle);
  });

  it('refuses bad eviction ranges and unknown BOs without doing anything', async () => {
    const { gpu, handle } = gpuWithBo();
    expect(await gpu.evict(handle, PAGES, 1)).toBe(false);
    expect(await gpu.evict(handle, 0, PAGES + 1)).toBe(false);
    expect(await gpu.evict(999)).toBe(false);
    expect(gpu.movedFrames()).toBe(0);
    expect(gpu.errors.count).toBe(0);
  });

  it('says why frame moves are not measured when pagemap is unavailable', () => {
    const gpu = new MemfdGpu(new PlacementBoard(4), { reason: 'no pagemap here' }, ALL_MAPPED);
    expect(gpu.movedFrames()).toEqual({ reason: 'no pagemap here' });
  });

  it('refuses a BO beyond the host-memory budget and leaks no page ids', () => {
    const board = new PlacementBoard(PAGES);
    const gpu = new MemfdGpu(board, { reason: 'n/a' }, ALL_MAPPED);
    expect(() => gpu.createBo((PAGES + 1) * PAGE)).toThrow(/out of host memory/);
    const { handle } = gpu.createBo(PAGES * PAGE);
    gpu.destroyBo(handle);
    expect(gpu.createBo(PAGES * PAGE).size).toBe(PAGES * PAGE);
  });

  it('retags only pages that still carry their own tag; others keep their bytes', () => {
    const words = new Uint32Array(2 * 1024);
    encodeTag(words, TAG_OFFSET / 4, 5, 1);
    words.fill(0xabcdef01, 1024); // page 1: content over its tag
    const retagged = retag(words, Int32Array.from([5, 6]), 9);
    expect(retagged).toEqual([5]);
    expect(decodeTag(words, TAG_OFFSET / 4)).toEqual({ id: 5, gen: 9 });
    expect(words.subarray(1024).every((w) => w === 0xabcdef01)).toBe(true);
  });
});

/**
 * A stand-in for the helper's soft p2m over one BO placed at BAR page 0: `revokes` models a helper
 * that revokes on invalidation (every access reaches the BO's current frames); otherwise the
 * entry installed by the first access keeps pointing at that frame (a copy of it, standing in for
 * the retired frame), as test_skip_revoke=1 does.
 */
function fakeSoftP2m(gpu: MemfdGpu, handle: number, revokes: boolean): GuestAccess {
  const frames = new Map<number, Uint8Array>();
  return (gpa, len, write, buf) => {
    const p = Math.floor(gpa / PAGE);
    const off = gpa % PAGE;
    const bytes = new Uint8Array(buf.buffer, 0, len);
    let frame = revokes ? undefined : frames.get(p);
    if (!frame) {
      frame = new Uint8Array(PAGE);
      gpu.readBo(handle, p * PAGE, frame);
      if (!revokes) frames.set(p, frame);
    }
    if (write) {
      frame.set(bytes, off);
      if (revokes) gpu.writeBo(handle, gpa, bytes);
    } else bytes.set(frame.subarray(off, off + len));
    return true;
  };
}

/** Reads every page, moves the BO, reads every page again: the stale count. */
async function staleReads(revokes: boolean): Promise<number> {
  const { gpu, handle, board } = gpuWithBo(revokes ? NONE_MAPPED : ALL_MAPPED);
  const mem = new SoftP2mMemory(fakeSoftP2m(gpu, handle, revokes), 0, PAGES, board.buffer);
  const out = { lo: 0, hi: 0 };
  for (let round = 0; round < 3; round++) {
    for (let p = 0; p < PAGES; p++) expect(mem.access(p * PAGE + 8, 8, false, 0, 0, out)).toBe(true);
    await gpu.evict(handle, round === 1 ? 3 : 0, round === 1 ? 5 : undefined);
  }
  for (let p = 0; p < PAGES; p++) mem.access(p * PAGE, 4, false, 0, 0, out);
  gpu.destroyBo(handle);
  return mem.staleAccesses;
}

describe('stale reads through the soft p2m, from frame contents', () => {
  it('counts none when the p2m follows every move', async () => {
    expect(await staleReads(true)).toBe(0);
  });

  it('counts every read of a retired frame when the p2m keeps its entries', async () => {
    // Round 0's reads are current; after the whole-BO move every page is stale (64 reads each in
    // round 1, round 2 and the final pass).
    expect(await staleReads(false)).toBe(3 * PAGES);
  });
});

describe('pagemap', () => {
  const entry = (present: boolean, pfn: bigint): bigint => (present ? 1n << 63n : 0n) | pfn;
  const bytes = (...e: bigint[]): Uint8Array => {
    const b = new Uint8Array(8 * e.length);
    e.forEach((v, i) => { new DataView(b.buffer).setBigUint64(8 * i, v, true); });
    return b;
  };

  it('decodes present frames and absent pages; hidden PFNs make the whole read unmeasurable', () => {
    expect(decodePagemap(bytes(entry(true, 0x1234n), entry(false, 0n), entry(true, (1n << 55n) - 1n)), 3)).toEqual([0x1234n, null, (1n << 55n) - 1n]);
    expect(decodePagemap(bytes(entry(true, 5n), entry(true, 0n)), 2)).toBeUndefined();
    expect(() => decodePagemap(new Uint8Array(8), 2)).toThrow(RangeError);
  });

  it('counts a move only where both frames are known and differ', () => {
    expect(movedFrames([1n, 2n, null, 4n], [1n, 3n, 7n, null])).toBe(1);
    expect(movedFrames([1n, 2n, 3n], [4n, 5n, 6n], [true, false, true])).toBe(2);
  });
});

describe('eviction errors', () => {
  it('become a counted rejection with the first message, never a synchronous throw', async () => {
    const errors = new PressureErrors();
    const fail = (): boolean => { throw new Error('madvise: EPERM'); };
    const p1 = errors.settle(fail);
    const p2 = errors.settle(() => { throw new Error('later'); });
    await expect(p1).rejects.toThrow('EPERM');
    await expect(p2).rejects.toThrow('later');
    expect([errors.count, errors.first]).toEqual([2, 'madvise: EPERM']);
    await expect(errors.settle(() => true)).resolves.toBe(true);
  });
});
