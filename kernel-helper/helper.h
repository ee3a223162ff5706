/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xvgpu kernel helper: internal types shared by the files of the module.
 *
 * Locking (see docs/kernel-helper.md):
 *   ctx->ioctl_lock  serialises control operations on one fd (bind, register, unregister, map,
 *                    unmap, query, evict). Taken before mmap_lock; callbacks never take it.
 *   ctx->lock        the "driver lock" of the fault/invalidate protocol (test_hmm's mutex, KVM's
 *                    mmu_lock): read_retry + p2m install in MAP, set_seq + p2m removal in the
 *                    invalidate callback, every soft-p2m access, and BIND's publication of the
 *                    binding (GUEST_ACCESS, which does not take ioctl_lock, reads it under this
 *                    lock). Never held across mmap_lock, a page fault, copy_{to,from}_user, or a
 *                    sleeping allocation.
 *   ctx->ev_lock     spinlock of the event ring.
 *   ctx->read_lock   serialises read(): an event leaves the ring only after it was copied out.
 */
#ifndef XVGPU_HELPER_H
#define XVGPU_HELPER_H

#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/xarray.h>

#include "include/uapi/linux/xvgpu_helper.h"

/*
 * A frame the kernel may touch through kmap: RAM with a struct page, not ZONE_DEVICE. pfn_valid()
 * alone is not enough: it also holds for MMIO holes inside an early sparse section and for device
 * pages, whose direct-map alias (if any) has the wrong memory type. VM_IO/VM_PFNMAP frames (a
 * GPU's VRAM BAR) fail this: never read through the soft p2m, emulated through ioremap (range.c).
 */
static inline bool xh_frame_is_ram(unsigned long pfn)
{
	return pfn_valid(pfn) && page_is_ram(pfn) && !is_zone_device_page(pfn_to_page(pfn));
}

#define XH_HUGE_PAGES 512
#define XH_MAX_MAP_PAGES 512
/* Two slots are kept back: one for the OVERFLOW event, one for the (single) FATAL event. */
#define XH_EVENT_RING 4096

struct xh_ctx;
struct xh_range;

/*
 * A p2m back-end; map/unmap take GFN runs inside the window. Removal can fail (a hypercall error):
 * the caller then retries page by page and keeps, and reports, every entry still not removed.
 */
struct xh_p2m_ops {
	const char *name;
	bool read_only_entries; /* can hold read-only entries (else every entry must be writable) */
	int (*init)(struct xh_ctx *ctx);
	void (*fini)(struct xh_ctx *ctx);
	/*
	 * Optional (xen): REGISTER hands the range's frames over chunk by chunk (aperture_add), then
	 * aperture_commit takes what the range needs for its whole life (the iomem permission);
	 * aperture_release gives it back after the range's entries were removed (or on a failed
	 * REGISTER). Called under ioctl_lock, never under ctx->lock.
	 */
	int (*aperture_add)(struct xh_ctx *ctx, struct xh_range *r, const unsigned long *pfn, unsigned long n);
	int (*aperture_commit)(struct xh_ctx *ctx, struct xh_range *r);
	void (*aperture_release)(struct xh_ctx *ctx, struct xh_range *r);
	/* 0, or an error with *done = the pages from gfn that are installed all the same. */
	int (*map)(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long pfn, unsigned long n,
		   bool writable, unsigned long *done);
	/* 0, or an error; removing an entry the back-end has not recorded succeeds, so a retry of a
	 * part-done run is safe. */
	int (*unmap)(struct xh_ctx *ctx, u64 gfn, unsigned long n);
	void (*flush)(struct xh_ctx *ctx);
	/* Fail closed after a removal failed: stop the guest from running (best effort, logged). */
	void (*pause)(struct xh_ctx *ctx);
};

extern const struct xh_p2m_ops xh_p2m_soft_ops;
extern const struct xh_p2m_ops xh_p2m_xen_ops;
extern const struct xh_p2m_ops xh_p2m_xen_dmop_ops;

struct xh_range {
	struct mmu_interval_notifier notifier;
	struct xh_ctx *ctx;
	u32 id;
	unsigned long va;
	unsigned long pages;
	u64 *gfn_of;            /* per range page: GFN + 1 it is mapped at, 0 if none */
	unsigned long *huge;    /* bitmap of range pages that start a 2 MiB superpage */
	bool dead;              /* its VMA is gone (UNMAP of all of it, or RELEASE) */
	void *p2m_priv;         /* back-end private (xen: the aperture) */
};

struct xh_ctx {
	struct mutex ioctl_lock;
	struct mutex lock;
	bool bound;              /* written under ctx->lock (and ioctl_lock) */
	bool fatal;              /* a removal failed: guest stopped, MAP refused (under ctx->lock) */
	u32 domid;
	u64 first_gfn;
	u64 pages;
	const struct xh_p2m_ops *ops;
	void *p2m;               /* back-end private */
	u32 *owner_range;        /* per window page: range id, 0 = unmapped */
	u32 *owner_page;         /* per window page: page of that range */
	unsigned long *ro;       /* per window page: the entry is read-only */
	unsigned long *mapped;   /* per window page: has an entry (owner_range != 0), for find_next_bit */
	struct xarray ranges;    /* id -> struct xh_range */
	u64 registered_pages;    /* sum of the ranges' pages (under ioctl_lock) */
	/* events */
	spinlock_t ev_lock;
	struct mutex read_lock;
	struct xvgpu_event *ring;
	unsigned int ev_head, ev_count;
	bool fatal_queued;
	u64 ev_dropped;
	wait_queue_head_t wq;
	/* stats, under ctx->lock */
	struct xvgpu_stats st;
};

/* range.c: the fault / invalidate / retry loop */
int xh_register(struct xh_ctx *ctx, struct xvgpu_register *arg);
int xh_unregister(struct xh_ctx *ctx, u32 id);
void xh_unregister_all(struct xh_ctx *ctx);
int xh_map(struct xh_ctx *ctx, struct xvgpu_map *arg);
int xh_unmap(struct xh_ctx *ctx, struct xvgpu_unmap *arg);
int xh_query(struct xh_ctx *ctx, struct xvgpu_query *arg);
int xh_evict(struct xh_ctx *ctx, struct xvgpu_evict *arg);

/* main.c */
void xh_queue_event(struct xh_ctx *ctx, const struct xvgpu_event *ev);
void xh_queue_fatal(struct xh_ctx *ctx, const struct xvgpu_event *ev);
void xh_hist_add(u64 *hist, u64 ns);

/* p2m_soft.c */
int xh_soft_guest_access(struct xh_ctx *ctx, struct xvgpu_guest_access *arg);

#endif
