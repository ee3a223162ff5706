// SPDX-License-Identifier: GPL-2.0
/*
 * Selftest of the kernel helper's `xen` back-end, run in a PV dom0 on real Xen (the Xen tier's
 * helper-xen scenario) against domains it was given, named by the environment (all required: a
 * missing one fails every case, never skips it):
 *   XVGPU_XEN_PVH     domid of a running PVH guest
 *   XVGPU_XEN_PV      domid of a running PV guest
 *   XVGPU_XEN_ABSENT  a domid no domain has
 *   XVGPU_XEN_VICTIM  domid of a PVH guest the stale-domain case destroys (xl destroy)
 *   XVGPU_XEN_MMIO    a PCI BAR's sysfs resource file (ivshmem: .../resource2), MMIO
 * The module must be loaded without xen_ram_as_mmio. KTAP output, one line per case.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "linux/xvgpu_helper.h"
#include "harness.h"

#define PAGE 4096UL
#define G0 0xe0000ULL   /* first GFN of the test window: 3.5 GiB, in the PVH guest's MMIO hole */
#define WINDOW 1024
#define BAR_PAGES 16

static uint32_t env_domid(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v) {
		fprintf(stderr, "# %s is not set\n", name);
		return 0;
	}
	return (uint32_t)strtoul(v, NULL, 0);
}

static int bind_xen(uint32_t domid, uint64_t first_gfn, uint64_t pages)
{
	struct xvgpu_bind b = { .size = sizeof(b), .domid = domid, .first_gfn = first_gfn, .pages = pages,
				.backend = XVGPU_P2M_XEN };
	int fd = open(XVGPU_HELPER_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, XVGPU_IOC_BIND, &b)) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static void *map_bar(void)
{
	const char *path = getenv("XVGPU_XEN_MMIO");
	int fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
	void *p;

	if (fd < 0) {
		fprintf(stderr, "# XVGPU_XEN_MMIO (%s) cannot be opened\n", path ? path : "unset");
		return NULL;
	}
	p = mmap(NULL, BAR_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static int reg(int fd, void *va, uint64_t len)
{
	struct xvgpu_register r = { .size = sizeof(r), .va = (uintptr_t)va, .length = len };

	return ioctl(fd, XVGPU_IOC_REGISTER, &r) ? -errno : (int)r.range_id;
}

static int unreg(int fd, int range)
{
	struct xvgpu_unregister u = { .size = sizeof(u), .range_id = range };

	return ioctl(fd, XVGPU_IOC_UNREGISTER, &u) ? -errno : 0;
}

static int map(int fd, int range, uint64_t gfn, uint64_t page, uint32_t pages)
{
	struct xvgpu_map m = { .size = sizeof(m), .range_id = range, .gfn = gfn, .page_in_range = page, .pages = pages };

	return ioctl(fd, XVGPU_IOC_MAP, &m) ? -errno : (int)m.installed;
}

static int64_t unmap(int fd, uint64_t gfn, uint32_t pages)
{
	struct xvgpu_unmap u = { .size = sizeof(u), .gfn = gfn, .pages = pages };

	return ioctl(fd, XVGPU_IOC_UNMAP, &u) ? -errno : (int64_t)u.revoked;
}

TEST(bind_to_pv_refused)
{
	ASSERT_NE(0u, env_domid("XVGPU_XEN_PV"));
	EXPECT_EQ(-EPROTOTYPE, bind_xen(env_domid("XVGPU_XEN_PV"), G0, WINDOW));
}

TEST(bind_to_absent_refused)
{
	ASSERT_NE(0u, env_domid("XVGPU_XEN_ABSENT"));
	EXPECT_EQ(-ESRCH, bind_xen(env_domid("XVGPU_XEN_ABSENT"), G0, WINDOW));
}

TEST(ram_refused_without_the_parameter)
{
	void *mem = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = bind_xen(env_domid("XVGPU_XEN_PVH"), G0, WINDOW);

	ASSERT_LE(0, fd);
	ASSERT_NE(MAP_FAILED, mem);
	EXPECT_EQ(-EMEDIUMTYPE, reg(fd, mem, 4 * PAGE));
	close(fd);
}

/* MMIO mapped, shown by QUERY, removed by UNMAP, mapped again, removed by UNREGISTER. */
TEST(mmio_mapped_and_removed)
{
	void *bar = map_bar();
	int fd = bind_xen(env_domid("XVGPU_XEN_PVH"), G0, WINDOW), range;

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, bar);
	range = reg(fd, bar, BAR_PAGES * PAGE);
	ASSERT_LT(0, range);
	EXPECT_EQ(BAR_PAGES, map(fd, range, G0, 0, BAR_PAGES));
	EXPECT_EQ(BAR_PAGES, unmap(fd, G0, WINDOW));
	EXPECT_EQ(4, map(fd, range, G0 + 8, 4, 4));
	EXPECT_EQ(0, unreg(fd, range));
	printf("# XT-MARK mmio gfn %#llx\n", (unsigned long long)G0);
	close(fd);
	munmap(bar, BAR_PAGES * PAGE);
}

/*
 * Aliases: two fds on one domain (disjoint windows), each with a range over the same BAR frames.
 * Removing one (its permission reference) must leave the other's entries removable: without the
 * per-MFN count, Xen 4.17's remove would find the permission gone (EPERM) and UNMAP fail (EIO).
 * Also within one fd: two ranges (two mmaps) over the same frames.
 */
TEST(aliases_survive_each_other)
{
	uint32_t d = env_domid("XVGPU_XEN_PVH");
	void *bar_a = map_bar(), *bar_b = map_bar(), *bar_c = map_bar();
	int a = bind_xen(d, G0, WINDOW), b = bind_xen(d, G0 + WINDOW, WINDOW), ra, rb, rc;

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_NE(NULL, bar_a);
	ASSERT_NE(NULL, bar_b);
	ASSERT_NE(NULL, bar_c);
	EXPECT_EQ(-EBUSY, bind_xen(d, G0 + WINDOW / 2, WINDOW)) TH_LOG("overlapping window of the same domain");
	ra = reg(a, bar_a, BAR_PAGES * PAGE);
	rb = reg(b, bar_b, BAR_PAGES * PAGE);
	rc = reg(a, bar_c, BAR_PAGES * PAGE);
	ASSERT_LT(0, ra);
	ASSERT_LT(0, rb);
	ASSERT_LT(0, rc);
	EXPECT_EQ(BAR_PAGES, map(a, ra, G0, 0, BAR_PAGES));
	EXPECT_EQ(BAR_PAGES, map(b, rb, G0 + WINDOW, 0, BAR_PAGES));
	EXPECT_EQ(BAR_PAGES, map(a, rc, G0 + 64, 0, BAR_PAGES));
	EXPECT_EQ(0, unreg(a, ra)) TH_LOG("first alias removed");
	EXPECT_EQ(BAR_PAGES, unmap(b, G0 + WINDOW, WINDOW)) TH_LOG("second fd's alias still removable");
	EXPECT_EQ(BAR_PAGES, unmap(a, G0, WINDOW)) TH_LOG("same fd's alias still removable");
	close(a);
	EXPECT_EQ(BAR_PAGES, map(b, rb, G0 + WINDOW, 0, BAR_PAGES)) TH_LOG("other fd maps after the first closed");
	EXPECT_EQ(BAR_PAGES, unmap(b, G0 + WINDOW, WINDOW));
	close(b);
}

/* A destroyed domain: MAP and REGISTER refuse (ESTALE), UNMAP forgets without issuing anything. */
TEST(destroyed_domain_gets_nothing)
{
	uint32_t d = env_domid("XVGPU_XEN_VICTIM");
	void *bar = map_bar(), *bar2 = map_bar();
	int fd = bind_xen(d, G0, WINDOW), range;
	char cmd[64];

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, bar);
	ASSERT_NE(NULL, bar2);
	range = reg(fd, bar, BAR_PAGES * PAGE);
	ASSERT_LT(0, range);
	EXPECT_EQ(4, map(fd, range, G0, 0, 4));
	snprintf(cmd, sizeof(cmd), "xl destroy %u", d);
	ASSERT_EQ(0, system(cmd));
	EXPECT_EQ(-ESTALE, map(fd, range, G0 + 4, 4, 4)) TH_LOG("MAP after the domain was destroyed");
	EXPECT_EQ(-ESTALE, reg(fd, bar2, BAR_PAGES * PAGE)) TH_LOG("REGISTER after the domain was destroyed");
	EXPECT_EQ(4, unmap(fd, G0, WINDOW)) TH_LOG("the dead domain's entries are forgotten");
	EXPECT_EQ(0, unreg(fd, range));
	EXPECT_EQ(-ESRCH, bind_xen(d, G0, WINDOW)) TH_LOG("BIND to the destroyed domid");
	close(fd);
}

TEST(hostile_args)
{
	void *bar = map_bar();
	int fd = bind_xen(env_domid("XVGPU_XEN_PVH"), G0, WINDOW), range;

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, bar);
	EXPECT_EQ(-EINVAL, bind_xen(0, G0, WINDOW)) TH_LOG("dom0");
	EXPECT_EQ(-EINVAL, bind_xen(XVGPU_DOMID_FIRST_RESERVED, G0, WINDOW)) TH_LOG("DOMID_FIRST_RESERVED");
	range = reg(fd, bar, BAR_PAGES * PAGE);
	ASSERT_LT(0, range);
	EXPECT_EQ(-EINVAL, map(fd, range, G0 + WINDOW, 0, 1)) TH_LOG("GFN past the window");
	EXPECT_EQ(-EINVAL, map(fd, range, UINT64_MAX, 0, 2)) TH_LOG("wrapping GFN");
	EXPECT_EQ(-EINVAL, map(fd, range, G0, BAR_PAGES - 1, 2)) TH_LOG("past the range");
	EXPECT_EQ(-EINVAL, map(fd, range, G0, 0, 0)) TH_LOG("zero pages");
	EXPECT_EQ(-EINVAL, unmap(fd, UINT64_MAX - 1, 4)) TH_LOG("wrapping UNMAP");
	EXPECT_EQ(1, map(fd, range, G0, 0, 1));
	EXPECT_EQ(-EEXIST, map(fd, range, G0 + 1, 0, 1)) TH_LOG("one page at two GFNs");
	EXPECT_EQ(1, unmap(fd, G0, WINDOW));
	EXPECT_EQ(0, unreg(fd, range));
	close(fd);
}

TEST_HARNESS_MAIN
