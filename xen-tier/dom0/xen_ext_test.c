// dom0 side of the xen-ext scenario: exercises the patched hypervisor's device-model extension
// (hypervisor/patches: XEN_DMOP_get_dm_ext_info, XEN_DMOP_lend_pages, XEN_DMOP_revoke_pages)
// through /dev/xen/privcmd IOCTL_PRIVCMD_DM_OP, the path every device model uses.
//
//   xen_ext_test query DOMID
//       One line of JSON: {"rc":..,"errno":..,"version":..,"features":..}. Exit 0 when the op
//       answered (patched Xen), 3 when it failed with EOPNOTSUPP (stock Xen), 1 otherwise.
//   xen_ext_test run DOMID GFN GUEST_CONSOLE_LOG ZOMBIE_DOMID
//       DOMID is a paused PVH guest running lend_reader GFN. Allocates 4 pages for dom0
//       (increase_reservation: a PV dom0 learns their MFNs, which are its GFNs), refuses every
//       hostile argument with the documented errno, lends the pages, unpauses the guest, checks what
//       it reads and writes, revokes, lends again and destroys the guest without revoking, and checks
//       that every page reference came back: dom0's page count drops by 4 when it frees the pages
//       (a leaked reference keeps a page allocated) and Xen's free memory grows by them.
//       ZOMBIE_DOMID is a dying domain (destroyed while dom0 still maps one of its pages).
//   xen_ext_test retry-flag DOMID
//       Creates an ioreq server with XEN_DMOP_IOREQ_SERVER_RETRY and one with an unknown flag (each
//       destroyed again): {"retry_flag_errno":..,"unknown_flag_errno":..}. Exit 0 for (0, EINVAL)
//       (patched Xen), 3 for (EINVAL, EINVAL) (stock Xen: the byte was padding), 1 otherwise.
//   xen_ext_test retry DOMID GFN GUEST_CONSOLE_LOG
//       Serves DOMID (a paused PVH guest running lend_reader GFN) with an ioreq server created with
//       XEN_DMOP_IOREQ_SERVER_RETRY: each page's first touch lends the page and answers
//       STATE_IORESP_RETRY, so the vCPU re-executes the access against the mapping; after the
//       guest wrote, the pages are revoked and its reads are answered with all ones. One JSON line.
//   xen_ext_test retry-kinds DOMID GFN GUEST_CONSOLE_LOG
//       Serves a paused PVH guest running retry_probe kinds GFN (split read, rep movs, rep stos,
//       PIO) with a RETRY-flagged server and checks which requests Xen offered for retry and that
//       each access completed with the right data. One JSON line with the request log.
//   xen_ext_test retry-hostile noflag|pio|split DOMID GFN GUEST_CONSOLE_LOG
//       The server answers STATE_IORESP_RETRY to a request Xen did not offer (a server without
//       the flag; a PIO request; a split access's second chunk): the guest must be crashed.
//   xen_ext_test hold DOMID GFN
//       Maps the guest's page GFN and keeps it mapped until killed (prints "held" once mapped):
//       destroying that guest then leaves a dying domain behind.
//       Prints one JSON line of results; exit 0 only when every check passed.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <xenctrl.h> /* first: it defines __XEN_TOOLS__ for the public headers the others pull in */
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>

#include "console.h"

// Linux's uapi privcmd.h includes kernel-only headers; its DM_OP ABI, restated (0x00105005).
struct privcmd_dm_op_buf {
  void *uptr;
  size_t size;
};
struct privcmd_dm_op {
  domid_t dom;
  uint16_t num;
  const struct privcmd_dm_op_buf *ubufs;
};
#define IOCTL_PRIVCMD_DM_OP _IOC(_IOC_NONE, 'P', 5, sizeof(struct privcmd_dm_op))
_Static_assert(IOCTL_PRIVCMD_DM_OP == 0x00105005, "IOCTL_PRIVCMD_DM_OP");
#define IOCTL_PRIVCMD_RESTRICT _IOC(_IOC_NONE, 'P', 6, sizeof(domid_t))
_Static_assert(IOCTL_PRIVCMD_RESTRICT == 0x00025006, "IOCTL_PRIVCMD_RESTRICT");

// The patched public/hvm/dm_op.h (hypervisor/patches/0002), restated: stock headers lack it.
#define XEN_DMOP_get_dm_ext_info 21
#define XEN_DMOP_lend_pages 22
#define XEN_DMOP_revoke_pages 23
#define XEN_DMOP_DM_EXT_VERSION 1
#define XEN_DMOP_DM_EXT_LEND_PAGES (1u << 0)
#define XEN_DMOP_DM_EXT_IORESP_RETRY (1u << 1)
#define XEN_DMOP_LEND_WRITABLE (1u << 0)
#define XEN_DMOP_create_ioreq_server 1
#define XEN_DMOP_destroy_ioreq_server 6
#define XEN_DMOP_IOREQ_SERVER_RETRY (1u << 0) /* patch 0003 */

struct dm_ext_info {
  uint32_t version, features;
};
struct dm_lend {
  uint64_t src_gfn, dst_gfn;
  uint32_t nr;
  uint16_t flags, pad;
};
struct create_server {
  uint8_t handle_bufioreq, flags, pad[2];
  uint16_t id;
};
struct dm_op {
  uint32_t op, pad;
  union {
    struct dm_ext_info info;
    struct dm_lend lend;
    struct create_server create;
    uint16_t destroy_id;
    uint8_t raw[24]; /* the largest member of the real union */
  } u;
};
_Static_assert(sizeof(struct dm_lend) == 24, "xen_dm_op_lend_pages is 24 bytes");
_Static_assert(sizeof(struct dm_op) == 32, "xen_dm_op is 32 bytes");

#define NPAGES 4
#define PAGE 4096UL
#define GUEST_RW_MARK 0xC0FFEE01u
#define GUEST_RO_MARK 0xBAD00002u
#define MAGIC(p) (0x4C454E00u | (p)) /* "LEN\0" + page index */

static int privcmd = -1;
static xc_interface *xch;
static int failures;
static char results[8192];
static size_t results_len;

static void result(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  results_len += (size_t)vsnprintf(results + results_len, sizeof(results) - results_len, fmt, ap);
  va_end(ap);
}

static void check(bool ok, const char *name, const char *fmt, ...) {
  char detail[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  result("%s\"%s\":{\"ok\":%s,\"detail\":\"%s\"}", results_len > 1 ? "," : "", name, ok ? "true" : "false", detail);
  fprintf(stderr, "%s %s: %s\n", ok ? "PASS" : "FAIL", name, detail);
  failures += !ok;
}

// One DM op on DOMID; returns 0 or the errno of the failed ioctl. op is updated in place.
static int dm_op(uint16_t domid, struct dm_op *op) {
  struct privcmd_dm_op_buf buf = {.uptr = op, .size = sizeof(*op)};
  struct privcmd_dm_op arg = {.dom = domid, .num = 1, .ubufs = &buf};
  return ioctl(privcmd, IOCTL_PRIVCMD_DM_OP, &arg) == 0 ? 0 : errno;
}

static int lend_pages(uint16_t domid, uint64_t src, uint64_t dst, uint32_t nr, uint16_t flags, uint16_t pad,
                struct dm_lend *out) {
  struct dm_op op = {.op = XEN_DMOP_lend_pages, .u.lend = {src, dst, nr, flags, pad}};
  int e = dm_op(domid, &op);
  if (out) *out = op.u.lend;
  return e;
}

/*
 * A deprivileged device model's privcmd fd (IOCTL_PRIVCMD_RESTRICT to OWN) lending into TARGET:
 * Linux's privcmd refuses DM ops on any other domain. Dom0 itself is device model of every domain
 * (XSM_DM_PRIV), so Xen's own check needs an unprivileged caller domain; this is the dom0 half.
 */
static int restricted_lend(uint16_t own, uint16_t target, uint64_t src, uint64_t dst) {
  int fd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  domid_t d = own;
  int e = -1;
  if (ioctl(fd, IOCTL_PRIVCMD_RESTRICT, &d) == 0) {
    struct dm_op op = {.op = XEN_DMOP_lend_pages, .u.lend = {src, dst, 1, 0, 0}};
    struct privcmd_dm_op_buf buf = {.uptr = &op, .size = sizeof(op)};
    struct privcmd_dm_op arg = {.dom = target, .num = 1, .ubufs = &buf};
    e = ioctl(fd, IOCTL_PRIVCMD_DM_OP, &arg) == 0 ? 0 : errno;
  }
  close(fd);
  return e;
}

static int revoke_pages(uint16_t domid, uint64_t src, uint64_t dst, uint32_t nr) {
  struct dm_op op = {.op = XEN_DMOP_revoke_pages, .u.lend = {src, dst, nr, 0, 0}};
  return dm_op(domid, &op);
}

static int query(uint16_t domid, struct dm_ext_info *info) {
  struct dm_op op = {.op = XEN_DMOP_get_dm_ext_info};
  int e = dm_op(domid, &op);
  *info = op.u.info;
  return e;
}

/* Creates (and destroys again) an ioreq server with FLAGS; returns the errno of the creation. */
static int try_server_flags(uint16_t domid, uint8_t flags) {
  struct dm_op op = {.op = XEN_DMOP_create_ioreq_server, .u.create = {.flags = flags}};
  int e = dm_op(domid, &op);
  if (!e) {
    struct dm_op del = {.op = XEN_DMOP_destroy_ioreq_server, .u.destroy_id = op.u.create.id};
    dm_op(domid, &del);
  }
  return e;
}

static void expect_errno(const char *name, int got, int want) {
  check(got == want, name, "errno %d (%s), want %d (%s)", got, strerror(got), want, strerror(want));
}

static int dom0_pages(uint64_t *tot) {
  xc_domaininfo_t di;
  if (xc_domain_getinfolist(xch, 0, 1, &di) != 1 || di.domain != 0) return -1;
  *tot = di.tot_pages;
  return 0;
}

static uint64_t free_pages(void) {
  xc_physinfo_t pi = {0};
  return xc_physinfo(xch, &pi) == 0 ? pi.free_pages : 0;
}

// Every hostile argument is refused with its documented errno; nothing is mapped by them.
static void hostile_arguments(uint16_t domid, const xen_pfn_t *mfn, uint64_t gfn, uint16_t zombie) {
  const uint64_t far = 1ULL << 52; /* beyond any guest physical address width */
  expect_errno("lend_nr_zero", lend_pages(domid, mfn[0], gfn, 0, 0, 0, NULL), EINVAL);
  expect_errno("lend_dst_wraps", lend_pages(domid, mfn[0], UINT64_MAX - 1, 4, 0, 0, NULL), EINVAL);
  expect_errno("lend_dst_beyond_width", lend_pages(domid, mfn[0], far, 1, 0, 0, NULL), EINVAL);
  expect_errno("lend_src_wraps", lend_pages(domid, UINT64_MAX, gfn, 2, 0, 0, NULL), EINVAL);
  expect_errno("lend_bad_flags", lend_pages(domid, mfn[0], gfn, 1, 0x80, 0, NULL), EINVAL);
  expect_errno("lend_bad_pad", lend_pages(domid, mfn[0], gfn, 1, 0, 1, NULL), EINVAL);
  expect_errno("lend_not_owned_mfn0", lend_pages(domid, 0, gfn, 1, 0, 0, NULL), EPERM);
  expect_errno("lend_mmio_frame", lend_pages(domid, 0xfee00 /* local APIC */, gfn, 1, 0, 0, NULL), EPERM);
  expect_errno("lend_over_guest_ram", lend_pages(domid, mfn[0], 0x100, 1, XEN_DMOP_LEND_WRITABLE, 0, NULL), EEXIST);
  expect_errno("lend_into_caller", lend_pages(0, mfn[0], gfn, 1, 0, 0, NULL), EPERM);
  /* dom0's shared_info: dom0's, but a Xen-heap page (a PV domain's shared_info_frame is its MFN). */
  xc_dominfo_t d0;
  bool have_d0 = xc_domain_getinfo(xch, 0, 1, &d0) == 1 && d0.domid == 0;
  expect_errno("lend_xen_special_page", have_d0 ? lend_pages(domid, d0.shared_info_frame, gfn, 1, 0, 0, NULL) : -1, EPERM);
  expect_errno("lend_through_privcmd_restricted_to_another_domain", restricted_lend(zombie, domid, mfn[0], gfn), EPERM);
  expect_errno("lend_no_such_domain", lend_pages(0x7fe0, mfn[0], gfn, 1, 0, 0, NULL), ESRCH);
  expect_errno("lend_dying_domain", lend_pages(zombie, mfn[0], gfn, 1, 0, 0, NULL), ESRCH);
  expect_errno("revoke_bad_src", revoke_pages(domid, 1, gfn, 1), EINVAL);
  expect_errno("revoke_nr_zero", revoke_pages(domid, 0, gfn, 0), EINVAL);
  expect_errno("revoke_wraps", revoke_pages(domid, 0, UINT64_MAX, 2), EINVAL);
  /* Revoking what is not the caller's lent page (guest RAM here) is a no-op, not an error. */
  expect_errno("revoke_guest_ram_is_noop", revoke_pages(domid, 0, 0x100, 1), 0);

  /* A run failing halfway reports its progress: page 1's destination is occupied. */
  struct dm_lend out;
  int e = lend_pages(domid, mfn[2], gfn, 1, 0, 0, NULL);
  int e2 = lend_pages(domid, mfn[0], gfn - 1, 2, 0, 0, &out); /* own GFNs mfn[0], mfn[0] + 1 */
  check(e == 0 && e2 == EEXIST && out.nr == 1 && out.dst_gfn == gfn && out.src_gfn == mfn[1],
        "lend_partial_failure_reports_progress", "first %d, run %d, left nr=%u dst=%#" PRIx64 " src=%#" PRIx64, e,
        e2, out.nr, out.dst_gfn, out.src_gfn);
  expect_errno("lend_over_lent_entry", lend_pages(domid, mfn[3], gfn, 1, 0, 0, NULL), EEXIST);
  expect_errno("revoke_partial_leftovers", revoke_pages(domid, 0, gfn - 1, 2), 0);
}

// Lend, let the guest read/write, revoke; the guest sees the revocation.
static void lend_and_revoke(uint16_t domid, const xen_pfn_t *mfn, uint64_t gfn, volatile uint32_t *own,
                            const char *console) {
  char line[512];
  int e = lend_pages(domid, mfn[0], gfn, 2, XEN_DMOP_LEND_WRITABLE, 0, NULL);
  int e_ro = lend_pages(domid, mfn[2], gfn + 2, 1, 0, 0, NULL);
  int e_alias = lend_pages(domid, mfn[0], gfn + 3, 1, XEN_DMOP_LEND_WRITABLE, 0, NULL);
  check(!e && !e_ro && !e_alias, "lend_rw_ro_and_alias", "rw %d ro %d alias %d", e, e_ro, e_alias);
  check(xc_domain_unpause(xch, domid) == 0, "guest_unpaused", "domid %u", domid);

  int r = wait_console(console, "XT-LEND: read", line, sizeof(line), 300);
  char want[128];
  snprintf(want, sizeof(want), "XT-LEND: read p0=%08x p1=%08x p2=%08x p3=%08x", MAGIC(0), MAGIC(1), MAGIC(2), MAGIC(0));
  check(r == 0 && strcmp(line, want) == 0, "guest_reads_lent_pages", "%s", line);

  r = wait_console(console, "XT-LEND: wrote", line, sizeof(line), 60);
  check(r == 0 && own[1 * 1024 + 2] == GUEST_RW_MARK, "guest_write_reaches_rw_page", "%s; dom0 sees %08x", line,
        own[1 * 1024 + 2]);
  check(r == 0 && own[2 * 1024 + 2] == 0, "guest_write_to_ro_page_dropped", "dom0 sees %08x", own[2 * 1024 + 2]);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  e = revoke_pages(domid, 0, gfn, NPAGES);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  result(",\"revoke_4_pages_us\":%.1f", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3);
  expect_errno("revoke_run", e, 0);
  r = wait_console(console, "XT-LEND: revoked", line, sizeof(line), 60);
  check(r == 0, "guest_sees_revocation", "%s", line);
  expect_errno("revoke_again_is_noop", revoke_pages(domid, 0, gfn, NPAGES), 0);
}

/*
 * NPAGES fresh pages for dom0 (room made by raising its max_mem), whose MFNs a PV dom0 is told and
 * which are its GFNs, mapped here and filled with MAGIC(page). *max_kb is the max_mem to restore.
 */
static volatile uint32_t *alloc_own_pages(xenforeignmemory_handle *fmem, xen_pfn_t *mfn, uint64_t *max_kb) {
  xc_dominfo_t d0;
  int err[NPAGES];

  if (xc_domain_getinfo(xch, 0, 1, &d0) != 1 || xc_domain_setmaxmem(xch, 0, d0.max_memkb + 64) != 0)
    return perror("raise dom0 max_mem"), NULL;
  *max_kb = d0.max_memkb;
  /* Two 2-page extents, so that runs of two contiguous own GFNs exist: (0, 1) and (2, 3). */
  xen_pfn_t ext[NPAGES / 2];
  if (xc_domain_increase_reservation_exact(xch, 0, NPAGES / 2, 1, 0, ext) != 0)
    return perror("increase_reservation"), NULL;
  for (unsigned int p = 0; p < NPAGES; p++) mfn[p] = ext[p / 2] + p % 2;
  volatile uint32_t *own = xenforeignmemory_map(fmem, DOMID_SELF, PROT_READ | PROT_WRITE, NPAGES, mfn, err);
  if (!own) return perror("map own pages"), NULL;
  for (unsigned int p = 0; p < NPAGES; p++) {
    memset((void *)&own[p * 1024], 0, PAGE);
    own[p * 1024] = MAGIC(p);
  }
  result(",\"mfns\":[%lu,%lu,%lu,%lu]", (unsigned long)mfn[0], (unsigned long)mfn[1], (unsigned long)mfn[2],
         (unsigned long)mfn[3]);
  return own;
}

static int run(uint16_t domid, uint64_t gfn, const char *console, uint16_t zombie) {
  xen_pfn_t mfn[NPAGES];
  uint64_t tot0, tot_alloc, tot_freed, free_before, free_after, max_kb;
  xenforeignmemory_handle *fmem = xenforeignmemory_open(NULL, 0);
  if (!fmem || dom0_pages(&tot0)) return perror("xenforeignmemory_open / dom0 pages"), 1;
  volatile uint32_t *own = alloc_own_pages(fmem, mfn, &max_kb);
  if (!own) return 1;
  dom0_pages(&tot_alloc);

  hostile_arguments(domid, mfn, gfn, zombie);
  lend_and_revoke(domid, mfn, gfn, own, console);

  /* Lend again and destroy the guest without revoking: the teardown must drop the references. */
  /* Own GFNs are contiguous in pairs (alloc_own_pages()): two runs of two. */
  int e = lend_pages(domid, mfn[0], gfn, 2, XEN_DMOP_LEND_WRITABLE, 0, NULL);
  int e2 = lend_pages(domid, mfn[2], gfn + 2, 2, XEN_DMOP_LEND_WRITABLE, 0, NULL);
  check(!e && !e2, "lend_before_destroy", "runs %d %d", e, e2);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "xl destroy %u", domid);
  check(system(cmd) == 0, "guest_destroyed_with_pages_lent", "%s", cmd);
  xc_dominfo_t gone;
  bool vanished = false;
  for (int i = 0; i < 150 && !vanished; i++) {
    vanished = xc_domain_getinfo(xch, domid, 1, &gone) != 1 || gone.domid != domid;
    if (!vanished) usleep(200 * 1000);
  }
  check(vanished, "guest_fully_gone", "domid %u %s", domid, vanished ? "left the domain list" : "still listed");

  xenforeignmemory_unmap(fmem, (void *)own, NPAGES);
  free_before = free_pages();
  e = xc_domain_decrease_reservation_exact(xch, 0, NPAGES, 0, mfn);
  free_after = free_pages();
  dom0_pages(&tot_freed);
  check(e == 0, "dom0_frees_its_pages", "decrease_reservation %d", e);
  check(tot_alloc - tot0 == NPAGES && tot_alloc - tot_freed == NPAGES, "page_references_returned",
        "dom0 tot_pages %" PRIu64 " -> %" PRIu64 " (allocated) -> %" PRIu64 " (freed)", tot0, tot_alloc, tot_freed);
  check(free_after >= free_before + NPAGES, "xen_free_memory_returns", "free_pages %" PRIu64 " -> %" PRIu64, free_before,
        free_after);
  result(",\"free_pages_delta\":%" PRId64 ",\"dom0_tot_pages\":[%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]",
         (int64_t)(free_after - free_before), tot0, tot_alloc, tot_freed);
  xc_domain_setmaxmem(xch, 0, max_kb);
  xenforeignmemory_close(fmem);
  return failures ? 1 : 0;
}

/* struct ioreq of the patched public/hvm/ioreq.h (patch 0003: 'retry' was _pad1). */
struct ioreq_slot {
  uint64_t addr, data;
  uint32_t count, size, vp_eport;
  uint16_t pad0;
  uint8_t state : 4, data_is_ptr : 1, dir : 1, df : 1, retry : 1;
  uint8_t type;
};
_Static_assert(sizeof(struct ioreq_slot) == 32, "struct ioreq is 32 bytes");
#define STATE_IOREQ_READY 1
#define STATE_IOREQ_INPROCESS 2
#define STATE_IORESP_READY 3
#define STATE_IORESP_RETRY 4
#define IOREQ_TYPE_COPY 1

struct retry_server {
  uint16_t domid;
  uint64_t gfn;
  const xen_pfn_t *mfn;
  bool revoked;          /* after the revocation: reads of the window answer all ones */
  bool lent[NPAGES];
  unsigned int ioreqs, offered, retried, completed;
};

/*
 * One request of the window: before the revocation, the first touch of a page lends it (page 2
 * read-only, page 3 = page 0 again) and answers RETRY when Xen offered it; anything else (a write
 * to the read-only page) completes with nothing done. After it, reads complete with all ones.
 */
static unsigned int serve(struct retry_server *sv, struct ioreq_slot *req) {
  uint64_t page = (req->addr >> 12) - sv->gfn;

  sv->ioreqs++;
  sv->offered += req->retry;
  req->data = ~0ULL;
  if (req->type != IOREQ_TYPE_COPY || page >= NPAGES || sv->revoked || sv->lent[page]) {
    sv->completed++;
    return STATE_IORESP_READY;
  }
  int e = lend_pages(sv->domid, sv->mfn[page == 3 ? 0 : page], sv->gfn + page, 1,
                     page == 2 ? 0 : XEN_DMOP_LEND_WRITABLE, 0, NULL);
  sv->lent[page] = e == 0;
  if (e == 0 && req->retry) {
    sv->retried++;
    return STATE_IORESP_RETRY;
  }
  sv->completed++;
  return STATE_IORESP_READY;
}

/* Answers pending requests of vCPU 0 (this test's guests have one vCPU). */
static void serve_slot(struct retry_server *sv, volatile struct ioreq_slot *slot, xenevtchn_handle *xce,
                       evtchn_port_t port) {
  if (slot->state != STATE_IOREQ_READY) return;
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  struct ioreq_slot req = *slot;
  slot->state = STATE_IOREQ_INPROCESS;
  unsigned int state = serve(sv, &req);
  slot->data = req.data;
  __atomic_thread_fence(__ATOMIC_RELEASE);
  slot->state = state;
  xenevtchn_notify(xce, port);
}

/*
 * An ioreq server created with XEN_DMOP_IOREQ_SERVER_RETRY serves the window of a paused guest
 * running lend_reader: first touches map the page and are retried (the vCPU re-executes against
 * the mapping), then the pages are revoked and the guest reads all ones through the server.
 */
static int retry(uint16_t domid, uint64_t gfn, const char *console) {
  xen_pfn_t mfn[NPAGES];
  uint64_t max_kb;
  char line[512], want[160];
  xenforeignmemory_handle *fmem = xenforeignmemory_open(NULL, 0);
  xendevicemodel_handle *dmod = xendevicemodel_open(NULL, 0);
  xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
  if (!fmem || !dmod || !xce) return perror("open Xen libraries"), 1;
  volatile uint32_t *own = alloc_own_pages(fmem, mfn, &max_kb);
  if (!own) return 1;

  struct dm_op op = {.op = XEN_DMOP_create_ioreq_server, .u.create = {.flags = XEN_DMOP_IOREQ_SERVER_RETRY}};
  int e = dm_op(domid, &op);
  ioservid_t id = op.u.create.id;
  void *addr = NULL;
  xenforeignmemory_resource_handle *res =
      e ? NULL
        : xenforeignmemory_map_resource(fmem, domid, XENMEM_resource_ioreq_server, id,
                                        XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &addr,
                                        PROT_READ | PROT_WRITE, 0);
  int r1 = res ? xendevicemodel_map_io_range_to_ioreq_server(dmod, domid, id, 1, gfn << 12, ((gfn + NPAGES) << 12) - 1) : -1;
  int r2 = r1 ? -1 : xendevicemodel_set_ioreq_server_state(dmod, domid, id, 1);
  volatile struct ioreq_slot *slot = addr;
  int port = r2 ? -1 : xenevtchn_bind_interdomain(xce, domid, slot[0].vp_eport);
  check(!e && res && !r1 && !r2 && port >= 0, "retry_server_up", "create %d resource %s range %d enable %d port %d", e,
        res ? "ok" : "failed", r1, r2, port);
  if (port < 0) return 1;

  struct retry_server sv = {.domid = domid, .gfn = gfn, .mfn = mfn};
  struct pollfd pfd = {.fd = xenevtchn_fd(xce), .events = POLLIN};
  bool read_ok = false, wrote = false, revoked_seen = false;
  check(xc_domain_unpause(xch, domid) == 0, "retry_guest_unpaused", "domid %u", domid);
  snprintf(want, sizeof(want), "XT-LEND: read p0=%08x p1=%08x p2=%08x p3=%08x", MAGIC(0), MAGIC(1), MAGIC(2), MAGIC(0));
  for (int i = 0; i < 400 * 10 && !revoked_seen; i++) { /* 400 s: the guest boots under TCG first */
    if (poll(&pfd, 1, 100) > 0) {
      xenevtchn_port_or_error_t p = xenevtchn_pending(xce);
      if (p >= 0) xenevtchn_unmask(xce, p);
    }
    serve_slot(&sv, (volatile struct ioreq_slot *)&slot[0], xce, port);
    if (!read_ok && wait_console(console, "XT-LEND: read", line, sizeof(line), 0) == 0) {
      read_ok = true;
      check(strcmp(line, want) == 0, "retry_guest_reads_lent_pages", "%s", line);
    }
    if (read_ok && !wrote && wait_console(console, "XT-LEND: wrote", line, sizeof(line), 0) == 0) {
      wrote = true;
      check(own[1024 + 2] == GUEST_RW_MARK && own[2 * 1024 + 2] == 0, "retry_guest_writes_rw_not_ro",
            "%s; dom0 sees p1=%08x p2=%08x", line, own[1024 + 2], own[2 * 1024 + 2]);
      sv.revoked = true;
      expect_errno("retry_revoke", revoke_pages(domid, 0, gfn, NPAGES), 0);
    }
    if (wrote && wait_console(console, "XT-LEND: revoked", line, sizeof(line), 0) == 0) revoked_seen = true;
  }
  check(read_ok && wrote && revoked_seen, "retry_guest_completed", "read %d wrote %d revoked %d", read_ok, wrote,
        revoked_seen);
  /* One retried first touch per page; the write to the read-only page and the reads after the
   * revocation are completed. */
  check(sv.retried == NPAGES, "retry_first_touches_retried", "ioreqs %u offered %u retried %u completed %u", sv.ioreqs,
        sv.offered, sv.retried, sv.completed);
  result(",\"retry_server\":{\"ioreqs\":%u,\"offered\":%u,\"retried\":%u,\"completed\":%u}", sv.ioreqs,
         sv.offered, sv.retried, sv.completed);
  xc_dominfo_t info;
  bool alive = xc_domain_getinfo(xch, domid, 1, &info) == 1 && info.domid == domid && !info.crashed && !info.shutdown;
  check(alive, "retry_guest_not_crashed", "domid %u", domid);
  xendevicemodel_destroy_ioreq_server(dmod, domid, id);
  xenforeignmemory_unmap_resource(fmem, res);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "xl destroy %u", domid);
  check(system(cmd) == 0, "retry_guest_destroyed", "%s", cmd);
  xenforeignmemory_unmap(fmem, (void *)own, NPAGES);
  check(xc_domain_decrease_reservation_exact(xch, 0, NPAGES, 0, mfn) == 0, "retry_pages_freed", "");
  xc_domain_setmaxmem(xch, 0, max_kb);
  return failures ? 1 : 0;
}

/*
 * IORESP_RETRY by kind of access (guest/retry_probe.c). A server sees each request, logs it and
 * answers by policy: a request Xen offered for retry (bit set) whose page is not lent yet lends the
 * page and answers STATE_IORESP_RETRY; everything else is completed from dom0's own pages (reads
 * and writes, also data_is_ptr requests through a mapping of the guest's page) or, on port PORT,
 * with PIO_VALUE. A hostile server instead answers STATE_IORESP_RETRY to every request Xen did
 * not offer: Xen must crash the guest (as stock 4.17 does for any unknown state).
 */
#define PORT 0x5e0
#define PIO_VALUE 0x12345678u
#define MOVS_OFF 64
#define STOS_OFF 64
#define REPS 16
#define MOVS_WORD(i) (0x3D000000u | (i))
#define STOS_WORD 0x5A5A5A5Au
#define SPLIT_LOW 0x10101010u
#define MAX_LOG 64
#define IOREQ_TYPE_PIO 0

struct logged {
  struct ioreq_slot req;
  unsigned int answer;
};

struct kinds_server {
  uint16_t domid;
  uint64_t gfn;
  const xen_pfn_t *mfn;
  volatile uint8_t *own;
  xenforeignmemory_handle *fmem;
  bool hostile;
  bool lent[NPAGES];
  struct logged log[MAX_LOG];
  unsigned int nlog, dropped;
};

/* Copies a data_is_ptr request's bytes between the guest's page and ours (df=0, one page each). */
static bool copy_ptr(struct kinds_server *sv, const struct ioreq_slot *req, volatile uint8_t *pg, uint64_t off) {
  uint64_t bytes = (uint64_t)req->count * req->size, goff = req->data & (PAGE - 1);
  if (req->df || req->size > 8 || bytes > PAGE || off + bytes > PAGE || goff + bytes > PAGE) return false;
  xen_pfn_t gpfn = req->data >> 12;
  int err = 0;
  uint8_t *g = xenforeignmemory_map(sv->fmem, sv->domid, PROT_READ | PROT_WRITE, 1, &gpfn, &err);
  if (!g || err) return false;
  if (req->dir == 0 /* write: guest RAM -> device */) memcpy((void *)(pg + off), g + goff, bytes);
  else memcpy(g + goff, (const void *)(pg + off), bytes);
  xenforeignmemory_unmap(sv->fmem, g, 1);
  return true;
}

/* Completes an MMIO request of the window from dom0's own pages (bounded to one page). */
static void complete_mmio(struct kinds_server *sv, struct ioreq_slot *req, uint64_t page) {
  volatile uint8_t *pg = sv->own + page * PAGE;
  uint64_t off = req->addr & (PAGE - 1);
  if (req->data_is_ptr) {
    copy_ptr(sv, req, pg, off);
    return;
  }
  if (req->size > 8 || off + (uint64_t)req->size * (req->count ? req->count : 1) > PAGE) return;
  if (req->dir == 1 /* read */) {
    req->data = 0;
    memcpy(&req->data, (const void *)(pg + off), req->size);
    return;
  }
  for (uint32_t i = 0; i < req->count; i++) memcpy((void *)(pg + off + (uint64_t)i * req->size), &req->data, req->size);
}

static unsigned int kinds_answer(struct kinds_server *sv, struct ioreq_slot *req) {
  uint64_t page = (req->addr >> 12) - sv->gfn;
  /* Only the guest's accesses: Xen also broadcasts requests (IOREQ_TYPE_INVALIDATE when the guest
   * gives memory back at boot) to every server, which must be completed. */
  bool ours = (req->type == IOREQ_TYPE_COPY && page < NPAGES) || (req->type == IOREQ_TYPE_PIO && req->addr == PORT);
  if (sv->hostile && ours && !req->retry) return STATE_IORESP_RETRY;
  if (req->type == IOREQ_TYPE_PIO) {
    if (req->dir == 1) req->data = req->addr == PORT ? PIO_VALUE : ~0ULL;
    return STATE_IORESP_READY;
  }
  if (req->type != IOREQ_TYPE_COPY || page >= NPAGES) {
    req->data = ~0ULL;
    return STATE_IORESP_READY;
  }
  if (req->retry && !sv->lent[page]) {
    sv->lent[page] = lend_pages(sv->domid, sv->mfn[page], sv->gfn + page, 1, XEN_DMOP_LEND_WRITABLE, 0, NULL) == 0;
    if (sv->lent[page]) return STATE_IORESP_RETRY;
  }
  complete_mmio(sv, req, page);
  return STATE_IORESP_READY;
}

static void kinds_serve_slot(struct kinds_server *sv, volatile struct ioreq_slot *slot, xenevtchn_handle *xce,
                             evtchn_port_t port) {
  if (slot->state != STATE_IOREQ_READY) return;
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  struct ioreq_slot req = *slot;
  slot->state = STATE_IOREQ_INPROCESS;
  struct ioreq_slot logged = req;
  unsigned int state = kinds_answer(sv, &req);
  if (sv->nlog < MAX_LOG) sv->log[sv->nlog++] = (struct logged){logged, state};
  else sv->dropped++;
  slot->data = req.data;
  __atomic_thread_fence(__ATOMIC_RELEASE);
  slot->state = state;
  xenevtchn_notify(xce, port);
}

static void log_json(const struct kinds_server *sv) {
  result(",\"requests\":[");
  for (unsigned int i = 0; i < sv->nlog; i++) {
    const struct ioreq_slot *r = &sv->log[i].req;
    bool mmio = r->type == IOREQ_TYPE_COPY;
    char other[16];
    snprintf(other, sizeof(other), "type-%u", r->type);
    result("%s{\"type\":\"%s\",\"page\":%" PRId64 ",\"off\":%" PRIu64 ",\"size\":%u,\"count\":%u,\"dir\":\"%s\","
           "\"ptr\":%u,\"retry\":%u,\"answer\":\"%s\"}",
           i ? "," : "", mmio ? "mmio" : r->type == IOREQ_TYPE_PIO ? "pio" : other,
           mmio ? (int64_t)((r->addr >> 12) - sv->gfn) : -1, mmio ? r->addr & (PAGE - 1) : r->addr, r->size, r->count,
           r->dir ? "read" : "write", r->data_is_ptr, r->retry, sv->log[i].answer == STATE_IORESP_RETRY ? "retry" : "ready");
  }
  result("],\"requests_dropped\":%u", sv->dropped);
}

/* The first logged request matching the predicate's arguments, or NULL. */
static const struct logged *find_req(const struct kinds_server *sv, unsigned int type, int64_t page, int64_t off,
                                     int ptr, int retry) {
  for (unsigned int i = 0; i < sv->nlog; i++) {
    const struct ioreq_slot *r = &sv->log[i].req;
    int64_t pg = r->type == IOREQ_TYPE_COPY ? (int64_t)((r->addr >> 12) - sv->gfn) : -1;
    int64_t o = r->type == IOREQ_TYPE_COPY ? (int64_t)(r->addr & (PAGE - 1)) : (int64_t)r->addr;
    if (r->type == type && (page < 0 || pg == page) && (off < 0 || o == off) && (ptr < 0 || r->data_is_ptr == ptr) &&
        (retry < 0 || r->retry == retry))
      return &sv->log[i];
  }
  return NULL;
}

static bool guest_crashed(uint16_t domid) {
  xc_dominfo_t info;
  return xc_domain_getinfo(xch, domid, 1, &info) == 1 && info.domid == domid && info.crashed;
}

/*
 * Serves DOMID (a paused PVH guest running retry_probe MODE GFN) until its console shows
 * "XT-RP: done" or it crashed (bounded by 400 s: it boots under TCG first). Returns 1 only when the
 * server could not be set up.
 */
static int serve_kinds(uint16_t domid, uint64_t gfn, const char *console, uint8_t flags, struct kinds_server *sv,
                       xen_pfn_t *mfn, uint64_t *max_kb, bool *crashed) {
  char line[512];
  sv->fmem = xenforeignmemory_open(NULL, 0);
  xendevicemodel_handle *dmod = xendevicemodel_open(NULL, 0);
  xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
  if (!sv->fmem || !dmod || !xce) return perror("open Xen libraries"), 1;
  sv->own = (volatile uint8_t *)alloc_own_pages(sv->fmem, mfn, max_kb);
  if (!sv->own) return 1;
  *(volatile uint32_t *)(sv->own + PAGE - 4) = SPLIT_LOW;
  sv->domid = domid;
  sv->gfn = gfn;
  sv->mfn = mfn;

  struct dm_op op = {.op = XEN_DMOP_create_ioreq_server, .u.create = {.flags = flags}};
  int e = dm_op(domid, &op);
  ioservid_t id = op.u.create.id;
  void *addr = NULL;
  xenforeignmemory_resource_handle *res =
      e ? NULL
        : xenforeignmemory_map_resource(sv->fmem, domid, XENMEM_resource_ioreq_server, id,
                                        XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &addr,
                                        PROT_READ | PROT_WRITE, 0);
  int r1 = res ? xendevicemodel_map_io_range_to_ioreq_server(dmod, domid, id, 1, gfn << 12, ((gfn + NPAGES) << 12) - 1) : -1;
  int r1p = r1 ? -1 : xendevicemodel_map_io_range_to_ioreq_server(dmod, domid, id, 0, PORT, PORT + 3);
  int r2 = r1p ? -1 : xendevicemodel_set_ioreq_server_state(dmod, domid, id, 1);
  volatile struct ioreq_slot *slot = addr;
  int port = r2 ? -1 : xenevtchn_bind_interdomain(xce, domid, slot[0].vp_eport);
  check(!e && res && !r1 && !r1p && !r2 && port >= 0, "kinds_server_up",
        "flags %u create %d resource %s mmio %d pio %d enable %d port %d", flags, e, res ? "ok" : "failed", r1, r1p, r2, port);
  if (port < 0) return 1;

  struct pollfd pfd = {.fd = xenevtchn_fd(xce), .events = POLLIN};
  check(xc_domain_unpause(xch, domid) == 0, "kinds_guest_unpaused", "domid %u", domid);
  bool done = false;
  *crashed = false;
  int hostile_deadline = -1; /* a crash follows the hostile answer at once: 30 s after it, stop */
  for (int i = 0; i < 400 * 10 && !done && !*crashed && i != hostile_deadline; i++) {
    if (hostile_deadline < 0 && sv->nlog && sv->hostile && sv->log[sv->nlog - 1].answer == STATE_IORESP_RETRY &&
        !sv->log[sv->nlog - 1].req.retry)
      hostile_deadline = i + 30 * 10;
    if (poll(&pfd, 1, 100) > 0) {
      xenevtchn_port_or_error_t p = xenevtchn_pending(xce);
      if (p >= 0) xenevtchn_unmask(xce, p);
    }
    kinds_serve_slot(sv, &slot[0], xce, port);
    done = wait_console(console, "XT-RP: done", line, sizeof(line), 0) == 0;
    if (i % 10 == 0) *crashed = guest_crashed(domid);
  }
  if (!done && !*crashed) *crashed = guest_crashed(domid);
  xendevicemodel_destroy_ioreq_server(dmod, domid, id);
  xenforeignmemory_unmap_resource(sv->fmem, res);
  xendevicemodel_close(dmod);
  xenevtchn_close(xce);
  return 0; /* the callers check what happened */
}

static void console_value(const char *console, const char *prefix, char *line, size_t len, unsigned long long *v) {
  *v = ~0ULL;
  if (wait_console(console, prefix, line, len, 0) == 0) sscanf(line + strlen(prefix), "%llx", v);
}

static void destroy_and_free(uint16_t domid, struct kinds_server *sv, xen_pfn_t *mfn, uint64_t max_kb) {
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "xl destroy %u", domid);
  check(system(cmd) == 0, "kinds_guest_destroyed", "%s", cmd);
  xenforeignmemory_unmap(sv->fmem, (void *)sv->own, NPAGES);
  check(xc_domain_decrease_reservation_exact(xch, 0, NPAGES, 0, mfn) == 0, "kinds_pages_freed", "");
  xc_domain_setmaxmem(xch, 0, max_kb);
  xenforeignmemory_close(sv->fmem);
}

/* retry-kinds: every kind of access completes correctly; only first accesses of MMIO are offered. */
static int retry_kinds(uint16_t domid, uint64_t gfn, const char *console) {
  static struct kinds_server sv;
  xen_pfn_t mfn[NPAGES];
  uint64_t max_kb;
  bool crashed;
  char line[512];
  unsigned long long v;
  if (serve_kinds(domid, gfn, console, XEN_DMOP_IOREQ_SERVER_RETRY, &sv, mfn, &max_kb, &crashed)) return 1;
  log_json(&sv);
  check(!crashed && wait_console(console, "XT-RP: done", line, sizeof(line), 0) == 0, "kinds_guest_completed",
        "crashed %d", crashed);

  /* Split: the first chunk (page 0) is offered and retried; the second (page 1) never is. */
  const uint64_t split_want = ((uint64_t)MAGIC(1) << 32) | SPLIT_LOW;
  console_value(console, "XT-RP: split ", line, sizeof(line), &v);
  check(v == split_want, "split_read_value", "%s, want %016" PRIx64, line, split_want);
  const struct logged *first = find_req(&sv, IOREQ_TYPE_COPY, 0, PAGE - 4, 0, 1);
  check(first && first->answer == STATE_IORESP_RETRY, "split_first_chunk_offered_and_retried", "%s",
        first ? "page 0 +4092 offered" : "no offered request for page 0 +4092");
  check(find_req(&sv, IOREQ_TYPE_COPY, 1, 0, 0, 1) == NULL && find_req(&sv, IOREQ_TYPE_COPY, 1, 0, 0, 0) != NULL,
        "split_second_chunk_not_offered", "page 1 +0: offered %d, not offered %d",
        find_req(&sv, IOREQ_TYPE_COPY, 1, 0, 0, 1) != NULL, find_req(&sv, IOREQ_TYPE_COPY, 1, 0, 0, 0) != NULL);

  /* rep movs RAM -> MMIO is data_is_ptr: never offered (it is retired when sent); the data arrives. */
  unsigned int movs_ok = 0;
  for (unsigned int i = 0; i < REPS; i++) movs_ok += ((volatile uint32_t *)(sv.own + 2 * PAGE + MOVS_OFF))[i] == MOVS_WORD(i);
  console_value(console, "XT-RP: movs ", line, sizeof(line), &v);
  check(find_req(&sv, IOREQ_TYPE_COPY, 2, -1, 1, 1) == NULL && find_req(&sv, IOREQ_TYPE_COPY, 2, -1, 1, 0) != NULL,
        "rep_movs_ptr_request_not_offered", "page 2 data_is_ptr: offered %d, not offered %d",
        find_req(&sv, IOREQ_TYPE_COPY, 2, -1, 1, 1) != NULL, find_req(&sv, IOREQ_TYPE_COPY, 2, -1, 1, 0) != NULL);
  check(movs_ok == REPS && v == 0x10, "rep_movs_data_arrives", "dom0 page 2: %u of %u words; guest: %s", movs_ok, REPS,
        line);

  /* rep stos into MMIO is one buffered request per pass: offered, retried, re-executed natively. */
  unsigned int stos_ok = 0;
  for (unsigned int i = 0; i < REPS; i++) stos_ok += ((volatile uint32_t *)(sv.own + 3 * PAGE + STOS_OFF))[i] == STOS_WORD;
  uint32_t after = ((volatile uint32_t *)(sv.own + 3 * PAGE + STOS_OFF))[REPS];
  const struct logged *stos = find_req(&sv, IOREQ_TYPE_COPY, 3, STOS_OFF, 0, 1);
  console_value(console, "XT-RP: stos ", line, sizeof(line), &v);
  check(stos && stos->answer == STATE_IORESP_RETRY && stos->req.dir == 0, "rep_stos_offered_and_retried", "%s",
        stos ? "page 3 write offered" : "no offered request for page 3");
  check(stos_ok == REPS && after == 0 && v == 0x10, "rep_stos_reexecuted_exactly", "dom0 page 3: %u of %u words, next %08x; guest: %s",
        stos_ok, REPS, after, line);

  /* PIO is never offered. */
  const struct logged *pio = find_req(&sv, IOREQ_TYPE_PIO, -1, PORT, -1, -1);
  console_value(console, "XT-RP: pio ", line, sizeof(line), &v);
  check(pio && !pio->req.retry && v == PIO_VALUE, "pio_not_offered", "%s; guest: %s",
        pio ? (pio->req.retry ? "offered" : "not offered") : "no PIO request seen", line);
  destroy_and_free(domid, &sv, mfn, max_kb);
  return failures ? 1 : 0;
}

/*
 * retry-hostile MODE: the server answers STATE_IORESP_RETRY to a request Xen did not offer; the
 * guest must be crashed, and must not get past the access. noflag: server without the flag, a plain
 * read; pio: flagged server, an inl; split: flagged server, the second chunk of a split read.
 */
static int retry_hostile(const char *mode, uint16_t domid, uint64_t gfn, const char *console) {
  static struct kinds_server sv;
  xen_pfn_t mfn[NPAGES];
  uint64_t max_kb;
  bool crashed;
  char line[512];
  uint8_t flags = strcmp(mode, "noflag") == 0 ? 0 : XEN_DMOP_IOREQ_SERVER_RETRY;
  sv.hostile = true;
  if (serve_kinds(domid, gfn, console, flags, &sv, mfn, &max_kb, &crashed)) return 1;
  log_json(&sv);
  const struct logged *bad = NULL;
  for (unsigned int i = 0; i < sv.nlog && !bad; i++)
    if (sv.log[i].answer == STATE_IORESP_RETRY && !sv.log[i].req.retry) bad = &sv.log[i];
  bool want_type = bad && (strcmp(mode, "pio") == 0 ? bad->req.type == IOREQ_TYPE_PIO : bad->req.type == IOREQ_TYPE_COPY);
  bool want_where = bad && (strcmp(mode, "split") != 0 || ((bad->req.addr >> 12) - gfn == 1 && (bad->req.addr & (PAGE - 1)) == 0));
  check(want_type && want_where, "hostile_retry_sent_to_unoffered_request", "%s", bad ? "answered" : "no unoffered request");
  check(crashed, "hostile_retry_crashes_guest", "domid %u crashed %d", domid, crashed);
  const char *past = strcmp(mode, "noflag") == 0 ? "XT-RP: touch" : strcmp(mode, "pio") == 0 ? "XT-RP: pio" : "XT-RP: split";
  check(wait_console(console, past, line, sizeof(line), 0) != 0, "hostile_access_never_completed", "%s", line);
  destroy_and_free(domid, &sv, mfn, max_kb);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: xen_ext_test query DOMID | run DOMID GFN CONSOLE_LOG ZOMBIE_DOMID\n");
    return 2;
  }
  privcmd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
  if (privcmd < 0) return perror("/dev/xen/privcmd"), 1;
  uint16_t domid = (uint16_t)strtoul(argv[2], NULL, 0);
  if (strcmp(argv[1], "query") == 0) {
    struct dm_ext_info info = {0};
    int e = query(domid, &info);
    printf("{\"rc\":%d,\"errno\":%d,\"version\":%u,\"features\":%u}\n", e ? -1 : 0, e, info.version, info.features);
    return e == 0 ? 0 : e == EOPNOTSUPP ? 3 : 1;
  }
  if (strcmp(argv[1], "retry-flag") == 0) {
    int retry = try_server_flags(domid, XEN_DMOP_IOREQ_SERVER_RETRY), unknown = try_server_flags(domid, 0x2);
    printf("{\"retry_flag_errno\":%d,\"unknown_flag_errno\":%d}\n", retry, unknown);
    return unknown != EINVAL ? 1 : retry == 0 ? 0 : retry == EINVAL ? 3 : 1;
  }
  if (strcmp(argv[1], "hold") == 0 && argc == 4) {
    xenforeignmemory_handle *fmem = xenforeignmemory_open(NULL, 0);
    xen_pfn_t gfn = strtoull(argv[3], NULL, 0);
    int err = 0;
    void *p = fmem ? xenforeignmemory_map(fmem, domid, PROT_READ, 1, &gfn, &err) : NULL;
    if (!p || err) return fprintf(stderr, "cannot map gfn %#lx of %u: %d\n", (unsigned long)gfn, domid, err), 1;
    printf("held\n");
    fflush(stdout);
    for (;;) pause();
  }
  if (strcmp(argv[1], "retry") == 0 && argc == 5) {
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) return perror("xc_interface_open"), 1;
    result("{\"mode\":\"retry\"");
    int rc = retry(domid, strtoull(argv[3], NULL, 0), argv[4]);
    printf("%s,\"failures\":%d}\n", results, failures);
    return rc;
  }
  if ((strcmp(argv[1], "retry-kinds") == 0 && argc == 5) || (strcmp(argv[1], "retry-hostile") == 0 && argc == 6)) {
    bool kinds = argv[1][6] == 'k';
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) return perror("xc_interface_open"), 1;
    if (!kinds) domid = (uint16_t)strtoul(argv[3], NULL, 0);
    result("{\"mode\":\"%s\"", kinds ? "kinds" : argv[2]);
    int rc = kinds ? retry_kinds(domid, strtoull(argv[3], NULL, 0), argv[4])
                   : retry_hostile(argv[2], domid, strtoull(argv[4], NULL, 0), argv[5]);
    printf("%s,\"failures\":%d}\n", results, failures);
    return rc;
  }
  if (strcmp(argv[1], "run") != 0 || argc != 6) return fprintf(stderr, "bad arguments\n"), 2;
  xch = xc_interface_open(NULL, NULL, 0);
  if (!xch) return perror("xc_interface_open"), 1;
  result("{");
  struct dm_ext_info info;
  int e = query(domid, &info);
  check(e == 0 && info.version == XEN_DMOP_DM_EXT_VERSION &&
            info.features == (XEN_DMOP_DM_EXT_LEND_PAGES | XEN_DMOP_DM_EXT_IORESP_RETRY),
        "query", "errno %d version %u features %#x", e, info.version, info.features);
  int rc = e ? 1 : run(domid, strtoull(argv[3], NULL, 0), argv[4], (uint16_t)strtoul(argv[5], NULL, 0));
  printf("%s,\"failures\":%d}\n", results, failures);
  return rc;
}
