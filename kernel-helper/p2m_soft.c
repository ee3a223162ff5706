// SPDX-License-Identifier: GPL-2.0
/*
 * The `soft` p2m back-end: an in-kernel table GFN -> PFN standing in for a guest's p2m where there
 * is no Xen. GUEST_ACCESS reads or writes "guest" memory through it exactly as a guest would: under
 * ctx->lock (the same lock the invalidate callback takes to clear entries), a missing entry is a
 * fault and nothing is accessed; a present entry is a frame the notifier has not yet revoked. There
 * is no TLB, so flush has nothing to do: every access looks the table up under the lock.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "helper.h"

struct xh_soft {
	unsigned long *pfn1; /* per window page: PFN + 1, 0 = not present */
};

static int soft_init(struct xh_ctx *ctx)
{
	struct xh_soft *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return -ENOMEM;
	s->pfn1 = kvcalloc(ctx->pages, sizeof(*s->pfn1), GFP_KERNEL);
	if (!s->pfn1) {
		kfree(s);
		return -ENOMEM;
	}
	ctx->p2m = s;
	return 0;
}

static void soft_fini(struct xh_ctx *ctx)
{
	struct xh_soft *s = ctx->p2m;

	kvfree(s->pfn1);
	kfree(s);
	ctx->p2m = NULL;
}

static int soft_map(struct xh_ctx *ctx, u64 gfn, unsigned long pfn, unsigned long n)
{
	struct xh_soft *s = ctx->p2m;
	unsigned long i;

	for (i = 0; i < n; i++)
		WRITE_ONCE(s->pfn1[gfn - ctx->first_gfn + i], pfn + i + 1);
	return 0;
}

static void soft_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n)
{
	struct xh_soft *s = ctx->p2m;
	unsigned long i;

	for (i = 0; i < n; i++)
		WRITE_ONCE(s->pfn1[gfn - ctx->first_gfn + i], 0);
}

static void soft_flush(struct xh_ctx *ctx)
{
}

const struct xh_p2m_ops xh_p2m_soft_ops = {
	.name = "soft",
	.init = soft_init,
	.fini = soft_fini,
	.map = soft_map,
	.unmap = soft_unmap,
	.flush = soft_flush,
};

int xh_soft_guest_access(struct xh_ctx *ctx, struct xvgpu_guest_access *arg)
{
	struct xh_soft *s = ctx->p2m;
	u64 gfn = arg->gpa >> PAGE_SHIFT;
	unsigned int off = offset_in_page(arg->gpa);
	unsigned long pfn1;
	void *bounce;
	int ret = 0;

	if (ctx->ops != &xh_p2m_soft_ops)
		return -EOPNOTSUPP;
	if (!arg->len || arg->len > PAGE_SIZE - off || gfn < ctx->first_gfn || gfn - ctx->first_gfn >= ctx->pages ||
	    arg->write > 1)
		return -EINVAL;
	/* User copies happen outside ctx->lock: a page fault there could wait on mmap_lock, which an
	 * invalidation holds while it waits for ctx->lock. */
	bounce = kmalloc(arg->len, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;
	if (arg->write && copy_from_user(bounce, u64_to_user_ptr(arg->buf), arg->len)) {
		ret = -EFAULT;
		goto out;
	}
	mutex_lock(&ctx->lock);
	pfn1 = READ_ONCE(s->pfn1[gfn - ctx->first_gfn]);
	arg->faulted = pfn1 == 0;
	if (pfn1 && pfn_valid(pfn1 - 1)) {
		u8 *va = kmap_local_page(pfn_to_page(pfn1 - 1));

		if (arg->write)
			memcpy(va + off, bounce, arg->len);
		else
			memcpy(bounce, va + off, arg->len);
		kunmap_local(va);
	} else if (pfn1) {
		ret = -EIO; /* device memory: not reachable through the soft p2m */
	}
	mutex_unlock(&ctx->lock);
	if (!ret && !arg->write && !arg->faulted && copy_to_user(u64_to_user_ptr(arg->buf), bounce, arg->len))
		ret = -EFAULT;
out:
	kfree(bounce);
	return ret;
}
