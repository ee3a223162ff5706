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

/* The verdicts on getdomaininfo's answers. */
static void check_domain_cases(void)
{
	struct xh_domaininfo hvm = { .domain = 7, .flags = XH_DOMINF_hvm_guest, .cpu_time = 100, .handle = { 1, 2, 3 } };
	struct xh_domaininfo i = hvm;
	struct xh_domain_id id;

	CHECK("BIND: an HVM/PVH domain is accepted", xh_check_domain(0, &hvm, 7, NULL) == 0);
	i.flags = 0;
	CHECK("BIND: a PV domain is refused (EPROTOTYPE)", xh_check_domain(0, &i, 7, NULL) == -EPROTOTYPE);
	i = hvm;
	i.flags |= XH_DOMINF_dying;
	CHECK("BIND: a dying domain is refused (ESRCH)", xh_check_domain(0, &i, 7, NULL) == -ESRCH);
	i = hvm;
	i.flags |= XH_DOMINF_shutdown;
	CHECK("BIND: a shut-down domain is refused (ESRCH)", xh_check_domain(0, &i, 7, NULL) == -ESRCH);
	i = hvm;
	i.domain = 9; /* Xen answers for the next domain up when 7 is absent */
	CHECK("BIND: an absent domid answered with the next domain is refused (ESRCH)",
	      xh_check_domain(0, &i, 7, NULL) == -ESRCH);
	CHECK("BIND: ESRCH from Xen", xh_check_domain(-ESRCH, &hvm, 7, NULL) == -ESRCH);
	CHECK("BIND: another hypercall error is passed on", xh_check_domain(-EACCES, &hvm, 7, NULL) == -EACCES);
	xh_domain_id_of(&hvm, &id);
	i = hvm;
	i.cpu_time = 150;
	CHECK("later: the same instance is accepted and its cpu_time remembered",
	      xh_check_domain(0, &i, 7, &id) == 0 && id.cpu_time == 150);
	i.handle[0] = 9;
	CHECK("later: another handle is a replaced domain (ESTALE)", xh_check_domain(0, &i, 7, &id) == -ESTALE);
	i = hvm;
	i.cpu_time = 5000000000ULL;
	CHECK("later: 5 s of cpu_time remembered", xh_check_domain(0, &i, 7, &id) == 0 && id.cpu_time == 5000000000ULL);
	i.cpu_time = 5000000000ULL - 30000000; /* a running vCPU's slice left out (NOW() across CPUs) */
	CHECK("later: cpu_time a slice below the highest seen is the same instance, the highest kept",
	      xh_check_domain(0, &i, 7, &id) == 0 && id.cpu_time == 5000000000ULL);
	i.cpu_time = 120; /* far below the 5 s seen: a new instance with the same uuid */
	CHECK("later: cpu_time going back by more than the slack is a replaced domain (ESTALE)", xh_check_domain(0, &i, 7, &id) == -ESTALE);
	i = hvm;
	i.cpu_time = 200;
	i.domain = 8;
	CHECK("later: an absent domid is stale", xh_check_domain(0, &i, 7, &id) == -ESTALE &&
	      xh_check_domain(-ESRCH, &i, 7, &id) == -ESTALE);
	i = hvm;
	i.cpu_time = 200;
	i.flags |= XH_DOMINF_dying;
	CHECK("later: a dying domain is stale", xh_check_domain(0, &i, 7, &id) == -ESTALE);
}

/* A fake Xen iomem rangeset (not counted, as Xen's) and the module's count store. */
struct perm { unsigned char allowed[256]; u64 count[256]; int permits, fail_permit_at, fail_set_at, sets; };

static u64 perm_get(void *store, u64 mfn) { return ((struct perm *)store)->count[mfn]; }

static int perm_set(void *store, u64 mfn, u64 c)
{
	struct perm *p = store;

	if (c && p->fail_set_at && ++p->sets == p->fail_set_at)
		return -ENOMEM;
	p->count[mfn] = c;
	return 0;
}

static long perm_permit(void *priv, u64 mfn, u64 n, int allow)
{
	struct perm *p = priv;

	if (p->fail_permit_at && ++p->permits == p->fail_permit_at)
		return -EPERM;
	for (u64 i = 0; i < n; i++)
		p->allowed[mfn + i] = allow;
	return 0;
}

static const struct xh_refs_ops perm_ops = { perm_get, perm_set, perm_permit };

static int allowed_count(struct perm *p)
{
	int n = 0;

	for (int i = 0; i < 256; i++)
		n += p->allowed[i];
	return n;
}

static int counts_zero(struct perm *p)
{
	for (int i = 0; i < 256; i++)
		if (p->count[i])
			return 0;
	return 1;
}

/* Aliases: two ranges over overlapping MFNs; removing one never withdraws the other's permission. */
static void refs_cases(void)
{
	struct perm p;

	memset(&p, 0, sizeof(p));
	CHECK("aperture A [10,30) granted in one permit", xh_refs_get(&perm_ops, &p, &p, 10, 20) == 0 &&
	      allowed_count(&p) == 20 && p.count[10] == 1);
	CHECK("alias B [20,40) grants only the 10 new MFNs", xh_refs_get(&perm_ops, &p, &p, 20, 20) == 0 &&
	      allowed_count(&p) == 30 && p.count[25] == 2);
	CHECK("releasing A keeps B's MFNs permitted", xh_refs_put(&perm_ops, &p, &p, 10, 20, 1) == 0 &&
	      allowed_count(&p) == 20 && p.allowed[20] && p.allowed[39] && !p.allowed[19]);
	CHECK("releasing B withdraws the rest", xh_refs_put(&perm_ops, &p, &p, 20, 20, 1) == 0 &&
	      allowed_count(&p) == 0 && counts_zero(&p));

	memset(&p, 0, sizeof(p));
	xh_refs_get(&perm_ops, &p, &p, 40, 10); /* held by another range */
	p.permits = 0;
	p.fail_permit_at = 2; /* [30,40) granted, then [50,60) refused */
	CHECK("a refused grant puts everything back, the other range's MFNs untouched",
	      xh_refs_get(&perm_ops, &p, &p, 30, 30) == -EPERM && allowed_count(&p) == 10 &&
	      p.allowed[40] && !p.allowed[30] && p.count[45] == 1 && p.count[30] == 0 && p.count[55] == 0);

	memset(&p, 0, sizeof(p));
	p.fail_set_at = 15; /* no memory for the 15th count */
	CHECK("a failed count store puts everything back",
	      xh_refs_get(&perm_ops, &p, &p, 0, 20) == -ENOMEM && allowed_count(&p) == 0 && counts_zero(&p));

	memset(&p, 0, sizeof(p));
	xh_refs_get(&perm_ops, &p, &p, 0, 8);
	CHECK("a put without deny (domain gone) drops counts and issues nothing",
	      xh_refs_put(&perm_ops, &p, &p, 0, 8, 0) == 0 && counts_zero(&p) && allowed_count(&p) == 8);
}

static long mm(struct fake *f, u64 gfn, u64 mfn, u64 n, int add, u64 *done)
{
	return xh_memory_mapping(f, fake_call, gfn, mfn, n, add, done);
}

int main(void)
{
	struct fake f;
	u64 done;

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

	CHECK("getdomaininfo layout and flags",
	      XEN_DOMCTL_getdomaininfo == XH_DOMCTL_getdomaininfo &&
	      offsetof(struct xen_domctl_getdomaininfo, domain) == offsetof(struct xh_domaininfo, domain) &&
	      offsetof(struct xen_domctl_getdomaininfo, flags) == offsetof(struct xh_domaininfo, flags) &&
	      offsetof(struct xen_domctl_getdomaininfo, cpu_time) == offsetof(struct xh_domaininfo, cpu_time) &&
	      offsetof(struct xen_domctl_getdomaininfo, handle) == offsetof(struct xh_domaininfo, handle) &&
	      sizeof(xen_domain_handle_t) == sizeof(((struct xh_domaininfo *)0)->handle) &&
	      XEN_DOMINF_dying == XH_DOMINF_dying && XEN_DOMINF_hvm_guest == XH_DOMINF_hvm_guest &&
	      XEN_DOMINF_shutdown == XH_DOMINF_shutdown);
	check_domain_cases();

	memset(&f, 0, sizeof(f));
	CHECK("200 frames go in batches of at most 64", mm(&f, 100, 1000, 200, 1, &done) == 0 && done == 200 &&
	      f.calls == 4 && f.nr_seen[0] == 64 && f.nr_seen[3] == 8 && count_mapped(&f) == 200);
	memset(&f, 0, sizeof(f));
	f.max_per_call = 16; /* Xen refuses more than 16 a call: -E2BIG, the batch halves to 32 then 16 */
	CHECK("-E2BIG halves the batch", mm(&f, 0, 0, 100, 1, &done) == 0 && count_mapped(&f) == 100 &&
	      f.nr_seen[0] == 64 && f.nr_seen[1] == 32 && f.nr_seen[2] == 16);
	memset(&f, 0, sizeof(f));
	f.script[0] = 10; /* Xen did 10 of 64: continue from there */
	f.nscript = 1;
	CHECK("partial progress continues after the frames done", mm(&f, 0, 0, 64, 1, &done) == 0 &&
	      count_mapped(&f) == 64 && f.nr_seen[1] == 54);
	memset(&f, 0, sizeof(f));
	f.script[0] = 0;
	f.script[1] = -EPERM; /* second batch fails: nothing is undone behind the caller's back */
	f.nscript = 2;
	CHECK("a failed add reports the exact prefix entered and removes nothing",
	      mm(&f, 0, 0, 128, 1, &done) == -EPERM && done == 64 && count_mapped(&f) == 64 && f.calls == 2);
	memset(&f, 0, sizeof(f));
	memset(f.mapped, 1, 128);
	f.script[0] = 5;
	f.script[1] = -EIO; /* removal: 5 done, then the 6th frame refused */
	f.nscript = 2;
	CHECK("a failed removal stops at the refused frame with the exact prefix",
	      mm(&f, 0, 0, 128, 0, &done) == -EIO && done == 5 && count_mapped(&f) == 123);
	refs_cases();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
