// bar_client MMIO_BASE PAGES [HOLD_S]: the Xen tier's PVH guest program. A polling virtio-gpu driver (the shape of
// src/guest/virtio-gpu-driver.ts, no interrupts: a PVH guest has no IO-APIC) on the virtio-mmio
// window at MMIO_BASE, through /dev/mem (STRICT_DEVMEM lets it map non-RAM ranges no driver
// claimed). It creates blobs in xvgpu's native context, places them in the host-visible region (the
// BAR window), and touches their pages with known patterns: 32-bit loads and stores, rep movs
// (memcpy), SSE and AVX vector moves. Then it revokes a blob (UNMAP_BLOB + UNREF: the host munmaps,
// its MMU notifier makes the kernel helper remove the p2m entries, the VRAM is overwritten with
// VRAM_POISON) and reads the old range and a new blob placed at the same addresses: any read that
// returns the poison reached a freed frame, a stale read. One JSON line: "XT-GUEST: result {...}".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define VRAM_POISON 0xdead5a1eu // src/platform/linux/vram-gpu.ts
#define XVGPU_CONTEXT_TYPE 0x7876u
#define QSIZE 8u
#define MAX_BLOB_PAGES 256u // BLOB_OFFSET + 256 pages stay inside the 2 * BLOB_OFFSET probe() requires
#define BLOB_OFFSET 0x100000u
#define FILL_VALUE 0xc0ffee00u

enum { R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVID = 0x008, R_DEVFEAT = 0x010, R_DEVFEATSEL = 0x014, R_DRVFEAT = 0x020,
       R_DRVFEATSEL = 0x024, R_QSEL = 0x030, R_QNUMMAX = 0x034, R_QNUM = 0x038, R_QREADY = 0x044, R_QNOTIFY = 0x050,
       R_ISR = 0x060, R_IACK = 0x064, R_STATUS = 0x070, R_QDESC = 0x080, R_QDRV = 0x090, R_QDEV = 0x0a0,
       R_SHMSEL = 0x0ac, R_SHMLEN = 0x0b0, R_SHMBASE = 0x0b8 };
enum { CMD_GET_CAPSET_INFO = 0x0108, CMD_GET_CAPSET = 0x0109, CMD_CREATE_BLOB = 0x010c, CMD_UNREF = 0x0102,
       CMD_CTX_CREATE = 0x0200, CMD_SUBMIT_3D = 0x0207, CMD_MAP_BLOB = 0x0208, CMD_UNMAP_BLOB = 0x0209 };
enum { RESP_OK_NODATA = 0x1100, RESP_OK_CAPSET_INFO = 0x1102, RESP_OK_CAPSET = 0x1103, RESP_OK_MAP_INFO = 0x1106 };
enum { CCMD_GEM_NEW = 2, CCMD_FILL = 4 };

struct page { uint8_t *va; uint64_t gpa; };
static volatile uint32_t *mmio;
static volatile uint8_t *bar;
static uint64_t bar_base, bar_len;
static int mem_fd;
static struct page ring, slots[QSIZE / 2];
static uint16_t avail_idx, used_seen;
static uint32_t seqno;
static int fail_line;
static const char *fail_what = "";

struct counts { uint64_t reads, writes, mismatches, stale, post_unmap_other, fill_mismatches, refault_mismatches, avx_pages; uint64_t first_ns, later_ns, pages_timed; };
static struct counts c;
static int have_avx2;
static uint32_t BLOB_PAGES; // pages per blob (argument): every one is touched, and in emulate-all each access is an ioreq

#define CHECK(cond, what) do { if (!(cond)) { fail_line = __LINE__; fail_what = (what); return -1; } } while (0)

static uint64_t now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (uint64_t)t.tv_sec * 1000000000u + t.tv_nsec; }
static uint32_t rd(uint32_t off) { return mmio[off / 4]; }
static void wr(uint32_t off, uint32_t v) { mmio[off / 4] = v; }

// A locked page of our own RAM and its guest-physical address (PFN == GFN in a PVH guest).
static int ram_page(struct page *p) {
  p->va = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
  CHECK(p->va != MAP_FAILED, "mmap ram");
  memset(p->va, 0, PAGE);
  int fd = open("/proc/self/pagemap", O_RDONLY);
  uint64_t e = 0;
  CHECK(fd >= 0 && pread(fd, &e, 8, (uintptr_t)p->va / PAGE * 8) == 8, "pagemap");
  close(fd);
  CHECK((e >> 63) & 1, "page not present");
  p->gpa = (e & ((1ull << 55) - 1)) * PAGE;
  return 0;
}

// Ring layout in one page: desc at 0, avail at 16*QSIZE, used at 1024.
#define DESC(i) ((volatile uint64_t *)(ring.va + 16 * (i)))
#define AVAIL ((volatile uint16_t *)(ring.va + 16 * QSIZE))
#define USED ((volatile uint16_t *)(ring.va + 1024))

static int command(const void *req, uint32_t req_len, void *resp, uint32_t resp_len, uint32_t want) {
  struct page *s = &slots[0];
  memcpy(s->va, req, req_len);
  memset(s->va + req_len, 0, resp_len);
  volatile uint8_t *d0 = ring.va, *d1 = ring.va + 16;
  *(volatile uint64_t *)d0 = s->gpa; *(volatile uint32_t *)(d0 + 8) = req_len; *(volatile uint16_t *)(d0 + 12) = 1; *(volatile uint16_t *)(d0 + 14) = 1;
  *(volatile uint64_t *)d1 = s->gpa + req_len; *(volatile uint32_t *)(d1 + 8) = resp_len; *(volatile uint16_t *)(d1 + 12) = 2; *(volatile uint16_t *)(d1 + 14) = 0;
  AVAIL[2 + avail_idx % QSIZE] = 0;
  __atomic_store_n(&AVAIL[1], (uint16_t)(avail_idx + 1), __ATOMIC_RELEASE);
  avail_idx++;
  wr(R_QNOTIFY, 0);
  for (int i = 0; i < 1000000 && __atomic_load_n(&USED[1], __ATOMIC_ACQUIRE) == used_seen; i++) usleep(10);
  CHECK(USED[1] != used_seen, "command never completed");
  used_seen = USED[1];
  uint32_t isr = rd(R_ISR);
  if (isr) wr(R_IACK, isr);
  memcpy(resp, s->va + req_len, resp_len);
  uint32_t type; memcpy(&type, resp, 4);
  if (type != want) { fprintf(stderr, "command 0x%x answered 0x%x\n", *(const uint32_t *)req, type); fail_line = __LINE__; fail_what = "error response"; return -1; }
  return 0;
}

static void hdr(uint8_t *b, uint32_t type, uint32_t ctx) { memset(b, 0, 24); memcpy(b, &type, 4); memcpy(b + 16, &ctx, 4); }
static void put32(uint8_t *b, uint32_t off, uint32_t v) { memcpy(b + off, &v, 4); }
static void put64(uint8_t *b, uint32_t off, uint64_t v) { memcpy(b + off, &v, 8); }

static int probe(void) {
  CHECK(rd(R_MAGIC) == 0x74726976 && rd(R_VERSION) == 2 && rd(R_DEVID) == 16, "no virtio-mmio v2 GPU");
  wr(R_STATUS, 0);
  wr(R_STATUS, 3);
  wr(R_DEVFEATSEL, 0); uint32_t lo = rd(R_DEVFEAT);
  wr(R_DEVFEATSEL, 1); uint32_t hi = rd(R_DEVFEAT);
  uint32_t want_lo = 1 | (1 << 3) | (1 << 4);
  CHECK((lo & want_lo) == want_lo && (hi & 1), "device lacks blob/context features");
  wr(R_DRVFEATSEL, 0); wr(R_DRVFEAT, want_lo);
  wr(R_DRVFEATSEL, 1); wr(R_DRVFEAT, 1);
  wr(R_STATUS, 11);
  CHECK(rd(R_STATUS) & 8, "features refused");
  wr(R_QSEL, 0);
  CHECK(rd(R_QNUMMAX) >= QSIZE, "queue too small");
  wr(R_QNUM, QSIZE);
  wr(R_QDESC, (uint32_t)ring.gpa); wr(R_QDESC + 4, (uint32_t)(ring.gpa >> 32));
  wr(R_QDRV, (uint32_t)(ring.gpa + 16 * QSIZE)); wr(R_QDRV + 4, (uint32_t)(ring.gpa >> 32));
  wr(R_QDEV, (uint32_t)(ring.gpa + 1024)); wr(R_QDEV + 4, (uint32_t)(ring.gpa >> 32));
  wr(R_QREADY, 1);
  CHECK(rd(R_QREADY) == 1, "queue refused");
  wr(R_STATUS, 15);
  wr(R_SHMSEL, 1);
  bar_len = rd(R_SHMLEN) | (uint64_t)rd(R_SHMLEN + 4) << 32;
  bar_base = rd(R_SHMBASE) | (uint64_t)rd(R_SHMBASE + 4) << 32;
  CHECK(bar_len != ~0ull && bar_len >= 2 * BLOB_OFFSET, "no host-visible region");
  return 0;
}

static int setup_context(void) {
  uint8_t req[128], resp[128];
  hdr(req, CMD_GET_CAPSET_INFO, 0); put32(req, 24, 0);
  if (command(req, 32, resp, 40, RESP_OK_CAPSET_INFO)) return -1;
  uint32_t id, size; memcpy(&id, resp + 24, 4); memcpy(&size, resp + 32, 4);
  CHECK(id == 6 && size <= 64, "capset 0 is not DRM");
  hdr(req, CMD_GET_CAPSET, 0); put32(req, 24, 6); put32(req, 28, 0);
  if (command(req, 32, resp, 24 + size, RESP_OK_CAPSET)) return -1;
  uint32_t type; memcpy(&type, resp + 24 + 16, 4);
  CHECK(type == XVGPU_CONTEXT_TYPE, "unexpected context type");
  hdr(req, CMD_CTX_CREATE, 1); put32(req, 24, 5); put32(req, 28, 6); memcpy(req + 32, "xvgpu", 5);
  memset(req + 37, 0, 96 - 37);
  return command(req, 96, resp, 24, RESP_OK_NODATA);
}

static int submit(const uint8_t *pkt, uint32_t len) {
  uint8_t req[128], resp[24];
  hdr(req, CMD_SUBMIT_3D, 1); put32(req, 24, len); put32(req, 28, 0); memcpy(req + 32, pkt, len);
  return command(req, 32 + len, resp, 24, RESP_OK_NODATA);
}

static int create_blob(uint32_t res, uint32_t blob_id, uint64_t size) {
  uint8_t req[56], resp[24];
  if (blob_id) {
    uint8_t pkt[32] = {0};
    put32(pkt, 0, CCMD_GEM_NEW); put32(pkt, 4, 32); put32(pkt, 8, ++seqno); put64(pkt, 16, size); put32(pkt, 24, blob_id);
    if (submit(pkt, 32)) return -1;
  }
  hdr(req, CMD_CREATE_BLOB, 1); put32(req, 24, res); put32(req, 28, 2 /* HOST3D */); put32(req, 32, 1 /* MAPPABLE */);
  put32(req, 36, 0); put64(req, 40, blob_id); put64(req, 48, size);
  return command(req, 56, resp, 24, RESP_OK_NODATA);
}

static int map_blob(uint32_t res, uint64_t offset) {
  uint8_t req[40], resp[32];
  hdr(req, CMD_MAP_BLOB, 0); put32(req, 24, res); put32(req, 28, 0); put64(req, 32, offset);
  return command(req, 40, resp, 32, RESP_OK_MAP_INFO);
}

static int unmap_and_unref(uint32_t res) {
  uint8_t req[32], resp[24];
  hdr(req, CMD_UNMAP_BLOB, 0); put32(req, 24, res); put32(req, 28, 0);
  if (command(req, 32, resp, 24, RESP_OK_NODATA)) return -1;
  hdr(req, CMD_UNREF, 0); put32(req, 24, res); put32(req, 28, 0);
  return command(req, 32, resp, 24, RESP_OK_NODATA);
}

// FILL through the native context; completion is the shmem page's seqno (read through the BAR).
static int fill(uint32_t res, uint32_t value, uint64_t len) {
  uint8_t pkt[40] = {0};
  uint32_t seq = ++seqno;
  put32(pkt, 0, CCMD_FILL); put32(pkt, 4, 40); put32(pkt, 8, seq); put32(pkt, 12, 0); put32(pkt, 16, res); put32(pkt, 20, value);
  put64(pkt, 24, 0); put64(pkt, 32, len);
  if (submit(pkt, 40)) return -1;
  volatile uint32_t *shmem = (volatile uint32_t *)bar;
  for (int i = 0; i < 100000 && shmem[0] < seq; i++) usleep(10);
  CHECK(shmem[0] >= seq, "FILL never completed");
  CHECK(shmem[16 + 1] == 0, "FILL failed on the host");
  return 0;
}

// A fresh mapping of the BAR before reading pages the host revoked: munmap's TLB flush drops the
// guest's translations, which QEMU TCG may otherwise keep past Xen's p2m flush (docs/xen-extension.md,
// TCG caveat), so a read then reaches whatever the p2m holds now.
static int remap_bar(void) {
  munmap((void *)bar, bar_len);
  bar = mmap(NULL, bar_len, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd, (off_t)bar_base);
  CHECK(bar != MAP_FAILED, "remap bar");
  return 0;
}

static uint32_t pattern(uint32_t page, uint32_t word, uint32_t gen) { return (page * 0x9e3779b1u) ^ (word * 0x85ebca6bu) ^ (gen * 0xc2b2ae35u) ^ 0x5a5a0000u; }

static void count_word(uint32_t got, uint32_t want) {
  c.reads++;
  if (got == want) return;
  if (got == VRAM_POISON) c.stale++;
  else c.mismatches++;
}

// memcpy with rep movsb (the string instruction Xen hands to an ioreq server as one request).
static void rep_movsb(void *dst, const volatile void *src, size_t n) {
  __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

// AVX (256-bit) loads and stores of one page, compiled for AVX2 alone so nothing else in the
// program is; called only when the guest's CPU reports AVX2 (have_avx2).
__attribute__((target("avx2"))) static void avx_copy_from(uint32_t *buf, const volatile uint32_t *p) {
  for (uint32_t w = 0; w < PAGE / 4; w += 8) _mm256_storeu_si256((__m256i *)(buf + w), _mm256_loadu_si256((const __m256i *)(p + w)));
}

__attribute__((target("avx2"))) static void avx_copy_to(volatile uint32_t *p, const uint32_t *buf) {
  for (uint32_t w = 0; w < PAGE / 4; w += 8) _mm256_storeu_si256((__m256i *)(p + w), _mm256_load_si256((const __m256i *)(buf + w)));
}

// One page: stores of generation gen by 32-bit moves, read back four ways; rep movs and AVX
// stores of gen+1 and gen+2, each read back.
static void touch_page(uint32_t pg, uint32_t gen) {
  volatile uint32_t *p = (volatile uint32_t *)(bar + BLOB_OFFSET + pg * PAGE);
  static uint32_t buf[PAGE / 4] __attribute__((aligned(32)));
  uint64_t t0 = now_ns();
  (void)p[0];
  uint64_t t1 = now_ns();
  (void)p[1];
  uint64_t t2 = now_ns();
  c.first_ns += t1 - t0; c.later_ns += t2 - t1; c.pages_timed++;
  for (uint32_t w = 0; w < PAGE / 4; w++) { p[w] = pattern(pg, w, gen); c.writes++; }
  for (uint32_t w = 0; w < PAGE / 4; w++) count_word(p[w], pattern(pg, w, gen));
  rep_movsb(buf, p, PAGE);
  for (uint32_t w = 0; w < PAGE / 4; w++) count_word(buf[w], pattern(pg, w, gen));
  for (uint32_t w = 0; w < PAGE / 4; w += 4) {
    __m128i v = _mm_loadu_si128((const __m128i *)(p + w));
    _mm_storeu_si128((__m128i *)(buf + w), v);
  }
  for (uint32_t w = 0; w < PAGE / 4; w++) count_word(buf[w], pattern(pg, w, gen));
  if (have_avx2) {
    avx_copy_from(buf, p);
    for (uint32_t w = 0; w < PAGE / 4; w++) count_word(buf[w], pattern(pg, w, gen));
  }
  for (uint32_t w = 0; w < PAGE / 4; w++) buf[w] = pattern(pg, w, gen + 1);
  rep_movsb((void *)p, buf, PAGE);
  c.writes += PAGE / 4;
  for (uint32_t w = 0; w < PAGE / 4; w++) count_word(p[w], pattern(pg, w, gen + 1));
  if (!have_avx2) return;
  for (uint32_t w = 0; w < PAGE / 4; w++) buf[w] = pattern(pg, w, gen + 2);
  avx_copy_to(p, buf);
  c.writes += PAGE / 4;
  c.avx_pages++;
  for (uint32_t w = 0; w < PAGE / 4; w++) count_word(p[w], pattern(pg, w, gen + 2));
}

static int run(void) {
  if (probe() || setup_context()) return -1;
  if (create_blob(1, 0, 4 * PAGE) || map_blob(1, 0)) return -1; // the context's shmem page at offset 0
  if (create_blob(10, 100, BLOB_PAGES * PAGE) || map_blob(10, BLOB_OFFSET)) return -1;
  for (uint32_t pg = 0; pg < BLOB_PAGES; pg++) touch_page(pg, 1);
  // The host writes; the guest must see exactly that through the BAR.
  if (fill(10, FILL_VALUE, BLOB_PAGES * PAGE)) return -1;
  volatile uint32_t *a = (volatile uint32_t *)(bar + BLOB_OFFSET);
  for (uint32_t w = 0; w < BLOB_PAGES * PAGE / 4; w++) if (a[w] != FILL_VALUE) c.fill_mismatches++;
  // Revocation: the blob leaves the BAR and its VRAM is poisoned. The old range is a hole now
  // (reads return all ones); the poison means an entry survived the revocation.
  if (unmap_and_unref(10) || remap_bar()) return -1;
  a = (volatile uint32_t *)(bar + BLOB_OFFSET);
  for (uint32_t pg = 0; pg < BLOB_PAGES; pg++) {
    uint32_t v = a[pg * PAGE / 4];
    c.reads++;
    if (v == VRAM_POISON) c.stale++;
    else if (v != 0xffffffffu) c.post_unmap_other++;
  }
  // A new blob at the same addresses: fresh (zeroed) VRAM, faulted in again.
  if (create_blob(11, 101, BLOB_PAGES * PAGE) || map_blob(11, BLOB_OFFSET)) return -1;
  for (uint32_t pg = 0; pg < BLOB_PAGES; pg++) {
    uint32_t v = a[pg * PAGE / 4];
    c.reads++;
    if (v == VRAM_POISON) c.stale++;
    else if (v != 0) c.refault_mismatches++;
    touch_page(pg, 10);
  }
  return unmap_and_unref(11);
}

// bar_client MMIO_BASE PAGES HOLD_S: touch a blob's pages (mapped, in map-and-emulate), print
// "XT-GUEST: held", sleep HOLD_S while the host kills the back-end (or destroys this guest), then
// read every old page: a read returning what was last written there reached the old frame (stale),
// anything but all ones is counted too. Then drive the device from scratch (the restarted back-end).
static int hold_then_recheck(unsigned hold_s) {
  if (probe() || setup_context()) return -1;
  if (create_blob(1, 0, 4 * PAGE) || map_blob(1, 0)) return -1;
  if (create_blob(10, 100, BLOB_PAGES * PAGE) || map_blob(10, BLOB_OFFSET)) return -1;
  for (uint32_t pg = 0; pg < BLOB_PAGES; pg++) touch_page(pg, 1);
  uint32_t last_gen = have_avx2 ? 3 : 2; // touch_page's last store: AVX gen+2, else rep movs gen+1
  printf("XT-GUEST: held\n");
  fflush(stdout);
  sleep(hold_s);
  if (remap_bar()) return -1;
  volatile uint32_t *a = (volatile uint32_t *)(bar + BLOB_OFFSET);
  for (uint32_t pg = 0; pg < BLOB_PAGES; pg++) {
    uint32_t v = a[pg * PAGE / 4];
    c.reads++;
    if (v == pattern(pg, 0, last_gen)) c.stale++;
    else if (v != 0xffffffffu) c.post_unmap_other++;
  }
  printf("XT-GUEST: rechecked\n");
  fflush(stdout);
  wr(R_STATUS, 0);
  avail_idx = used_seen = 0;
  seqno = 0;
  return run();
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: bar_client MMIO_BASE PAGES [HOLD_S]\n"); return 2; }
  uint64_t mmio_base = strtoull(argv[1], NULL, 0);
  BLOB_PAGES = (uint32_t)strtoul(argv[2], NULL, 0);
  if (BLOB_PAGES < 1 || BLOB_PAGES > MAX_BLOB_PAGES) { fprintf(stderr, "PAGES must be 1..%u\n", MAX_BLOB_PAGES); return 2; }
  int fd = mem_fd = open("/dev/mem", O_RDWR | O_SYNC);
  if (fd < 0) { perror("/dev/mem"); return 1; }
  mmio = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)mmio_base);
  if (mmio == MAP_FAILED) { perror("mmap mmio"); return 1; }
  if (ram_page(&ring)) { fprintf(stderr, "%s\n", fail_what); return 1; }
  for (unsigned i = 0; i < QSIZE / 2; i++) if (ram_page(&slots[i])) { fprintf(stderr, "%s\n", fail_what); return 1; }
  __builtin_cpu_init();
  have_avx2 = __builtin_cpu_supports("avx2");
  uint64_t t0 = now_ns();
  int rc = probe();
  if (rc == 0) {
    bar = mmap(NULL, bar_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)bar_base);
    if (bar == MAP_FAILED) { perror("mmap bar"); return 1; }
    wr(R_STATUS, 0); // probe again inside run()
    avail_idx = used_seen = 0;
    rc = argc > 3 ? hold_then_recheck((unsigned)strtoul(argv[3], NULL, 0)) : run();
  }
  uint64_t t1 = now_ns();
  printf("XT-GUEST: result {\"ok\":%s,\"error\":\"%s\",\"error_line\":%d,\"bar_base\":%llu,\"bar_len\":%llu,\"pages\":%u,\"reads\":%llu,\"writes\":%llu,"
         "\"mismatches\":%llu,\"stale_reads\":%llu,\"post_unmap_not_all_ones\":%llu,\"fill_mismatches\":%llu,\"refault_mismatches\":%llu,"
         "\"avx2\":%s,\"avx_pages\":%llu,\"first_touch_ns_avg\":%llu,\"later_touch_ns_avg\":%llu,\"wall_ns\":%llu}\n",
         rc == 0 ? "true" : "false", fail_what, fail_line, (unsigned long long)bar_base, (unsigned long long)bar_len, BLOB_PAGES,
         (unsigned long long)c.reads, (unsigned long long)c.writes, (unsigned long long)c.mismatches, (unsigned long long)c.stale,
         (unsigned long long)c.post_unmap_other, (unsigned long long)c.fill_mismatches, (unsigned long long)c.refault_mismatches,
         have_avx2 ? "true" : "false", (unsigned long long)c.avx_pages, (unsigned long long)(c.pages_timed ? c.first_ns / c.pages_timed : 0), (unsigned long long)(c.pages_timed ? c.later_ns / c.pages_timed : 0),
         (unsigned long long)(t1 - t0));
  fflush(stdout);
  return rc == 0 ? 0 : 1;
}
