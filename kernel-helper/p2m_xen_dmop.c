// SPDX-License-Identifier: GPL-2.0
/*
 * The `xen-dmop` p2m back-end, for a Xen with xvgpu's extension (hypervisor/patches, see
 * docs/xen-extension.md): lends the buffer's own RAM pages to the frontend with XEN_DMOP_lend_pages
 * (p2m_lent_rw/ro: write-back, refcounted by Xen, not grantable or foreign-mappable by the guest)
 * and takes them back with XEN_DMOP_revoke_pages from the invalidate callback.
 *
 * - Pages are named by this domain's own GFNs: its PFNs when it is auto-translated (PVH dom0 or a
 *   PVH driver domain), its MFNs (pfn_to_mfn) when it is a PV domain, for which Xen's "GFN" is the
 *   MFN. No iomem permission, no domctl: a DM op needs only DM privilege over the target.
 * - Revocation is a hypercall, which never sleeps, so it runs in the non-blockable invalidate path
 *   too (range.c keeps that path a trylock). Xen removes only entries this domain lent, skips
 *   anything else, and flushes the TLBs before returning; it can fail only for bad arguments or a
 *   target that no longer exists (whose entries are gone with it).
 * - BIND refuses (-EOPNOTSUPP) when the hypervisor does not answer XEN_DMOP_get_dm_ext_info with
 *   XEN_DMOP_DM_EXT_LEND_PAGES (a stock Xen fails the op with -EOPNOTSUPP).
 * - Fail closed: XEN_DMOP_remote_shutdown(SHUTDOWN_crash) stops the guest.
 */
#include <linux/module.h>

#include "helper.h"

#if IS_ENABLED(CONFIG_XEN) && defined(CONFIG_X86)
#include <asm/xen/hypercall.h>
#include <asm/xen/page.h>
#include <xen/features.h>
#include <xen/interface/hvm/dm_op.h>
#include <xen/interface/sched.h>
#include <xen/xen.h>

/* public/hvm/dm_op.h of the patched Xen (hypervisor/patches/0002), restated. */
#define XH_DMOP_remote_shutdown 16
#define XH_DMOP_get_dm_ext_info 21
#define XH_DMOP_lend_pages 22
#define XH_DMOP_revoke_pages 23
#define XH_DMOP_DM_EXT_LEND_PAGES (1u << 0)
#define XH_DMOP_LEND_WRITABLE (1u << 0)

struct xh_dm_op {
	u32 op;
	u32 pad;
	union {
		struct {
			u32 version;
			u32 features;
		} info;
		struct {
			u64 src_gfn;
			u64 dst_gfn;
			u32 nr;
			u16 flags;
			u16 pad;
		} lend;
		struct {
			u32 reason;
		} shutdown;
		u8 raw[24]; /* the largest member of Xen's union */
	} u;
};
static_assert(sizeof(struct xh_dm_op) == 32);

/* One DM op on the bound domain; Xen continues long runs itself (hypercall continuation). */
static int dm_op(struct xh_ctx *ctx, struct xh_dm_op *op)
{
	struct xen_dm_op_buf buf = { .size = sizeof(*op) };

	set_xen_guest_handle(buf.h, op);
	return HYPERVISOR_dm_op(ctx->domid, 1, &buf);
}

/* This domain's own GFN for its page frame pfn. */
static u64 own_gfn(unsigned long pfn)
{
	return xen_feature(XENFEAT_auto_translated_physmap) ? pfn : pfn_to_mfn(pfn);
}

static int dmop_init(struct xh_ctx *ctx)
{
	struct xh_dm_op op = { .op = XH_DMOP_get_dm_ext_info };
	int rc;

	if (!xen_domain())
		return -ENODEV;
	rc = dm_op(ctx, &op);
	if (rc == -EOPNOTSUPP || (!rc && !(op.u.info.features & XH_DMOP_DM_EXT_LEND_PAGES))) {
		pr_info("xvgpu_helper: xen-dmop: this Xen has no XEN_DMOP_lend_pages\n");
		return -EOPNOTSUPP;
	}
	return rc;
}

static void dmop_fini(struct xh_ctx *ctx)
{
}

static int dmop_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n);

static int lend_once(struct xh_ctx *ctx, u64 gfn, u64 src, unsigned long n, bool writable,
		     unsigned long *lent)
{
	struct xh_dm_op op = { .op = XH_DMOP_lend_pages };
	int rc;

	op.u.lend.src_gfn = src;
	op.u.lend.dst_gfn = gfn;
	op.u.lend.nr = n;
	op.u.lend.flags = writable ? XH_DMOP_LEND_WRITABLE : 0;
	rc = dm_op(ctx, &op);
	/* Xen writes the struct back on failure too: nr is what is left. */
	*lent = rc ? n - op.u.lend.nr : n;
	return rc;
}

/*
 * Lends one own-GFN-contiguous run; *lent = the pages of it that are mapped (also on failure).
 * Xen never replaces an entry (EEXIST), but range.c asks again for a page it holds read-only when
 * the frame is now writable (an emulated read lent it read-only, then a write came): the only
 * entries at these GFNs are then this domain's own entries for these very pages (install()
 * checked), so the rest of the run is revoked and lent again, writable.
 */
static int lend_run(struct xh_ctx *ctx, u64 gfn, u64 src, unsigned long n, bool writable,
		    unsigned long *lent)
{
	unsigned long more;
	int rc = lend_once(ctx, gfn, src, n, writable, lent);

	if (rc != -EEXIST || !writable)
		return rc;
	rc = dmop_unmap(ctx, gfn + *lent, n - *lent);
	if (rc)
		return rc;
	rc = lend_once(ctx, gfn + *lent, src + *lent, n - *lent, true, &more);
	*lent += more;
	return rc;
}

/*
 * A PV domain's PFN-contiguous frames need not be MFN-contiguous: lend own-GFN runs. On a failure
 * the pages before it stay mapped and *done says how many.
 */
static int dmop_map(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long pfn,
		    unsigned long n, bool writable, unsigned long *done)
{
	unsigned long i, start = 0, lent;
	int rc;

	*done = 0;
	for (i = 1; i <= n; i++) {
		if (i < n && own_gfn(pfn + i) == own_gfn(pfn + i - 1) + 1)
			continue;
		rc = lend_run(ctx, gfn + start, own_gfn(pfn + start), i - start, writable, &lent);
		*done = start + lent;
		if (rc)
			return rc;
		start = i;
	}
	return 0;
}

static int dmop_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n)
{
	struct xh_dm_op op = { .op = XH_DMOP_revoke_pages };
	int rc;

	op.u.lend.dst_gfn = gfn;
	op.u.lend.nr = n;
	rc = dm_op(ctx, &op);
	/* A target that no longer exists took its entries (and Xen's references) with it. */
	return rc == -ESRCH ? 0 : rc;
}

/* Revocation flushed inside the hypercall. */
static void dmop_flush(struct xh_ctx *ctx)
{
}

static void dmop_pause(struct xh_ctx *ctx)
{
	struct xh_dm_op op = { .op = XH_DMOP_remote_shutdown, .u.shutdown.reason = SHUTDOWN_crash };
	int rc = dm_op(ctx, &op);

	pr_crit("xvgpu_helper: a p2m revocation failed: domain %u %s\n", ctx->domid,
		rc ? "could NOT be stopped" : "crashed");
}

#else /* not a Xen x86 kernel */

static int dmop_init(struct xh_ctx *ctx) { return -EOPNOTSUPP; }
static void dmop_fini(struct xh_ctx *ctx) { }
static int dmop_map(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long pfn,
		    unsigned long n, bool writable, unsigned long *done) { *done = 0; return -EOPNOTSUPP; }
static int dmop_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n) { return -EOPNOTSUPP; }
static void dmop_flush(struct xh_ctx *ctx) { }
static void dmop_pause(struct xh_ctx *ctx) { }

#endif

const struct xh_p2m_ops xh_p2m_xen_dmop_ops = {
	.name = "xen-dmop",
	.read_only_entries = true,
	.init = dmop_init,
	.fini = dmop_fini,
	.map = dmop_map,
	.unmap = dmop_unmap,
	.flush = dmop_flush,
	.pause = dmop_pause,
};
