// SPDX-License-Identifier: GPL-2.0
/*
 * The fault / invalidate / retry loop, in one place (the shape of lib/test_hmm.c):
 *
 *   MAP:        seq = read_begin → look frames up under mmap_read_lock, as KVM's hva_to_pfn does
 *               (GUP for ordinary memory, the PTE walk only for VM_IO/VM_PFNMAP) → lock →
 *               read_retry(seq)? unlock, again : install p2m entries, emulated access → unlock
 *   invalidate: lock (trylock when not blockable) → set_seq → remove every recorded entry in the
 *               range through the back-end, flush → unlock → queue an event
 *
 * The callback never waits for user space: a stuck back-end cannot stall memory management. A
 * removal the back-end refuses fails closed: the entry stays recorded, the guest is paused and user
 * space gets a FATAL event.
 */
#include <linux/highmem.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/version.h>

#include "helper.h"

#define XH_MAP_TIMEOUT_MS 1000
/* Entries UNMAP, and range pages UNREGISTER, handle per hold of ctx->lock. */
#define XH_UNMAP_BATCH 512
#define XH_REVOKE_CHUNK 4096

/*
 * TEST ONLY, load time only (0444): invalidations leave the p2m alone, so the race test must report
 * stale reads (proof that it can fail). Never set it otherwise.
 */
static bool test_skip_revoke;
module_param(test_skip_revoke, bool, 0444);
MODULE_PARM_DESC(test_skip_revoke, "TEST ONLY: do not revoke on invalidation (breaks the guarantee on purpose)");

/*
 * TEST ONLY, load time only (0444): every revocation (UNMAP, UNREGISTER, invalidation, close)
 * forgets its entries without asking the back-end to remove them, a lost revocation. The Xen tier's
 * pvh inject run loads it: the guest must then read freed frames (proof that its check can fail).
 */
static bool test_lose_revoke;
module_param(test_lose_revoke, bool, 0444);
MODULE_PARM_DESC(test_lose_revoke, "TEST ONLY: revocations forget entries without removing them (breaks the guarantee on purpose)");

/* The frames of one MAP, looked up before ctx->lock is taken. */
struct xh_frames {
	unsigned long n;                       /* looked up so far */
	unsigned long pfn[XH_MAX_MAP_PAGES];
	struct page *page[XH_MAX_MAP_PAGES];   /* GUP reference (NULL for PFNMAP frames) */
	DECLARE_BITMAP(writable, XH_MAX_MAP_PAGES);
};

/* How MAP looks frames up (see XVGPU_MAP_* in the UAPI header). */
enum xh_intent {
	XH_READ,                 /* writable where already writable, else read-only */
	XH_WRITE,                /* must be writable: fault for write, fail on a read-only mapping */
	XH_WRITE_IF_VMA_WRITABLE /* XH_WRITE in a VM_WRITE mapping, else XH_READ */
};

static u64 window_index(struct xh_ctx *ctx, u64 gfn)
{
	return gfn - ctx->first_gfn;
}

static bool in_window(struct xh_ctx *ctx, u64 gfn, u64 n)
{
	return n > 0 && gfn >= ctx->first_gfn && gfn - ctx->first_gfn <= ctx->pages &&
	       n <= ctx->pages - (gfn - ctx->first_gfn);
}

/* Drops the record of range page p (its p2m entry is gone). */
static void forget(struct xh_ctx *ctx, struct xh_range *r, unsigned long p)
{
	u64 w = window_index(ctx, r->gfn_of[p] - 1);

	ctx->owner_range[w] = 0;
	clear_bit(w, ctx->ro);
	clear_bit(w, ctx->mapped);
	r->gfn_of[p] = 0;
}

/*
 * Removes the entries of range pages [p, p + n), GFN-contiguous, and forgets those that are gone.
 * When the batch fails the rest goes page by page, so one bad entry keeps only itself.
 */
static unsigned long remove_run(struct xh_ctx *ctx, struct xh_range *r, unsigned long p, unsigned long n,
				u64 *failed)
{
	u64 gfn = r->gfn_of[p] - 1;
	bool batch_ok = READ_ONCE(test_lose_revoke) || !ctx->ops->unmap(ctx, gfn, n);
	unsigned long i, removed = 0;

	for (i = 0; i < n; i++) {
		if (!batch_ok && ctx->ops->unmap(ctx, gfn + i, 1)) {
			(*failed)++;
			continue;
		}
		forget(ctx, r, p + i);
		removed++;
	}
	return removed;
}

/* Removes the p2m entries of range pages [first, first + n). Caller holds ctx->lock and flushes. */
static u64 revoke_pages(struct xh_ctx *ctx, struct xh_range *r, unsigned long first, unsigned long n,
			u64 *failed)
{
	unsigned long p, run = 0;
	u64 revoked = 0;

	for (p = first; p <= first + n; p++) {
		u64 g1 = p < first + n ? r->gfn_of[p] : 0;

		if (run && g1 && g1 == r->gfn_of[p - 1] + 1) {
			run++;
			continue;
		}
		if (run)
			revoked += remove_run(ctx, r, p - run, run, failed);
		run = g1 ? 1 : 0;
	}
	/* A partly revoked superpage is split: what remains stays mapped as 4 KiB entries. */
	for (p = first >= XH_HUGE_PAGES ? first - XH_HUGE_PAGES + 1 : 0; p < first + n && p < r->pages; p++)
		clear_bit(p, r->huge);
	ctx->st.revoked_pages += revoked;
	ctx->st.resident_pages -= revoked;
	return revoked;
}

/*
 * Under ctx->lock: revokes range pages [first, first + n) and flushes. If the back-end refused to
 * remove some entry, fail closed: the entries stay recorded, the guest is paused (once), and
 * *fatal (count != 0) is the event to queue after unlocking.
 */
static u64 revoke(struct xh_ctx *ctx, struct xh_range *r, unsigned long first, unsigned long n,
		  struct xvgpu_event *fatal)
{
	u64 t0 = ktime_get_ns(), failed = 0, revoked = revoke_pages(ctx, r, first, n, &failed);

	if (revoked)
		ctx->ops->flush(ctx);
	if (failed) {
		if (!ctx->fatal) {
			ctx->fatal = true;
			ctx->ops->pause(ctx);
		}
		*fatal = (struct xvgpu_event){ .range_id = r->id, .event = XVGPU_EVENT_FATAL, .first_page = first,
					       .pages = n, .revoked = revoked, .count = failed, .start_ns = t0,
					       .done_ns = ktime_get_ns() };
	}
	return revoked;
}

static bool xh_invalidate(struct mmu_interval_notifier *mni, const struct mmu_notifier_range *nr,
			  unsigned long cur_seq)
{
	struct xh_range *r = container_of(mni, struct xh_range, notifier);
	struct xh_ctx *ctx = r->ctx;
	unsigned long start = max(nr->start, r->va);
	unsigned long end = min(nr->end, r->va + r->pages * PAGE_SIZE);
	unsigned long first = (start - r->va) >> PAGE_SHIFT;
	unsigned long last = (end - r->va + PAGE_SIZE - 1) >> PAGE_SHIFT;
	struct xvgpu_event ev = { 0 }, fatal = { 0 };
	u64 t0, revoked = 0;

	if (mmu_notifier_range_blockable(nr))
		mutex_lock(&ctx->lock);
	else if (!mutex_trylock(&ctx->lock))
		return false;
	t0 = ktime_get_ns();
	mmu_interval_set_seq(mni, cur_seq);
	if (end > start && !READ_ONCE(test_skip_revoke))
		revoked = revoke(ctx, r, first, last - first, &fatal);
	if (nr->event == MMU_NOTIFY_RELEASE ||
	    (nr->event == MMU_NOTIFY_UNMAP && first == 0 && last == r->pages))
		WRITE_ONCE(r->dead, true);
	ev.range_id = r->id;
	ev.event = nr->event;
	ev.first_page = first;
	ev.pages = end > start ? last - first : 0;
	ev.revoked = revoked;
	ev.seq = cur_seq;
	ev.start_ns = t0;
	ev.done_ns = ktime_get_ns();
	ctx->st.invalidations++;
	xh_hist_add(ctx->st.invalidate_ns, ev.done_ns - t0);
	mutex_unlock(&ctx->lock);
	if (fatal.count)
		xh_queue_fatal(ctx, &fatal);
	if (revoked) /* an invalidation that removed nothing tells user space nothing */
		xh_queue_event(ctx, &ev);
	return true;
}

static const struct mmu_interval_notifier_ops xh_notifier_ops = {
	.invalidate = xh_invalidate,
};

/* The PTE of a VM_IO/VM_PFNMAP mapping: its frame and whether it is writable. */
static int read_pfnmap(struct vm_area_struct *vma, unsigned long addr, unsigned long *pfn, bool *writable)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
	struct follow_pfnmap_args args = { .vma = vma, .address = addr };
	int ret = follow_pfnmap_start(&args);

	if (ret)
		return ret;
	*pfn = args.pfn;
	*writable = args.writable;
	follow_pfnmap_end(&args);
	return 0;
#else
	spinlock_t *ptl;
	pte_t *ptep, pte;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
	int ret = follow_pte(vma, addr, &ptep, &ptl);
#else
	int ret = follow_pte(vma->vm_mm, addr, &ptep, &ptl);
#endif

	if (ret)
		return ret;
	pte = ptep_get(ptep);
	*pfn = pte_pfn(pte);
	*writable = pte_write(pte);
	pte_unmap_unlock(ptep, ptl);
	return 0;
#endif
}

/*
 * KVM's hva_to_pfn_remapped, for VM_IO/VM_PFNMAP only (follow_pte/follow_pfnmap refuse anything
 * else since 6.10): read the PTE, and if it is absent, or read-only when writing, fault it in and
 * read it again. No reference is taken (such frames need not have a refcounted struct page): the
 * interval notifier, checked under ctx->lock, is what keeps the frame from going away under us.
 */
static int lookup_remapped(struct vm_area_struct *vma, unsigned long addr, bool write, unsigned long *pfn,
			   bool *writable)
{
	bool unlocked = false;
	int ret = read_pfnmap(vma, addr, pfn, writable);

	if (ret || (write && !*writable)) {
		ret = fixup_user_fault(vma->vm_mm, addr, write ? FAULT_FLAG_WRITE : 0, &unlocked);
		if (unlocked)
			return -EAGAIN; /* mmap_lock was dropped: the VMA may have changed */
		if (ret)
			return ret;
		ret = read_pfnmap(vma, addr, pfn, writable);
		if (ret)
			return ret;
	}
	if (write && !*writable)
		return -EFAULT;
	return 0;
}

static long gup_remote(struct mm_struct *mm, unsigned long addr, unsigned long n, unsigned int flags,
		       struct page **pages)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	return get_user_pages_remote(mm, addr, n, flags, pages, NULL);
#else
	return get_user_pages_remote(mm, addr, n, flags, pages, NULL, NULL);
#endif
}

static bool wants_write(enum xh_intent intent, struct vm_area_struct *vma)
{
	return intent == XH_WRITE || (intent == XH_WRITE_IF_VMA_WRITABLE && (vma->vm_flags & VM_WRITE));
}

static void take_pages(struct xh_frames *f, unsigned long i, long got, bool writable)
{
	for (; got > 0; got--, i++) {
		f->pfn[i] = page_to_pfn(f->page[i]);
		if (writable)
			__set_bit(i, f->writable);
		else
			__clear_bit(i, f->writable);
	}
}

/*
 * KVM's hva_to_pfn_slow, for ordinary memory (anonymous, shmem, page cache): GUP, with FOLL_WRITE
 * for a write so that COW is broken and the zero page replaced before the frame is entered; a
 * read maps what it finds read-only. `n` pages of one VMA from `addr` to frames [i, ...). Returns
 * how many were looked up (at least 1) or -errno. Caller holds mmap_read_lock.
 */
static long lookup_normal(struct mm_struct *mm, struct vm_area_struct *vma, unsigned long addr, unsigned long n,
			  bool write, struct xh_frames *f, unsigned long i)
{
	long got;

	if (write && !(vma->vm_flags & VM_WRITE))
		return -EFAULT;
	got = gup_remote(mm, addr, n, write ? FOLL_WRITE : 0, &f->page[i]);
	if (got <= 0)
		return got ? got : -EFAULT;
	take_pages(f, i, got, write);
	return got;
}

static void put_frames(struct xh_frames *f)
{
	unsigned long i;

	for (i = 0; i < f->n; i++) {
		if (f->page[i])
			put_page(f->page[i]);
		f->page[i] = NULL;
	}
	f->n = 0;
}

/*
 * Looks up the frames behind range pages [page0, page0 + n) into f (which holds no references on
 * entry). Ordinary pages come with a GUP reference, dropped by put_frames after the install: the
 * entry itself needs none, since an invalidation removes it before the frame can be freed (the
 * notifier, checked under ctx->lock, protects it as it does KVM's SPTEs), but holding the
 * reference across the install and the emulated access keeps the frame from being reused while
 * we write through it. Returns 0, -EAGAIN (mmap_lock was dropped: start over) or -errno.
 */
static int lookup_frames(struct xh_range *r, unsigned long page0, unsigned long n, enum xh_intent intent,
			 struct xh_frames *f)
{
	struct mm_struct *mm = r->notifier.mm;
	unsigned long addr = r->va + page0 * PAGE_SIZE;
	int ret = 0;

	f->n = 0;
	/* Fast path (hva_to_pfn_fast): lockless, only pages already writable, only in our own mm. */
	if (mm == current->mm) {
		int got = get_user_pages_fast_only(addr, n, FOLL_WRITE, f->page);

		take_pages(f, 0, got, true);
		f->n = max(got, 0);
	}
	if (f->n == n)
		return 0;
	if (mmap_read_lock_killable(mm)) {
		put_frames(f);
		return -EINTR;
	}
	while (f->n < n && !ret) {
		unsigned long a = addr + f->n * PAGE_SIZE;
		struct vm_area_struct *vma = vma_lookup(mm, a);
		bool writable;
		long got;

		if (!vma) {
			ret = -EFAULT;
		} else if (vma->vm_flags & (VM_IO | VM_PFNMAP)) {
			ret = lookup_remapped(vma, a, wants_write(intent, vma), &f->pfn[f->n], &writable);
			if (!ret) {
				f->page[f->n] = NULL;
				__assign_bit(f->n, f->writable, writable);
				f->n++;
			}
		} else {
			got = lookup_normal(mm, vma, a, min(n - f->n, (vma->vm_end - a) >> PAGE_SHIFT),
					    wants_write(intent, vma), f, f->n);
			if (got < 0)
				ret = got;
			else
				f->n += got;
		}
	}
	mmap_read_unlock(mm);
	if (ret)
		put_frames(f);
	return ret;
}

static bool aligned_run(const struct xh_frames *f, unsigned long n)
{
	unsigned long i;

	if (f->pfn[0] % XH_HUGE_PAGES)
		return false;
	for (i = 1; i < n; i++)
		if (f->pfn[i] != f->pfn[0] + i || test_bit(i, f->writable) != test_bit(0, f->writable))
			return false;
	return true;
}

/* Records range page p as mapped at gfn. */
static void record(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long p, bool writable, u32 *installed)
{
	u64 w = window_index(ctx, gfn);

	if (!r->gfn_of[p]) {
		(*installed)++;
		ctx->st.installed_pages++;
		ctx->st.resident_pages++;
	}
	r->gfn_of[p] = gfn + 1;
	ctx->owner_range[w] = r->id;
	ctx->owner_page[w] = p;
	set_bit(w, ctx->mapped);
	__assign_bit(w, ctx->ro, !writable);
}

/* Enters one run of frames f[fi, fi + n) at gfn, recording each entry the back-end made. */
static int map_run(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long page0,
		   const struct xh_frames *f, unsigned long fi, unsigned long n, u32 *installed)
{
	bool writable = test_bit(fi, f->writable);
	unsigned long i, done = 0;
	int ret = ctx->ops->map(ctx, r, gfn, f->pfn[fi], n, writable, &done);

	/* Even on failure: what the back-end did enter must be revocable, so it is recorded. */
	for (i = 0; i < done && i < n; i++)
		record(ctx, r, gfn + i, page0 + i, writable, installed);
	return ret;
}

/* Page p wants an entry at gfn: it has none, or a read-only one and the frame is now writable. */
static bool needs_entry(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long p, bool writable)
{
	return r->gfn_of[p] != gfn + 1 || (writable && test_bit(window_index(ctx, gfn), ctx->ro));
}

/*
 * Installs range pages [page0, page0 + n) at [gfn, ...) from frames f[fi, ...); caller holds
 * ctx->lock and has checked read_retry. Nothing is touched if a GFN or a page is taken by another.
 */
static int install(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long page0,
		   const struct xh_frames *f, unsigned long fi, unsigned long n, u32 *installed)
{
	unsigned long i, run = 0;
	int ret;

	for (i = 0; i < n; i++) {
		u64 w = window_index(ctx, gfn + i);
		u32 owner = ctx->owner_range[w];
		bool same = owner == r->id && ctx->owner_page[w] == page0 + i && r->gfn_of[page0 + i] == gfn + i + 1;

		if (!same && (owner || r->gfn_of[page0 + i]))
			return -EEXIST;
	}
	for (i = 0; i <= n; i++) {
		bool need = i < n && needs_entry(ctx, r, gfn + i, page0 + i, test_bit(fi + i, f->writable));
		bool extend = need && run && f->pfn[fi + i] == f->pfn[fi + i - 1] + 1 &&
			      test_bit(fi + i, f->writable) == test_bit(fi + i - 1, f->writable);

		if (run && !extend) {
			ret = map_run(ctx, r, gfn + i - run, page0 + i - run, f, fi + i - run, run, installed);
			if (ret)
				return ret;
			run = 0;
		}
		if (need)
			run++;
	}
	return 0;
}

/*
 * The emulated access to device memory (a VRAM BAR: VM_IO/VM_PFNMAP, no struct page to kmap): one
 * access of exactly the guest's width through an uncached mapping of the frame, the memory type the
 * back-end's own mapping of the BAR has. Map-and-emulate on stock Xen needs it for every first touch.
 */
static int emulate_io(struct xvgpu_map *arg, unsigned long pfn, bool write)
{
	void __iomem *va = ioremap(PFN_PHYS(pfn), PAGE_SIZE);
	void __iomem *p;

	if (!va)
		return -ENOMEM;
	p = va + arg->access_offset;
	if (!write)
		arg->data = 0;
	switch (arg->access_size) {
	case 1:
		if (write)
			writeb((u8)arg->data, p);
		else
			arg->data = readb(p);
		break;
	case 2:
		if (write)
			writew((u16)arg->data, p);
		else
			arg->data = readw(p);
		break;
	case 4:
		if (write)
			writel((u32)arg->data, p);
		else
			arg->data = readl(p);
		break;
	default: /* 8: check_map_arg allows no other size */
		if (write)
			writeq(arg->data, p);
		else
			arg->data = readq(p);
	}
	iounmap(va);
	return 0;
}

/* The emulated access (D4 `emulate`), on the frame itself, still under ctx->lock. */
static int emulate(struct xvgpu_map *arg, unsigned long pfn, bool writable)
{
	bool write = arg->flags & XVGPU_MAP_WRITE;
	u8 *va;

	if (write && !writable)
		return -EFAULT;
	if (!xh_frame_is_ram(pfn)) {
		if (pfn_valid(pfn) && is_zone_device_page(pfn_to_page(pfn)))
			return -EIO; /* ZONE_DEVICE (e.g. device-private): no CPU mapping of its own */
		return emulate_io(arg, pfn, write);
	}
	va = kmap_local_page(pfn_to_page(pfn));
	if (write) {
		memcpy(va + arg->access_offset, &arg->data, arg->access_size);
	} else {
		arg->data = 0;
		memcpy(&arg->data, va + arg->access_offset, arg->access_size);
	}
	kunmap_local(va);
	return 0;
}

static struct xh_range *get_range(struct xh_ctx *ctx, u32 id)
{
	return xa_load(&ctx->ranges, id);
}

static enum xh_intent map_intent(struct xh_ctx *ctx, u32 flags)
{
	if ((flags & XVGPU_MAP_WRITE) || !ctx->ops->read_only_entries)
		return XH_WRITE;
	return (flags & XVGPU_MAP_ACCESS) ? XH_READ : XH_WRITE_IF_VMA_WRITABLE;
}

static int check_map_arg(struct xh_ctx *ctx, struct xh_range *r, const struct xvgpu_map *arg)
{
	if (!arg->pages || arg->pages > XH_MAX_MAP_PAGES || arg->page_in_range >= r->pages ||
	    arg->pages > r->pages - arg->page_in_range || !in_window(ctx, arg->gfn, arg->pages))
		return -EINVAL;
	if (arg->flags & ~(XVGPU_MAP_TRY_HUGE | XVGPU_MAP_ACCESS | XVGPU_MAP_WRITE | XVGPU_MAP_NO_INSTALL))
		return -EINVAL;
	if ((arg->flags & XVGPU_MAP_NO_INSTALL) && !(arg->flags & XVGPU_MAP_ACCESS))
		return -EINVAL;
	if (!(arg->flags & XVGPU_MAP_ACCESS))
		return 0;
	if (arg->access_gfn < arg->gfn || arg->access_gfn - arg->gfn >= arg->pages)
		return -EINVAL;
	if (arg->access_size != 1 && arg->access_size != 2 && arg->access_size != 4 && arg->access_size != 8)
		return -EINVAL;
	/* Not offset + size > PAGE_SIZE: the u32 sum wraps. */
	if (arg->access_offset > PAGE_SIZE - arg->access_size)
		return -EINVAL;
	return 0;
}

/* The run a MAP enters: `n` range pages from page0 at gfn, from frames f->pfn[fi, ...). */
struct xh_plan {
	u64 gfn;
	unsigned long page0, n, fi;
	bool huge;
};

/*
 * With TRY_HUGE, and only if the whole requested run lies inside its aligned 2 MiB window (of the
 * BAR and of the range), looks the window's frames up: one superpage if they are one aligned,
 * contiguous block, else the requested run out of the same lookup. Returns 0 with *plan set,
 * 1 if the window does not apply (look the request up alone), or -EAGAIN / -EINTR.
 */
static int plan_huge(struct xh_ctx *ctx, struct xh_range *r, const struct xvgpu_map *arg, enum xh_intent intent,
		     struct xh_frames *f, struct xh_plan *plan)
{
	u64 wgfn = arg->gfn & ~(u64)(XH_HUGE_PAGES - 1);
	u64 back = arg->gfn - wgfn;
	int ret;

	if (!(arg->flags & XVGPU_MAP_TRY_HUGE) || back + arg->pages > XH_HUGE_PAGES || arg->page_in_range < back ||
	    arg->page_in_range - back + XH_HUGE_PAGES > r->pages || !in_window(ctx, wgfn, XH_HUGE_PAGES))
		return 1;
	ret = lookup_frames(r, arg->page_in_range - back, XH_HUGE_PAGES, intent, f);
	if (ret == -EAGAIN || ret == -EINTR)
		return ret;
	if (ret)
		return 1; /* some page of the window cannot be looked up: the request alone may */
	if (aligned_run(f, XH_HUGE_PAGES))
		*plan = (struct xh_plan){ .gfn = wgfn, .page0 = arg->page_in_range - back, .n = XH_HUGE_PAGES, .huge = true };
	else
		*plan = (struct xh_plan){ .gfn = arg->gfn, .page0 = arg->page_in_range, .n = arg->pages, .fi = back };
	return 0;
}

/* Under ctx->lock, read_retry checked: install the plan (falling back from a superpage the window
 * cannot take to the request alone) and do the emulated access. */
static int map_locked(struct xh_ctx *ctx, struct xh_range *r, struct xvgpu_map *arg, const struct xh_frames *f,
		      struct xh_plan *plan)
{
	unsigned long ai;
	int ret = 0;

	if (ctx->fatal)
		return -EIO;
	arg->installed = 0;
	if (!(arg->flags & XVGPU_MAP_NO_INSTALL)) {
		ret = install(ctx, r, plan->gfn, plan->page0, f, plan->fi, plan->n, &arg->installed);
		if (ret == -EEXIST && plan->huge) {
			*plan = (struct xh_plan){ .gfn = arg->gfn, .page0 = arg->page_in_range, .n = arg->pages,
						  .fi = arg->gfn - plan->gfn };
			ret = install(ctx, r, plan->gfn, plan->page0, f, plan->fi, plan->n, &arg->installed);
		}
		if (ret)
			return ret;
	}
	if (arg->flags & XVGPU_MAP_ACCESS) {
		ai = arg->access_gfn - plan->gfn;
		if (WARN_ON_ONCE(ai >= plan->n))
			return -EINVAL; /* the access must lie inside the frames looked up */
		ret = emulate(arg, f->pfn[plan->fi + ai], test_bit(plan->fi + ai, f->writable));
		if (ret)
			return ret;
	}
	if (!(arg->flags & XVGPU_MAP_NO_INSTALL)) {
		if (plan->huge) {
			set_bit(plan->page0, r->huge);
			ctx->st.huge_maps++;
		}
		ctx->st.maps++;
	}
	return 0;
}

int xh_map(struct xh_ctx *ctx, struct xvgpu_map *arg)
{
	struct xh_range *r = get_range(ctx, arg->range_id);
	unsigned long deadline = jiffies + msecs_to_jiffies(XH_MAP_TIMEOUT_MS);
	u64 t0 = ktime_get_ns();
	struct xh_frames *f;
	struct xh_plan plan;
	enum xh_intent intent;
	unsigned long seq;
	int ret;

	if (!r)
		return -ENOENT;
	if (READ_ONCE(r->dead))
		return -EFAULT;
	ret = check_map_arg(ctx, r, arg);
	if (ret)
		return ret;
	intent = map_intent(ctx, arg->flags);
	f = kzalloc(sizeof(*f), GFP_KERNEL_ACCOUNT);
	if (!f)
		return -ENOMEM;
	if (!mmget_not_zero(r->notifier.mm)) {
		kfree(f);
		return -ESRCH;
	}
	arg->collisions = 0;
again:
	if (time_after(jiffies, deadline)) {
		ret = -EBUSY;
		goto out;
	}
	seq = mmu_interval_read_begin(&r->notifier);
	ret = plan_huge(ctx, r, arg, intent, f, &plan);
	if (ret == 1) {
		plan = (struct xh_plan){ .gfn = arg->gfn, .page0 = arg->page_in_range, .n = arg->pages };
		ret = lookup_frames(r, plan.page0, plan.n, intent, f);
	}
	if (ret == -EAGAIN)
		goto again;
	if (ret)
		goto out;
	mutex_lock(&ctx->lock);
	if (mmu_interval_read_retry(&r->notifier, seq)) {
		ctx->st.map_collisions++;
		mutex_unlock(&ctx->lock);
		put_frames(f);
		arg->collisions++;
		goto again;
	}
	ret = map_locked(ctx, r, arg, f, &plan);
	if (!ret && !(arg->flags & XVGPU_MAP_NO_INSTALL))
		xh_hist_add(ctx->st.map_ns, ktime_get_ns() - t0);
	mutex_unlock(&ctx->lock);
	put_frames(f);
	arg->out_gfn = plan.gfn;
	arg->out_pages = plan.n;
	arg->huge = plan.huge;
	arg->seq = seq;
out:
	mmput(r->notifier.mm);
	kfree(f);
	return ret;
}

/*
 * Under ctx->lock: revokes up to XH_UNMAP_BATCH entries of window pages [*w, end), found with
 * find_next_bit and grouped into runs of one range's consecutive pages. Advances *w past them.
 */
static u64 unmap_batch(struct xh_ctx *ctx, u64 *w, u64 end, u64 *failed, struct xvgpu_event *fatal)
{
	unsigned long budget = XH_UNMAP_BATCH;
	u64 revoked = 0;

	while (budget) {
		u64 first = find_next_bit(ctx->mapped, end, *w), n = 1;
		struct xh_range *r;

		if (first >= end) {
			*w = end;
			break;
		}
		while (n < budget && first + n < end && test_bit(first + n, ctx->mapped) &&
		       ctx->owner_range[first + n] == ctx->owner_range[first] &&
		       ctx->owner_page[first + n] == ctx->owner_page[first] + n)
			n++;
		r = get_range(ctx, ctx->owner_range[first]);
		if (!WARN_ON_ONCE(!r))
			revoked += revoke(ctx, r, ctx->owner_page[first], n, fatal);
		*failed += fatal->count;
		fatal->count = 0;
		budget -= n;
		*w = first + n;
	}
	return revoked;
}

/*
 * UNMAP: bounded work per hold of ctx->lock (XH_UNMAP_BATCH entries, visited with find_next_bit,
 * so a huge mostly empty window costs a bitmap scan), rescheduling between batches. No MAP can
 * slip in between (ioctl_lock is held); an invalidation may, and only removes.
 */
int xh_unmap(struct xh_ctx *ctx, struct xvgpu_unmap *arg)
{
	struct xvgpu_event fatal = { 0 };
	u64 w, end, failed = 0;

	if (!in_window(ctx, arg->gfn, arg->pages))
		return -EINVAL;
	arg->revoked = 0;
	w = window_index(ctx, arg->gfn);
	end = w + arg->pages;
	while (w < end) {
		mutex_lock(&ctx->lock);
		arg->revoked += unmap_batch(ctx, &w, end, &failed, &fatal);
		mutex_unlock(&ctx->lock);
		cond_resched();
	}
	if (failed) {
		fatal.count = failed;
		xh_queue_fatal(ctx, &fatal);
		return -EIO;
	}
	return 0;
}

int xh_query(struct xh_ctx *ctx, struct xvgpu_query *arg)
{
	struct xvgpu_run __user *out = u64_to_user_ptr(arg->runs);
	struct xvgpu_run run = { 0 };
	u32 cap = arg->count, n = 0;
	u64 g, end;

	if (arg->pages == 0 || arg->gfn < ctx->first_gfn)
		return -EINVAL;
	/* Clamped to the window without forming gfn + pages, which may wrap. */
	end = arg->gfn - ctx->first_gfn >= ctx->pages ? arg->gfn :
	      arg->gfn + min(arg->pages, ctx->pages - (arg->gfn - ctx->first_gfn));
	for (g = arg->gfn; g < end; g++) {
		struct xh_range *r;
		u32 page;
		bool huge;

		cond_resched();
		mutex_lock(&ctx->lock);
		r = ctx->owner_range[window_index(ctx, g)] ? get_range(ctx, ctx->owner_range[window_index(ctx, g)]) : NULL;
		page = ctx->owner_page[window_index(ctx, g)];
		huge = false;
		if (r) {
			unsigned long p;

			/* Part of a superpage if one starts within the 511 pages before it. */
			for (p = page >= XH_HUGE_PAGES ? page - XH_HUGE_PAGES + 1 : 0; p <= page && !huge; p++)
				huge = test_bit(p, r->huge);
		}
		mutex_unlock(&ctx->lock);
		if (!r)
			continue;
		if (run.pages && run.range_id == r->id && run.gfn + run.pages == g &&
		    run.page_in_range + run.pages == page && run.huge == huge) {
			run.pages++;
			continue;
		}
		if (run.pages) {
			if (n >= cap)
				break;
			if (copy_to_user(&out[n++], &run, sizeof(run)))
				return -EFAULT;
		}
		run = (struct xvgpu_run){ .gfn = g, .pages = 1, .page_in_range = page, .range_id = r->id, .huge = huge };
	}
	if (run.pages && n < cap) {
		if (copy_to_user(&out[n++], &run, sizeof(run)))
			return -EFAULT;
	}
	arg->count = n;
	return 0;
}

static bool overlaps_a_range(struct xh_ctx *ctx, unsigned long va, unsigned long len)
{
	struct xh_range *other;
	unsigned long idx;

	xa_for_each(&ctx->ranges, idx, other) {
		if (other->notifier.mm == current->mm && va < other->va + other->pages * PAGE_SIZE &&
		    other->va < va + len)
			return true;
	}
	return false;
}

static void free_range(struct xh_range *r)
{
	kvfree(r->huge);
	kvfree(r->gfn_of);
	kfree(r);
}

/* Gives the back-end's per-range resources back (xen: the iomem permission). */
static void release_aperture(struct xh_ctx *ctx, struct xh_range *r)
{
	if (ctx->ops->aperture_release)
		ctx->ops->aperture_release(ctx, r);
}

/*
 * REGISTER, for a back-end with an aperture (xen): hands the range's frames over in chunks of
 * XH_MAX_MAP_PAGES (looked up with write intent, as MAP would, faulting them in), then commits.
 */
static int build_aperture(struct xh_ctx *ctx, struct xh_range *r)
{
	struct xh_frames *f;
	unsigned long page0 = 0;
	int ret = 0;

	if (!ctx->ops->aperture_add)
		return 0;
	f = kzalloc(sizeof(*f), GFP_KERNEL_ACCOUNT);
	if (!f)
		return -ENOMEM;
	while (page0 < r->pages && !ret) {
		unsigned long n = min_t(unsigned long, XH_MAX_MAP_PAGES, r->pages - page0);

		ret = lookup_frames(r, page0, n, XH_WRITE, f);
		if (ret == -EAGAIN) {
			ret = 0;
			continue;
		}
		if (ret)
			break;
		ret = ctx->ops->aperture_add(ctx, r, f->pfn, n);
		put_frames(f);
		page0 += n;
		if (fatal_signal_pending(current))
			ret = -EINTR;
		cond_resched();
	}
	kfree(f);
	return ret ? ret : ctx->ops->aperture_commit(ctx, r);
}

/* Per fd: at most XVGPU_MAX_RANGES ranges (REGISTER scans them for overlaps) and
 * XVGPU_MAX_REGISTERED_PAGES pages in all (-E2BIG). */
int xh_register(struct xh_ctx *ctx, struct xvgpu_register *arg)
{
	unsigned long pages = arg->length >> PAGE_SHIFT;
	struct xh_range *r;
	u32 id;
	int ret;

	if (!arg->length || !PAGE_ALIGNED(arg->va) || !PAGE_ALIGNED(arg->length) || !current->mm ||
	    !access_ok(u64_to_user_ptr(arg->va), arg->length))
		return -EINVAL;
	if (pages > XVGPU_MAX_REGISTERED_PAGES - ctx->registered_pages)
		return -E2BIG;
	if (overlaps_a_range(ctx, arg->va, arg->length))
		return -EEXIST;
	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		return -ENOMEM;
	r->ctx = ctx;
	r->va = arg->va;
	r->pages = pages;
	r->gfn_of = kvcalloc(r->pages, sizeof(*r->gfn_of), GFP_KERNEL_ACCOUNT);
	r->huge = kvcalloc(BITS_TO_LONGS(r->pages), sizeof(long), GFP_KERNEL_ACCOUNT);
	if (!r->gfn_of || !r->huge) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = xa_alloc(&ctx->ranges, &id, r, XA_LIMIT(1, XVGPU_MAX_RANGES), GFP_KERNEL_ACCOUNT);
	if (ret == -EBUSY)
		ret = -E2BIG; /* XVGPU_MAX_RANGES ranges already */
	if (ret)
		goto fail;
	r->id = id;
	ret = mmu_interval_notifier_insert(&r->notifier, current->mm, r->va, arg->length, &xh_notifier_ops);
	if (ret) {
		xa_erase(&ctx->ranges, id);
		goto fail;
	}
	ret = build_aperture(ctx, r);
	if (ret) {
		release_aperture(ctx, r);
		xa_erase(&ctx->ranges, id);
		mmu_interval_notifier_remove(&r->notifier);
		goto fail;
	}
	ctx->registered_pages += pages;
	mutex_lock(&ctx->lock);
	ctx->st.ranges++;
	mutex_unlock(&ctx->lock);
	arg->range_id = id;
	return 0;
fail:
	free_range(r);
	return ret;
}

/*
 * Revokes the whole range, XH_REVOKE_CHUNK pages per hold of ctx->lock (ioctl_lock keeps MAP
 * out in between). 0, or -EIO if the back-end refused a removal: the range then stays (with its
 * records and its notifier), and FATAL has been queued.
 */
static int revoke_range(struct xh_ctx *ctx, struct xh_range *r)
{
	struct xvgpu_event fatal = { 0 };
	unsigned long first;
	u64 failed = 0;

	for (first = 0; first < r->pages; first += XH_REVOKE_CHUNK) {
		mutex_lock(&ctx->lock);
		revoke(ctx, r, first, min_t(unsigned long, XH_REVOKE_CHUNK, r->pages - first), &fatal);
		failed += fatal.count;
		fatal.count = 0;
		mutex_unlock(&ctx->lock);
		cond_resched();
	}
	if (failed) {
		fatal.first_page = 0;
		fatal.pages = r->pages;
		fatal.count = failed;
		xh_queue_fatal(ctx, &fatal);
		return -EIO;
	}
	mutex_lock(&ctx->lock);
	ctx->st.ranges--;
	mutex_unlock(&ctx->lock);
	return 0;
}

static void destroy_range(struct xh_ctx *ctx, struct xh_range *r)
{
	xa_erase(&ctx->ranges, r->id);
	ctx->registered_pages -= r->pages;
	/* Waits for a callback in flight; must not hold ctx->lock, which the callback takes. */
	mmu_interval_notifier_remove(&r->notifier);
	free_range(r);
}

int xh_unregister(struct xh_ctx *ctx, u32 id)
{
	struct xh_range *r = get_range(ctx, id);
	int ret;

	if (!r)
		return -ENOENT;
	ret = revoke_range(ctx, r);
	if (ret)
		return ret; /* never forget an entry still in the p2m, nor the permission it needs */
	release_aperture(ctx, r);
	destroy_range(ctx, r);
	return 0;
}

/*
 * close(): everything goes. An entry the back-end still refuses to remove cannot be kept past
 * this point; the guest stays paused (revoke() paused it) and the kernel log says so.
 */
void xh_unregister_all(struct xh_ctx *ctx)
{
	struct xh_range *r;
	unsigned long idx;

	xa_for_each(&ctx->ranges, idx, r) {
		if (revoke_range(ctx, r))
			pr_crit("xvgpu_helper: domain %u: p2m entries of range %u could not be removed; it stays paused\n",
				ctx->domid, r->id);
		release_aperture(ctx, r);
		destroy_range(ctx, r);
	}
}

/* The caller's own PTEs of [start, start + len), inside one VMA: MMU_NOTIFY_CLEAR, as TTM eviction. */
static void zap_own_ptes(struct vm_area_struct *vma, unsigned long start, unsigned long len)
{
	if (vma->vm_flags & VM_PFNMAP)
		zap_vma_ptes(vma, start, len);
	else
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
		zap_page_range_single(vma, start, len, NULL);
#else
		zap_page_range(vma, start, len);
#endif
}

/*
 * TEST ONLY (allow_evict=1): zap the PTEs of a range, as TTM eviction does, but only the caller's
 * own mapping (never unmap_mapping_range, which would zap every process's mapping of the object).
 */
int xh_evict(struct xh_ctx *ctx, struct xvgpu_evict *arg)
{
	struct xh_range *r = get_range(ctx, arg->range_id);
	struct mm_struct *mm;
	struct vm_area_struct *vma;
	unsigned long start, len;
	int ret = 0;

	if (!r)
		return -ENOENT;
	if (r->notifier.mm != current->mm)
		return -EPERM;
	if (!arg->pages || arg->first_page >= r->pages || arg->pages > r->pages - arg->first_page)
		return -EINVAL;
	mm = r->notifier.mm;
	start = r->va + arg->first_page * PAGE_SIZE;
	len = arg->pages * PAGE_SIZE;
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	vma = vma_lookup(mm, start);
	if (!vma || len > vma->vm_end - start)
		ret = -EFAULT;
	else
		zap_own_ptes(vma, start, len);
	mmap_read_unlock(mm);
	return ret;
}
