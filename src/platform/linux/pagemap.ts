/**
 * Which host frames back pages of our own mappings, from /proc/self/pagemap (one little-endian u64
 * per page: bit 63 present, bits 0-54 the PFN). The kernel shows PFNs only to CAP_SYS_ADMIN; to
 * anyone else they read as zero, and then frame moves cannot be measured.
 */
import { closeSync, openSync, readSync } from 'node:fs';

const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/** PFN per page, null where the page is not present; undefined when PFNs are hidden. */
export type FrameReader = (va: number, pages: number) => (bigint | null)[] | undefined;

export function decodePagemap(bytes: Uint8Array, pages: number): (bigint | null)[] | undefined {
  if (bytes.byteLength < pages * 8) throw new RangeError(`pagemap: ${bytes.byteLength} bytes for ${pages} pages`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: (bigint | null)[] = [];
  for (let i = 0; i < pages; i++) {
    const e = v.getBigUint64(i * 8, true);
    if ((e & PRESENT) === 0n) {
      out.push(null);
      continue;
    }
    const pfn = e & PFN_MASK;
    if (pfn === 0n) return undefined; // present but hidden: no CAP_SYS_ADMIN
    out.push(pfn);
  }
  return out;
}

/** Pages (of those selected by `only`, if given) whose frame is known before and after and differs. */
export function movedFrames(before: readonly (bigint | null)[], after: readonly (bigint | null)[], only?: readonly boolean[]): number {
  let n = 0;
  before.forEach((b, i) => {
    const a = after[i];
    if (only?.[i] !== false && b !== null && a !== null && a !== undefined && a !== b) n++;
  });
  return n;
}

/** A reader over this process's pagemap, or the reason there is none. */
export function openPagemap(path = '/proc/self/pagemap'): { read: FrameReader; close: () => void } | { reason: string } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    return { reason: `${path}: ${(e as Error).message}` };
  }
  const read: FrameReader = (va, pages) => {
    const buf = Buffer.alloc(pages * 8);
    const got = readSync(fd, buf, 0, buf.length, (va / 4096) * 8);
    return decodePagemap(buf.subarray(0, got), Math.floor(got / 8));
  };
  return { read, close: () => { closeSync(fd); } };
}
