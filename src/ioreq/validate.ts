/**
 * Validation of a guest-controlled ioreq (D11). Everything in a slot comes from the guest through
 * Xen, so nothing is trusted: a request that fails here is answered without harm (all ones for a
 * read, ignored for a write) and counted by reason.
 */
import { IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG, IOREQ_TYPE_PIO, type Ioreq } from '../xen/abi/ioreq.js';

export const BadIoreq = {
  None: 0,
  Size: 1,
  Count: 2,
  CrossesPage: 3,
  DataIsPtr: 4,
  Pio: 5,
  PciConfig: 6,
  Type: 7,
  Address: 8,
} as const;
export type BadIoreq = (typeof BadIoreq)[keyof typeof BadIoreq];

export const BAD_IOREQ_NAMES = ['none', 'size', 'count', 'crosses_page', 'data_is_ptr', 'pio', 'pci_config', 'type', 'address'] as const;

const PAGE = 4096;
/** Guest-physical addresses are at most 52 bits on every architecture Xen supports. */
const MAX_GPA = 2 ** 52;

/** Returns BadIoreq.None for a request the server may dispatch, otherwise the first reason it fails. */
export function validateIoreq(r: Ioreq): BadIoreq {
  if (r.type === IOREQ_TYPE_PIO) return BadIoreq.Pio; // we claim no I/O ports
  if (r.type === IOREQ_TYPE_PCI_CONFIG) return BadIoreq.PciConfig; // nor PCI config space
  if (r.type !== IOREQ_TYPE_COPY) return BadIoreq.Type;
  if (r.size !== 1 && r.size !== 2 && r.size !== 4 && r.size !== 8) return BadIoreq.Size;
  if (r.count === 0 || r.count > PAGE / r.size) return BadIoreq.Count;
  // rep MOVS between guest memory and a device (data_is_ptr) is not something a BAR or a virtio-mmio
  // register file needs; refusing it keeps guest pointers out of the server entirely.
  if (r.dataIsPtr) return BadIoreq.DataIsPtr;
  if (!Number.isSafeInteger(r.addr) || r.addr >= MAX_GPA) return BadIoreq.Address;
  // Xen truncates rep MMIO at the page boundary; anything that still crosses one is forged.
  const span = r.count * r.size;
  const first = r.df ? r.addr - (span - r.size) : r.addr;
  if (first < 0 || Math.floor(first / PAGE) !== Math.floor((first + span - 1) / PAGE)) return BadIoreq.CrossesPage;
  return BadIoreq.None;
}

/** The value a read of unclaimed or rejected MMIO returns: all ones in the low `size` bytes. */
export function allOnes(size: number): { lo: number; hi: number } {
  if (size >= 8) return { lo: 0xffff_ffff, hi: 0xffff_ffff };
  if (size === 4) return { lo: 0xffff_ffff, hi: 0 };
  if (size === 2) return { lo: 0xffff, hi: 0 };
  return { lo: 0xff, hi: 0 };
}
