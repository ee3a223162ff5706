/**
 * Validation of a guest-controlled ioreq (D11). Everything in a slot comes from the guest through
 * Xen, so nothing is trusted: a request that fails here is answered without harm (all ones for a
 * read, ignored for a write) and counted by reason.
 *
 * What is legitimate is what Xen 4.17's instruction emulator sends (xen/arch/x86/hvm/emulate.c;
 * docs/fault-revoke-protocol.md "String and vector accesses"):
 *  - size 1, 2, 4 or 8: hvmemul_do_io() refuses anything else ("bad mmio size"); 16/32-byte vector
 *    moves reach the server as several 8-byte requests (hvmemul_phys_mmio_access chunking);
 *  - count > 1 for rep string ops, clipped to 4096 reps (hvmemul_linear_to_phys) and so that the
 *    MMIO side stays inside one 4 KiB page (hvmemul_do_io "truncate rep MMIO at any GFN boundary");
 *  - data_is_ptr for rep MOVS between RAM and MMIO (hvmemul_do_mmio_addr): `data` is the RAM side's
 *    guest-physical address, clipped so that the RAM side stays inside one page too, except a single
 *    element that straddles two pages (hvmemul_do_io_addr, count == 0 → one rep over two pages);
 *  - count > 1 without data_is_ptr only for writes (rep STOS: the same value `count` times); no
 *    emulator path reads MMIO `count` times into one register.
 */
import { IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG, IOREQ_TYPE_PIO, type Ioreq } from '../xen/abi/ioreq.js';
import { dataAsNumber, repExtent } from './rep.js';

export const BadIoreq = {
  None: 0,
  Size: 1,
  Count: 2,
  CrossesPage: 3,
  RepRead: 4,
  Pio: 5,
  PciConfig: 6,
  Type: 7,
  Address: 8,
  PtrOutsideRam: 9,
  PtrCrossesPage: 10,
  StringUnsupported: 11,
} as const;
export type BadIoreq = (typeof BadIoreq)[keyof typeof BadIoreq];

export const BAD_IOREQ_NAMES = [
  'none', 'size', 'count', 'crosses_page', 'rep_read', 'pio', 'pci_config', 'type', 'address', 'ptr_outside_ram', 'ptr_crosses_page',
  'string_unsupported',
] as const;

const PAGE = 4096;
/** Guest-physical addresses are at most 52 bits on every architecture Xen supports. */
const MAX_GPA = 2 ** 52;

const samePage = (first: number, bytes: number): boolean => Math.floor(first / PAGE) === Math.floor((first + bytes - 1) / PAGE);

/**
 * Returns BadIoreq.None for a request the server may dispatch, otherwise the first reason it fails.
 * `ramBytes`: guest RAM is [0, ramBytes); a data_is_ptr request must stay inside it.
 */
export function validateIoreq(r: Ioreq, ramBytes: number): BadIoreq {
  if (r.type === IOREQ_TYPE_PIO) return BadIoreq.Pio; // we claim no I/O ports
  if (r.type === IOREQ_TYPE_PCI_CONFIG) return BadIoreq.PciConfig; // nor PCI config space
  if (r.type !== IOREQ_TYPE_COPY) return BadIoreq.Type;
  if (r.size !== 1 && r.size !== 2 && r.size !== 4 && r.size !== 8) return BadIoreq.Size;
  // count <= PAGE / size also keeps count * size far from any overflow (count is a u32).
  if (r.count === 0 || r.count > PAGE / r.size) return BadIoreq.Count;
  if (r.count > 1 && !r.dataIsPtr && r.dir === IOREQ_READ) return BadIoreq.RepRead;
  if (!Number.isSafeInteger(r.addr) || r.addr >= MAX_GPA) return BadIoreq.Address;
  const ext = repExtent(r);
  // Xen truncates rep MMIO at the page boundary; anything that still crosses one is forged.
  if (ext.mmioFirst < 0 || !samePage(ext.mmioFirst, ext.bytes)) return BadIoreq.CrossesPage;
  if (!r.dataIsPtr) return BadIoreq.None;
  if (dataAsNumber(r) >= MAX_GPA || ext.ramFirst < 0 || ext.ramFirst + ext.bytes > ramBytes) return BadIoreq.PtrOutsideRam;
  if (r.count > 1 && !samePage(ext.ramFirst, ext.bytes)) return BadIoreq.PtrCrossesPage;
  return BadIoreq.None;
}

/** The value a read of unclaimed or rejected MMIO returns: all ones in the low `size` bytes. */
export function allOnes(size: number): { lo: number; hi: number } {
  if (size >= 8) return { lo: 0xffff_ffff, hi: 0xffff_ffff };
  if (size === 4) return { lo: 0xffff_ffff, hi: 0 };
  if (size === 2) return { lo: 0xffff, hi: 0 };
  return { lo: 0xff, hi: 0 };
}
