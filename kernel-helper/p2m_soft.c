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
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "helper.h"

/*
 * TEST ONLY, load time only (0444): make the soft p2m refuse to map / to remove the entry of one
 * window page (index + 1; 0 = off), as a hypercall could fail, so the selftest can prove that a
 * failed install is recorded and a failed removal fails closed. Never set them otherwise.
 */
static ulong test_fail_map_at;
module_param(test_fail_map_at, ulong, 0444);
MODULE_PARM_DESC(test_fail_map_at, "TEST ONLY: soft p2m refuses to map window page N-1 (0 = off)");
static ulong test_fail_unmap_at;
module_param(test_fail_unmap_at, ulong, 0444);
MODULE_PARM_DESC(test_fail_unmap_at, "TEST ONLY: soft p2m refuses to remove window page N-1 (0 = off)");

/*
 * Entries present in every soft p2m of the module, read-only at
 * /sys/module/xvgpu_helper/parameters/soft_mapped: the VM tier reads it after a back-end was stopped
 * or killed to show that release() left nothing mapped. fini() does not subtract what it frees, so
 * an entry a teardown failed to remove stays counted.
 */
static atomic_long_t soft_mapped = ATOMIC_LONG_INIT(0);

static int soft_mapped_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&soft_mapped));
}

static const struct kernel_param_ops soft_mapped_ops = { .get = soft_mapped_get };
module_param_cb(soft_mapped, &soft_mapped_ops, NULL, 0444);
MODULE_PARM_DESC(soft_mapped, "entries present in all soft p2m tables (read-only)");

struct xh_soft {
	unsigned long *pfn1;     /* per window page: PFN + 1, 0 = not present */
	unsigned long *writable; /* per window page: the guest may write through the entry */
};

static int soft_init(struct xh_ctx *ctx)
{
	struct xh_soft *s = kzalloc(sizeof(*s), GFP_KERNEL_ACCOUNT);

	if (!s)
		return -ENOMEM;
	s->pfn1 = kvcalloc(ctx->pages, sizeof(*s->pfn1), GFP_KERNEL_ACCOUNT);
	s->writable = kvcalloc(BITS_TO_LONGS(ctx->pages), sizeof(long), GFP_KERNEL_ACCOUNT);
	if (!s->pfn1 || !s->writable) {
		kvfree(s->pfn1);
		kvfree(s->writable);
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
	kvfree(s->writable);
	kfree(s);
	ctx->p2m = NULL;
}

/* The injected failure, if it falls in window pages [w, w + n): its offset from w, else n. */
static unsigned long injected_failure(ulong at, u64 w, unsigned long n)
{
	return at && at - 1 >= w && at - 1 < w + n ? at - 1 - w : n;
}

static int soft_map(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long pfn, unsigned long n, bool writable,
		    unsigned long *done)
{
	struct xh_soft *s = ctx->p2m;
	u64 w = gfn - ctx->first_gfn;
	unsigned long i, stop = injected_failure(READ_ONCE(test_fail_map_at), w, n);

	for (i = 0; i < stop; i++) {
		if (!s->pfn1[w + i])
			atomic_long_inc(&soft_mapped);
		WRITE_ONCE(s->pfn1[w + i], pfn + i + 1);
		if (writable)
			set_bit(w + i, s->writable);
		else
			clear_bit(w + i, s->writable);
	}
	*done = stop;
	return stop < n ? -EIO : 0;
}

/* Like a hypercall that stops at the entry it cannot remove: the ones before it are gone. */
static int soft_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n)
{
	struct xh_soft *s = ctx->p2m;
	u64 w = gfn - ctx->first_gfn;
	unsigned long i, stop = injected_failure(READ_ONCE(test_fail_unmap_at), w, n);

	for (i = 0; i < stop; i++) {
		if (s->pfn1[w + i])
			atomic_long_dec(&soft_mapped);
		WRITE_ONCE(s->pfn1[w + i], 0);
		clear_bit(w + i, s->writable);
	}
	return stop < n ? -EIO : 0;
}

static void soft_flush(struct xh_ctx *ctx)
{
}

/* Nothing to stop: GUEST_ACCESS refuses every access once ctx->fatal is set. */
static void soft_pause(struct xh_ctx *ctx)
{
}

const struct xh_p2m_ops xh_p2m_soft_ops = {
	.name = "soft",
	.read_only_entries = true,
	.init = soft_init,
	.fini = soft_fini,
	.map = soft_map,
	.unmap = soft_unmap,
	.flush = soft_flush,
	.pause = soft_pause,
};

/* Under ctx->lock: 0 and *faulted, or -errno. The guest's view of one page. */
static int soft_access(struct xh_ctx *ctx, struct xvgpu_guest_access *arg, void *bounce)
{
	struct xh_soft *s = ctx->p2m;
	u64 gfn = arg->gpa >> PAGE_SHIFT;
	unsigned long pfn1;
	u64 w;
	u8 *va;

	if (!ctx->bound)
		return -ENOTCONN;
	if (ctx->ops != &xh_p2m_soft_ops)
		return -EOPNOTSUPP;
	if (gfn < ctx->first_gfn || gfn - ctx->first_gfn >= ctx->pages)
		return -EINVAL;
	if (ctx->fatal)
		return -EIO; /* a removal failed: the "domain" is paused for good */
	w = gfn - ctx->first_gfn;
	pfn1 = READ_ONCE(s->pfn1[w]);
	arg->faulted = !pfn1 ? 1 : arg->write && !test_bit(w, s->writable) ? 2 : 0;
	if (arg->faulted)
		return 0;
	if (!xh_frame_is_ram(pfn1 - 1))
		return -EIO; /* device memory: not reachable through the soft p2m */
	va = kmap_local_page(pfn_to_page(pfn1 - 1));
	if (arg->write)
		memcpy(va + offset_in_page(arg->gpa), bounce, arg->len);
	else
		memcpy(bounce, va + offset_in_page(arg->gpa), arg->len);
	kunmap_local(va);
	return 0;
}

int xh_soft_guest_access(struct xh_ctx *ctx, struct xvgpu_guest_access *arg)
{
	void *bounce;
	int ret;

	if (!arg->len || arg->len > PAGE_SIZE - offset_in_page(arg->gpa) || arg->write > 1)
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
	ret = soft_access(ctx, arg, bounce);
	mutex_unlock(&ctx->lock);
	if (!ret && !arg->write && !arg->faulted && copy_to_user(u64_to_user_ptr(arg->buf), bounce, arg->len))
		ret = -EFAULT;
out:
	kfree(bounce);
	return ret;
}
