// SPDX-License-Identifier: GPL-2.0
/*
 * The `xen` p2m back-end for stock Xen (4.17): installs MMIO frames of a buffer (a GPU's VRAM BAR,
 * an ivshmem BAR: VM_IO|VM_PFNMAP, not RAM) in the frontend's p2m with XEN_DOMCTL_memory_mapping
 * (p2m_mmio_direct, the way XenServer's vGPU emulator maps GPU memory), and removes them in the
 * invalidate callback. Xen's p2m changes take effect, with their TLB flush, before the hypercall
 * returns, so flush has nothing left to do.
 *
 * - iomem permission: granted once per registered range for its MMIO frames (its aperture) at
 *   REGISTER, withdrawn at UNREGISTER/close, reference-counted per MFN across every range of every
 *   fd bound to the same domain (xh_refs_* in xen_domctl.h), never per MAP.
 * - the target: checked at BIND (exists, not dying, HVM/PVH) and re-checked before every grant and
 *   every MAP (same instance: handle and cpu_time). Permission belongs to a domain instance, so a
 *   domain recreated under the same domid holds none of ours and memory_mapping(add) for it fails.
 * - RAM frames: refused (-EMEDIUMTYPE) unless xen_ram_as_mmio=1 (unsafe prototype switch, see
 *   docs/kernel-helper.md): then each entry holds a page reference and per-run permission.
 *
 * Supported: an x86 PV dom0, which knows its MFNs (pfn_to_mfn). A PVH/HVM dom0 does not, and Arm
 * maps such entries as Device memory; both are refused at BIND. The domctl interface version is
 * the running Xen's (XENVER_version), as domctls are not a stable interface.
 */
#include <linux/list.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/vmalloc.h>

#include "helper.h"
#include "xen_domctl.h"

static bool xen_ram_as_mmio;
module_param(xen_ram_as_mmio, bool, 0444);
MODULE_PARM_DESC(xen_ram_as_mmio, "UNSAFE prototype: map RAM frames as p2m_mmio_direct (see docs/kernel-helper.md)");

#if IS_ENABLED(CONFIG_XEN_DOM0) && defined(CONFIG_X86)
#include <asm/xen/hypercall.h>
#include <asm/xen/page.h>
#include <xen/features.h>
#include <xen/interface/version.h>
#include <xen/xen.h>

static uint xen_domctl_version;
module_param(xen_domctl_version, uint, 0444);
MODULE_PARM_DESC(xen_domctl_version, "Override XEN_DOMCTL_INTERFACE_VERSION (0 = from the running Xen)");

/* REGISTER takes permission in chunks of this many MFNs per hold of the domain's lock. */
#define XH_GRANT_CHUNK 512

/*
 * One domain instance, shared by every fd bound to it: the per-MFN permission counts and the
 * bound windows (two fds must not share GFNs: Xen's remove clears whatever p2m_mmio_direct entry
 * sits at a GFN, whoever made it). `lock` is a spinlock: the invalidate callback, which may not
 * sleep, drops references (RAM mode), so counts are stored with GFP_NOWAIT.
 */
struct xh_xen_dom {
	struct list_head node;     /* in xh_doms, under xh_doms_lock */
	u16 domid;
	u8 handle[16];
	unsigned int users;        /* under xh_doms_lock */
	struct list_head bindings; /* struct xh_xen, under xh_doms_lock */
	spinlock_t lock;           /* refs and the permission hypercalls */
	struct xarray refs;        /* MFN -> xa_mk_value(count) */
};

static LIST_HEAD(xh_doms);
static DEFINE_MUTEX(xh_doms_lock);

struct xh_xen {
	u32 version;
	u64 first_gfn, pages;      /* the window, for the overlap check across fds */
	struct xh_xen_dom *dom;
	struct list_head node;     /* in dom->bindings */
	struct xh_domain_id id;    /* the instance bound, cpu_time updated at each check */
	bool stale;                /* the domain went or was replaced: nothing more is issued */
	unsigned long *mfn1;       /* per window page: MFN + 1 installed there (needed to remove it) */
	struct page **ram;         /* xen_ram_as_mmio: per window page, the reference the entry holds */
};

/* A range's aperture: the MMIO frames it had at REGISTER, as sorted, disjoint MFN runs. */
struct xh_aperture {
	unsigned long n, cap;
	bool granted;
	struct { u64 mfn, n; } run[];
};

static long domctl(struct xh_ctx *ctx, struct xh_domctl *op)
{
	struct xh_xen *x = ctx->p2m;

	op->interface_version = x->version;
	op->domain = ctx->domid;
	return privcmd_call(__HYPERVISOR_domctl, (unsigned long)op, 0, 0, 0, 0);
}

static long getdomaininfo(struct xh_ctx *ctx, struct xh_domaininfo *info)
{
	struct xh_domctl op = { .cmd = XH_DOMCTL_getdomaininfo };
	long rc = domctl(ctx, &op);

	*info = op.u.getdomaininfo;
	return rc;
}

/*
 * Is the bound domain still the instance BIND saw, alive? 0, or -ESTALE (and the binding
 * remembers it: nothing more is issued to that domid) or another error of the hypercall.
 * Caller holds ctx->lock (x->id and x->stale are shared with the invalidate callback).
 */
static int check_target(struct xh_ctx *ctx)
{
	struct xh_xen *x = ctx->p2m;
	struct xh_domaininfo info;
	int ret;

	if (x->stale)
		return -ESTALE;
	ret = xh_check_domain(getdomaininfo(ctx, &info), &info, ctx->domid, &x->id);
	if (ret == -ESTALE) {
		x->stale = true;
		pr_warn("xvgpu_helper: domain %u is gone or was replaced: binding is stale\n", ctx->domid);
	}
	return ret;
}

static long permit(void *priv, u64 mfn, u64 n, int allow)
{
	struct xh_domctl op = { .cmd = XH_DOMCTL_iomem_permission };

	op.u.iomem_permission.first_mfn = mfn;
	op.u.iomem_permission.nr_mfns = n;
	op.u.iomem_permission.allow_access = allow;
	return domctl(priv, &op);
}

static u64 refs_get_count(void *store, u64 mfn)
{
	void *e = xa_load(store, mfn);

	return e ? xa_to_value(e) : 0;
}

static int refs_set_count(void *store, u64 mfn, u64 count)
{
	if (!count) {
		xa_erase(store, mfn);
		return 0;
	}
	return xa_err(xa_store(store, mfn, xa_mk_value(count), GFP_NOWAIT | __GFP_ACCOUNT));
}

static const struct xh_refs_ops refs_ops = {
	.get = refs_get_count,
	.set = refs_set_count,
	.permit = permit,
};

/* Takes permission references on an MFN run for the bound domain (granting on 0 -> 1). */
static long refs_get(struct xh_ctx *ctx, u64 mfn, u64 n)
{
	struct xh_xen_dom *dom = ((struct xh_xen *)ctx->p2m)->dom;
	unsigned long flags;
	long rc;

	spin_lock_irqsave(&dom->lock, flags);
	rc = xh_refs_get(&refs_ops, &dom->refs, ctx, mfn, n);
	spin_unlock_irqrestore(&dom->lock, flags);
	return rc;
}

/* Drops them; denies on 1 -> 0 unless the domain is gone (its permissions went with it). */
static void refs_put(struct xh_ctx *ctx, u64 mfn, u64 n)
{
	struct xh_xen *x = ctx->p2m;
	unsigned long flags;
	long rc;

	spin_lock_irqsave(&x->dom->lock, flags);
	rc = xh_refs_put(&refs_ops, &x->dom->refs, ctx, mfn, n, !x->stale);
	spin_unlock_irqrestore(&x->dom->lock, flags);
	if (rc) /* a stale permission alone maps nothing; removal needed it, and is done */
		pr_warn_ratelimited("xvgpu_helper: domain %u: deny of mfn %llx+%llu failed: %ld\n",
				    ctx->domid, mfn, n, rc);
}

static struct xh_xen_dom *find_dom(u16 domid, const u8 *handle)
{
	struct xh_xen_dom *dom;

	list_for_each_entry(dom, &xh_doms, node)
		if (dom->domid == domid && !memcmp(dom->handle, handle, sizeof(dom->handle)))
			return dom;
	return NULL;
}

static bool window_taken(struct xh_xen_dom *dom, u64 first_gfn, u64 pages)
{
	struct xh_xen *other;

	list_for_each_entry(other, &dom->bindings, node)
		if (first_gfn < other->first_gfn + other->pages && other->first_gfn < first_gfn + pages)
			return true;
	return false;
}

static int xen_domctl_version_of_running_xen(u32 *version)
{
	int v = HYPERVISOR_xen_version(XENVER_version, NULL);

	*version = xen_domctl_version ? xen_domctl_version : xh_domctl_version_for(v >> 16, v & 0xffff);
	if (*version)
		return 0;
	pr_warn("xvgpu_helper: unknown Xen %d.%d: set xen_domctl_version\n", v >> 16, v & 0xffff);
	return -EOPNOTSUPP;
}

/* Joins (or creates) the shared state of the domain instance; -EBUSY if the window overlaps. */
static int join_dom(struct xh_ctx *ctx, struct xh_xen *x)
{
	struct xh_xen_dom *dom, *fresh = kzalloc(sizeof(*fresh), GFP_KERNEL_ACCOUNT);
	int ret = 0;

	if (!fresh)
		return -ENOMEM;
	mutex_lock(&xh_doms_lock);
	dom = find_dom(ctx->domid, x->id.handle);
	if (dom && window_taken(dom, ctx->first_gfn, ctx->pages)) {
		ret = -EBUSY;
	} else {
		if (!dom) {
			dom = fresh;
			fresh = NULL;
			dom->domid = ctx->domid;
			memcpy(dom->handle, x->id.handle, sizeof(dom->handle));
			INIT_LIST_HEAD(&dom->bindings);
			spin_lock_init(&dom->lock);
			xa_init(&dom->refs);
			list_add(&dom->node, &xh_doms);
		}
		dom->users++;
		list_add(&x->node, &dom->bindings);
		x->dom = dom;
	}
	mutex_unlock(&xh_doms_lock);
	kfree(fresh);
	return ret;
}

static void leave_dom(struct xh_xen *x)
{
	struct xh_xen_dom *dom = x->dom;

	mutex_lock(&xh_doms_lock);
	list_del(&x->node);
	if (--dom->users == 0) {
		list_del(&dom->node);
		/* Every range released its references before fini: anything left is a bug. */
		WARN_ON_ONCE(!xa_empty(&dom->refs));
		xa_destroy(&dom->refs);
		kfree(dom);
	}
	mutex_unlock(&xh_doms_lock);
}

/*
 * BIND: the target must exist, not be dying or shut down, and be HVM or PVH (XEN_DOMINF_hvm_guest):
 * for a PV target memory_mapping returns 0 and maps nothing (!paging_mode_translate).
 */
static int xen_init(struct xh_ctx *ctx)
{
	struct xh_domaininfo info;
	struct xh_xen *x;
	int ret;

	if (!xen_initial_domain())
		return -ENODEV;
	if (xen_feature(XENFEAT_auto_translated_physmap))
		return -EOPNOTSUPP; /* PVH/HVM dom0: MFNs unknown */
	x = kzalloc(sizeof(*x), GFP_KERNEL_ACCOUNT);
	if (!x)
		return -ENOMEM;
	ctx->p2m = x;
	x->first_gfn = ctx->first_gfn;
	x->pages = ctx->pages;
	ret = xen_domctl_version_of_running_xen(&x->version);
	if (ret)
		goto fail;
	ret = xh_check_domain(getdomaininfo(ctx, &info), &info, ctx->domid, NULL);
	if (ret)
		goto fail;
	xh_domain_id_of(&info, &x->id);
	ret = -ENOMEM;
	x->mfn1 = kvcalloc(ctx->pages, sizeof(*x->mfn1), GFP_KERNEL_ACCOUNT);
	if (!x->mfn1)
		goto fail;
	if (xen_ram_as_mmio) {
		x->ram = kvcalloc(ctx->pages, sizeof(*x->ram), GFP_KERNEL_ACCOUNT);
		if (!x->ram)
			goto fail;
	}
	ret = join_dom(ctx, x);
	if (ret)
		goto fail;
	return 0;
fail:
	kvfree(x->ram);
	kvfree(x->mfn1);
	kfree(x);
	ctx->p2m = NULL;
	return ret;
}

/*
 * close(), after every range was released. An entry still recorded is one Xen refused to remove:
 * the guest may still reach its frame, so a RAM frame's reference is leaked on purpose, never put.
 */
static void xen_fini(struct xh_ctx *ctx)
{
	struct xh_xen *x = ctx->p2m;
	unsigned long w, kept = 0, leaked = 0;

	for (w = 0; w < ctx->pages; w++) {
		if (!x->mfn1[w])
			continue;
		kept++;
		if (x->ram && x->ram[w])
			leaked++;
	}
	if (kept)
		pr_crit("xvgpu_helper: domain %u: %lu p2m entries Xen refused to remove are forgotten; %lu RAM page references leaked on purpose\n",
			ctx->domid, kept, leaked);
	leave_dom(x);
	kvfree(x->ram);
	kvfree(x->mfn1);
	kfree(x);
	ctx->p2m = NULL;
}

static int cmp_run(const void *a, const void *b)
{
	const u64 *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* Appends pfn's MFN to the aperture, extending the last run when contiguous. */
static int aperture_append(struct xh_aperture **pa, u64 mfn)
{
	struct xh_aperture *a = *pa;

	if (a && a->n && a->run[a->n - 1].mfn + a->run[a->n - 1].n == mfn) {
		a->run[a->n - 1].n++;
		return 0;
	}
	if (!a || a->n == a->cap) {
		unsigned long cap = a ? a->cap * 2 : 8;
		struct xh_aperture *b = kvmalloc(struct_size(b, run, cap), GFP_KERNEL_ACCOUNT);

		if (!b)
			return -ENOMEM;
		b->n = a ? a->n : 0;
		b->cap = cap;
		b->granted = false;
		if (a)
			memcpy(b->run, a->run, a->n * sizeof(a->run[0]));
		kvfree(a);
		*pa = a = b;
	}
	a->run[a->n].mfn = mfn;
	a->run[a->n].n = 1;
	a->n++;
	return 0;
}

/*
 * REGISTER, chunk by chunk: the range's frames. MMIO frames join its aperture; RAM frames are
 * refused (-EMEDIUMTYPE) unless xen_ram_as_mmio (then they take permission per MAP).
 */
static int xen_aperture_add(struct xh_ctx *ctx, struct xh_range *r, const unsigned long *pfn, unsigned long n)
{
	struct xh_aperture **pa = (struct xh_aperture **)&r->p2m_priv;
	unsigned long i;
	int ret;

	for (i = 0; i < n; i++) {
		if (xh_frame_is_ram(pfn[i])) {
			if (!xen_ram_as_mmio)
				return -EMEDIUMTYPE;
			continue;
		}
		ret = aperture_append(pa, pfn_to_mfn(pfn[i]));
		if (ret)
			return ret;
	}
	return 0;
}

/* Sorts the runs and merges overlapping ones: one reference per distinct MFN per range. */
static void aperture_normalise(struct xh_aperture *a)
{
	unsigned long i, out = 0;

	sort(a->run, a->n, sizeof(a->run[0]), cmp_run, NULL);
	for (i = 0; i < a->n; i++) {
		u64 end = a->run[i].mfn + a->run[i].n;

		if (out && a->run[i].mfn <= a->run[out - 1].mfn + a->run[out - 1].n) {
			u64 prev_end = a->run[out - 1].mfn + a->run[out - 1].n;

			if (end > prev_end)
				a->run[out - 1].n = end - a->run[out - 1].mfn;
			continue;
		}
		a->run[out++] = a->run[i];
	}
	a->n = out;
}

/* Takes (releases, if !get) references on runs [0, upto) of the aperture, in bounded chunks. */
static long aperture_refs(struct xh_ctx *ctx, struct xh_aperture *a, unsigned long upto, unsigned long *failed_at)
{
	unsigned long i;

	for (i = 0; i < upto; i++) {
		u64 off;

		for (off = 0; off < a->run[i].n; off += XH_GRANT_CHUNK) {
			u64 len = min_t(u64, XH_GRANT_CHUNK, a->run[i].n - off);
			long rc = refs_get(ctx, a->run[i].mfn + off, len);

			if (rc) {
				/* Put back this run's chunks before off; the caller puts runs [0, i). */
				if (off)
					refs_put(ctx, a->run[i].mfn, off);
				*failed_at = i;
				return rc;
			}
			cond_resched();
		}
	}
	return 0;
}

static void aperture_put(struct xh_ctx *ctx, struct xh_aperture *a, unsigned long upto)
{
	unsigned long i;
	u64 off;

	for (i = 0; i < upto; i++) {
		for (off = 0; off < a->run[i].n; off += XH_GRANT_CHUNK) {
			refs_put(ctx, a->run[i].mfn + off, min_t(u64, XH_GRANT_CHUNK, a->run[i].n - off));
			cond_resched();
		}
	}
}

/* REGISTER, after every chunk was added: the domain is re-checked, then permission taken once. */
static int xen_aperture_commit(struct xh_ctx *ctx, struct xh_range *r)
{
	struct xh_aperture *a = r->p2m_priv;
	unsigned long failed_at;
	long rc;
	int ret;

	if (!a)
		return 0;
	aperture_normalise(a);
	mutex_lock(&ctx->lock);
	ret = check_target(ctx);
	mutex_unlock(&ctx->lock);
	if (ret)
		return ret;
	rc = aperture_refs(ctx, a, a->n, &failed_at);
	if (rc) {
		aperture_put(ctx, a, failed_at);
		return rc < 0 && rc > -MAX_ERRNO ? (int)rc : -EIO;
	}
	a->granted = true;
	return 0;
}

/* UNREGISTER / close, after the range's entries were removed: the permission goes. */
static void xen_aperture_release(struct xh_ctx *ctx, struct xh_range *r)
{
	struct xh_aperture *a = r->p2m_priv;

	if (!a)
		return;
	if (a->granted) {
		mutex_lock(&ctx->lock);
		check_target(ctx); /* a gone domain's permissions went with it: deny nothing */
		mutex_unlock(&ctx->lock);
		aperture_put(ctx, a, a->n);
	}
	kvfree(a);
	r->p2m_priv = NULL;
}

/* Is [mfn, mfn + n) inside the range's aperture (binary search on the sorted, disjoint runs)? */
static bool in_aperture(const struct xh_aperture *a, u64 mfn, u64 n)
{
	unsigned long lo = 0, hi = a ? a->n : 0;

	while (lo < hi) {
		unsigned long mid = lo + (hi - lo) / 2;

		if (a->run[mid].mfn + a->run[mid].n <= mfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < (a ? a->n : 0) && a->run[lo].mfn <= mfn && n <= a->run[lo].mfn + a->run[lo].n - mfn;
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

/* RAM mode: one page reference per entry; 0 or -EFAULT (the frame is being freed). */
static int take_ram_refs(struct xh_xen *x, u64 w, unsigned long pfn, unsigned long n)
{
	unsigned long i;

	for (i = 0; i < n; i++) {
		if (!get_page_unless_zero(pfn_to_page(pfn + i))) {
			while (i--) {
				put_page(x->ram[w + i]);
				x->ram[w + i] = NULL;
			}
			return -EFAULT;
		}
		x->ram[w + i] = pfn_to_page(pfn + i);
	}
	return 0;
}

static void put_ram_refs(struct xh_xen *x, u64 w, unsigned long n)
{
	unsigned long i;

	for (i = 0; i < n; i++) {
		if (x->ram[w + i])
			put_page(x->ram[w + i]);
		x->ram[w + i] = NULL;
	}
}

/*
 * Maps one MFN-contiguous run of frames of one kind (MMIO, or RAM in RAM mode). MMIO must lie in
 * the range's aperture (the permission REGISTER took); RAM takes its permission and page
 * references here. *done = frames entered (recorded by the caller even on failure).
 */
static int map_mfn_run(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long pfn, u64 mfn, u64 n,
		       u64 *done)
{
	struct xh_xen *x = ctx->p2m;
	u64 w = gfn - ctx->first_gfn, i;
	bool ram = xh_frame_is_ram(pfn);
	long rc;

	*done = 0;
	if (ram && !xen_ram_as_mmio)
		return -EMEDIUMTYPE;
	if (!ram && !in_aperture(r->p2m_priv, mfn, n))
		return -ENXIO; /* the buffer moved since REGISTER: register it again */
	if (ram) {
		rc = take_ram_refs(x, w, pfn, n);
		if (rc)
			return rc;
		rc = refs_get(ctx, mfn, n);
		if (rc) {
			put_ram_refs(x, w, n);
			return -EIO;
		}
	}
	rc = xh_memory_mapping(ctx, mapping_call, gfn, mfn, n, 1, done);
	for (i = 0; i < *done; i++)
		x->mfn1[w + i] = mfn + i + 1;
	if (ram && *done < n) {
		refs_put(ctx, mfn + *done, n - *done);
		put_ram_refs(x, w + *done, n - *done);
	}
	if (rc)
		pr_warn_ratelimited("xvgpu_helper: domain %u: memory_mapping(add) gfn %llx+%llu failed after %llu: %ld\n",
				    ctx->domid, gfn, n, *done, rc);
	return rc ? -EIO : 0;
}

/*
 * Every p2m_mmio_direct entry Xen makes is writable, so there are no read-only entries here: MAP
 * always looks frames up with write intent for this back-end. The domain is checked first (a
 * replaced domain gets nothing: -ESTALE). Runs are recorded as they succeed; on a failure the runs
 * before it stay installed and *done says how far that is.
 */
static int xen_map(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long pfn, unsigned long n,
		   bool writable, unsigned long *done)
{
	unsigned long i, start = 0;
	int ret;

	*done = 0;
	if (WARN_ON_ONCE(!writable))
		return -EOPNOTSUPP;
	ret = check_target(ctx);
	if (ret)
		return ret;
	/* A PV dom0's PFN-contiguous frames need not be MFN-contiguous, nor all of one kind. */
	for (i = 1; i <= n; i++) {
		u64 entered;

		if (i < n && pfn_to_mfn(pfn + i) == pfn_to_mfn(pfn + i - 1) + 1 &&
		    xh_frame_is_ram(pfn + i) == xh_frame_is_ram(pfn + i - 1))
			continue;
		ret = map_mfn_run(ctx, r, gfn + start, pfn + start, pfn_to_mfn(pfn + start), i - start, &entered);
		*done = start + entered;
		if (ret)
			return ret;
		start = i;
	}
	return 0;
}

/* Forgets window pages [w, w + n): their entries are gone (removed, or died with the domain). */
static void forget_entries(struct xh_ctx *ctx, u64 w, u64 n)
{
	struct xh_xen *x = ctx->p2m;
	u64 i;

	for (i = 0; i < n; i++) {
		u64 m1 = x->mfn1[w + i];

		if (!m1)
			continue;
		x->mfn1[w + i] = 0;
		if (x->ram && x->ram[w + i]) {
			refs_put(ctx, m1 - 1, 1);
			put_ram_refs(x, w + i, 1);
		}
	}
}

/*
 * Removes one recorded MFN run. Stops at the frame Xen refuses: that one keeps its record (and
 * its RAM reference) for a retry, the rest of the run is still tried. Returns 0 or -EIO.
 */
static int unmap_mfn_run(struct xh_ctx *ctx, u64 gfn, u64 mfn, u64 n)
{
	u64 off = 0, done;
	int ret = 0;

	while (off < n) {
		long rc = xh_memory_mapping(ctx, mapping_call, gfn + off, mfn + off, n - off, 0, &done);

		forget_entries(ctx, gfn + off - ctx->first_gfn, done);
		if (!rc)
			break;
		pr_err_ratelimited("xvgpu_helper: domain %u: Xen refused to remove gfn %llx: %ld\n",
				   ctx->domid, gfn + off + done, rc);
		ret = -EIO;
		off += done + 1;
	}
	return ret;
}

/*
 * Removes the recorded entries of [gfn, gfn + n) by MFN run. Removing an entry Xen does not have
 * fails (clear_mmio_p2m_entry: -EINVAL), so only recorded entries are issued. A domain that is
 * gone or was replaced took its p2m with it: the records are just forgotten (nothing is issued to
 * a new domain under the same domid, whose own entries at those GFNs Xen would clear).
 */
static int xen_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n)
{
	struct xh_xen *x = ctx->p2m;
	unsigned long *m = &x->mfn1[gfn - ctx->first_gfn];
	unsigned long i, start = 0;
	int ret = 0, chk = check_target(ctx);

	if (chk == -ESTALE) {
		forget_entries(ctx, gfn - ctx->first_gfn, n);
		return 0;
	}
	for (i = 1; i <= n; i++) {
		if (i < n && m[i] && m[i - 1] && m[i] == m[i - 1] + 1)
			continue;
		if (m[start] && unmap_mfn_run(ctx, gfn + start, m[start] - 1, i - start))
			ret = -EIO;
		start = i;
	}
	return ret;
}

static void xen_flush(struct xh_ctx *ctx)
{
}

/*
 * XEN_DOMCTL_pausedomain: the guest must not run on with an entry to a frame the host reuses.
 * Never issued to a domain that replaced the bound one under its domid.
 */
static void xen_pause(struct xh_ctx *ctx)
{
	struct xh_domctl op = { .cmd = XH_DOMCTL_pausedomain };
	long rc;

	if (check_target(ctx) == -ESTALE) {
		pr_crit("xvgpu_helper: a p2m removal failed: domain %u is gone, nothing to pause\n", ctx->domid);
		return;
	}
	rc = domctl(ctx, &op);
	pr_crit("xvgpu_helper: a p2m removal failed: domain %u %s\n", ctx->domid,
		rc ? "could NOT be paused" : "paused");
}

#else /* no Xen dom0 support in this kernel */

static int xen_init(struct xh_ctx *ctx) { return -EOPNOTSUPP; }
static void xen_fini(struct xh_ctx *ctx) { }
static int xen_aperture_add(struct xh_ctx *ctx, struct xh_range *r, const unsigned long *pfn, unsigned long n)
{ return -EOPNOTSUPP; }
static int xen_aperture_commit(struct xh_ctx *ctx, struct xh_range *r) { return -EOPNOTSUPP; }
static void xen_aperture_release(struct xh_ctx *ctx, struct xh_range *r) { }
static int xen_map(struct xh_ctx *ctx, struct xh_range *r, u64 gfn, unsigned long pfn, unsigned long n,
		   bool writable, unsigned long *done) { *done = 0; return -EOPNOTSUPP; }
static int xen_unmap(struct xh_ctx *ctx, u64 gfn, unsigned long n) { return -EOPNOTSUPP; }
static void xen_flush(struct xh_ctx *ctx) { }
static void xen_pause(struct xh_ctx *ctx) { }

#endif

const struct xh_p2m_ops xh_p2m_xen_ops = {
	.name = "xen",
	.read_only_entries = false,
	.init = xen_init,
	.fini = xen_fini,
	.aperture_add = xen_aperture_add,
	.aperture_commit = xen_aperture_commit,
	.aperture_release = xen_aperture_release,
	.map = xen_map,
	.unmap = xen_unmap,
	.flush = xen_flush,
	.pause = xen_pause,
};
