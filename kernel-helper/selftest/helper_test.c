// SPDX-License-Identifier: GPL-2.0
/*
 * Selftest of the xvgpu kernel helper, in the style of the kernel's hmm-tests: real MMU notifiers,
 * anonymous, memfd and vgem memory, the soft p2m as the guest, and hostile arguments for every
 * ioctl. Run as root with the module loaded (allow_evict=1) and vgem loaded. KTAP output, one line
 * per case (harness.h).
 *
 * Cases that need a test-only module parameter (they are load-time only) reload the module with
 * it and restore the original parameters afterwards: the module file is $XVGPU_HELPER_KO, else
 * /modules/xvgpu_helper.ko (the VM tier's). Options besides the harness's: --expect-stale runs only
 * the fault-injection race (kept for the VM tier's init), --no-vgem leaves the vgem cases out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/xvgpu_helper.h"
#include "harness.h"

#define PAGE 4096UL
#define G0 0x100000ULL /* first GFN of the test BAR window (2 MiB aligned) */
#define WINDOW 8192
#define SYSPARAM "/sys/module/xvgpu_helper/parameters/"

/* DRM UAPI subset (vgem dumb buffers), from include/uapi/drm/drm.h and drm_mode.h. */
struct drm_mode_create_dumb { uint32_t height, width, bpp, flags, handle, pitch; uint64_t size; };
struct drm_mode_map_dumb { uint32_t handle, pad; uint64_t offset; };
#define DRM_IOCTL_MODE_CREATE_DUMB _IOWR('d', 0xB2, struct drm_mode_create_dumb)
#define DRM_IOCTL_MODE_MAP_DUMB _IOWR('d', 0xB3, struct drm_mode_map_dumb)

/* ---- helpers ------------------------------------------------------------------------------ */

static int bind_fd(int fd, uint32_t domid, uint64_t first_gfn, uint64_t pages)
{
	struct xvgpu_bind b = { .size = sizeof(b), .domid = domid, .first_gfn = first_gfn, .pages = pages,
				.backend = XVGPU_P2M_SOFT };

	return ioctl(fd, XVGPU_IOC_BIND, &b) ? -errno : 0;
}

static int open_bound(void)
{
	int fd = open(XVGPU_HELPER_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0 || bind_fd(fd, 1, G0, WINDOW))
		return -1;
	return fd;
}

static int reg(int fd, void *va, size_t len)
{
	struct xvgpu_register r = { .size = sizeof(r), .va = (uintptr_t)va, .length = len };

	return ioctl(fd, XVGPU_IOC_REGISTER, &r) ? -errno : (int)r.range_id;
}

static int map_ex(int fd, int range, uint64_t gfn, uint64_t page, uint32_t pages, uint32_t flags, struct xvgpu_map *io)
{
	struct xvgpu_map m = io ? *io : (struct xvgpu_map){ 0 };

	m.size = sizeof(m);
	m.range_id = range;
	m.gfn = gfn;
	m.page_in_range = page;
	m.pages = pages;
	m.flags = flags;
	if (ioctl(fd, XVGPU_IOC_MAP, &m))
		return -errno;
	if (io)
		*io = m;
	return 0;
}

static int map(int fd, int range, uint64_t gfn, uint64_t page, uint32_t pages)
{
	return map_ex(fd, range, gfn, page, pages, 0, NULL);
}

/* An emulated access of `size` bytes through MAP; returns 0 or -errno, the data in *v. */
static int map_access(int fd, int range, uint64_t gfn, uint64_t page, uint32_t pages, uint32_t flags,
		      uint64_t access_gfn, uint32_t offset, uint32_t size, uint64_t *v, struct xvgpu_map *out)
{
	struct xvgpu_map m = { .access_gfn = access_gfn, .access_offset = offset, .access_size = size, .data = *v };
	int ret = map_ex(fd, range, gfn, page, pages, flags | XVGPU_MAP_ACCESS, &m);

	*v = m.data;
	if (out)
		*out = m;
	return ret;
}

/* 8 bytes of guest memory: 0 done, 1 not mapped, 2 write to a read-only entry, or -errno. */
static int guest_rw(int fd, uint64_t gfn, unsigned int off, uint64_t *v, int write)
{
	struct xvgpu_guest_access a = { .size = sizeof(a), .len = 8, .gpa = gfn * PAGE + off, .buf = (uintptr_t)v,
					.write = write };

	if (ioctl(fd, XVGPU_IOC_GUEST_ACCESS, &a))
		return -errno;
	return (int)a.faulted;
}

static int unmap_gfns(int fd, uint64_t gfn, uint32_t pages, uint64_t *revoked)
{
	struct xvgpu_unmap u = { .size = sizeof(u), .gfn = gfn, .pages = pages };

	if (ioctl(fd, XVGPU_IOC_UNMAP, &u))
		return -errno;
	if (revoked)
		*revoked = u.revoked;
	return 0;
}

static int unregister(int fd, int range)
{
	struct xvgpu_unregister u = { .size = sizeof(u), .range_id = range };

	return ioctl(fd, XVGPU_IOC_UNREGISTER, &u) ? -errno : 0;
}

/* QUERY [gfn, gfn + pages): the number of runs (up to cap), or -errno. */
static int query(int fd, uint64_t gfn, uint64_t pages, struct xvgpu_run *runs, uint32_t cap)
{
	struct xvgpu_query q = { .size = sizeof(q), .count = cap, .gfn = gfn, .pages = pages, .runs = (uintptr_t)runs };

	return ioctl(fd, XVGPU_IOC_QUERY, &q) ? -errno : (int)q.count;
}

static int stats(int fd, struct xvgpu_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return ioctl(fd, XVGPU_IOC_STATS, st) ? -errno : 0;
}

static int next_event(int fd, struct xvgpu_event *ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return read(fd, ev, sizeof(*ev)) == sizeof(*ev) ? 0 : -1;
}

static void *anon_prot(size_t pages, int prot)
{
	void *p = mmap(NULL, pages * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void *anon(size_t pages)
{
	void *p = anon_prot(pages, PROT_READ | PROT_WRITE);

	if (p)
		memset(p, 0, pages * PAGE);
	return p;
}

static int vgem_buffer(int *dfd, size_t size, void **va)
{
	struct drm_mode_create_dumb c = { .height = size / PAGE, .width = 1024, .bpp = 32 };
	struct drm_mode_map_dumb m = { 0 };

	*dfd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	if (*dfd < 0 || ioctl(*dfd, DRM_IOCTL_MODE_CREATE_DUMB, &c))
		return -1;
	m.handle = c.handle;
	if (ioctl(*dfd, DRM_IOCTL_MODE_MAP_DUMB, &m))
		return -1;
	*va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *dfd, m.offset);
	return *va == MAP_FAILED ? -1 : 0;
}

/* A memfd of `pages` pages, each page's first word = its index + 1. */
static int memfd_pages(size_t pages)
{
	int fd = memfd_create("xvgpu-test", MFD_CLOEXEC);
	size_t i;

	if (fd < 0 || ftruncate(fd, pages * PAGE))
		return -1;
	for (i = 0; i < pages; i++) {
		uint64_t v = i + 1;

		if (pwrite(fd, &v, sizeof(v), i * PAGE) != sizeof(v))
			return -1;
	}
	return fd;
}

/* Whether the guest can reach gfn (read). */
static int guest_sees(int fd, uint64_t gfn)
{
	uint64_t v;

	return guest_rw(fd, gfn, 0, &v, 0) == 0;
}

/* Whether QUERY reports gfn as mapped. */
static int query_has(int fd, uint64_t gfn)
{
	struct xvgpu_run run;

	return query(fd, gfn, 1, &run, 1) == 1;
}

/* ---- module parameters (test-only ones are load-time only) -------------------------------- */

static const char *module_file(void)
{
	const char *p = getenv("XVGPU_HELPER_KO");

	return p ? p : "/modules/xvgpu_helper.ko";
}

static int reload_module(const char *params)
{
	int fd, ret;

	if (syscall(SYS_delete_module, "xvgpu_helper", O_NONBLOCK) && errno != ENOENT)
		return -errno;
	fd = open(module_file(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	return ret;
}

/* The load-time parameters to restore: allow_evict as it is now. */
static void current_params(char *buf, size_t len)
{
	char v = 'N';
	int fd = open(SYSPARAM "allow_evict", O_RDONLY);

	if (fd >= 0) {
		if (read(fd, &v, 1) != 1)
			v = 'N';
		close(fd);
	}
	snprintf(buf, len, "allow_evict=%d", v == 'Y');
}

/* A module reloaded with one test-only parameter for the case, then restored. */
#define INJECTED_FIXTURE(name, param)                                                          \
	FIXTURE(name) { char saved[64]; };                                                     \
	FIXTURE_SETUP(name)                                                                    \
	{                                                                                      \
		char p[128];                                                                   \
		current_params(self->saved, sizeof(self->saved));                              \
		snprintf(p, sizeof(p), "%s %s", self->saved, param);                           \
		ASSERT_EQ(0, reload_module(p)) TH_LOG("reload with %s from %s", p, module_file()); \
	}                                                                                      \
	FIXTURE_TEARDOWN(name)                                                                 \
	{                                                                                      \
		if (self->saved[0])                                                            \
			EXPECT_EQ(0, reload_module(self->saved)) TH_LOG("restore %s", self->saved); \
	}

INJECTED_FIXTURE(skip_revoke, "test_skip_revoke=1")
INJECTED_FIXTURE(fail_map, "test_fail_map_at=4")     /* window page 3: G0 + 3 */
INJECTED_FIXTURE(fail_unmap, "test_fail_unmap_at=3") /* window page 2: G0 + 2 */

/* ---- refusals and hostile arguments, ioctl by ioctl --------------------------------------- */

TEST(refusals)
{
	int fd = open(XVGPU_HELPER_DEVICE, O_RDWR);
	struct xvgpu_bind b = { .size = sizeof(b), .domid = 1, .first_gfn = G0, .pages = WINDOW, .backend = XVGPU_P2M_SOFT };
	struct xvgpu_register r = { .size = sizeof(r), .va = 0x10000, .length = PAGE };
	uint64_t *mem = anon(8), v = 0;
	int range;

	ASSERT_LE(0, fd);
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_REGISTER, &r));
	EXPECT_EQ(ENOTCONN, errno);
	EXPECT_EQ(-ENOTCONN, guest_rw(fd, G0, 0, &v, 0)) TH_LOG("GUEST_ACCESS before BIND");
	b.size = sizeof(b) - 4;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_BIND, &b));
	EXPECT_EQ(EINVAL, errno);
	b.size = sizeof(b);
	b.backend = 0;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_BIND, &b));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, bind_fd(fd, 1, G0, WINDOW));
	EXPECT_EQ(-EBUSY, bind_fd(fd, 1, G0, WINDOW));
	range = reg(fd, mem, 8 * PAGE);
	ASSERT_LT(0, range);
	EXPECT_EQ(-EEXIST, reg(fd, (char *)mem + PAGE, PAGE)) TH_LOG("overlapping range");
	EXPECT_EQ(-EINVAL, reg(fd, (char *)mem + 1, PAGE)) TH_LOG("unaligned range");
	EXPECT_EQ(-EINVAL, map(fd, range, G0 + WINDOW, 0, 1)) TH_LOG("GFN outside the window");
	EXPECT_EQ(-EINVAL, map(fd, range, G0 + WINDOW - 1, 0, 2)) TH_LOG("run crossing the window end");
	EXPECT_EQ(-EINVAL, map(fd, range, G0, 0, 0)) TH_LOG("zero pages");
	EXPECT_EQ(-EINVAL, map(fd, range, G0, 0, 513)) TH_LOG("more than 512 pages");
	EXPECT_EQ(-EINVAL, map(fd, range, G0, 7, 2)) TH_LOG("run beyond the range");
	EXPECT_EQ(-ENOENT, map(fd, 999, G0, 0, 1)) TH_LOG("unregistered range");
	EXPECT_NE(0, ioctl(fd, _IOWR('X', 4, char[24]), mem)) TH_LOG("unknown ioctl");
	EXPECT_EQ(ENOTTY, errno);
	close(fd);
	munmap(mem, 8 * PAGE);
}

/* BIND: domid 0, Xen's reserved ids and ids past 16 bits, windows past the limit or wrapping. */
TEST(bind_hostile)
{
	static const uint32_t bad_domids[] = { 0, XVGPU_DOMID_FIRST_RESERVED, 0x7FFF, 0xFFFF, 0x10000, 0xFFFFFFFF };
	struct xvgpu_bind b = { .size = sizeof(b), .domid = 1, .first_gfn = G0, .pages = WINDOW, .backend = XVGPU_P2M_SOFT };
	unsigned int i;
	int fd = open(XVGPU_HELPER_DEVICE, O_RDWR);

	ASSERT_LE(0, fd);
	for (i = 0; i < sizeof(bad_domids) / sizeof(bad_domids[0]); i++)
		EXPECT_EQ(-EINVAL, bind_fd(fd, bad_domids[i], G0, WINDOW)) TH_LOG("domid %#x", bad_domids[i]);
	EXPECT_EQ(-E2BIG, bind_fd(fd, 1, G0, XVGPU_MAX_WINDOW_PAGES + 1)) TH_LOG("window past the limit");
	EXPECT_EQ(-EINVAL, bind_fd(fd, 1, UINT64_MAX - 10, 100)) TH_LOG("window wraps");
	EXPECT_EQ(-EINVAL, bind_fd(fd, 1, G0, 0)) TH_LOG("empty window");
	b.flags = 1;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_BIND, &b));
	EXPECT_EQ(EINVAL, errno);
	b.flags = 0;
	b.backend = XVGPU_P2M_XEN_DMOP + 1; /* one past the last back-end */
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_BIND, &b));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, bind_fd(fd, XVGPU_DOMID_FIRST_RESERVED - 1, G0, XVGPU_MAX_WINDOW_PAGES)) TH_LOG("largest legal binding");
	close(fd);
}

/* REGISTER: lengths past the per-fd page limit, too many ranges, kernel addresses, wrap. */
TEST(register_limits)
{
	int fd = open_bound(), i, ret = 0;
	char *base = (char *)0x100000000000ULL; /* nothing needs to be mapped there to register */

	ASSERT_LE(0, fd);
	EXPECT_EQ(-E2BIG, reg(fd, base, (XVGPU_MAX_REGISTERED_PAGES + 1) * PAGE)) TH_LOG("one range past the limit");
	EXPECT_LT(0, reg(fd, base, XVGPU_MAX_REGISTERED_PAGES * PAGE)) TH_LOG("one range at the limit");
	EXPECT_EQ(-E2BIG, reg(fd, base - PAGE, PAGE)) TH_LOG("a page more than the limit in all");
	EXPECT_EQ(-EINVAL, reg(fd, (void *)0xffff800000000000ULL, PAGE)) TH_LOG("kernel address");
	EXPECT_EQ(-EINVAL, reg(fd, (void *)(UINT64_MAX & ~(PAGE - 1)), 2 * PAGE)) TH_LOG("wraps");
	EXPECT_EQ(-EINVAL, reg(fd, base, 0)) TH_LOG("empty");
	close(fd);
	fd = open_bound();
	ASSERT_LE(0, fd);
	for (i = 0; i < XVGPU_MAX_RANGES && ret >= 0; i++)
		ret = reg(fd, base + (uint64_t)i * PAGE, PAGE);
	EXPECT_LT(0, ret) TH_LOG("range %d: %d", i, ret);
	EXPECT_EQ(-E2BIG, reg(fd, base + XVGPU_MAX_RANGES * PAGE, PAGE)) TH_LOG("one range too many");
	close(fd);
}

/* MAP: the access fields (a wrapping offset + size above all), flags, counts, page numbers. */
TEST(map_hostile)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(4), v = 0;

	ASSERT_LE(0, fd);
	range = reg(fd, mem, 4 * PAGE);
	ASSERT_LT(0, range);
	mem[1] = 0x1122334455667788ULL;
	/* u32 offset + size = 4: wraps past a check that adds them. */
	EXPECT_EQ(-EINVAL, map_access(fd, range, G0, 0, 1, 0, G0, 0xFFFFFFFCu, 8, &v, NULL));
	EXPECT_EQ(-EINVAL, map_access(fd, range, G0, 0, 1, XVGPU_MAP_WRITE, G0, 0xFFFFFFF8u, 8, &v, NULL));
	EXPECT_EQ(-EINVAL, map_access(fd, range, G0, 0, 1, 0, G0, PAGE - 4, 8, &v, NULL)) TH_LOG("crosses the page");
	EXPECT_EQ(-EINVAL, map_access(fd, range, G0, 0, 1, 0, G0, 0, 3, &v, NULL)) TH_LOG("size 3");
	EXPECT_EQ(-EINVAL, map_access(fd, range, G0, 0, 1, 0, G0, 0, 0, &v, NULL)) TH_LOG("size 0");
	EXPECT_EQ(-EINVAL, map_access(fd, range, G0, 0, 1, 0, G0 + 1, 0, 8, &v, NULL)) TH_LOG("access after the run");
	EXPECT_EQ(-EINVAL, map_access(fd, range, G0 + 1, 1, 1, 0, G0, 0, 8, &v, NULL)) TH_LOG("access before the run");
	EXPECT_EQ(-EINVAL, map_ex(fd, range, G0, 0, 1, XVGPU_MAP_NO_INSTALL, NULL)) TH_LOG("NO_INSTALL alone");
	EXPECT_EQ(-EINVAL, map_ex(fd, range, G0, 0, 1, 1u << 4, NULL)) TH_LOG("unknown flag");
	EXPECT_EQ(-EINVAL, map(fd, range, G0, UINT64_MAX, 1)) TH_LOG("page number wraps");
	EXPECT_EQ(-EINVAL, map(fd, range, UINT64_MAX, 0, 2)) TH_LOG("GFN wraps");
	EXPECT_EQ(0, map_access(fd, range, G0, 0, 1, 0, G0, 8, 8, &v, NULL));
	EXPECT_EQ(0x1122334455667788ULL, v);
	EXPECT_EQ(0, map_access(fd, range, G0, 0, 1, 0, G0, PAGE - 8, 8, &v, NULL)) TH_LOG("last 8 bytes");
	close(fd);
	munmap(mem, 4 * PAGE);
}

/* Aliasing: one page at two GFNs, two pages at one GFN, a run over another range's GFNs. */
TEST(map_aliasing)
{
	int fd = open_bound(), r1, r2;
	uint64_t *a = anon(4), *b = anon(4);
	struct xvgpu_map m = { 0 };

	ASSERT_LE(0, fd);
	r1 = reg(fd, a, 4 * PAGE);
	r2 = reg(fd, b, 4 * PAGE);
	ASSERT_LT(0, r2);
	ASSERT_EQ(0, map(fd, r1, G0, 0, 2));
	EXPECT_EQ(-EEXIST, map(fd, r1, G0 + 10, 0, 1)) TH_LOG("the same page at a second GFN");
	EXPECT_EQ(-EEXIST, map(fd, r1, G0, 2, 1)) TH_LOG("a second page at a taken GFN");
	EXPECT_EQ(-EEXIST, map(fd, r2, G0 + 1, 0, 2)) TH_LOG("another range over a taken GFN");
	EXPECT_FALSE(guest_sees(fd, G0 + 2)) TH_LOG("a refused run installs nothing");
	EXPECT_EQ(0, map_ex(fd, r1, G0, 0, 2, 0, &m));
	EXPECT_EQ(0u, m.installed) TH_LOG("mapping the same run again installs nothing");
	close(fd);
	munmap(a, 4 * PAGE);
	munmap(b, 4 * PAGE);
}

/* UNMAP, QUERY, GUEST_ACCESS, UNREGISTER, EVICT with hostile arguments. */
TEST(other_ioctls_hostile)
{
	int fd = open_bound(), range, status;
	uint64_t *mem = anon(4), v = 0, revoked = 0;
	struct xvgpu_run runs[2];
	struct xvgpu_guest_access a = { .size = sizeof(a), .len = 8, .gpa = G0 * PAGE, .buf = (uintptr_t)&v };
	struct xvgpu_evict e = { .size = sizeof(e), .first_page = 0, .pages = 1 };
	pid_t pid;

	ASSERT_LE(0, fd);
	range = reg(fd, mem, 4 * PAGE);
	/* A range registered by another process: EVICT would zap that process's mapping. (Before
	 * MAP: fork write-protects our pages, which revokes their entries.) */
	pid = fork();
	if (pid == 0) {
		uint64_t *m2 = anon(1);

		_exit(reg(fd, m2, PAGE) > 0 ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	e.range_id = range + 1;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_EVICT, &e)) TH_LOG("EVICT of another process's range");
	EXPECT_EQ(EPERM, errno);
	ASSERT_EQ(0, map(fd, range, G0, 0, 4));
	EXPECT_EQ(-EINVAL, unmap_gfns(fd, UINT64_MAX, 2, NULL)) TH_LOG("UNMAP wraps");
	EXPECT_EQ(-EINVAL, unmap_gfns(fd, G0 + WINDOW - 1, 2, NULL)) TH_LOG("UNMAP past the window");
	EXPECT_EQ(-EINVAL, unmap_gfns(fd, G0, 0, NULL)) TH_LOG("UNMAP of nothing");
	EXPECT_EQ(-EINVAL, query(fd, G0 - 1, 2, runs, 2)) TH_LOG("QUERY before the window");
	EXPECT_EQ(1, query(fd, G0, UINT64_MAX, runs, 2)) TH_LOG("QUERY with gfn + pages wrapping");
	EXPECT_EQ(0, query(fd, UINT64_MAX, UINT64_MAX, runs, 2)) TH_LOG("QUERY far past the window");
	EXPECT_EQ(0, query(fd, G0, 4, runs, 0)) TH_LOG("QUERY with no room");
	EXPECT_EQ(-EFAULT, query(fd, G0, 4, (struct xvgpu_run *)8, 2)) TH_LOG("QUERY to a bad pointer");
	a.len = 0;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_GUEST_ACCESS, &a));
	a.len = 16;
	a.gpa = G0 * PAGE + PAGE - 8;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_GUEST_ACCESS, &a)) TH_LOG("GUEST_ACCESS across a page");
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-EINVAL, guest_rw(fd, G0 + WINDOW, 0, &v, 0)) TH_LOG("GUEST_ACCESS past the window");
	EXPECT_EQ(-EINVAL, guest_rw(fd, G0, 0, &v, 2)) TH_LOG("GUEST_ACCESS write = 2");
	a.len = 8;
	a.gpa = G0 * PAGE;
	a.buf = 8;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_GUEST_ACCESS, &a)) TH_LOG("GUEST_ACCESS to a bad pointer");
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-ENOENT, unregister(fd, 0));
	EXPECT_EQ(-ENOENT, unregister(fd, -1));
	e.range_id = range;
	e.first_page = 3;
	e.pages = 2;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_EVICT, &e)) TH_LOG("EVICT past the range");
	EXPECT_EQ(EINVAL, errno);
	e.first_page = UINT64_MAX;
	e.pages = 2;
	EXPECT_NE(0, ioctl(fd, XVGPU_IOC_EVICT, &e)) TH_LOG("EVICT wraps");
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, unmap_gfns(fd, G0, 4, &revoked));
	EXPECT_EQ(4u, revoked);
	close(fd);
	munmap(mem, 4 * PAGE);
}

/* ---- the protocol ---------------------------------------------------------------------------- */

TEST(map_access_unmap)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(16), v = 0, revoked = 0;
	struct xvgpu_run runs[4];

	ASSERT_LE(0, fd);
	range = reg(fd, mem, 16 * PAGE);
	mem[3 * PAGE / 8] = 0x1234;
	EXPECT_EQ(1, guest_rw(fd, G0 + 3, 0, &v, 0)) TH_LOG("an unmapped page faults");
	ASSERT_EQ(0, map(fd, range, G0, 0, 4));
	EXPECT_EQ(0, guest_rw(fd, G0 + 3, 0, &v, 0));
	EXPECT_EQ(0x1234u, v);
	v = 0xfeed;
	EXPECT_EQ(0, guest_rw(fd, G0 + 1, 8, &v, 1));
	EXPECT_EQ(0xfeedu, mem[PAGE / 8 + 1]) TH_LOG("the guest's write reaches the process's page");
	EXPECT_EQ(1, query(fd, G0, 64, runs, 4));
	EXPECT_EQ(G0, runs[0].gfn);
	EXPECT_EQ(4u, runs[0].pages);
	EXPECT_EQ(0, unmap_gfns(fd, G0 + 2, 1, &revoked));
	EXPECT_EQ(1u, revoked);
	EXPECT_EQ(1, guest_rw(fd, G0 + 2, 0, &v, 0)) TH_LOG("an unmapped page faults again");
	EXPECT_EQ(0, guest_rw(fd, G0 + 1, 0, &v, 0)) TH_LOG("its neighbour stays");
	close(fd);
	munmap(mem, 16 * PAGE);
}

static void expect_event(struct __test_metadata *_metadata, int fd, uint32_t range, uint32_t type, uint64_t revoked_min)
{
	struct xvgpu_event ev;

	ASSERT_EQ(0, next_event(fd, &ev, 1000)) TH_LOG("no event");
	EXPECT_EQ(range, ev.range_id);
	EXPECT_EQ(type, ev.event);
	EXPECT_LE(revoked_min, ev.revoked);
	EXPECT_TRUE(ev.seq & 1) TH_LOG("cur_seq must be odd");
	EXPECT_LE(ev.start_ns, ev.done_ns);
}

TEST(events_anon)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(16), v;

	ASSERT_LE(0, fd);
	range = reg(fd, mem, 16 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 16));
	ASSERT_EQ(0, madvise(mem, 2 * PAGE, MADV_DONTNEED));
	expect_event(_metadata, fd, range, 1 /* CLEAR */, 2);
	EXPECT_EQ(1, guest_rw(fd, G0, 0, &v, 0)) TH_LOG("exactly the invalidated pages fault");
	EXPECT_EQ(0, guest_rw(fd, G0 + 2, 0, &v, 0));
	ASSERT_EQ(0, mprotect(mem + 4 * PAGE / 8, PAGE, PROT_READ));
	expect_event(_metadata, fd, range, 2 /* PROTECTION_VMA */, 1);
	ASSERT_EQ(0, munmap(mem, 16 * PAGE));
	expect_event(_metadata, fd, range, 0 /* UNMAP */, 1);
	EXPECT_EQ(-EFAULT, map(fd, range, G0, 0, 1)) TH_LOG("MAP of an unmapped range");
	close(fd);
}

/* An invalidation that revoked nothing queues nothing. */
TEST(no_event_without_revocation)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(8);
	struct xvgpu_event ev;

	ASSERT_LE(0, fd);
	range = reg(fd, mem, 8 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 1));
	ASSERT_EQ(0, madvise(mem + 5 * PAGE / 8, PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, madvise(mem, PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, next_event(fd, &ev, 1000));
	EXPECT_EQ(0u, ev.first_page) TH_LOG("the first event is for page %llu, revoked %llu",
					    (unsigned long long)ev.first_page, (unsigned long long)ev.revoked);
	EXPECT_EQ(1u, ev.revoked);
	EXPECT_NE(0, next_event(fd, &ev, 100)) TH_LOG("one event only");
	close(fd);
	munmap(mem, 8 * PAGE);
}

/* A read() whose buffer faults loses nothing: the event leaves the ring only once it was copied. */
TEST(event_survives_a_faulting_read)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(2);
	void *noaccess = anon_prot(1, PROT_NONE); /* copy_to_user into it faults */
	struct xvgpu_event ev;
	struct pollfd p;

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, noaccess);
	range = reg(fd, mem, 2 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 1));
	ASSERT_EQ(0, madvise(mem, PAGE, MADV_DONTNEED));
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	ASSERT_EQ(1, poll(&p, 1, 1000));
	EXPECT_EQ(-1, read(fd, noaccess, sizeof(ev)));
	EXPECT_EQ(EFAULT, errno);
	ASSERT_EQ(0, next_event(fd, &ev, 100)) TH_LOG("the event was lost to the faulting read");
	EXPECT_EQ(1u, ev.revoked);
	close(fd);
	munmap(mem, 2 * PAGE);
	munmap(noaccess, PAGE);
}

/* A full ring ends in one OVERFLOW event that counts what was lost; nothing else is dropped. */
TEST(event_overflow_in_band)
{
	int fd = open_bound(), range, i, n = 0, overflow = 0, overflow_at = -1;
	uint64_t *mem = anon(1), lost = 0;
	struct xvgpu_event evs[64];
	struct pollfd p = { .events = POLLIN };
	struct xvgpu_stats st;
	ssize_t got;
	const int events = 4100;

	ASSERT_LE(0, fd);
	p.fd = fd;
	range = reg(fd, mem, PAGE);
	for (i = 0; i < events; i++) {
		ASSERT_EQ(0, map(fd, range, G0, 0, 1));
		ASSERT_EQ(0, madvise(mem, PAGE, MADV_DONTNEED));
	}
	while (poll(&p, 1, 0) == 1 && (got = read(fd, evs, sizeof(evs))) > 0) {
		for (i = 0; i < got / (ssize_t)sizeof(evs[0]); i++, n++) {
			if (evs[i].event != XVGPU_EVENT_OVERFLOW)
				continue;
			overflow++;
			overflow_at = n;
			lost = evs[i].count;
		}
	}
	EXPECT_EQ(1, overflow) TH_LOG("%d events read", n);
	EXPECT_EQ(n - 1, overflow_at) TH_LOG("OVERFLOW is not the last event");
	EXPECT_EQ(events, n - overflow + (int)lost) TH_LOG("%d read + %llu lost", n - overflow, (unsigned long long)lost);
	ASSERT_EQ(0, stats(fd, &st));
	EXPECT_EQ(lost, st.events_dropped);
	close(fd);
	munmap(mem, PAGE);
}

TEST(release_on_exit)
{
	int fd = open_bound(), status;
	struct xvgpu_event ev;
	pid_t pid;

	ASSERT_LE(0, fd);
	pid = fork();
	if (pid == 0) {
		uint64_t *mem = anon(4);
		int range = reg(fd, mem, 4 * PAGE);

		_exit(range > 0 && map(fd, range, G0, 0, 4) == 0 ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_EQ(0, next_event(fd, &ev, 1000));
	EXPECT_EQ(5u /* RELEASE */, ev.event);
	EXPECT_EQ(4u, ev.revoked);
	close(fd);
}

TEST(stats_and_unregister)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(8);
	struct xvgpu_stats st;

	ASSERT_LE(0, fd);
	range = reg(fd, mem, 8 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 8));
	ASSERT_EQ(0, stats(fd, &st));
	EXPECT_EQ(8u, st.resident_pages);
	EXPECT_EQ(1u, st.maps);
	EXPECT_EQ(0, unregister(fd, range));
	ASSERT_EQ(0, stats(fd, &st));
	EXPECT_EQ(0u, st.resident_pages);
	EXPECT_EQ(0u, st.ranges);
	EXPECT_EQ(-ENOENT, unregister(fd, range));
	close(fd);
	munmap(mem, 8 * PAGE);
}

/* ---- huge: the 2 MiB window only when the request lies inside it --------------------------- */

/* 1024 pages of anonymous memory, 2 MiB aligned, backed by transparent huge pages if possible. */
static uint64_t *thp_area(void)
{
	size_t len = 1024 * PAGE, i;
	char *raw = mmap(NULL, len + 512 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *mem;

	if (raw == MAP_FAILED)
		return NULL;
	mem = (uint64_t *)(((uintptr_t)raw + 512 * PAGE - 1) & ~(512 * PAGE - 1));
	madvise(mem, len, MADV_HUGEPAGE);
	for (i = 0; i < 1024; i++)
		mem[i * PAGE / 8] = 0xC0DE0000ULL + i;
	return mem;
}

TEST(huge_only_when_the_run_fits)
{
	int fd = open_bound(), range;
	uint64_t *mem = thp_area(), v = 0;
	struct xvgpu_map m;

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, mem);
	range = reg(fd, mem, 1024 * PAGE);
	ASSERT_LT(0, range);
	/* Precondition: the window is one aligned block, so TRY_HUGE does go huge inside it. */
	ASSERT_EQ(0, map_ex(fd, range, G0 + 100, 100, 1, XVGPU_MAP_TRY_HUGE, &m));
	ASSERT_EQ(1u, m.huge) TH_LOG("no transparent huge page: the case cannot exercise the superpage path");
	ASSERT_EQ(0, unmap_gfns(fd, G0, 512, NULL));
	/* A run from page 510 to 513 straddles the window's end; the access is on page 512. */
	ASSERT_EQ(0, map_access(fd, range, G0 + 510, 510, 4, XVGPU_MAP_TRY_HUGE, G0 + 512, 0, 8, &v, &m));
	EXPECT_EQ(0xC0DE0000ULL + 512, v) TH_LOG("the access read %#llx", (unsigned long long)v);
	EXPECT_LE(m.out_gfn, G0 + 510) TH_LOG("out %#llx+%u does not cover the run", (unsigned long long)m.out_gfn, m.out_pages);
	EXPECT_LE(G0 + 514, m.out_gfn + m.out_pages);
	EXPECT_EQ(0u, m.huge);
	EXPECT_TRUE(query_has(fd, G0 + 513)) TH_LOG("every requested page is mapped");
	EXPECT_EQ(0, guest_rw(fd, G0 + 513, 0, &v, 0));
	EXPECT_EQ(0xC0DE0000ULL + 513, v);
	close(fd);
}

/*
 * Anonymous memory backed by a transparent huge page maps page by page (no TRY_HUGE): GUP handles
 * a huge PMD, the PTE walk meant for VM_PFNMAP (follow_pte) refuses it.
 */
TEST(thp_backed_anon_maps)
{
	int fd = open_bound(), range;
	uint64_t *mem = thp_area(), v = 0;

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, mem);
	range = reg(fd, mem, 1024 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0 + 7, 7, 4));
	EXPECT_EQ(0, guest_rw(fd, G0 + 9, 0, &v, 0));
	EXPECT_EQ(0xC0DE0000ULL + 9, v);
	close(fd);
}

/* ---- permissions: never a writable entry the process could not write itself --------------- */

/* A page COW-shared with a child: the guest's write must not reach the child's copy. */
TEST(cow_shared_page_not_written)
{
	int fd = open_bound(), range, pipefd[2], status;
	uint64_t *mem = anon(1), v = 0xbad;
	char c;
	pid_t pid;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pipe(pipefd));
	mem[0] = 0x600d;
	pid = fork();
	if (pid == 0) {
		if (read(pipefd[0], &c, 1) != 1)
			_exit(2);
		_exit(mem[0] == 0x600d ? 0 : 1);
	}
	range = reg(fd, mem, PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 1));
	ASSERT_EQ(0, guest_rw(fd, G0, 0, &v, 1));
	EXPECT_EQ(0xbadu, mem[0]) TH_LOG("the guest's write reaches the process's own copy");
	ASSERT_EQ(1, write(pipefd[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, status) TH_LOG("the child's copy of the page was written by the guest");
	close(fd);
}

/* A read-only file mapping: the page cache page is entered read-only; guest writes fault. */
TEST(read_only_page_cache)
{
	int fd = open_bound(), mfd = memfd_pages(2), range;
	uint64_t *ro, v = 0xbad, word = 0;
	struct xvgpu_map m;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, mfd);
	ro = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_EQ(1u, ro[0]); /* the PTE is there, read-only */
	range = reg(fd, ro, 2 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 2)) TH_LOG("a read-only mapping maps read-only");
	EXPECT_EQ(0, guest_rw(fd, G0, 0, &v, 0));
	EXPECT_EQ(1u, v);
	v = 0xbad;
	EXPECT_EQ(2, guest_rw(fd, G0, 0, &v, 1)) TH_LOG("a guest write to a read-only entry faults");
	EXPECT_EQ(-EFAULT, map_access(fd, range, G0, 0, 1, XVGPU_MAP_WRITE, G0, 0, 8, &v, &m)) TH_LOG("emulated write");
	EXPECT_EQ(-EFAULT, map_ex(fd, range, G0 + 1, 1, 1, XVGPU_MAP_WRITE, NULL)) TH_LOG("write intent");
	ASSERT_EQ(8, pread(mfd, &word, 8, 0));
	EXPECT_EQ(1u, word) TH_LOG("the file's page was written: %#llx", (unsigned long long)word);
	close(fd);
	munmap(ro, 2 * PAGE);
	close(mfd);
}

/* The zero page behind a page only read so far: never entered writable. */
TEST(zero_page_not_written)
{
	int fd = open_bound(), range;
	volatile uint64_t *mem = anon_prot(2, PROT_READ | PROT_WRITE), *fresh = anon_prot(1, PROT_READ | PROT_WRITE);
	uint64_t v = 0x2e20, seen;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0u, mem[0]); /* maps the zero page */
	range = reg(fd, (void *)mem, 2 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 1));
	ASSERT_EQ(0, guest_rw(fd, G0, 0, &v, 1));
	seen = fresh[0];
	EXPECT_EQ(0u, seen) TH_LOG("the guest wrote into the zero page");
	EXPECT_EQ(0x2e20u, mem[0]) TH_LOG("the guest's write does not reach the process");
	if (seen) { /* undo it, for the cases after this one */
		v = 0;
		guest_rw(fd, G0, 0, &v, 1);
	}
	close(fd);
}

/*
 * A read (emulated) of a page whose PTE is read-only enters it read-only; the write MAP makes the
 * PTE writable in place (the page is ours alone again once the child is gone: no copy, no
 * invalidation) and must upgrade the entry.
 */
TEST(read_only_entry_upgraded_on_write)
{
	int fd = open_bound(), range, status;
	uint64_t *mem = anon(1), v = 0;
	struct xvgpu_map m;
	pid_t pid;

	ASSERT_LE(0, fd);
	mem[0] = 0x11;
	pid = fork(); /* write-protects the page */
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	range = reg(fd, mem, PAGE);
	ASSERT_EQ(0, map_access(fd, range, G0, 0, 1, 0, G0, 0, 8, &v, &m));
	EXPECT_EQ(0x11u, v);
	v = 0x77;
	EXPECT_EQ(2, guest_rw(fd, G0, 0, &v, 1)) TH_LOG("read-only entry: the write faults");
	ASSERT_EQ(0, map_ex(fd, range, G0, 0, 1, XVGPU_MAP_WRITE, NULL));
	EXPECT_EQ(0, guest_rw(fd, G0, 0, &v, 1)) TH_LOG("the entry was not upgraded");
	EXPECT_EQ(0x77u, mem[0]) TH_LOG("the upgraded entry is the process's page");
	close(fd);
}

/* ---- partial failure: install and removal ------------------------------------------------ */

/* A MAP whose second run the p2m refuses: what was entered is recorded, and so revocable. */
TEST_F(fail_map, failed_install_is_recorded)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(8), g;

	ASSERT_LE(0, fd);
	range = reg(fd, mem, 8 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0 + 1, 1, 1));
	/* Runs [G0], [G0+2, G0+3]: the soft p2m refuses G0+3 after entering G0 and G0+2. */
	EXPECT_EQ(-EIO, map(fd, range, G0, 0, 4));
	for (g = G0; g < G0 + 4; g++)
		EXPECT_EQ(guest_sees(fd, g), query_has(fd, g)) TH_LOG("gfn +%llu: guest and record disagree",
								     (unsigned long long)(g - G0));
	ASSERT_EQ(0, madvise(mem, 4 * PAGE, MADV_DONTNEED));
	for (g = G0; g < G0 + 4; g++)
		EXPECT_FALSE(guest_sees(fd, g)) TH_LOG("gfn +%llu still reachable after its frame was freed",
						       (unsigned long long)(g - G0));
	close(fd);
	munmap(mem, 8 * PAGE);
}

static int read_two_events(int fd, struct xvgpu_event *fatal, struct xvgpu_event *other)
{
	struct xvgpu_event ev;
	int i, got = 0;

	for (i = 0; i < 2; i++) {
		if (next_event(fd, &ev, 1000))
			return got;
		*(ev.event == XVGPU_EVENT_FATAL ? fatal : other) = ev;
		got++;
	}
	return got;
}

/*
 * A removal the p2m refuses (G0+2) fails closed: the rest of the batch is still removed page by
 * page, the refused entry stays recorded, FATAL is reported, guest accesses and MAP fail, and
 * UNREGISTER keeps the range rather than forget the entry.
 */
TEST_F(fail_unmap, failed_removal_fails_closed)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(8), v;
	struct xvgpu_event fatal = { 0 }, clear = { 0 };
	struct xvgpu_run runs[4];

	ASSERT_LE(0, fd);
	range = reg(fd, mem, 8 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 4));
	ASSERT_EQ(0, madvise(mem, 4 * PAGE, MADV_DONTNEED));
	EXPECT_EQ(2, read_two_events(fd, &fatal, &clear));
	EXPECT_EQ((uint32_t)XVGPU_EVENT_FATAL, fatal.event) TH_LOG("no FATAL event");
	EXPECT_EQ(1u, fatal.count);
	EXPECT_EQ((uint32_t)range, fatal.range_id);
	EXPECT_EQ(3u, clear.revoked) TH_LOG("the batch did not go on page by page after the failure");
	EXPECT_EQ(1, query(fd, G0, 8, runs, 4)) TH_LOG("the entry whose removal failed was forgotten");
	EXPECT_EQ(G0 + 2, runs[0].gfn);
	EXPECT_EQ(1u, runs[0].pages);
	EXPECT_EQ(-EIO, guest_rw(fd, G0 + 2, 0, &v, 0)) TH_LOG("the guest still runs on a freed frame");
	EXPECT_EQ(-EIO, guest_rw(fd, G0 + 5, 0, &v, 0));
	EXPECT_EQ(-EIO, map(fd, range, G0 + 4, 4, 1)) TH_LOG("MAP after a fatal failure");
	EXPECT_EQ(-EIO, unmap_gfns(fd, G0, 4, NULL));
	EXPECT_EQ(-EIO, unregister(fd, range));
	EXPECT_TRUE(query_has(fd, G0 + 2)) TH_LOG("UNREGISTER forgot the entry");
	close(fd);
	munmap(mem, 8 * PAGE);
}

/*
 * A full ring, then FATAL, then more invalidations: the ring never holds more than it has slots,
 * FATAL is there, and every lost event is counted by the one OVERFLOW event.
 */
TEST_F(fail_unmap, overflow_and_fatal_share_the_ring)
{
	int fd = open_bound(), range, i, n = 0, normal = 0, overflow = 0, fatal = 0;
	uint64_t *mem = anon(8), lost = 0;
	struct xvgpu_event evs[64];
	struct pollfd p = { .events = POLLIN };
	ssize_t got;
	const int events = 4100;

	ASSERT_LE(0, fd);
	p.fd = fd;
	range = reg(fd, mem, 8 * PAGE);
	for (i = 0; i < events; i++) {
		ASSERT_EQ(0, map(fd, range, G0, 0, 1));
		ASSERT_EQ(0, madvise(mem, PAGE, MADV_DONTNEED));
	}
	ASSERT_EQ(0, map(fd, range, G0 + 2, 2, 4));
	ASSERT_EQ(0, madvise(mem + 2 * PAGE / 8, PAGE, MADV_DONTNEED)); /* G0 + 2: refused, FATAL */
	for (i = 3; i < 6; i++) /* three more events after FATAL: lost, and counted */
		ASSERT_EQ(0, madvise(mem + i * PAGE / 8, PAGE, MADV_DONTNEED));
	while (poll(&p, 1, 0) == 1 && (got = read(fd, evs, sizeof(evs))) > 0) {
		for (i = 0; i < got / (ssize_t)sizeof(evs[0]); i++, n++) {
			if (evs[i].event == XVGPU_EVENT_OVERFLOW) {
				overflow++;
				lost += evs[i].count;
			} else if (evs[i].event == XVGPU_EVENT_FATAL) {
				fatal++;
			} else {
				normal++;
			}
		}
	}
	EXPECT_GE(4096, n) TH_LOG("read %d events from a 4096-slot ring", n);
	EXPECT_EQ(1, fatal);
	EXPECT_EQ(1, overflow);
	EXPECT_EQ(events + 3, normal + (int)lost) TH_LOG("%d read + %llu lost", normal, (unsigned long long)lost);
	close(fd);
	munmap(mem, 8 * PAGE);
}

/* ---- test-only surfaces --------------------------------------------------------------------- */

TEST(test_parameters_are_load_time_only)
{
	static const char *const params[] = { "allow_evict", "test_skip_revoke", "test_fail_map_at", "test_fail_unmap_at" };
	unsigned int i;
	struct stat st;

	for (i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		char path[128];
		int fd;

		snprintf(path, sizeof(path), SYSPARAM "%s", params[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s", path);
		EXPECT_EQ(0444u, st.st_mode & 0777) TH_LOG("%s is mode %o", params[i], st.st_mode & 0777);
		fd = open(path, O_WRONLY);
		EXPECT_GT(0, fd) TH_LOG("%s can be opened for writing", params[i]);
		if (fd >= 0)
			close(fd);
	}
}

/* EVICT zaps the caller's own PTEs only: a child's mapping of the same memfd stays. */
TEST(evict_zaps_only_the_callers_mapping)
{
	int fd = open_bound(), mfd = memfd_pages(4), range, to_child[2], to_parent[2], status;
	struct xvgpu_evict e = { .size = sizeof(e), .first_page = 0, .pages = 2 };
	uint64_t *shared;
	char c;
	pid_t pid;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, mfd);
	shared = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, shared);
	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));
	pid = fork();
	if (pid == 0) {
		int cfd = open_bound(), cr = reg(cfd, shared, 4 * PAGE);
		struct xvgpu_event ev;
		int ok = cr > 0 && map(cfd, cr, G0, 0, 4) == 0;

		if (write(to_parent[1], ok ? "y" : "n", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(3);
		if (next_event(cfd, &ev, 300) == 0)
			_exit(1); /* the child's mapping was zapped too */
		_exit(guest_sees(cfd, G0) && guest_sees(cfd, G0 + 1) ? 0 : 2);
	}
	ASSERT_EQ(1, read(to_parent[0], &c, 1));
	ASSERT_EQ('y', c);
	range = reg(fd, shared, 4 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 4));
	e.range_id = range;
	ASSERT_EQ(0, ioctl(fd, XVGPU_IOC_EVICT, &e)) TH_LOG("EVICT: %s", strerror(errno));
	expect_event(_metadata, fd, range, 1 /* CLEAR */, 2);
	EXPECT_FALSE(guest_sees(fd, G0));
	EXPECT_TRUE(guest_sees(fd, G0 + 2));
	ASSERT_EQ(1, write(to_child[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("child: 1 = its mapping was zapped, 2 = its entries are gone");
	close(fd);
	munmap(shared, 4 * PAGE);
	close(mfd);
}

/* ---- vgem (VM_PFNMAP) -------------------------------------------------------------------- */

FIXTURE(vgem) { int dfd; uint64_t *bo; };
FIXTURE_SETUP(vgem)
{
	self->dfd = -1;
	ASSERT_EQ(0, vgem_buffer(&self->dfd, 16 * PAGE, (void **)&self->bo)) TH_LOG("vgem: %s", strerror(errno));
}
FIXTURE_TEARDOWN(vgem)
{
	if (self->dfd >= 0)
		close(self->dfd);
}

TEST_F(vgem, map_evict_remap)
{
	int fd = open_bound(), range;
	uint64_t v = 0xabcdef;
	struct xvgpu_evict e = { .size = sizeof(e), .first_page = 2, .pages = 2 };
	struct xvgpu_map m;

	ASSERT_LE(0, fd);
	self->bo[0] = 1;
	range = reg(fd, self->bo, 16 * PAGE);
	ASSERT_LT(0, range);
	ASSERT_EQ(0, map_ex(fd, range, G0, 0, 16, 0, &m)) TH_LOG("MAP vgem (VM_PFNMAP): %s", strerror(errno));
	EXPECT_EQ(16u, m.installed);
	EXPECT_EQ(0, guest_rw(fd, G0 + 3, 16, &v, 1));
	EXPECT_EQ(0xabcdefu, self->bo[3 * PAGE / 8 + 2]) TH_LOG("the guest's write lands in the BO");
	e.range_id = range;
	ASSERT_EQ(0, ioctl(fd, XVGPU_IOC_EVICT, &e)) TH_LOG("EVICT: %s", strerror(errno));
	expect_event(_metadata, fd, range, 1 /* CLEAR */, 2);
	EXPECT_EQ(1, guest_rw(fd, G0 + 3, 16, &v, 0)) TH_LOG("evicted pages fault");
	EXPECT_EQ(0, guest_rw(fd, G0 + 4, 16, &v, 0)) TH_LOG("the others stay");
	ASSERT_EQ(0, map_ex(fd, range, G0 + 2, 2, 2, 0, &m));
	EXPECT_EQ(2u, m.installed);
	EXPECT_EQ(0, guest_rw(fd, G0 + 3, 16, &v, 0));
	EXPECT_EQ(0xabcdefu, v) TH_LOG("content after eviction and re-map");
	munmap(self->bo, 16 * PAGE);
	expect_event(_metadata, fd, range, 0 /* UNMAP */, 16);
	close(fd);
}

/* A read-only mapping of a BO: read-only entries, emulated writes refused. */
TEST_F(vgem, read_only_bo_mapping)
{
	int fd = open_bound(), range;
	uint64_t v = 0x5a5a;
	uint64_t *ro;

	ASSERT_LE(0, fd);
	self->bo[0] = 42;
	ro = self->bo;
	ASSERT_EQ(0, mprotect(ro, 16 * PAGE, PROT_READ));
	range = reg(fd, ro, 16 * PAGE);
	ASSERT_EQ(0, map(fd, range, G0, 0, 1));
	EXPECT_EQ(2, guest_rw(fd, G0, 0, &v, 1)) TH_LOG("a write through a read-only BO mapping");
	EXPECT_EQ(-EFAULT, map_access(fd, range, G0, 0, 1, XVGPU_MAP_WRITE, G0, 0, 8, &v, NULL));
	EXPECT_EQ(42u, ro[0]);
	close(fd);
}

/* ---- the race: guest accesses against invalidation, zero stale reads ------------------------ */

#define RACE_PAGES 8
#define SCRATCH_PAGES 64
#define SCRATCH_MARK 0xdead000000000000ULL
static atomic_ulong latest[RACE_PAGES];
static atomic_int stop_race;

struct racer { int fd, range; uint64_t *mem, *scratch; unsigned long reads, faults, stale; };

/*
 * Host side: discard a scratch page, then a page (its frame is freed: MMU_NOTIFY_CLEAR; freed last,
 * it is the first the allocator hands out again), make the scratch page take that freed frame and
 * fill it with a marker, then write the next stamp into the page (a new frame) and publish it. A
 * guest still reaching the old frame would read the marker.
 */
static void *host_thread(void *p)
{
	struct racer *r = p;
	unsigned long k = 1;

	while (!atomic_load(&stop_race)) {
		unsigned int pg = k % RACE_PAGES, sc = k % SCRATCH_PAGES;

		madvise((char *)r->scratch + sc * PAGE, PAGE, MADV_DONTNEED);
		madvise((char *)r->mem + pg * PAGE, PAGE, MADV_DONTNEED);
		r->scratch[sc * PAGE / 8] = SCRATCH_MARK | k;
		r->mem[pg * PAGE / 8] = k;
		atomic_store(&latest[pg], k);
		k++;
	}
	return NULL;
}

/*
 * Guest side: read each page through the soft p2m, re-mapping on a fault. A correct read returns 0
 * (a fresh frame not yet written) or a stamp from the one published before the read up to the next
 * one for that page (stamps of one page step by RACE_PAGES, and the host writes a stamp before it
 * publishes it); anything else, the scratch marker above all, came from a frame already taken back.
 */
static void *guest_thread(void *p)
{
	struct racer *r = p;
	unsigned long i;

	for (i = 0; i < 200000 && !atomic_load(&stop_race); i++) {
		unsigned int pg = i % RACE_PAGES;
		unsigned long before = atomic_load(&latest[pg]), after;
		uint64_t v = 0;
		int f = guest_rw(r->fd, G0 + pg, 0, &v, 0);

		if (f == 1) {
			r->faults++;
			map(r->fd, r->range, G0 + pg, pg, 1);
			continue;
		}
		after = atomic_load(&latest[pg]);
		r->reads++;
		if (f == 0 && v != 0 && (v < before || v > after + RACE_PAGES))
			r->stale++;
	}
	atomic_store(&stop_race, 1);
	return NULL;
}

static void run_race(struct __test_metadata *_metadata, struct racer *r)
{
	pthread_t h, g;

	r->fd = open_bound();
	r->mem = anon(RACE_PAGES);
	r->scratch = anon(SCRATCH_PAGES);
	ASSERT_LE(0, r->fd);
	ASSERT_NE(NULL, r->mem);
	ASSERT_NE(NULL, r->scratch);
	atomic_store(&stop_race, 0);
	r->range = reg(r->fd, r->mem, RACE_PAGES * PAGE);
	ASSERT_LT(0, r->range);
	pthread_create(&h, NULL, host_thread, r);
	pthread_create(&g, NULL, guest_thread, r);
	pthread_join(g, NULL);
	pthread_join(h, NULL);
	close(r->fd);
}

TEST(race_no_stale_reads)
{
	struct racer r = { 0 };

	run_race(_metadata, &r);
	printf("# race: %lu guest reads, %lu guest faults, %lu stale\n", r.reads, r.faults, r.stale);
	EXPECT_LT(1000u, r.reads) TH_LOG("the race did not race");
	EXPECT_LT(10u, r.faults) TH_LOG("no revocation raced a read");
	EXPECT_EQ(0u, r.stale);
}

/* With revocation disabled (test_skip_revoke=1), the same race must find stale reads. */
TEST_F(skip_revoke, race_detects_broken_revoke)
{
	struct racer r = { 0 };

	run_race(_metadata, &r);
	printf("# broken race: %lu guest reads, %lu stale\n", r.reads, r.stale);
	EXPECT_LT(0u, r.stale) TH_LOG("no stale read detected although revocation was disabled");
}

int main(int argc, char **argv)
{
	static char arg0[] = "helper_test", opt_f[] = "-f", opt_F[] = "-F", fix_skip[] = "skip_revoke", fix_vgem[] = "vgem";
	char *args[] = { arg0, opt_f, fix_skip, NULL };

	if (argc > 1 && strcmp(argv[1], "--expect-stale") == 0)
		return test_harness_run(3, args);
	if (argc > 1 && strcmp(argv[1], "--no-vgem") == 0) {
		args[1] = opt_F;
		args[2] = fix_vgem;
		return test_harness_run(3, args);
	}
	return test_harness_run(argc, argv);
}
