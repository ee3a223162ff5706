/**
 * Codecs for kernel-helper/include/uapi/linux/xvgpu_helper.h (x86-64 / arm64 layouts), checked
 * byte for byte against the header by test/platform/linux/helper-abi.test.ts.
 */
import { ioc } from './drm-abi.js';

const X = 'X'.charCodeAt(0);
const W = 1;
const RW = 3;

export const HELPER_DEVICE = '/dev/xvgpu_helper';
export const P2M_SOFT = 1;
export const P2M_XEN = 2;
/** Lends the buffer's own pages with the patched Xen's XEN_DMOP_lend_pages (p2m_xen_dmop.c). */
export const P2M_XEN_DMOP = 3;
export const MAP_TRY_HUGE = 1;
export const MAP_ACCESS = 2;
export const MAP_WRITE = 4;
export const MAP_NO_INSTALL = 8;
export const HIST_BUCKETS = 32;
/** Helper events besides enum mmu_notifier_event: `count` events lost / entries the p2m refused to remove. */
export const EVENT_OVERFLOW = 0x10000;
export const EVENT_FATAL = 0x10001;
/** Limits the module enforces (-E2BIG past them) and the first Xen domid that is not a guest. */
export const MAX_WINDOW_PAGES = 2 ** 22;
export const MAX_REGISTERED_PAGES = 2 ** 22;
export const MAX_RANGES = 4096;
export const DOMID_FIRST_RESERVED = 0x7ff0;

export const SIZEOF = {
  bind: 32,
  register: 24,
  unregister: 8,
  map: 88,
  unmap: 24,
  run: 32,
  query: 32,
  stats: 72 + 2 * HIST_BUCKETS * 8,
  guestAccess: 32,
  evict: 24,
  event: 64,
} as const;

export const HELPER_IOCTL = {
  BIND: ioc(W, X, 1, SIZEOF.bind),
  REGISTER: ioc(RW, X, 2, SIZEOF.register),
  UNREGISTER: ioc(W, X, 3, SIZEOF.unregister),
  MAP: ioc(RW, X, 4, SIZEOF.map),
  UNMAP: ioc(RW, X, 5, SIZEOF.unmap),
  QUERY: ioc(RW, X, 6, SIZEOF.query),
  STATS: ioc(RW, X, 7, SIZEOF.stats),
  GUEST_ACCESS: ioc(RW, X, 8, SIZEOF.guestAccess),
  EVICT: ioc(W, X, 9, SIZEOF.evict),
} as const;

/** Field offsets of struct xvgpu_map. */
export const MAP_OFF = {
  size: 0, rangeId: 4, gfn: 8, pageInRange: 16, pages: 24, flags: 28, accessGfn: 32, accessOffset: 40, accessSize: 44,
  data: 48, outGfn: 56, outPages: 64, installed: 68, huge: 72, collisions: 76, seq: 80,
} as const;

/** Field offsets of struct xvgpu_stats (u64 counters, then the two histograms). */
export const STATS_OFF = {
  ranges: 4, maps: 8, mapCollisions: 16, installedPages: 24, hugeMaps: 32, invalidations: 40, revokedPages: 48,
  residentPages: 56, eventsDropped: 64, invalidateNs: 72, mapNs: 72 + HIST_BUCKETS * 8,
} as const;

export const EVENT_OFF = { rangeId: 0, event: 4, firstPage: 8, pages: 16, revoked: 24, seq: 32, startNs: 40, doneNs: 48, count: 56 } as const;

/** A zeroed argument buffer whose leading `size` field is set, and a little-endian view of it. */
export function arg(size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, size, true);
  return { bytes, view };
}

export function setU64(v: DataView, off: number, n: number): void {
  v.setBigUint64(off, BigInt(n), true);
}

export function getU64(v: DataView, off: number): number {
  return Number(v.getBigUint64(off, true));
}
