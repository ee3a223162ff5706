/** The back-end's CPU mappings of one BO, by address: what mmapBo records and munmapBo gives back. */
import { native } from '../../native/index.js';
import type { CpuMapping } from '../ports.js';

export function recordMapping(mappings: Map<number, ArrayBuffer>, handle: number, ab: ArrayBuffer): CpuMapping {
  const va = native.addressOf(ab);
  mappings.set(va, ab);
  return { handle, va, length: ab.byteLength };
}

/** Unmaps a mapping recorded for this BO; anything else is refused, so nothing is unmapped twice. */
export function releaseMapping(mappings: Map<number, ArrayBuffer>, mapping: CpuMapping): void {
  const ab = mappings.get(mapping.va);
  if (!ab) throw new Error('munmap: not a mapping of this BO');
  mappings.delete(mapping.va);
  native.munmap(ab);
}
