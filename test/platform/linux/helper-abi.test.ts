/** The TypeScript client's view of the kernel helper UAPI against the header itself. */
import { describe, expect, it } from 'vitest';
import {
  DOMID_FIRST_RESERVED, EVENT_FATAL, EVENT_OFF, EVENT_OVERFLOW, HELPER_IOCTL, MAP_ACCESS, MAP_NO_INSTALL, MAP_OFF, MAP_TRY_HUGE,
  MAP_WRITE, MAX_RANGES, MAX_REGISTERED_PAGES, MAX_WINDOW_PAGES, P2M_SOFT, P2M_XEN, P2M_XEN_DMOP, SIZEOF, STATS_OFF,
} from '../../../src/platform/linux/helper-abi.js';
import { runC } from '../../support/c-layout.js';

const HEADER = `${process.cwd()}/kernel-helper/include/uapi/linux/xvgpu_helper.h`;
const C = `
#include <stdio.h>
#include <stddef.h>
#include "${HEADER}"
#define O(t, f) (unsigned long)offsetof(struct t, f)
int main(void) {
  printf("{\\"sizes\\": [%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu],\\n", sizeof(struct xvgpu_bind), sizeof(struct xvgpu_register),
    sizeof(struct xvgpu_unregister), sizeof(struct xvgpu_map), sizeof(struct xvgpu_unmap), sizeof(struct xvgpu_run),
    sizeof(struct xvgpu_query), sizeof(struct xvgpu_stats), sizeof(struct xvgpu_guest_access), sizeof(struct xvgpu_evict),
    sizeof(struct xvgpu_event));
  printf("\\"ioctls\\": [%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu],\\n", (unsigned long)XVGPU_IOC_BIND, (unsigned long)XVGPU_IOC_REGISTER,
    (unsigned long)XVGPU_IOC_UNREGISTER, (unsigned long)XVGPU_IOC_MAP, (unsigned long)XVGPU_IOC_UNMAP, (unsigned long)XVGPU_IOC_QUERY,
    (unsigned long)XVGPU_IOC_STATS, (unsigned long)XVGPU_IOC_GUEST_ACCESS, (unsigned long)XVGPU_IOC_EVICT);
  printf("\\"map\\": [%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu],\\n", O(xvgpu_map, size), O(xvgpu_map, range_id),
    O(xvgpu_map, gfn), O(xvgpu_map, page_in_range), O(xvgpu_map, pages), O(xvgpu_map, flags), O(xvgpu_map, access_gfn),
    O(xvgpu_map, access_offset), O(xvgpu_map, access_size), O(xvgpu_map, data), O(xvgpu_map, out_gfn), O(xvgpu_map, out_pages),
    O(xvgpu_map, installed), O(xvgpu_map, huge), O(xvgpu_map, collisions), O(xvgpu_map, seq));
  printf("\\"stats\\": [%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu],\\n", O(xvgpu_stats, ranges), O(xvgpu_stats, maps),
    O(xvgpu_stats, map_collisions), O(xvgpu_stats, installed_pages), O(xvgpu_stats, huge_maps), O(xvgpu_stats, invalidations),
    O(xvgpu_stats, revoked_pages), O(xvgpu_stats, resident_pages), O(xvgpu_stats, events_dropped), O(xvgpu_stats, invalidate_ns),
    O(xvgpu_stats, map_ns));
  printf("\\"event\\": [%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu],\\n", O(xvgpu_event, range_id), O(xvgpu_event, event), O(xvgpu_event, first_page),
    O(xvgpu_event, pages), O(xvgpu_event, revoked), O(xvgpu_event, seq), O(xvgpu_event, start_ns), O(xvgpu_event, done_ns),
    O(xvgpu_event, count));
  printf("\\"backends\\": [%d,%d,%d],\\n", XVGPU_P2M_SOFT, XVGPU_P2M_XEN, XVGPU_P2M_XEN_DMOP);
  printf("\\"consts\\": [%lu,%lu,%lu,%lu,%lu,%lu,%llu,%llu,%lu,%lu]}\\n", (unsigned long)XVGPU_EVENT_OVERFLOW, (unsigned long)XVGPU_EVENT_FATAL,
    (unsigned long)XVGPU_MAP_TRY_HUGE, (unsigned long)XVGPU_MAP_ACCESS, (unsigned long)XVGPU_MAP_WRITE, (unsigned long)XVGPU_MAP_NO_INSTALL,
    (unsigned long long)XVGPU_MAX_WINDOW_PAGES, (unsigned long long)XVGPU_MAX_REGISTERED_PAGES, (unsigned long)XVGPU_DOMID_FIRST_RESERVED, (unsigned long)XVGPU_MAX_RANGES);
  return 0;
}`;

describe('kernel helper UAPI codecs match xvgpu_helper.h', () => {
  const c = runC(C, HEADER, '(the repository)') as { backends: number[]; sizes: number[]; ioctls: number[]; map: number[]; stats: number[]; event: number[]; consts: number[] };

  it('has the same p2m back-end numbers', () => {
    expect(c.backends).toEqual([P2M_SOFT, P2M_XEN, P2M_XEN_DMOP]);
  });

  it('has the same struct sizes and ioctl numbers', () => {
    const s = SIZEOF;
    expect(c.sizes).toEqual([s.bind, s.register, s.unregister, s.map, s.unmap, s.run, s.query, s.stats, s.guestAccess, s.evict, s.event]);
    const i = HELPER_IOCTL;
    expect(c.ioctls).toEqual([i.BIND, i.REGISTER, i.UNREGISTER, i.MAP, i.UNMAP, i.QUERY, i.STATS, i.GUEST_ACCESS, i.EVICT]);
  });

  it('has the same field offsets in map, stats and event', () => {
    expect(c.map).toEqual(Object.values(MAP_OFF));
    expect(c.stats).toEqual(Object.values(STATS_OFF));
    expect(c.event).toEqual(Object.values(EVENT_OFF));
  });

  it('has the same event types, MAP flags, limits and reserved domid', () => {
    expect(c.consts).toEqual([EVENT_OVERFLOW, EVENT_FATAL, MAP_TRY_HUGE, MAP_ACCESS, MAP_WRITE, MAP_NO_INSTALL, MAX_WINDOW_PAGES,
      MAX_REGISTERED_PAGES, DOMID_FIRST_RESERVED, MAX_RANGES]);
  });
});
