/**
 * How Xen 4.17's x86 instruction emulator (xen/arch/x86/hvm/emulate.c) cuts a guest's string and
 * vector accesses to an ioreq server's MMIO into ioreqs. The simulated vCPU (cpu.ts) presents its
 * accesses exactly this way; the back-end validates against the same rules (src/ioreq/validate.ts).
 */

const PAGE = 4096;
/** hvmemul_linear_to_phys(): "Clip repetitions to a sensible maximum". */
export const XEN_MAX_REPS = 4096;
/** hvmemul_do_io() refuses accesses wider than sizeof(long). */
export const XEN_MAX_IO = 8;

/**
 * The `count` of the one ioreq Xen sends for `reps` remaining elements of a rep MOVS between guest
 * RAM at `ram` and MMIO at `mmio` (each the address of the current element; with df the elements go
 * down). The guest runs without paging, so linear == physical and only these clips apply:
 *  1. at most 4096 reps (hvmemul_linear_to_phys);
 *  2. the RAM side stays inside its page (hvmemul_do_io_addr); with df the formula is
 *     ((page_off + size - 1) & ~PAGE_MASK) / size, one element short of what fits, and a count of 0
 *     becomes a single element spanning two RAM pages;
 *  3. the MMIO side stays inside its page (hvmemul_do_io: "truncate rep MMIO at any GFN boundary").
 */
export function xenRepMovsCount(mmio: number, ram: number, size: number, reps: number, df: boolean): number {
  let count = Math.min(reps, XEN_MAX_REPS);
  const ramOff = ram % PAGE;
  const ramFit = df ? Math.floor(((ramOff + size - 1) % PAGE) / size) : Math.floor((PAGE - ramOff) / size);
  count = Math.min(count, ramFit);
  if (count === 0) count = 1;
  if (count > 1) {
    const off = mmio % PAGE;
    const tail = PAGE - off;
    count = tail < size ? 1 : Math.min(count, Math.floor((df ? off + size : tail) / size));
  }
  return count;
}

/**
 * The ioreqs of one `bytes`-wide access at `gpa` (hvmemul_linear_mmio_access → hvmemul_phys_mmio_access):
 * split at page boundaries, then into chunks of the highest power of two <= min(remaining, 8), each
 * one ioreq with count 1. Returns [offset within the access, size] pairs in the order Xen sends them.
 */
export function xenMmioChunks(gpa: number, bytes: number): [number, number][] {
  const out: [number, number][] = [];
  let done = 0;
  while (done < bytes) {
    const inPage = Math.min(bytes - done, PAGE - ((gpa + done) % PAGE));
    let chunk = Math.min(XEN_MAX_IO, 2 ** Math.floor(Math.log2(inPage)));
    let left = inPage;
    while (left > 0) {
      while (chunk > left) chunk >>= 1;
      out.push([done, chunk]);
      done += chunk;
      left -= chunk;
    }
  }
  return out;
}
