/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Xen domctls the `xen` p2m back-end issues, libxc's batching rule for
 * XEN_DOMCTL_memory_mapping, the target-domain check and the iomem-permission reference counts.
 * Plain C with no kernel dependencies, so tests/xen_domctl_test.c checks the layout against
 * libxen-dev's xen/domctl.h and the logic against a fake hypervisor.
 *
 * Facts (shared/reference/xen-ioreq-p2m.md §3.1): header u32 cmd, u32 interface_version,
 * u16 domain, u16 pad[3], then a 128-byte union: 144 bytes. interface_version must equal the
 * running Xen's XEN_DOMCTL_INTERFACE_VERSION exactly. memory_mapping returns 0 (done), a positive
 * count (that many done: call again for the rest) or -E2BIG (too many for one call); x86 does at
 * most 64 iterations a call, Arm refuses more than 64 frames.
 */
#ifndef XVGPU_XEN_DOMCTL_H
#define XVGPU_XEN_DOMCTL_H

#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/types.h>
#else
#include <errno.h>
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
#endif

#define XH_DOMCTL_pausedomain 3
#define XH_DOMCTL_getdomaininfo 5
#define XH_DOMCTL_iomem_permission 20
#define XH_DOMCTL_memory_mapping 39
#define XH_DPCI_ADD_MAPPING 1
#define XH_DPCI_REMOVE_MAPPING 0
#define XH_MEMORY_MAPPING_BATCH 64

/* XEN_DOMINF_* flags (xen/include/public/domctl.h) the back-end reads. */
#define XH_DOMINF_dying (1u << 0)     /* Xen 4.17 sets it only at DOMDYING_dead (getdomaininfo()) */
#define XH_DOMINF_hvm_guest (1u << 1) /* HVM and PVH (is_hvm_domain()); clear for PV */
#define XH_DOMINF_shutdown (1u << 2)

/* The head of struct xen_domctl_getdomaininfo, up to the handle (offsets unit-checked). */
struct xh_domaininfo {
	u16 domain; /* the domain Xen answered for: the next one up if the asked one is absent */
	u16 pad1;
	u32 flags;
	u64 tot_pages, max_pages, outstanding_pages, shr_pages, paged_pages, shared_info_frame;
	u64 cpu_time; /* ns the domain's vCPUs ran: never decreases for one domain */
	u32 nr_online_vcpus, max_vcpu_id, ssidref;
	u8 handle[16]; /* xen_domain_handle_t: the toolstack's UUID of the domain */
};

struct xh_domctl {
	u32 cmd;
	u32 interface_version;
	u16 domain;
	u16 pad[3];
	union {
		struct {
			u64 first_gfn;
			u64 first_mfn;
			u64 nr_mfns;
			u32 add_mapping;
			u32 padding;
		} memory_mapping;
		struct {
			u64 first_mfn;
			u64 nr_mfns;
			u8 allow_access;
		} iomem_permission;
		struct xh_domaininfo getdomaininfo;
		u8 raw[128];
	} u;
};

/* XEN_DOMCTL_INTERFACE_VERSION of a Xen release, or 0 if unknown (then BIND fails). */
static inline u32 xh_domctl_version_for(unsigned int major, unsigned int minor)
{
	if (major != 4)
		return 0;
	switch (minor) {
	case 15: return 0x13;
	case 16: return 0x14;
	case 17: return 0x15;
	case 18: return 0x16;
	case 19: case 20: case 21: return 0x17;
	case 22: return 0x18;
	default: return 0;
	}
}

/* What identifies one instance of a domain behind a domid (see xh_check_domain). */
struct xh_domain_id {
	u8 handle[16];
	u64 cpu_time; /* the highest seen so far */
};

/*
 * How far a domain's cpu_time may seem to go back between two getdomaininfo calls. Xen adds a
 * running vCPU's current slice as NOW() - state_entry_time, NOW() read on the caller's CPU and the
 * entry time on the vCPU's: across CPUs that difference can be negative and the slice is then left
 * out, so the sum drops by up to one slice (seen on the Xen tier: an UNMAP right after a MAP of the
 * same live PVH guest judged it replaced). A domain recreated under the same domid and uuid starts
 * from 0, so it is still caught unless its predecessor had run for less than this.
 */
#define XH_CPU_TIME_SLACK_NS 1000000000ULL

/*
 * The verdict on getdomaininfo's answer (rc, *info) for `domid`. With `known` NULL (BIND): the
 * domain must exist, not be dying or shut down, and be HVM or PVH (for a PV target
 * memory_mapping returns 0 and maps nothing: !paging_mode_translate). With `known` (every later
 * use): it must also be the same instance: same handle, and a cpu_time that did not go back by more
 * than XH_CPU_TIME_SLACK_NS (a domain recreated under the same domid with the same uuid= starts
 * again from 0). Returns 0 and
 * updates *known, -ESRCH (absent, dying, shut down), -EPROTOTYPE (PV), -ESTALE (another instance).
 */
static inline int xh_check_domain(long rc, const struct xh_domaininfo *info, u16 domid, struct xh_domain_id *known)
{
	unsigned int i;

	/* An absent domid answers with the next domain up (for_each_domain from domid): compare. */
	if (rc == -ESRCH || (!rc && info->domain != domid))
		return known ? -ESTALE : -ESRCH;
	if (rc)
		return (int)rc;
	if (known) {
		for (i = 0; i < sizeof(known->handle); i++)
			if (known->handle[i] != info->handle[i])
				return -ESTALE;
		if (info->cpu_time + XH_CPU_TIME_SLACK_NS < known->cpu_time)
			return -ESTALE;
	}
	if (info->flags & (XH_DOMINF_dying | XH_DOMINF_shutdown))
		return known ? -ESTALE : -ESRCH;
	if (!(info->flags & XH_DOMINF_hvm_guest))
		return -EPROTOTYPE;
	if (!known)
		return 0;
	if (info->cpu_time > known->cpu_time)
		known->cpu_time = info->cpu_time;
	return 0;
}

/* The domain instance from a getdomaininfo answer xh_check_domain accepted at BIND. */
static inline void xh_domain_id_of(const struct xh_domaininfo *info, struct xh_domain_id *id)
{
	unsigned int i;

	for (i = 0; i < sizeof(id->handle); i++)
		id->handle[i] = info->handle[i];
	id->cpu_time = info->cpu_time;
}

/* One memory_mapping domctl: returns Xen's result (0, frames done > 0, or -errno). */
typedef long (*xh_mapping_call)(void *priv, u64 gfn, u64 mfn, u64 nr, int add);

/*
 * Maps (add) or unmaps n frames at most XH_MEMORY_MAPPING_BATCH per call, as libxc's
 * xc_domain_memory_mapping(): a positive return advances by that many, -E2BIG halves the batch.
 * Stops at the first error, with *done = the frames from gfn Xen did handle: with batches of at
 * most 64 frames Xen 4.17 handles 4 KiB entries one by one, each all or nothing, and an error is
 * returned only when the first frame of a call failed (map_mmio_regions / unmap_mmio_regions
 * return the progress otherwise), so the prefix is exact and frame gfn + *done is the one that
 * failed.
 *
 * A failed add is NOT rolled back here: the caller records the *done frames like any entry, for
 * the ordinary removal that fails closed. libxc rolls back and ignores the rollback's own
 * failure, which would leave entries nobody knows of.
 */
static inline long xh_memory_mapping(void *priv, xh_mapping_call call, u64 gfn, u64 mfn, u64 n, int add, u64 *done)
{
	u64 batch = XH_MEMORY_MAPPING_BATCH;

	*done = 0;
	while (*done < n) {
		u64 nr = n - *done < batch ? n - *done : batch;
		long rc = call(priv, gfn + *done, mfn + *done, nr, add);

		if (rc == -E2BIG && batch > 1) {
			batch /= 2;
			continue;
		}
		if (rc < 0)
			return rc;
		*done += rc > 0 && (u64)rc < nr ? (u64)rc : nr;
	}
	return 0;
}

/*
 * Reference counts of the iomem permission a domain holds on MFNs. Xen's permission is a
 * rangeset, not counted: denying it for one alias (two ranges over the same MFNs, in one fd or
 * in two fds bound to the same domain) would make the other's memory_mapping(remove) fail with
 * EPERM (Xen < 4.22 checks permission on remove). So the module counts per MFN, grants on 0 -> 1
 * and denies on 1 -> 0, one hypercall per maximal run of such MFNs.
 *
 * The store is abstract (an xarray in the kernel, an array in the unit test): get returns the
 * count, set stores it (0 erases) and may fail (no memory) only when count goes from 0 to 1.
 */
struct xh_refs_ops {
	u64 (*get)(void *store, u64 mfn);
	int (*set)(void *store, u64 mfn, u64 count);
	long (*permit)(void *priv, u64 mfn, u64 n, int allow); /* XEN_DOMCTL_iomem_permission */
};

/* Drops one reference on [mfn, mfn + n); denies the MFNs that reach 0 if `deny`. First error. */
static inline long xh_refs_put(const struct xh_refs_ops *o, void *store, void *priv, u64 mfn, u64 n, int deny)
{
	u64 i, run = 0;
	long first_err = 0;

	for (i = 0; i <= n; i++) {
		u64 c = i < n ? o->get(store, mfn + i) : 0;
		int last = i < n && c == 1;

		if (i < n && c)
			o->set(store, mfn + i, c - 1);
		if (last) {
			run++;
			continue;
		}
		if (run && deny) {
			long rc = o->permit(priv, mfn + i - run, run, 0);

			if (rc && !first_err)
				first_err = rc;
		}
		run = 0;
	}
	return first_err;
}

/*
 * Takes one reference on [mfn, mfn + n), granting the MFNs that had none. All or nothing: on a
 * failure what this call took is put back (and what it granted denied), and the error returned.
 */
static inline long xh_refs_get(const struct xh_refs_ops *o, void *store, void *priv, u64 mfn, u64 n)
{
	u64 i, run = 0;
	long rc = 0;

	for (i = 0; i <= n && !rc; i++) {
		u64 c = i < n ? o->get(store, mfn + i) : 1;

		if (i < n) {
			rc = o->set(store, mfn + i, c + 1);
			if (rc)
				break;
		}
		if (!c) {
			run++;
			continue;
		}
		if (run)
			rc = o->permit(priv, mfn + i - run, run, 1);
		if (rc) {
			/* [mfn + i - run, mfn + i) were not granted: count them down without a deny. */
			xh_refs_put(o, store, priv, mfn + i - run, run, 0);
			if (i < n)
				xh_refs_put(o, store, priv, mfn + i, 1, 1);
			xh_refs_put(o, store, priv, mfn, i - run, 1);
			return rc;
		}
		run = 0;
	}
	if (rc) /* set() failed at i: undo [mfn, mfn + i) (the pending run was never granted) */ {
		xh_refs_put(o, store, priv, mfn + i - run, run, 0);
		xh_refs_put(o, store, priv, mfn, i - run, 1);
	}
	return rc;
}

#endif
