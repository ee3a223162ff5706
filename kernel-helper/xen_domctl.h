/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two Xen domctls the `xen` p2m back-end issues, and libxc's batching rule for
 * XEN_DOMCTL_memory_mapping. Plain C with no kernel dependencies, so tests/xen_domctl_test.c checks
 * the layout against libxen-dev's xen/domctl.h and the batching against a fake hypervisor.
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
#define XH_DOMCTL_iomem_permission 20
#define XH_DOMCTL_memory_mapping 39
#define XH_DPCI_ADD_MAPPING 1
#define XH_DPCI_REMOVE_MAPPING 0
#define XH_MEMORY_MAPPING_BATCH 64

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

/* One memory_mapping domctl: returns Xen's result (0, frames done > 0, or -errno). */
typedef long (*xh_mapping_call)(void *priv, u64 gfn, u64 mfn, u64 nr, int add);

/*
 * Maps (add) or unmaps n frames at most XH_MEMORY_MAPPING_BATCH per call, as libxc's
 * xc_domain_memory_mapping(): a positive return advances by that many, -E2BIG halves the batch.
 * A failed add removes what this call had added, so a failure leaves nothing half-mapped.
 * Removal keeps going past a failure (revocation must do all it can) and returns the first error.
 */
static inline long xh_memory_mapping(void *priv, xh_mapping_call call, u64 gfn, u64 mfn, u64 n, int add)
{
	u64 done = 0, batch = XH_MEMORY_MAPPING_BATCH;
	long first_err = 0;

	while (done < n) {
		u64 nr = n - done < batch ? n - done : batch;
		long rc = call(priv, gfn + done, mfn + done, nr, add);

		if (rc == -E2BIG && batch > 1) {
			batch /= 2;
			continue;
		}
		if (rc > 0) {
			done += (u64)rc < nr ? (u64)rc : nr;
			continue;
		}
		if (rc == 0) {
			done += nr;
			continue;
		}
		if (add) {
			if (done)
				xh_memory_mapping(priv, call, gfn, mfn, done, 0);
			return rc;
		}
		if (!first_err)
			first_err = rc;
		done += nr; /* removal: skip the failed batch, keep revoking the rest */
	}
	return first_err;
}

#endif
