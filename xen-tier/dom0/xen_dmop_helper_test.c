// dom0 side of the kernel helper's `xen-dmop` back-end test (xen-ext scenarios).
//
//   xen_dmop_helper_test bind DOMID
//       BIND with backend xen-dmop; prints the errno. Exit 0 when bound, 3 when refused with
//       EOPNOTSUPP (a hypervisor without XEN_DMOP_lend_pages), 1 otherwise.
//   xen_dmop_helper_test run DOMID GFN GUEST_CONSOLE_LOG
//       DOMID is a paused PVH guest running lend_reader GFN. Registers a 4-page anonymous buffer
//       with the helper (page 2 read-only in this process), MAPs it at GFN (pages 0, 1, 3 writable,
//       page 2 read-only), unpauses the guest, checks what it reads and writes, then drops the
//       buffer's pages (MADV_DONTNEED): the helper's invalidate callback must revoke them through
//       XEN_DMOP_revoke_pages, which the guest sees. One JSON line; exit 0 only if all checks pass.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include <xenctrl.h>

#include "../../kernel-helper/include/uapi/linux/xvgpu_helper.h"

#define NPAGES 4
#define PAGE 4096UL
#define GUEST_RW_MARK 0xC0FFEE01u
#define MAGIC(p) (0x4C454E00u | (p))

static int failures;

static void check(bool ok, const char *name, const char *detail) {
  printf(",\"%s\":{\"ok\":%s,\"detail\":\"%s\"}", name, ok ? "true" : "false", detail);
  fprintf(stderr, "%s %s: %s\n", ok ? "PASS" : "FAIL", name, detail);
  failures += !ok;
}

static int bind_helper(int fd, uint32_t domid, uint64_t gfn) {
  struct xvgpu_bind b = {.size = sizeof(b), .domid = domid, .first_gfn = gfn, .pages = NPAGES,
                         .backend = XVGPU_P2M_XEN_DMOP};
  return ioctl(fd, XVGPU_IOC_BIND, &b) == 0 ? 0 : errno;
}

static int map_pages(int fd, uint32_t range, uint64_t gfn, uint64_t page, uint32_t n, uint32_t flags) {
  struct xvgpu_map m = {.size = sizeof(m), .range_id = range, .gfn = gfn, .page_in_range = page, .pages = n,
                        .flags = flags};
  return ioctl(fd, XVGPU_IOC_MAP, &m) == 0 ? 0 : errno;
}

static int run(int fd, uint32_t domid, uint64_t gfn, const char *console) {
  char line[512], want[160], detail[600];
  int e = bind_helper(fd, domid, gfn);
  snprintf(detail, sizeof(detail), "errno %d", e);
  check(e == 0, "bind_xen_dmop", detail);
  if (e) return 1;

  volatile uint32_t *buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return perror("mmap"), 1;
  for (unsigned int p = 0; p < NPAGES; p++) buf[p * 1024] = MAGIC(p == 3 ? 0 : p);
  mprotect((void *)&buf[2 * 1024], PAGE, PROT_READ);
  struct xvgpu_register reg = {.size = sizeof(reg), .va = (uintptr_t)buf, .length = NPAGES * PAGE};
  e = ioctl(fd, XVGPU_IOC_REGISTER, &reg) == 0 ? 0 : errno;
  int m_rw = e ? -1 : map_pages(fd, reg.range_id, gfn, 0, 2, XVGPU_MAP_WRITE);
  int m_ro = e ? -1 : map_pages(fd, reg.range_id, gfn + 2, 2, 1, 0);
  int m_rw3 = e ? -1 : map_pages(fd, reg.range_id, gfn + 3, 3, 1, XVGPU_MAP_WRITE);
  snprintf(detail, sizeof(detail), "register %d map rw %d ro %d rw %d", e, m_rw, m_ro, m_rw3);
  check(!e && !m_rw && !m_ro && !m_rw3, "register_and_map", detail);

  xc_interface *xch = xc_interface_open(NULL, NULL, 0);
  check(xch && xc_domain_unpause(xch, domid) == 0, "guest_unpaused", "");
  int r = wait_console(console, "XT-LEND: read", line, sizeof(line), 300);
  snprintf(want, sizeof(want), "XT-LEND: read p0=%08x p1=%08x p2=%08x p3=%08x", MAGIC(0), MAGIC(1), MAGIC(2), MAGIC(0));
  check(r == 0 && strcmp(line, want) == 0, "guest_reads_buffer", line);
  r = wait_console(console, "XT-LEND: wrote", line, sizeof(line), 60);
  snprintf(detail, sizeof(detail), "%s; buffer p1=%08x p2=%08x", line, buf[1024 + 2], buf[2 * 1024 + 2]);
  check(r == 0 && buf[1024 + 2] == GUEST_RW_MARK && buf[2 * 1024 + 2] == 0, "guest_writes_rw_not_ro", detail);

  /* The kernel takes the pages back: the helper's invalidate callback revokes them. */
  madvise((void *)buf, NPAGES * PAGE, MADV_DONTNEED);
  r = wait_console(console, "XT-LEND: revoked", line, sizeof(line), 60);
  check(r == 0, "invalidate_revokes", line);
  struct xvgpu_stats st = {.size = sizeof(st)};
  e = ioctl(fd, XVGPU_IOC_STATS, &st) == 0 ? 0 : errno;
  snprintf(detail, sizeof(detail), "errno %d invalidations %" PRIu64 " revoked %" PRIu64 " resident %" PRIu64, e,
           (uint64_t)st.invalidations, (uint64_t)st.revoked_pages, (uint64_t)st.resident_pages);
  check(!e && st.revoked_pages == NPAGES && st.resident_pages == 0, "helper_counts_revocation", detail);
  printf(",\"stats\":{\"invalidations\":%" PRIu64 ",\"revoked_pages\":%" PRIu64 ",\"resident_pages\":%" PRIu64 "}",
         (uint64_t)st.invalidations, (uint64_t)st.revoked_pages, (uint64_t)st.resident_pages);
  if (xch) xc_interface_close(xch);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return fprintf(stderr, "usage: xen_dmop_helper_test bind DOMID | run DOMID GFN CONSOLE_LOG\n"), 2;
  int fd = open("/dev/xvgpu_helper", O_RDWR | O_CLOEXEC);
  if (fd < 0) return perror("/dev/xvgpu_helper"), 1;
  uint32_t domid = (uint32_t)strtoul(argv[2], NULL, 0);
  if (strcmp(argv[1], "bind") == 0) {
    int e = bind_helper(fd, domid, 0xd0000);
    printf("{\"errno\":%d}\n", e);
    return e == 0 ? 0 : e == EOPNOTSUPP ? 3 : 1;
  }
  if (strcmp(argv[1], "run") != 0 || argc != 5) return fprintf(stderr, "bad arguments\n"), 2;
  printf("{\"backend\":\"xen-dmop\"");
  failures = 0;
  int rc = run(fd, domid, strtoull(argv[3], NULL, 0), argv[4]);
  printf(",\"failures\":%d}\n", failures);
  return rc;
}
