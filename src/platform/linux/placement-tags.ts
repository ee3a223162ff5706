/**
 * Stale-access detection from frame contents, for host buffers whose frames really change
 * (memfd-gpu.ts). Every page of such a buffer carries a placement tag in its last 16 bytes:
 * (magic, page id, generation, check). Whenever the host gives a page a new frame it writes the new
 * generation into that frame and publishes it on a shared board; a vCPU that reads through the
 * kernel helper's soft p2m reads the tag in the same GUEST_ACCESS as its data, and a tag older than
 * a move that had completed before the access began proves the access reached a retired frame.
 *
 * Board layout (Int32Array over a SharedArrayBuffer): [0] the epoch, bumped once per move after
 * the move's revocation; [1 + id] the epoch at which page `id` got its current frame.
 *
 * Ordering (why the check cannot fire on a correct helper): the host bumps the epoch only after the
 * old frames were revoked (the notifier ran inside madvise/fallocate) and after storing placedAt.
 * A vCPU loads the epoch before its access: if placedAt[id] <= that epoch, the revocation of every
 * older frame of `id` had completed before the access, so a correct p2m cannot hand it one.
 */

export const PAGE = 4096;
export const TAG_BYTES = 16;
/** Byte offset of the tag in its page; the synthetic workload's 8-byte vCPU slots stay below it. */
export const TAG_OFFSET = PAGE - TAG_BYTES;
const MAGIC = 0x6761_7478; // "xtag"

function checkWord(id: number, gen: number): number {
  return (MAGIC ^ Math.imul(id, 0x9e37_79b1) ^ Math.imul(gen, 0x85eb_ca6b)) >>> 0;
}

/** Writes the tag words at words[at..at+4). */
export function encodeTag(words: Uint32Array, at: number, id: number, gen: number): void {
  words[at] = MAGIC;
  words[at + 1] = id >>> 0;
  words[at + 2] = gen >>> 0;
  words[at + 3] = checkWord(id, gen);
}

/** The tag at words[at..at+4), or undefined when those words are not a tag (content, zeros, garbage). */
export function decodeTag(words: Uint32Array, at: number): { id: number; gen: number } | undefined {
  if (at < 0 || at + 4 > words.length || words[at] !== MAGIC) return undefined;
  const id = words[at + 1] ?? 0;
  const gen = words[at + 2] ?? 0;
  return words[at + 3] === checkWord(id, gen) ? { id, gen } : undefined;
}

/** The host's side of the board: page ids and the epochs at which pages got their frames. */
export class PlacementBoard {
  readonly buffer: SharedArrayBuffer;
  private readonly words: Int32Array;
  private readonly free: number[] = [];

  /** `capacity`: page ids available at once (the host-memory budget, in pages). */
  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 0x3fff_ffff) throw new RangeError(`placement board: capacity ${capacity}`);
    this.buffer = new SharedArrayBuffer(4 * (1 + capacity));
    this.words = new Int32Array(this.buffer);
    for (let id = capacity; id >= 1; id--) this.free.push(id);
  }

  /** n page ids, or undefined when the budget is exhausted (nothing is taken then). */
  allocate(n: number): Int32Array | undefined {
    if (n > this.free.length) return undefined;
    return Int32Array.from(this.free.splice(this.free.length - n, n).reverse());
  }

  release(ids: Int32Array): void {
    for (const id of ids) this.free.push(id);
  }

  /** The generation the next move will publish. */
  nextEpoch(): number {
    return Atomics.load(this.words, 0) + 1;
  }

  /**
   * Publishes a completed move: the pages `ids` now sit on frames tagged `epoch` (from nextEpoch()).
   * Call only after the old frames were revoked and the new tags written.
   */
  publish(ids: Iterable<number>, epoch: number): void {
    for (const id of ids) Atomics.store(this.words, id, epoch);
    Atomics.store(this.words, 0, epoch); // last: a vCPU that sees it also sees every placedAt above
  }
}

/** A vCPU's side: checks that what a read reached was a frame current when the read began. */
export class StaleCheck {
  private readonly words: Int32Array;
  /** Per BAR page: the page id its first tagged read showed (0: not seen yet). */
  private readonly idOf: Int32Array;

  constructor(board: SharedArrayBuffer, barPages: number) {
    this.words = new Int32Array(board);
    this.idOf = new Int32Array(barPages);
  }

  /** Load before the access. */
  epoch(): number {
    return Atomics.load(this.words, 0);
  }

  /**
   * True when the tag read with the data (words[at..at+4)) proves a stale frame: a tag of another
   * page than this BAR page showed before, or a generation older than a move of this page that had
   * been published by `epochBefore`. Pages without a tag (the host or the guest wrote over it) are
   * not checked.
   */
  isStale(barPage: number, words: Uint32Array, at: number, epochBefore: number): boolean {
    const tag = decodeTag(words, at);
    if (!tag || tag.id < 1 || tag.id >= this.words.length) return false;
    const known = this.idOf[barPage] ?? 0;
    if (known === 0) this.idOf[barPage] = tag.id;
    else if (known !== tag.id) return true;
    const placed = Atomics.load(this.words, tag.id);
    return tag.gen < placed && placed <= epochBefore;
  }
}
