// SPDX-License-Identifier: GPL-2.0
/*
 * Selftest of the xvgpu kernel helper, in the style of the kernel's hmm-tests: real MMU notifiers,
 * anonymous memory and vgem buffers, the soft p2m as the guest. Run as root with the module loaded
 * (allow_evict=1) and vgem loaded. Prints one line per test and "N passed, N failed".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/xvgpu_helper.h"

#define PAGE 4096UL
#define G0 0x100000ULL /* first GFN of the test BAR window */
#define WINDOW 8192

/* DRM UAPI subset (vgem dumb buffers), from include/uapi/drm/drm.h and drm_mode.h. */
struct drm_mode_create_dumb { uint32_t height, width, bpp, flags, handle, pitch; uint64_t size; };
struct drm_mode_map_dumb { uint32_t handle, pad; uint64_t offset; };
#define DRM_IOCTL_MODE_CREATE_DUMB _IOWR('d', 0xB2, struct drm_mode_create_dumb)
#define DRM_IOCTL_MODE_MAP_DUMB _IOWR('d', 0xB3, struct drm_mode_map_dumb)

static int passed, failed;
static char why[256];

static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return -1;
}

#define CHECK(cond, ...) do { if (!(cond)) return fail(__VA_ARGS__); } while (0)

static void run(const char *name, int (*fn)(void))
{
	why[0] = 0;
	if (fn() == 0) {
		passed++;
		printf("ok %d - %s\n", passed + failed, name);
	} else {
		failed++;
		printf("not ok %d - %s: %s\n", passed + failed, name, why);
	}
	fflush(stdout);
}

static int open_bound(void)
{
	int fd = open(XVGPU_HELPER_DEVICE, O_RDWR | O_CLOEXEC);
	struct xvgpu_bind b = { .size = sizeof(b), .domid = 1, .first_gfn = G0, .pages = WINDOW, .backend = XVGPU_P2M_SOFT };

	if (fd < 0 || ioctl(fd, XVGPU_IOC_BIND, &b))
		return -1;
	return fd;
}

static int reg(int fd, void *va, size_t len)
{
	struct xvgpu_register r = { .size = sizeof(r), .va = (uintptr_t)va, .length = len };

	return ioctl(fd, XVGPU_IOC_REGISTER, &r) ? -errno : (int)r.range_id;
}

static int map(int fd, int range, uint64_t gfn, uint64_t page, uint32_t pages, struct xvgpu_map *out)
{
	struct xvgpu_map m = { .size = sizeof(m), .range_id = range, .gfn = gfn, .page_in_range = page, .pages = pages };

	if (ioctl(fd, XVGPU_IOC_MAP, &m))
		return -errno;
	if (out)
		*out = m;
	return 0;
}

/* Reads 8 bytes of guest memory; returns 1 if the guest would fault, 0 if read, -errno. */
static int guest_rw(int fd, uint64_t gfn, unsigned off, uint64_t *v, int write)
{
	struct xvgpu_guest_access a = { .size = sizeof(a), .len = 8, .gpa = gfn * PAGE + off, .buf = (uintptr_t)v, .write = write };

	if (ioctl(fd, XVGPU_IOC_GUEST_ACCESS, &a))
		return -errno;
	return a.faulted ? 1 : 0;
}

static int next_event(int fd, struct xvgpu_event *ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return read(fd, ev, sizeof(*ev)) == sizeof(*ev) ? 0 : -1;
}

static void *anon(size_t pages)
{
	void *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, pages * PAGE);
	return p;
}

/* ---- tests -------------------------------------------------------------------------------- */

static int t_refusals(void)
{
	int fd = open(XVGPU_HELPER_DEVICE, O_RDWR);
	struct xvgpu_bind b = { .size = sizeof(b), .domid = 1, .first_gfn = G0, .pages = WINDOW, .backend = XVGPU_P2M_SOFT };
	struct xvgpu_register r = { .size = sizeof(r), .va = 0x10000, .length = PAGE };
	uint64_t *mem = anon(8);
	int range;

	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(ioctl(fd, XVGPU_IOC_REGISTER, &r) && errno == ENOTCONN, "unbound REGISTER: want ENOTCONN, got %s", strerror(errno));
	b.size = sizeof(b) - 4;
	CHECK(ioctl(fd, XVGPU_IOC_BIND, &b) && errno == EINVAL, "wrong struct size: want EINVAL");
	b.size = sizeof(b);
	b.backend = 0;
	CHECK(ioctl(fd, XVGPU_IOC_BIND, &b) && errno == EINVAL, "backend 0: want EINVAL");
	b.backend = XVGPU_P2M_SOFT;
	CHECK(ioctl(fd, XVGPU_IOC_BIND, &b) == 0, "BIND: %s", strerror(errno));
	CHECK(ioctl(fd, XVGPU_IOC_BIND, &b) && errno == EBUSY, "second BIND: want EBUSY");
	range = reg(fd, mem, 8 * PAGE);
	CHECK(range > 0, "REGISTER: %d", range);
	CHECK(reg(fd, (char *)mem + PAGE, PAGE) == -EEXIST, "overlapping range: want EEXIST");
	CHECK(reg(fd, (char *)mem + 1, PAGE) == -EINVAL, "unaligned range: want EINVAL");
	CHECK(map(fd, range, G0 + WINDOW, 0, 1, NULL) == -EINVAL, "GFN outside the window: want EINVAL");
	CHECK(map(fd, range, G0 + WINDOW - 1, 0, 2, NULL) == -EINVAL, "run crossing the window end: want EINVAL");
	CHECK(map(fd, range, G0, 0, 0, NULL) == -EINVAL, "zero pages: want EINVAL");
	CHECK(map(fd, range, G0, 0, 513, NULL) == -EINVAL, "huge page count: want EINVAL");
	CHECK(map(fd, range, G0, 7, 2, NULL) == -EINVAL, "run beyond the range: want EINVAL");
	CHECK(map(fd, 999, G0, 0, 1, NULL) == -ENOENT, "unregistered range: want ENOENT");
	CHECK(ioctl(fd, _IOWR('X', 4, char[24]), mem) && errno == ENOTTY, "unknown ioctl (size in the number): want ENOTTY");
	close(fd);
	munmap(mem, 8 * PAGE);
	return 0;
}

static int t_map_access_unmap(void)
{
	int fd = open_bound();
	uint64_t *mem = anon(16), v = 0;
	struct xvgpu_run runs[4];
	struct xvgpu_query q = { .size = sizeof(q), .count = 4, .gfn = G0, .pages = 64, .runs = (uintptr_t)runs };
	struct xvgpu_unmap u = { .size = sizeof(u), .gfn = G0 + 2, .pages = 1 };
	int range;

	CHECK(fd >= 0, "open/bind");
	range = reg(fd, mem, 16 * PAGE);
	mem[3 * PAGE / 8] = 0x1234;
	CHECK(guest_rw(fd, G0 + 3, 0, &v, 0) == 1, "unmapped page must fault");
	CHECK(map(fd, range, G0, 0, 4, NULL) == 0, "MAP: %s", strerror(errno));
	CHECK(guest_rw(fd, G0 + 3, 0, &v, 0) == 0 && v == 0x1234, "guest read of a mapped page: %llx", (unsigned long long)v);
	v = 0xfeed;
	CHECK(guest_rw(fd, G0 + 1, 8, &v, 1) == 0 && mem[PAGE / 8 + 1] == 0xfeed, "guest write reaches the process's page");
	CHECK(ioctl(fd, XVGPU_IOC_QUERY, &q) == 0 && q.count == 1 && runs[0].gfn == G0 && runs[0].pages == 4, "QUERY: %u runs", q.count);
	CHECK(ioctl(fd, XVGPU_IOC_UNMAP, &u) == 0 && u.revoked == 1, "UNMAP revoked %llu", (unsigned long long)u.revoked);
	CHECK(guest_rw(fd, G0 + 2, 0, &v, 0) == 1, "unmapped page faults again");
	CHECK(guest_rw(fd, G0 + 1, 0, &v, 0) == 0, "neighbour still mapped");
	CHECK(map(fd, range, G0 + 1, 2, 1, NULL) == -EEXIST, "GFN already owned by another page: want EEXIST");
	close(fd);
	munmap(mem, 16 * PAGE);
	return 0;
}

static int expect_event(int fd, uint32_t range, int type, uint64_t revoked_min)
{
	struct xvgpu_event ev;

	CHECK(next_event(fd, &ev, 1000) == 0, "no event");
	CHECK(ev.range_id == range && ev.event == (uint32_t)type, "event %u on range %u, want %d on %u", ev.event, ev.range_id, type, range);
	CHECK(ev.revoked >= revoked_min, "revoked %llu, want >= %llu", (unsigned long long)ev.revoked, (unsigned long long)revoked_min);
	CHECK(ev.seq & 1, "cur_seq must be odd");
	CHECK(ev.done_ns >= ev.start_ns, "timestamps");
	return 0;
}

static int t_events_anon(void)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(16), v;

	CHECK(fd >= 0, "open/bind");
	range = reg(fd, mem, 16 * PAGE);
	CHECK(map(fd, range, G0, 0, 16, NULL) == 0, "MAP");
	CHECK(madvise(mem, 2 * PAGE, MADV_DONTNEED) == 0, "madvise");
	CHECK(expect_event(fd, range, 1 /* CLEAR */, 2) == 0, "MADV_DONTNEED: %s", why);
	CHECK(guest_rw(fd, G0, 0, &v, 0) == 1 && guest_rw(fd, G0 + 2, 0, &v, 0) == 0, "exactly the invalidated pages fault");
	CHECK(mprotect(mem + 4 * PAGE / 8, PAGE, PROT_READ) == 0, "mprotect");
	CHECK(expect_event(fd, range, 2 /* PROTECTION_VMA */, 1) == 0, "mprotect: %s", why);
	CHECK(munmap(mem, 16 * PAGE) == 0, "munmap");
	CHECK(expect_event(fd, range, 0 /* UNMAP */, 1) == 0, "munmap: %s", why);
	CHECK(map(fd, range, G0, 0, 1, NULL) == -EFAULT, "MAP of an unmapped range: want EFAULT");
	close(fd);
	return 0;
}

static int t_release_on_exit(void)
{
	int fd = open_bound(), status;
	struct xvgpu_event ev;
	pid_t pid;

	CHECK(fd >= 0, "open/bind");
	pid = fork();
	if (pid == 0) {
		uint64_t *mem = anon(4);
		int range = reg(fd, mem, 4 * PAGE);

		_exit(range > 0 && map(fd, range, G0, 0, 4, NULL) == 0 ? 0 : 1);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child");
	CHECK(next_event(fd, &ev, 1000) == 0 && ev.event == 5 /* RELEASE */ && ev.revoked == 4, "RELEASE event revoking 4, got event %u revoked %llu", ev.event, (unsigned long long)ev.revoked);
	close(fd);
	return 0;
}

static int t_stats_and_unregister(void)
{
	int fd = open_bound(), range;
	uint64_t *mem = anon(8);
	struct xvgpu_stats st = { .size = sizeof(st) };
	struct xvgpu_unregister u = { .size = sizeof(u) };

	CHECK(fd >= 0, "open/bind");
	range = reg(fd, mem, 8 * PAGE);
	CHECK(map(fd, range, G0, 0, 8, NULL) == 0, "MAP");
	CHECK(ioctl(fd, XVGPU_IOC_STATS, &st) == 0 && st.resident_pages == 8 && st.maps == 1, "STATS resident %llu", (unsigned long long)st.resident_pages);
	u.range_id = range;
	CHECK(ioctl(fd, XVGPU_IOC_UNREGISTER, &u) == 0, "UNREGISTER");
	CHECK(ioctl(fd, XVGPU_IOC_STATS, &st) == 0 && st.resident_pages == 0 && st.ranges == 0, "UNREGISTER revoked everything");
	CHECK(ioctl(fd, XVGPU_IOC_UNREGISTER, &u) && errno == ENOENT, "second UNREGISTER: want ENOENT");
	close(fd);
	munmap(mem, 8 * PAGE);
	return 0;
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

static int t_vgem_evict(void)
{
	int fd = open_bound(), dfd, range;
	uint64_t *bo, v = 0xabcdef;
	struct xvgpu_evict e = { .size = sizeof(e), .first_page = 2, .pages = 2 };
	struct xvgpu_map m;

	CHECK(fd >= 0, "open/bind");
	CHECK(vgem_buffer(&dfd, 16 * PAGE, (void **)&bo) == 0, "vgem dumb buffer: %s", strerror(errno));
	bo[0] = 1;
	range = reg(fd, bo, 16 * PAGE);
	CHECK(range > 0, "REGISTER vgem mapping: %d", range);
	CHECK(map(fd, range, G0, 0, 16, &m) == 0 && m.installed == 16, "MAP vgem (VM_PFNMAP via follow_pte): %s", strerror(errno));
	CHECK(guest_rw(fd, G0 + 3, 16, &v, 1) == 0 && bo[3 * PAGE / 8 + 2] == 0xabcdef, "guest write lands in the BO");
	e.range_id = range;
	CHECK(ioctl(fd, XVGPU_IOC_EVICT, &e) == 0, "EVICT: %s", strerror(errno));
	CHECK(expect_event(fd, range, 1 /* CLEAR */, 2) == 0, "EVICT: %s", why);
	CHECK(guest_rw(fd, G0 + 3, 16, &v, 0) == 1 && guest_rw(fd, G0 + 4, 16, &v, 0) == 0, "evicted pages fault, others stay");
	CHECK(map(fd, range, G0 + 2, 2, 2, &m) == 0 && m.installed == 2, "re-MAP after eviction");
	CHECK(guest_rw(fd, G0 + 3, 16, &v, 0) == 0 && v == 0xabcdef, "content after eviction and re-map");
	munmap(bo, 16 * PAGE);
	CHECK(expect_event(fd, range, 0 /* UNMAP */, 16) == 0, "munmap of the BO: %s", why);
	close(fd);
	close(dfd);
	return 0;
}

/* ---- the race: guest accesses against invalidation, zero stale reads ------------------------ */

#define RACE_PAGES 8
#define SCRATCH_PAGES 64
#define SCRATCH_MARK 0xdead000000000000ULL
static atomic_ulong latest[RACE_PAGES];
static atomic_int stop_race;

struct racer { int fd, range; uint64_t *mem, *scratch; unsigned long reads, faults, stale; };

/*
 * Host side: discard a page (its frame is freed: MMU_NOTIFY_CLEAR), make a scratch page take that
 * freed frame and fill it with a marker, then write the next stamp into the page (a new frame) and
 * publish it. A guest still reaching the old frame would read the marker.
 */
static void *host_thread(void *p)
{
	struct racer *r = p;
	unsigned long k = 1;

	while (!atomic_load(&stop_race)) {
		unsigned pg = k % RACE_PAGES, sc = k % SCRATCH_PAGES;

		madvise((char *)r->mem + pg * PAGE, PAGE, MADV_DONTNEED);
		madvise((char *)r->scratch + sc * PAGE, PAGE, MADV_DONTNEED);
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
		unsigned pg = i % RACE_PAGES;
		unsigned long before = atomic_load(&latest[pg]), after;
		uint64_t v = 0;
		int f = guest_rw(r->fd, G0 + pg, 0, &v, 0);

		if (f == 1) {
			r->faults++;
			map(r->fd, r->range, G0 + pg, pg, 1, NULL);
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

/* Runs the host and guest threads over a fresh binding and range; fills r. */
static int run_race(struct racer *r)
{
	pthread_t h, g;

	r->fd = open_bound();
	r->mem = anon(RACE_PAGES);
	r->scratch = anon(SCRATCH_PAGES);
	if (r->fd < 0 || !r->mem || !r->scratch)
		return fail("open/bind/mmap");
	atomic_store(&stop_race, 0);
	r->range = reg(r->fd, r->mem, RACE_PAGES * PAGE);
	pthread_create(&h, NULL, host_thread, r);
	pthread_create(&g, NULL, guest_thread, r);
	pthread_join(g, NULL);
	pthread_join(h, NULL);
	close(r->fd);
	return 0;
}

static int t_race(void)
{
	struct racer r = { 0 };

	CHECK(run_race(&r) == 0, "%s", why);
	printf("# race: %lu guest reads, %lu guest faults, %lu stale\n", r.reads, r.faults, r.stale);
	CHECK(r.reads > 1000 && r.faults > 100, "the race did not race (%lu reads, %lu faults)", r.reads, r.faults);
	CHECK(r.stale == 0, "%lu stale reads", r.stale);
	return 0;
}

/* With the module's test_skip_revoke set, the same race must find stale reads. */
static int t_race_detects_broken_revoke(void)
{
	struct racer r = { 0 };

	CHECK(run_race(&r) == 0, "%s", why);
	printf("# broken race: %lu guest reads, %lu stale\n", r.reads, r.stale);
	CHECK(r.stale > 0, "no stale read detected although revocation was disabled");
	return 0;
}

int main(int argc, char **argv)
{
	int vgem = !(argc > 1 && strcmp(argv[1], "--no-vgem") == 0);

	if (argc > 1 && strcmp(argv[1], "--expect-stale") == 0) {
		run("fault injection: the race test detects a helper that does not revoke", t_race_detects_broken_revoke);
		printf("%d passed, %d failed\n", passed, failed);
		return failed ? 1 : 0;
	}

	run("refusals: unbound fd, struct size, backend, double BIND, overlaps, window, counts, unknown range", t_refusals);
	run("map, guest read/write through the soft p2m, query, unmap", t_map_access_unmap);
	run("events on anonymous memory: MADV_DONTNEED=CLEAR, mprotect=PROTECTION_VMA, munmap=UNMAP", t_events_anon);
	run("process exit: RELEASE revokes the exiting process's mappings", t_release_on_exit);
	run("STATS and UNREGISTER revoke everything", t_stats_and_unregister);
	if (vgem)
		run("vgem BO: map (VM_PFNMAP), guest write, EVICT=CLEAR, re-map, munmap=UNMAP", t_vgem_evict);
	run("race: guest reads against frame-freeing invalidations, zero stale reads", t_race);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
