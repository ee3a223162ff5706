// SPDX-License-Identifier: GPL-2.0
/*
 * Unit check of the `xen` p2m back-end's pure parts, run on the build machine (no Xen needed):
 * our domctl layout against libxen-dev's xen/domctl.h, the interface version of the installed Xen
 * release, and xh_memory_mapping()'s batching against a fake hypervisor.
 */
#define __XEN_TOOLS__ 1
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xen/xen.h>
#include <xen/domctl.h>

#include "../include/uapi/linux/xvgpu_helper.h"
#include "../xen_domctl.h"

static int passed, failed;
#define CHECK(name, cond) do { if (cond) { passed++; printf("ok - %s\n", name); } else { failed++; printf("not ok - %s\n", name); } } while (0)

/* A fake Xen: records calls, returns scripted results, tracks which GFNs are mapped. */
struct fake { int calls; long script[64]; int nscript; u64 max_per_call; unsigned char mapped[4096]; u64 nr_seen[64]; };

static long fake_call(void *priv, u64 gfn, u64 mfn, u64 nr, int add)
{
	struct fake *f = priv;
	long rc = f->calls < f->nscript ? f->script[f->calls] : 0;
	u64 i, done;

	(void)mfn;
	if (f->calls < 64)
		f->nr_seen[f->calls] = nr;
	f->calls++;
	if (f->max_per_call && nr > f->max_per_call)
		return -E2BIG;
	if (rc < 0)
		return rc;
	done = rc > 0 ? (u64)rc : nr;
	for (i = 0; i < done; i++)
		f->mapped[gfn + i] = add ? 1 : 0;
	return rc;
}

static int count_mapped(struct fake *f)
{
	int n = 0;

	for (int i = 0; i < 4096; i++)
		n += f->mapped[i];
	return n;
}

int main(void)
{
	struct fake f;

	CHECK("sizeof(struct xen_domctl) == 144 == ours", sizeof(struct xen_domctl) == sizeof(struct xh_domctl) && sizeof(struct xh_domctl) == 144);
	CHECK("header offsets", offsetof(struct xen_domctl, cmd) == offsetof(struct xh_domctl, cmd) &&
	      offsetof(struct xen_domctl, interface_version) == offsetof(struct xh_domctl, interface_version) &&
	      offsetof(struct xen_domctl, domain) == offsetof(struct xh_domctl, domain) &&
	      offsetof(struct xen_domctl, u) == offsetof(struct xh_domctl, u));
	CHECK("memory_mapping layout",
	      offsetof(struct xen_domctl_memory_mapping, first_gfn) == offsetof(struct xh_domctl, u.memory_mapping.first_gfn) - offsetof(struct xh_domctl, u) &&
	      offsetof(struct xen_domctl_memory_mapping, first_mfn) == offsetof(struct xh_domctl, u.memory_mapping.first_mfn) - offsetof(struct xh_domctl, u) &&
	      offsetof(struct xen_domctl_memory_mapping, nr_mfns) == offsetof(struct xh_domctl, u.memory_mapping.nr_mfns) - offsetof(struct xh_domctl, u) &&
	      offsetof(struct xen_domctl_memory_mapping, add_mapping) == offsetof(struct xh_domctl, u.memory_mapping.add_mapping) - offsetof(struct xh_domctl, u));
	CHECK("iomem_permission layout",
	      offsetof(struct xen_domctl_iomem_permission, first_mfn) == offsetof(struct xh_domctl, u.iomem_permission.first_mfn) - offsetof(struct xh_domctl, u) &&
	      offsetof(struct xen_domctl_iomem_permission, nr_mfns) == offsetof(struct xh_domctl, u.iomem_permission.nr_mfns) - offsetof(struct xh_domctl, u) &&
	      offsetof(struct xen_domctl_iomem_permission, allow_access) == offsetof(struct xh_domctl, u.iomem_permission.allow_access) - offsetof(struct xh_domctl, u));
	CHECK("domctl numbers, DPCI constants, DOMID_FIRST_RESERVED", XEN_DOMCTL_memory_mapping == XH_DOMCTL_memory_mapping &&
	      XEN_DOMCTL_pausedomain == XH_DOMCTL_pausedomain &&
	      XEN_DOMCTL_iomem_permission == XH_DOMCTL_iomem_permission && DPCI_ADD_MAPPING == XH_DPCI_ADD_MAPPING &&
	      DPCI_REMOVE_MAPPING == XH_DPCI_REMOVE_MAPPING && DOMID_FIRST_RESERVED == XVGPU_DOMID_FIRST_RESERVED);
	CHECK("interface version of the installed Xen 4.17 headers", xh_domctl_version_for(4, 17) == XEN_DOMCTL_INTERFACE_VERSION);
	CHECK("unknown releases have no version", xh_domctl_version_for(4, 99) == 0 && xh_domctl_version_for(5, 0) == 0);

	memset(&f, 0, sizeof(f));
	CHECK("200 frames go in batches of at most 64", xh_memory_mapping(&f, fake_call, 100, 1000, 200, 1) == 0 &&
	      f.calls == 4 && f.nr_seen[0] == 64 && f.nr_seen[3] == 8 && count_mapped(&f) == 200);
	memset(&f, 0, sizeof(f));
	f.max_per_call = 16; /* Xen refuses more than 16 a call: -E2BIG, the batch halves to 32 then 16 */
	CHECK("-E2BIG halves the batch", xh_memory_mapping(&f, fake_call, 0, 0, 100, 1) == 0 && count_mapped(&f) == 100 &&
	      f.nr_seen[0] == 64 && f.nr_seen[1] == 32 && f.nr_seen[2] == 16);
	memset(&f, 0, sizeof(f));
	f.script[0] = 10; /* Xen did 10 of 64: continue from there */
	f.nscript = 1;
	CHECK("partial progress continues after the frames done", xh_memory_mapping(&f, fake_call, 0, 0, 64, 1) == 0 &&
	      count_mapped(&f) == 64 && f.nr_seen[1] == 54);
	memset(&f, 0, sizeof(f));
	f.script[0] = 0;
	f.script[1] = -EPERM; /* second batch fails: the first is undone */
	f.nscript = 2;
	CHECK("a failed add undoes what it added", xh_memory_mapping(&f, fake_call, 0, 0, 128, 1) == -EPERM && count_mapped(&f) == 0);
	memset(&f, 0, sizeof(f));
	memset(f.mapped, 1, 128);
	f.script[0] = -EIO; /* removal of the first batch fails: the rest is still removed */
	f.nscript = 1;
	CHECK("removal keeps going past a failure and reports it", xh_memory_mapping(&f, fake_call, 0, 0, 128, 0) == -EIO &&
	      count_mapped(&f) == 64);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
