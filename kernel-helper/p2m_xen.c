// SPDX-License-Identifier: GPL-2.0
/*
 * The `xen` p2m back-end: installs BO frames in the frontend's p2m with XEN_DOMCTL_iomem_permission
 * + XEN_DOMCTL_memory_mapping (p2m_mmio_direct, the way XenServer's vGPU emulator maps GPU memory),
 * and removes them again in the invalidate callback. Xen's p2m changes take effect, with their TLB
 * flush, before the hypercall returns, so flush has nothing left to do.
 *
 * Supported: an x86 PV dom0, which knows its MFNs (pfn_to_mfn). A PVH/HVM dom0 does not, and Arm
 * maps such entries as Device memory; both are refused at BIND. The domctl interface version is
 * the running Xen's (XENVER_version), as domctls are not a stable interface.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "helper.h"
#include "xen_domctl.h"

#if IS_ENABLED(CONFIG_XEN_DOM0) && defined(CONFIG_X86)
#include <asm/xen/hypercall.h>
#include <asm/xen/page.h>
#include <xen/features.h>
#include <xen/interface/version.h>
#include <xen/xen.h>

static uint xen_domctl_version;
module_param(xen_domctl_version, uint, 0444);
MODULE_PARM_DESC(xen_domctl_version, "Override XEN_DOMCTL_INTERFACE_VERSION (0 = from the running Xen)");

struct xh_xen {
	u32 version;
	unsigned long *mfn1; /* per window page: MFN + 1 installed there (needed to remove it) */
};

static long domctl(struct xh_ctx *ctx, struct xh_domctl *op)
{
	struct xh_xen *x = ctx->p2m;

	op->interface_version = x->version;
	op->domain = ctx->domid;
	return privcmd_call(__HYPERVISOR_domctl, (unsigned long)op, 0, 0, 0, 0);
}

static long iomem_permission(struct xh_ctx *ctx, u64 mfn, u64 n, bool allow)
{
	struct xh_domctl op = { .cmd = XH_DOMCTL_iomem_permission };

	op.u.iomem_permission.first_mfn = mfn;
	op.u.iomem_permission.nr_mfns = n;
	op.u.iomem_permission.allow_access = allow;
	return domctl(ctx, &op);
}

static long mapping_call(void *priv, u64 gfn, u64 mfn, u64 nr, int add)
{
	struct xh_domctl op = { .cmd = XH_DOMCTL_memory_mapping };

	op.u.memory_mapping.first_gfn = gfn;
	op.u.memory_mapping.first_mfn = mfn;
	op.u.memory_mapping.nr_mfns = nr;
	op.u.memory_mapping.add_mapping = add ? XH_DPCI_ADD_MAPPING : XH_DPCI_REMOVE_MAPPING;
	return domctl(priv, &op);
}

static int xen_init(struct xh_ctx *ctx)
{
	struct xh_xen *x;
	int v;

	if (!xen_initial_domain())
		return -ENODEV;
	if (xen_feature(XENFEAT_auto_translated_physmap))
		return -EOPNOTSUPP; /* PVH/HVM dom0: MFNs unknown */
	x = kzalloc(sizeof(*x), GFP_KERNEL_ACCOUNT);
	if (!x)
		return -ENOMEM;
	v = HYPERVISOR_xen_version(XENVER_version, NULL);
	x->version = xen_domctl_version ? xen_domctl_version : xh_domctl_version_for(v >> 16, v & 0xffff);
	if (!x->version) {
		pr_warn("xvgpu_helper: unknown Xen %d.%d: set xen_domctl_version\n", v >> 16, v & 0xffff);
		kfree(x);
		return -EOPNOTSUPP;
	}
	x->mfn1 = kvcalloc(ctx->pages, sizeof(*x->mfn1), GFP_KERNEL_ACCOUNT);
	if (!x->mfn1) {
		kfree(x);
		return -ENOMEM;
	}
	ctx->p2m = x;
	return 0;
}

static void xen_fini(struct xh_ctx *ctx)
{
	struct xh_xen *x = ctx->p2m;

	kvfree(x->mfn1);
	kfree(x);
	ctx->p2m = NULL;
}

/* Maps one MFN-contiguous run: permission for the guest first, then the p2m entries. */
static int map_mfn_run(struct xh_ctx *ctx, u64 gfn, u64 mfn, u64 n)
{
	long rc = iomem_permission(ctx, mfn, n, true);

	if (rc)
		return rc;
	rc = xh_memory_mapping(ctx, mapping_call, gfn, mfn, n, 1);
	if (rc)
		iomem_permission(ctx, mfn, n, false);
	return rc;
}

/*
 * Every p2m_mmio_direct entry Xen makes is writable, so there are no read-only entries here: MAP
 * always looks frames up with write intent for this back-end. Runs are recorded as they succeed; on
 * a failure the runs before it stay installed and *done says how far that is.
 */
static int xen_map(struct xh_ctx *ctx, u64 gfn, unsigned long pfn, unsigned long n, bool writable,
		   unsigned long *done)
{
	struct xh_xen *x = ctx->p2m;
	unsigned long i, start = 0;
	int ret;

	*done = 0;
	if (WARN_ON_ONCE(!writable))
		return -EOPNOTSUPP;
	/* A PV dom0's PFN-contiguous frames need not be MFN-contiguous: map MFN runs. */
	for (i = 1; i <= n; i++) {
		if (i < n && pfn_to_mfn(pfn + i) == pfn_to_mfn(pfn + i - 1) + 1)
			continue;
		ret = map_mfn_run(ctx, gfn + start, pfn_to_mfn(pfn + start), i - start);
		if (ret)
			return ret;
		for (; start < i; start++)
			x->mfn1[gfn + start - ctx->first_gfn] = pfn_to_mfn(pfn + start) + 1;
		*done = start;
	}
	return 0;
}

/* Removes MFN runs; a run Xen refuses keeps its MFNs recorded so that a retry can remove it. */
static int xen_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n)
{
	struct xh_xen *x = ctx->p2m;
	unsigned long *m = &x->mfn1[gfn - ctx->first_gfn];
	unsigned long i, start = 0;
	int ret = 0;

	for (i = 1; i <= n; i++) {
		if (i < n && m[i] && m[i - 1] && m[i] == m[i - 1] + 1)
			continue;
		if (m[start]) {
			u64 mfn = m[start] - 1;
			long rc = xh_memory_mapping(ctx, mapping_call, gfn + start, mfn, i - start, 0);

			if (rc) {
				pr_err_ratelimited("xvgpu_helper: Xen refused to remove gfn %llx+%lu: %ld\n",
						   gfn + start, i - start, rc);
				ret = -EIO;
				start = i;
				continue;
			}
			/* The entries are gone; a stale permission alone gives the guest no mapping. */
			iomem_permission(ctx, mfn, i - start, false);
		}
		for (; start < i; start++)
			m[start] = 0;
	}
	return ret;
}

static void xen_flush(struct xh_ctx *ctx)
{
}

/* XEN_DOMCTL_pausedomain: the guest must not run on with an entry to a frame the host reuses. */
static void xen_pause(struct xh_ctx *ctx)
{
	struct xh_domctl op = { .cmd = XH_DOMCTL_pausedomain };
	long rc = domctl(ctx, &op);

	pr_crit("xvgpu_helper: a p2m removal failed: domain %u %s\n", ctx->domid,
		rc ? "could NOT be paused" : "paused");
}

#else /* no Xen dom0 support in this kernel */

static int xen_init(struct xh_ctx *ctx) { return -EOPNOTSUPP; }
static void xen_fini(struct xh_ctx *ctx) { }
static int xen_map(struct xh_ctx *ctx, u64 gfn, unsigned long pfn, unsigned long n, bool writable,
		   unsigned long *done) { *done = 0; return -EOPNOTSUPP; }
static int xen_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n) { return -EOPNOTSUPP; }
static void xen_flush(struct xh_ctx *ctx) { }
static void xen_pause(struct xh_ctx *ctx) { }

#endif

const struct xh_p2m_ops xh_p2m_xen_ops = {
	.name = "xen",
	.read_only_entries = false,
	.init = xen_init,
	.fini = xen_fini,
	.map = xen_map,
	.unmap = xen_unmap,
	.flush = xen_flush,
	.pause = xen_pause,
};
