// Guest side of the xen-ext scenario's IORESP_RETRY cases: accesses of different kinds to a window
// of 4 pages at GFN (served by dom0's xen_ext_test retry-kinds / retry-hostile) and to I/O port
// PORT, each reported on the console as "XT-RP: ...". Modes:
//   kinds  split 8-byte read across pages 0/1; rep movsl RAM -> page 2 (and read back); rep stosl
//          into page 3 (and read back); inl from PORT; then "XT-RP: done".
//   touch  one 4-byte read of page 0.   split  the split read only.   pio  the inl only.
// It never exits (dom0 checks the guest's state, then destroys it).
#pragma GCC target("no-avx")
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <unistd.h>

#define NPAGES 4
#define PAGE 4096UL
#define PORT 0x5e0
#define MOVS_OFF 64
#define STOS_OFF 64
#define REPS 16
#define MOVS_WORD(i) (0x3D000000u | (i))
#define STOS_WORD 0x5A5A5A5Au

static uint32_t movs_src[REPS] __attribute__((aligned(64)));

static void say(const char *fmt, unsigned long long v) {
  printf(fmt, v);
  fflush(stdout);
}

static void split_read(volatile uint8_t *base) {
  uint64_t v;
  /* One 8-byte load at page 0 + 4092: Xen emulates it as two accesses, one per page. */
  __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(base + PAGE - 4) : "memory");
  say("XT-RP: split %016llx\n", (unsigned long long)v);
}

static void movs_write(volatile uint8_t *base) {
  for (unsigned int i = 0; i < REPS; i++) movs_src[i] = MOVS_WORD(i);
  void *dst = (void *)(base + 2 * PAGE + MOVS_OFF), *src = movs_src;
  unsigned long n = REPS;
  __asm__ volatile("cld; rep movsl" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
  unsigned int ok = 0;
  for (unsigned int i = 0; i < REPS; i++) ok += ((volatile uint32_t *)(base + 2 * PAGE + MOVS_OFF))[i] == MOVS_WORD(i);
  say("XT-RP: movs %llx\n", ok);
}

static void stos_write(volatile uint8_t *base) {
  void *dst = (void *)(base + 3 * PAGE + STOS_OFF);
  unsigned long n = REPS;
  __asm__ volatile("cld; rep stosl" : "+D"(dst), "+c"(n) : "a"(STOS_WORD) : "memory");
  unsigned int ok = 0;
  for (unsigned int i = 0; i < REPS; i++) ok += ((volatile uint32_t *)(base + 3 * PAGE + STOS_OFF))[i] == STOS_WORD;
  say("XT-RP: stos %llx\n", ok);
}

static void pio_read(void) {
  if (ioperm(PORT, 4, 1) != 0) {
    perror("XT-RP: ioperm");
    return;
  }
  say("XT-RP: pio %08llx\n", inl(PORT));
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: retry_probe kinds|touch|split|pio GFN\n");
    return 2;
  }
  const char *mode = argv[1];
  int fd = open("/dev/mem", O_RDWR | O_SYNC);
  void *p = fd < 0 ? MAP_FAILED : mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(strtoul(argv[2], NULL, 0) * PAGE));
  if (p == MAP_FAILED) {
    perror("XT-RP: map window");
    return 1;
  }
  volatile uint8_t *base = p;
  say("XT-RP: start %llu\n", 0);
  if (strcmp(mode, "touch") == 0) say("XT-RP: touch %08llx\n", *(volatile uint32_t *)base);
  if (strcmp(mode, "split") == 0 || strcmp(mode, "kinds") == 0) split_read(base);
  if (strcmp(mode, "kinds") == 0) {
    movs_write(base);
    stos_write(base);
  }
  if (strcmp(mode, "pio") == 0 || strcmp(mode, "kinds") == 0) pio_read();
  say("XT-RP: done %llu\n", 0);
  for (;;) pause();
}
