/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * xvgpu kernel helper UAPI: maps host GPU buffer pages into one guest's p2m on demand and revokes
 * them from MMU-notifier callbacks (see docs/kernel-helper.md).
 *
 * Every argument struct starts with `size` (the caller's sizeof): a mismatch is -EINVAL, so a
 * client built against another version of this header fails loudly instead of misreading fields.
 * Fields are marked (in) or (out). Enums reserve 0 to catch uninitialised fields.
 *
 * The device is /dev/xvgpu_helper. One open file = one binding: BIND once (CAP_SYS_ADMIN), then the
 * fd can only ever map into that domain's BAR GFN window. Closing the fd revokes everything.
 *
 * Limits (every kernel allocation sized by user space is bounded and charged to its memory cgroup):
 * a BAR window holds at most XVGPU_MAX_WINDOW_PAGES pages, and one fd registers at most
 * XVGPU_MAX_RANGES ranges holding at most XVGPU_MAX_REGISTERED_PAGES pages in all (one range can
 * be that large); past a limit the call fails with -E2BIG.
 */
#ifndef _UAPI_LINUX_XVGPU_HELPER_H
#define _UAPI_LINUX_XVGPU_HELPER_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define XVGPU_HELPER_DEVICE "/dev/xvgpu_helper"

#define XVGPU_MAX_WINDOW_PAGES (1ull << 22)     /* 16 GiB of BAR */
#define XVGPU_MAX_REGISTERED_PAGES (1ull << 22) /* 16 GiB of buffers per fd */
#define XVGPU_MAX_RANGES 4096                    /* registered ranges per fd */
#define XVGPU_DOMID_FIRST_RESERVED 0x7FF0      /* Xen's DOMID_FIRST_RESERVED: not a guest */

enum xvgpu_p2m_backend {
	XVGPU_P2M_SOFT = 1, /* in-kernel software p2m; GUEST_READ/WRITE access it */
	XVGPU_P2M_XEN = 2,  /* XEN_DOMCTL_memory_mapping on the running Xen */
	XVGPU_P2M_XEN_DMOP = 3, /* XEN_DMOP_lend_pages of xvgpu's Xen extension (docs/xen-extension.md) */
};

struct xvgpu_bind {
	__u32 size;
	__u32 domid;     /* (in) frontend domain: 1 .. XVGPU_DOMID_FIRST_RESERVED - 1 */
	__u64 first_gfn; /* (in) BAR window */
	__u64 pages;     /* (in) */
	__u32 backend;   /* (in) enum xvgpu_p2m_backend */
	__u32 flags;     /* (in) must be 0 */
};

struct xvgpu_register {
	__u32 size;
	__u32 range_id; /* (out) */
	__u64 va;       /* (in) page-aligned user address of the caller's mmap of a BO */
	__u64 length;   /* (in) bytes, page multiple */
};

struct xvgpu_unregister {
	__u32 size;
	__u32 range_id; /* (in) */
};

/*
 * MAP installs the pages the guest may touch, with the host process's own permissions (as KVM's
 * hva_to_pfn): a page is entered writable only if the process's PTE for it is writable in a VM_WRITE
 * mapping, after the write fault that breaks COW or replaces the zero page. Which intent it uses:
 *   WRITE                 write: the pages must be writable (-EFAULT if the mapping is read-only);
 *   ACCESS without WRITE  read: writable where already writable, else a read-only entry;
 *   neither               write if the mapping is VM_WRITE, else read-only.
 * A back-end without read-only entries (xen) always uses write intent. A guest write to a read-only
 * entry faults (GUEST_ACCESS faulted = 2); MAP with WRITE then upgrades the entry.
 */
#define XVGPU_MAP_TRY_HUGE (1u << 0) /* map the 2 MiB window holding the run if it lies inside it and frames allow */
#define XVGPU_MAP_ACCESS   (1u << 1) /* complete the access below under the lock (emulate) */
#define XVGPU_MAP_WRITE    (1u << 2) /* write intent; with ACCESS the access is a write of `data` */
#define XVGPU_MAP_NO_INSTALL (1u << 3) /* with ACCESS: do the access under the lock, install nothing */

struct xvgpu_map {
	__u32 size;
	__u32 range_id;      /* (in) */
	__u64 gfn;           /* (in) first GFN of the run */
	__u64 page_in_range; /* (in) range page backing gfn */
	__u32 pages;         /* (in) 1..512 */
	__u32 flags;         /* (in) XVGPU_MAP_* */
	__u64 access_gfn;    /* (in) with ACCESS: page of the access, inside the run */
	__u32 access_offset; /* (in) byte in that page */
	__u32 access_size;   /* (in) 1, 2, 4 or 8 */
	__u64 data;          /* (in) write data / (out) read data */
	__u64 out_gfn;       /* (out) what is mapped now: always covers [gfn, gfn + pages) */
	__u32 out_pages;     /* (out) pages, or 512 for a superpage holding the run */
	__u32 installed;     /* (out) entries newly installed */
	__u32 huge;          /* (out) 1 if mapped as one 2 MiB superpage */
	__u32 collisions;    /* (out) read_retry collisions before it stuck */
	__u64 seq;           /* (out) interval sequence the mapping was validated at */
};

struct xvgpu_unmap {
	__u32 size;
	__u32 pages;   /* (in) */
	__u64 gfn;     /* (in) */
	__u64 revoked; /* (out) */
};

struct xvgpu_run {
	__u64 gfn;
	__u64 pages;
	__u64 page_in_range;
	__u32 range_id;
	__u32 huge;
};

struct xvgpu_query {
	__u32 size;
	__u32 count; /* (in) capacity of runs[] / (out) runs written */
	__u64 gfn;   /* (in) */
	__u64 pages; /* (in) */
	__u64 runs;  /* (in) user pointer to struct xvgpu_run[count] */
};

#define XVGPU_HIST_BUCKETS 32 /* bucket i counts latencies in [2^i, 2^(i+1)) ns */

struct xvgpu_stats {
	__u32 size;
	__u32 ranges;
	__u64 maps;
	__u64 map_collisions;
	__u64 installed_pages;
	__u64 huge_maps;
	__u64 invalidations;
	__u64 revoked_pages;
	__u64 resident_pages;
	__u64 events_dropped;
	__u64 invalidate_ns[XVGPU_HIST_BUCKETS];
	__u64 map_ns[XVGPU_HIST_BUCKETS];
};

/* Soft back-end only: access guest-physical memory exactly as the guest would. */
struct xvgpu_guest_access {
	__u32 size;
	__u32 len;     /* (in) bytes, within one page */
	__u64 gpa;     /* (in) guest-physical address */
	__u64 buf;     /* (in) user pointer */
	__u32 write;   /* (in) 1 = write buf to guest memory */
	__u32 faulted; /* (out) nothing was accessed (a guest fault): 1 = not mapped, 2 = write to a read-only entry */
};

/*
 * TEST ONLY (module parameter allow_evict=1, load time): zap the caller's own PTEs of a range it
 * registered itself, as TTM eviction would. Other processes' mappings of the same object are untouched.
 */
struct xvgpu_evict {
	__u32 size;
	__u32 range_id;   /* (in) */
	__u64 first_page; /* (in) */
	__u64 pages;      /* (in) */
};

/*
 * Besides enum mmu_notifier_event, two events of the helper itself:
 * OVERFLOW: the ring was full; `count` events after it were lost (revocation happened regardless).
 * FATAL: the back-end refused to remove `count` p2m entries of range pages [first_page, +pages): they
 *        stay recorded (QUERY shows them), the guest is paused (xen) or its accesses fail (soft),
 *        and every later MAP fails with -EIO. Queued once; it is never lost to overflow.
 */
#define XVGPU_EVENT_OVERFLOW 0x10000
#define XVGPU_EVENT_FATAL    0x10001

/*
 * Read with read(2) in multiples of this size; poll(2) says POLLIN when one is queued. Only
 * invalidations that removed p2m entries are queued.
 */
struct xvgpu_event {
	__u32 range_id;
	__u32 event;      /* enum mmu_notifier_event: 0 UNMAP, 1 CLEAR, 2 PROTECTION_VMA, 5 RELEASE, ...; XVGPU_EVENT_* */
	__u64 first_page; /* range pages [first_page, first_page + pages) were invalidated */
	__u64 pages;
	__u64 revoked;    /* p2m entries removed */
	__u64 seq;        /* the invalidation's cur_seq */
	__u64 start_ns;   /* ktime_get_ns() at callback entry */
	__u64 done_ns;    /* ... when the entries were gone (flush included) */
	__u64 count;      /* OVERFLOW: events lost; FATAL: entries not removed; else 0 */
};

#define XVGPU_IOC 'X'
#define XVGPU_IOC_BIND        _IOW(XVGPU_IOC, 1, struct xvgpu_bind)
#define XVGPU_IOC_REGISTER    _IOWR(XVGPU_IOC, 2, struct xvgpu_register)
#define XVGPU_IOC_UNREGISTER  _IOW(XVGPU_IOC, 3, struct xvgpu_unregister)
#define XVGPU_IOC_MAP         _IOWR(XVGPU_IOC, 4, struct xvgpu_map)
#define XVGPU_IOC_UNMAP       _IOWR(XVGPU_IOC, 5, struct xvgpu_unmap)
#define XVGPU_IOC_QUERY       _IOWR(XVGPU_IOC, 6, struct xvgpu_query)
#define XVGPU_IOC_STATS       _IOWR(XVGPU_IOC, 7, struct xvgpu_stats)
#define XVGPU_IOC_GUEST_ACCESS _IOWR(XVGPU_IOC, 8, struct xvgpu_guest_access)
#define XVGPU_IOC_EVICT       _IOW(XVGPU_IOC, 9, struct xvgpu_evict)

#endif /* _UAPI_LINUX_XVGPU_HELPER_H */
