// Guest side of the xen-ext scenario: reads the pages dom0 lent at GFN argv[1] (4 pages: rw, rw,
// ro, and page 0 again at +3), writes to a rw and to the ro page, then waits until the lent pages
// are revoked (the GFN is a hole again: reads return all ones). Progress lines go to the console
// as "XT-LEND: ...", which the dom0 test program follows in xenconsoled's log. It never exits: the
// test destroys the guest (with pages lent, to check Xen's teardown).
/*
 * guest/build.sh compiles every guest program with -mavx2; this one runs where the guest's CPU
 * policy may lack AVX (a VEX-encoded store in its poll loop raised SIGILL under TCG): no AVX here.
 */
#pragma GCC target("no-avx")
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NPAGES 4
#define PAGE 4096UL
#define GUEST_RW_MARK 0xC0FFEE01u
#define GUEST_RO_MARK 0xBAD00002u
#define WORD_OF_WRITES 2 /* 32-bit word index written by the guest (offset 8) */

static volatile uint32_t *word(volatile uint8_t *base, unsigned int page, unsigned int idx) {
  return (volatile uint32_t *)(base + page * PAGE) + idx;
}

static void report_words(const char *what, volatile uint8_t *base) {
  printf("XT-LEND: %s", what);
  for (unsigned int p = 0; p < NPAGES; p++) printf(" p%u=%08x", p, *word(base, p, 0));
  printf("\n");
  fflush(stdout);
}

static volatile uint8_t *map_window(int fd, unsigned long gfn) {
  void *p = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(gfn * PAGE));
  return p == MAP_FAILED ? NULL : p;
}

/*
 * Waits (bounded) until the first word of every page reads all ones: the entries are gone. Each
 * look goes through a fresh mapping, so that it walks the p2m again: QEMU's TCG keeps a combined
 * guest-virtual -> host translation that Xen's ASID-based flush on SVM does not reach, so under
 * TCG a stale translation of the old mapping could otherwise outlive the revocation.
 */
static int wait_revoked(int fd, unsigned long gfn, volatile uint8_t **base, int seconds) {
  for (int i = 0; i < seconds * 10; i++) {
    unsigned int gone = 0;
    munmap((void *)*base, NPAGES * PAGE);
    *base = map_window(fd, gfn);
    if (!*base) return -1;
    for (unsigned int p = 0; p < NPAGES; p++) gone += *word(*base, p, 0) == 0xffffffffu;
    if (gone == NPAGES) return 0;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: lend_reader GFN\n");
    return 2;
  }
  unsigned long gfn = strtoul(argv[1], NULL, 0);
  int fd = open("/dev/mem", O_RDWR | O_SYNC);
  if (fd < 0) {
    perror("XT-LEND: open /dev/mem");
    return 1;
  }
  volatile uint8_t *base = map_window(fd, gfn);
  if (!base) {
    perror("XT-LEND: mmap /dev/mem");
    return 1;
  }
  report_words("read", base);
  *word(base, 1, WORD_OF_WRITES) = GUEST_RW_MARK;
  *word(base, 2, WORD_OF_WRITES) = GUEST_RO_MARK;
  printf("XT-LEND: wrote rw=%08x ro-readback=%08x\n", *word(base, 1, WORD_OF_WRITES), *word(base, 2, WORD_OF_WRITES));
  fflush(stdout);
  if (wait_revoked(fd, gfn, &base, 120) != 0) {
    if (base) report_words("not-revoked", base);
    for (;;) pause(); /* stay alive: the dom0 side reports the failure and destroys the guest */
  }
  report_words("revoked", base);
  /* Stay alive: dom0 lends again and destroys this guest with the pages still lent. */
  for (;;) pause();
}
