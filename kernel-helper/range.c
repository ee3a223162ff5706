// SPDX-License-Identifier: GPL-2.0
/*
 * The fault / invalidate / retry loop, in one place (the shape of lib/test_hmm.c):
 *
 *   MAP:        seq = read_begin → look frames up under mmap_read_lock (follow_pte, and
 *               fixup_user_fault when the PTE is absent, as KVM's hva_to_pfn_remapped) →
 *               lock → read_retry(seq)? unlock, again : install p2m entries, emulated access → unlock
 *   invalidate: lock (trylock when not blockable) → set_seq → remove every recorded entry in the
 *               range through the back-end, flush → unlock → queue an event
 *
 * The callback never waits for user space: a stuck back-end cannot stall memory management.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/version.h>

#include "helper.h"

#define XH_MAP_TIMEOUT_MS 1000

/* Fault injection for the selftest only: when set, invalidations leave the p2m alone, so the race
 * test must report stale reads (proof that it can fail). Off by default; never set it otherwise. */
static bool test_skip_revoke;
module_param(test_skip_revoke, bool, 0644);
MODULE_PARM_DESC(test_skip_revoke, "TEST ONLY: do not revoke on invalidation (breaks the guarantee on purpose)");

static u64 window_index(struct xh_ctx *ctx, u64 gfn)
{
	return gfn - ctx->first_gfn;
}

static bool in_window(struct xh_ctx *ctx, u64 gfn, u64 n)
{
	return n > 0 && gfn >= ctx->first_gfn && gfn - ctx->first_gfn <= ctx->pages &&
	       n <= ctx->pages - (gfn - ctx->first_gfn);
}

/* Removes the p2m entries of range pages [first, first + n). Caller holds ctx->lock and flushes. */
static u64 revoke_pages(struct xh_ctx *ctx, struct xh_range *r, unsigned long first, unsigned long n)
{
	unsigned long p, run_len = 0;
	u64 run_gfn = 0, revoked = 0;

	for (p = first; p < first + n; p++) {
		u64 g1 = r->gfn_of[p];

		if (g1 && run_len && g1 - 1 == run_gfn + run_len) {
			run_len++;
		} else {
			if (run_len)
				ctx->ops->unmap(ctx, run_gfn, run_len);
			run_len = 0;
			if (g1) {
				run_gfn = g1 - 1;
				run_len = 1;
			}
		}
		if (g1) {
			ctx->owner_range[window_index(ctx, g1 - 1)] = 0;
			r->gfn_of[p] = 0;
			revoked++;
		}
	}
	if (run_len)
		ctx->ops->unmap(ctx, run_gfn, run_len);
	/* A partly revoked superpage is split: what remains stays mapped as 4 KiB entries. */
	for (p = first >= XH_HUGE_PAGES ? first - XH_HUGE_PAGES + 1 : 0; p < first + n && p < r->pages; p++)
		clear_bit(p, r->huge);
	ctx->st.revoked_pages += revoked;
	ctx->st.resident_pages -= revoked;
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
	struct xvgpu_event ev = { 0 };
	u64 t0, revoked;

	if (mmu_notifier_range_blockable(nr))
		mutex_lock(&ctx->lock);
	else if (!mutex_trylock(&ctx->lock))
		return false;
	t0 = ktime_get_ns();
	mmu_interval_set_seq(mni, cur_seq);
	revoked = end > start && !READ_ONCE(test_skip_revoke) ? revoke_pages(ctx, r, first, last - first) : 0;
	if (revoked)
		ctx->ops->flush(ctx);
	if (nr->event == MMU_NOTIFY_RELEASE ||
	    (nr->event == MMU_NOTIFY_UNMAP && first == 0 && last == r->pages))
		r->dead = true;
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
	xh_queue_event(ctx, &ev);
	return true;
}

static const struct mmu_interval_notifier_ops xh_notifier_ops = {
	.invalidate = xh_invalidate,
};

/* The frame behind a user address of a PFNMAP (or any) VMA, faulting the PTE in if needed. */
static int lookup_pfn(struct mm_struct *mm, unsigned long addr, unsigned long *pfn)
{
	bool unlocked = false;
	int ret;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
	struct follow_pfnmap_args args = { .address = addr };

	args.vma = vma_lookup(mm, addr);
	if (!args.vma)
		return -EFAULT;
	ret = follow_pfnmap_start(&args);
	if (ret) {
		ret = fixup_user_fault(mm, addr, FAULT_FLAG_WRITE, &unlocked);
		if (ret)
			return ret;
		if (unlocked)
			return -EAGAIN;
		args.vma = vma_lookup(mm, addr);
		if (!args.vma)
			return -EFAULT;
		ret = follow_pfnmap_start(&args);
		if (ret)
			return ret;
	}
	*pfn = args.pfn;
	follow_pfnmap_end(&args);
	return 0;
#else
	spinlock_t *ptl;
	pte_t *ptep;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
	struct vm_area_struct *vma = vma_lookup(mm, addr);

	if (!vma)
		return -EFAULT;
#define XH_FOLLOW_PTE(a) follow_pte(vma, (a), &ptep, &ptl)
#else
	if (!vma_lookup(mm, addr))
		return -EFAULT;
#define XH_FOLLOW_PTE(a) follow_pte(mm, (a), &ptep, &ptl)
#endif
	ret = XH_FOLLOW_PTE(addr);
	if (ret) {
		ret = fixup_user_fault(mm, addr, FAULT_FLAG_WRITE, &unlocked);
		if (ret)
			return ret;
		if (unlocked)
			return -EAGAIN; /* mmap_lock was dropped: the VMA may have changed */
		ret = XH_FOLLOW_PTE(addr);
		if (ret)
			return ret;
	}
	*pfn = pte_pfn(ptep_get(ptep));
	pte_unmap_unlock(ptep, ptl);
	return 0;
#undef XH_FOLLOW_PTE
#endif
}

static int lookup_pfns(struct xh_range *r, unsigned long page0, unsigned long n, unsigned long *pfns)
{
	struct mm_struct *mm = r->notifier.mm;
	unsigned long i;
	int ret = 0;

	mmap_read_lock(mm);
	for (i = 0; i < n && !ret; i++)
		ret = lookup_pfn(mm, r->va + (page0 + i) * PAGE_SIZE, &pfns[i]);
	mmap_read_unlock(mm);
	return ret;
}

static bool aligned_run(const unsigned long *pfns, unsigned long n)
{
	unsigned long i;

	if (pfns[0] % XH_HUGE_PAGES)
		return false;
	for (i = 1; i < n; i++)
		if (pfns[i] != pfns[0] + i)
			return false;
	return true;
}

/* Installs a run; caller holds ctx->lock and has checked read_retry. */
static int install(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long page0,
		   const unsigned long *pfns, unsigned long n, u32 *installed)
{
	unsigned long i, run = 0;
	int ret;

	for (i = 0; i < n; i++) {
		u64 w = window_index(ctx, gfn + i);
		u32 owner = ctx->owner_range[w];

		if (owner == r->id && ctx->owner_page[w] == page0 + i && r->gfn_of[page0 + i] == gfn + i + 1)
			continue; /* already mapped to this page */
		if (owner || r->gfn_of[page0 + i])
			return -EEXIST;
	}
	for (i = 0; i <= n; i++) {
		bool mapped = i < n && r->gfn_of[page0 + i] == gfn + i + 1;
		bool extend = i < n && !mapped && run && pfns[i] == pfns[i - 1] + 1;

		if (run && !extend) {
			ret = ctx->ops->map(ctx, gfn + i - run, pfns[i - run], run);
			if (ret)
				return ret;
			run = 0;
		}
		if (i < n && !mapped)
			run++;
	}
	for (i = 0; i < n; i++) {
		u64 w = window_index(ctx, gfn + i);

		if (r->gfn_of[page0 + i])
			continue;
		r->gfn_of[page0 + i] = gfn + i + 1;
		ctx->owner_range[w] = r->id;
		ctx->owner_page[w] = page0 + i;
		(*installed)++;
	}
	ctx->st.installed_pages += *installed;
	ctx->st.resident_pages += *installed;
	return 0;
}

/* The emulated access (D4 `emulate`), on the frame itself, still under ctx->lock. */
static int emulate(struct xvgpu_map *arg, unsigned long pfn)
{
	u8 *va;

	if (!pfn_valid(pfn))
		return -EIO; /* device memory would need memremap(); not supported for emulation */
	va = kmap_local_page(pfn_to_page(pfn));
	if (arg->flags & XVGPU_MAP_WRITE)
		memcpy(va + arg->access_offset, &arg->data, arg->access_size);
	else {
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

int xh_map(struct xh_ctx *ctx, struct xvgpu_map *arg)
{
	struct xh_range *r = get_range(ctx, arg->range_id);
	unsigned long deadline = jiffies + msecs_to_jiffies(XH_MAP_TIMEOUT_MS);
	unsigned long *pfns, seq, page0, n;
	u64 gfn, t0 = ktime_get_ns();
	bool huge;
	int ret;

	if (!r)
		return -ENOENT;
	if (r->dead)
		return -EFAULT;
	if (!arg->pages || arg->pages > XH_MAX_MAP_PAGES || arg->page_in_range >= r->pages ||
	    arg->pages > r->pages - arg->page_in_range || !in_window(ctx, arg->gfn, arg->pages))
		return -EINVAL;
	if (arg->flags & ~(XVGPU_MAP_TRY_HUGE | XVGPU_MAP_ACCESS | XVGPU_MAP_WRITE | XVGPU_MAP_NO_INSTALL))
		return -EINVAL;
	if ((arg->flags & XVGPU_MAP_NO_INSTALL) && !(arg->flags & XVGPU_MAP_ACCESS))
		return -EINVAL;
	if ((arg->flags & XVGPU_MAP_ACCESS) &&
	    (arg->access_gfn < arg->gfn || arg->access_gfn >= arg->gfn + arg->pages ||
	     (arg->access_size != 1 && arg->access_size != 2 && arg->access_size != 4 && arg->access_size != 8) ||
	     arg->access_offset + arg->access_size > PAGE_SIZE))
		return -EINVAL;
	pfns = kmalloc_array(XH_MAX_MAP_PAGES, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return -ENOMEM;
	if (!mmget_not_zero(r->notifier.mm)) {
		kfree(pfns);
		return -ESRCH;
	}
	arg->collisions = 0;
again:
	if (time_after(jiffies, deadline)) {
		ret = -EBUSY;
		goto out;
	}
	/* Choose the run: the 2 MiB window first when asked, else the requested run. */
	gfn = arg->gfn;
	page0 = arg->page_in_range;
	n = arg->pages;
	huge = false;
	seq = mmu_interval_read_begin(&r->notifier);
	if (arg->flags & XVGPU_MAP_TRY_HUGE) {
		u64 wgfn = arg->gfn & ~(u64)(XH_HUGE_PAGES - 1);
		u64 back = arg->gfn - wgfn;

		if (arg->page_in_range >= back && arg->page_in_range - back + XH_HUGE_PAGES <= r->pages &&
		    in_window(ctx, wgfn, XH_HUGE_PAGES)) {
			ret = lookup_pfns(r, arg->page_in_range - back, XH_HUGE_PAGES, pfns);
			if (ret == -EAGAIN)
				goto again;
			if (!ret && aligned_run(pfns, XH_HUGE_PAGES)) {
				gfn = wgfn;
				page0 = arg->page_in_range - back;
				n = XH_HUGE_PAGES;
				huge = true;
			}
		}
	}
	if (!huge) {
		ret = lookup_pfns(r, page0, n, pfns);
		if (ret == -EAGAIN)
			goto again;
		if (ret)
			goto out;
	}
	mutex_lock(&ctx->lock);
	if (mmu_interval_read_retry(&r->notifier, seq)) {
		ctx->st.map_collisions++;
		mutex_unlock(&ctx->lock);
		arg->collisions++;
		goto again;
	}
	arg->installed = 0;
	ret = (arg->flags & XVGPU_MAP_NO_INSTALL) ? 0 : install(ctx, r, gfn, page0, pfns, n, &arg->installed);
	if (!ret && (arg->flags & XVGPU_MAP_ACCESS))
		ret = emulate(arg, pfns[arg->access_gfn - gfn]);
	if (!ret && !(arg->flags & XVGPU_MAP_NO_INSTALL)) {
		if (huge) {
			set_bit(page0, r->huge);
			ctx->st.huge_maps++;
		}
		ctx->st.maps++;
		xh_hist_add(ctx->st.map_ns, ktime_get_ns() - t0);
	}
	mutex_unlock(&ctx->lock);
	arg->out_gfn = gfn;
	arg->out_pages = n;
	arg->huge = huge;
	arg->seq = seq;
out:
	mmput(r->notifier.mm);
	kfree(pfns);
	return ret;
}

int xh_unmap(struct xh_ctx *ctx, struct xvgpu_unmap *arg)
{
	u64 g;

	if (!in_window(ctx, arg->gfn, arg->pages))
		return -EINVAL;
	arg->revoked = 0;
	mutex_lock(&ctx->lock);
	for (g = arg->gfn; g < arg->gfn + arg->pages; g++) {
		u64 w = window_index(ctx, g);
		struct xh_range *r = ctx->owner_range[w] ? get_range(ctx, ctx->owner_range[w]) : NULL;

		if (r)
			arg->revoked += revoke_pages(ctx, r, ctx->owner_page[w], 1);
	}
	if (arg->revoked)
		ctx->ops->flush(ctx);
	mutex_unlock(&ctx->lock);
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
	end = min(arg->gfn + arg->pages, ctx->first_gfn + ctx->pages);
	for (g = arg->gfn; g < end; g++) {
		struct xh_range *r;
		u32 page;
		bool huge;

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

int xh_register(struct xh_ctx *ctx, struct xvgpu_register *arg)
{
	struct xh_range *r, *other;
	unsigned long idx;
	u32 id;
	int ret;

	if (!arg->length || !PAGE_ALIGNED(arg->va) || !PAGE_ALIGNED(arg->length) ||
	    arg->va + arg->length < arg->va || !current->mm)
		return -EINVAL;
	xa_for_each(&ctx->ranges, idx, other) {
		if (other->notifier.mm == current->mm && arg->va < other->va + other->pages * PAGE_SIZE &&
		    other->va < arg->va + arg->length)
			return -EEXIST;
	}
	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	r->ctx = ctx;
	r->va = arg->va;
	r->pages = arg->length >> PAGE_SHIFT;
	r->gfn_of = kvcalloc(r->pages, sizeof(*r->gfn_of), GFP_KERNEL);
	r->huge = bitmap_zalloc(r->pages, GFP_KERNEL);
	if (!r->gfn_of || !r->huge) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = xa_alloc(&ctx->ranges, &id, r, XA_LIMIT(1, U32_MAX), GFP_KERNEL);
	if (ret)
		goto fail;
	r->id = id;
	ret = mmu_interval_notifier_insert(&r->notifier, current->mm, r->va, arg->length, &xh_notifier_ops);
	if (ret) {
		xa_erase(&ctx->ranges, id);
		goto fail;
	}
	mutex_lock(&ctx->lock);
	ctx->st.ranges++;
	mutex_unlock(&ctx->lock);
	arg->range_id = id;
	return 0;
fail:
	bitmap_free(r->huge);
	kvfree(r->gfn_of);
	kfree(r);
	return ret;
}

static void destroy_range(struct xh_ctx *ctx, struct xh_range *r)
{
	mutex_lock(&ctx->lock);
	if (revoke_pages(ctx, r, 0, r->pages))
		ctx->ops->flush(ctx);
	ctx->st.ranges--;
	mutex_unlock(&ctx->lock);
	/* Waits for a callback in flight; must not hold ctx->lock, which the callback takes. */
	mmu_interval_notifier_remove(&r->notifier);
	bitmap_free(r->huge);
	kvfree(r->gfn_of);
	kfree(r);
}

int xh_unregister(struct xh_ctx *ctx, u32 id)
{
	struct xh_range *r = xa_erase(&ctx->ranges, id);

	if (!r)
		return -ENOENT;
	destroy_range(ctx, r);
	return 0;
}

void xh_unregister_all(struct xh_ctx *ctx)
{
	struct xh_range *r;
	unsigned long idx;

	xa_for_each(&ctx->ranges, idx, r) {
		xa_erase(&ctx->ranges, idx);
		destroy_range(ctx, r);
	}
}

/* Test only: zap the range's PTEs as TTM eviction does, which fires MMU_NOTIFY_CLEAR. */
int xh_evict(struct xh_ctx *ctx, struct xvgpu_evict *arg)
{
	struct xh_range *r = get_range(ctx, arg->range_id);
	struct mm_struct *mm;
	struct vm_area_struct *vma;
	unsigned long start, len;
	int ret = 0;

	if (!r)
		return -ENOENT;
	if (!arg->pages || arg->first_page >= r->pages || arg->pages > r->pages - arg->first_page)
		return -EINVAL;
	mm = r->notifier.mm;
	if (!mmget_not_zero(mm))
		return -ESRCH;
	start = r->va + arg->first_page * PAGE_SIZE;
	len = arg->pages * PAGE_SIZE;
	mmap_read_lock(mm);
	vma = vma_lookup(mm, start);
	if (!vma || start + len > vma->vm_end)
		ret = -EFAULT;
	else if (vma->vm_flags & VM_PFNMAP)
		zap_vma_ptes(vma, start, len);
	else if (vma->vm_file)
		unmap_mapping_range(vma->vm_file->f_mapping,
				    (loff_t)(vma->vm_pgoff + ((start - vma->vm_start) >> PAGE_SHIFT)) << PAGE_SHIFT, len, 1);
	else
		ret = -EINVAL; /* anonymous memory: use madvise(MADV_DONTNEED) from user space */
	mmap_read_unlock(mm);
	mmput(mm);
	return ret;
}
