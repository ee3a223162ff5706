/*
 * The HVM guest's client of xvgpu: Linux's own virtio-gpu driver, reached through its render node
 * with the virtgpu DRM UAPI only (no Mesa). Steps, each timed and reported:
 *   1. GETPARAM: 3D_FEATURES, RESOURCE_BLOB, HOST_VISIBLE, CONTEXT_INIT must all be 1;
 *   2. GET_CAPS for the DRM capset (id 6, version 0): wire format 1, xvgpu's context type;
 *   3. CONTEXT_INIT with CAPSET_ID = 6 (the driver sends CTX_CREATE with context_init = 6);
 *   4. the context's shmem blob (blob_id 0) and a data blob made by a GEM_NEW packet carried in
 *      RESOURCE_CREATE_BLOB's cmd, both VIRTGPU_BLOB_MEM_HOST3D + MAPPABLE; MAP + mmap of each
 *      (the kernel sends RESOURCE_MAP_BLOB at creation and maps the BAR range with io_remap_pfn_range);
 *   5. a FILL packet (EXECBUFFER): the host writes HOST_VALUE over the first half of the data blob;
 *      the guest waits for shmem.seqno and checks every word through its mapping;
 *   6. the guest writes its own pattern (a signature, then guest_word(i)) over pages 8..14 and
 *      prints "XT-HVM: guest-pattern-written"; dom0 finds it in the VRAM BAR, checks it, and writes
 *      ACK_VALUE at page 15, which the guest waits for through the same mapping.
 * The last console line is "XT-HVM-RESULT {json}". Exit 0 only if every step passed.
 *
 * The structs and ioctl numbers are Linux 6.1's include/uapi/drm/virtgpu_drm.h (Debian's libdrm-dev
 * 2.4.114 copy predates RESOURCE_CREATE_BLOB and CONTEXT_INIT, so they are spelled out here).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define DRM_IOCTL_BASE 'd'
#define DRM_COMMAND_BASE 0x40
#define DRM_IOWR(nr, type) _IOWR(DRM_IOCTL_BASE, nr, type)

struct drm_virtgpu_map { uint64_t offset; uint32_t handle; uint32_t pad; };
struct drm_virtgpu_execbuffer {
  uint32_t flags, size;
  uint64_t command, bo_handles;
  uint32_t num_bo_handles;
  int32_t fence_fd;
  uint32_t ring_idx, pad;
};
struct drm_virtgpu_getparam { uint64_t param, value; };
struct drm_virtgpu_get_caps { uint32_t cap_set_id, cap_set_ver; uint64_t addr; uint32_t size, pad; };
struct drm_virtgpu_resource_create_blob {
  uint32_t blob_mem, blob_flags, bo_handle, res_handle;
  uint64_t size;
  uint32_t pad, cmd_size;
  uint64_t cmd, blob_id;
};
struct drm_virtgpu_context_set_param { uint64_t param, value; };
struct drm_virtgpu_context_init { uint32_t num_params, pad; uint64_t ctx_set_params; };
struct drm_gem_close { uint32_t handle, pad; };

#define IOCTL_MAP DRM_IOWR(DRM_COMMAND_BASE + 0x01, struct drm_virtgpu_map)
#define IOCTL_EXECBUFFER DRM_IOWR(DRM_COMMAND_BASE + 0x02, struct drm_virtgpu_execbuffer)
#define IOCTL_GETPARAM DRM_IOWR(DRM_COMMAND_BASE + 0x03, struct drm_virtgpu_getparam)
#define IOCTL_GET_CAPS DRM_IOWR(DRM_COMMAND_BASE + 0x09, struct drm_virtgpu_get_caps)
#define IOCTL_CREATE_BLOB DRM_IOWR(DRM_COMMAND_BASE + 0x0a, struct drm_virtgpu_resource_create_blob)
#define IOCTL_CONTEXT_INIT DRM_IOWR(DRM_COMMAND_BASE + 0x0b, struct drm_virtgpu_context_init)
#define IOCTL_GEM_CLOSE _IOW(DRM_IOCTL_BASE, 0x09, struct drm_gem_close)

#define PARAM_3D_FEATURES 1
#define PARAM_RESOURCE_BLOB 3
#define PARAM_HOST_VISIBLE 4
#define PARAM_CONTEXT_INIT 6
#define BLOB_MEM_HOST3D 2
#define BLOB_FLAG_USE_MAPPABLE 1
#define CONTEXT_PARAM_CAPSET_ID 1
#define CAPSET_DRM 6

/* xvgpu's native context (src/gpu/native-context.ts). */
#define XVGPU_CONTEXT_TYPE 0x7876
#define CCMD_GEM_NEW 2
#define CCMD_FILL 4
#define SHMEM_SEQNO 0
#define SHMEM_ASYNC_ERROR 8
#define SHMEM_RSP_AREA 64

#define PAGE 4096u
#define DATA_PAGES 16u
#define DATA_SIZE (DATA_PAGES * PAGE)
#define HOST_PAGES 8u
#define GUEST_FIRST 8u
#define GUEST_PAGES 7u
#define ACK_PAGE 15u
#define DATA_BLOB_ID 1
#define HOST_VALUE 0xC0DE5EEDu
#define ACK_VALUE 0xACCE55EDu
/* dom0's checker (xen-tier/scenarios/hvm-virtio-gpu/vram-check.mjs) looks for these. */
static const char SIGNATURE[16] = "XVGPU-HVM-GUEST!";
static uint32_t guest_word(uint32_t i) { return 0x6A000000u ^ (i * 2654435761u); }

static int failures;
static char failure[256];
static double t_start;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *step, const char *what) {
  failures++;
  if (!failure[0]) snprintf(failure, sizeof failure, "%s: %s", step, what);
  printf("XT-HVM: FAIL %s: %s\n", step, what);
  fflush(stdout);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *step) {
  int r;
  do r = ioctl(fd, req, arg); while (r < 0 && errno == EINTR);
  if (r < 0) fail(step, strerror(errno));
  return r;
}

static int getparam(int fd, uint64_t param) {
  int value = -1;
  struct drm_virtgpu_getparam gp = { .param = param, .value = (uint64_t)(uintptr_t)&value };
  if (xioctl(fd, IOCTL_GETPARAM, &gp, "getparam") < 0) return -1;
  return value;
}

struct blob { uint32_t bo, res; volatile uint32_t *map; };

/* RESOURCE_CREATE_BLOB (HOST3D, MAPPABLE) with an optional vdrm packet, then MAP + mmap. */
static int create_blob(int fd, uint64_t blob_id, uint32_t size, void *cmd, uint32_t cmd_size, struct blob *b, const char *step) {
  struct drm_virtgpu_resource_create_blob c = {
    .blob_mem = BLOB_MEM_HOST3D, .blob_flags = BLOB_FLAG_USE_MAPPABLE, .size = size,
    .cmd_size = cmd_size, .cmd = (uint64_t)(uintptr_t)cmd, .blob_id = blob_id,
  };
  if (xioctl(fd, IOCTL_CREATE_BLOB, &c, step) < 0) return -1;
  b->bo = c.bo_handle;
  b->res = c.res_handle;
  struct drm_virtgpu_map m = { .handle = c.bo_handle };
  if (xioctl(fd, IOCTL_MAP, &m, step) < 0) return -1;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)m.offset);
  if (p == MAP_FAILED) {
    fail(step, strerror(errno));
    return -1;
  }
  b->map = p;
  return 0;
}

/* Polls a word of a mapping (through the BAR: ioreqs or mapped frames) until it is not `old`. */
static int wait_change(volatile uint32_t *w, uint32_t old, double seconds) {
  double end = now() + seconds;
  while (*w == old) {
    if (now() > end) return -1;
    usleep(1000);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *node = argc > 1 ? argv[1] : "/dev/dri/renderD128";
  double ack_wait = argc > 2 ? atof(argv[2]) : 240;
  t_start = now();
  uint32_t ack_word = 0;
  int p3d = -1, pblob = -1, pvis = -1, pctx = -1, host_mismatch = -1, guest_mismatch = -1, acked = 0;
  uint32_t ctx_type = 0, wire = 0, async_error = 0, fill_ret = 0xffffffffu;
  double t_caps = 0, t_ctx = 0, t_blobs = 0, t_fill = 0, t_written = 0, t_ack = 0;
  struct blob shmem = {0}, data = {0};

  int fd = open(node, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    fail("open", strerror(errno));
    goto report;
  }
  p3d = getparam(fd, PARAM_3D_FEATURES);
  pblob = getparam(fd, PARAM_RESOURCE_BLOB);
  pvis = getparam(fd, PARAM_HOST_VISIBLE);
  pctx = getparam(fd, PARAM_CONTEXT_INIT);
  if (p3d != 1 || pblob != 1 || pvis != 1 || pctx != 1) {
    fail("getparam", "3D_FEATURES, RESOURCE_BLOB, HOST_VISIBLE and CONTEXT_INIT must all be 1");
    goto report;
  }

  uint32_t caps[10] = {0};
  struct drm_virtgpu_get_caps gc = { .cap_set_id = CAPSET_DRM, .cap_set_ver = 0, .addr = (uint64_t)(uintptr_t)caps, .size = sizeof caps };
  if (xioctl(fd, IOCTL_GET_CAPS, &gc, "get_caps") < 0) goto report;
  wire = caps[0];
  ctx_type = caps[4];
  if (wire != 1 || ctx_type != XVGPU_CONTEXT_TYPE) fail("get_caps", "not xvgpu's DRM capset");
  t_caps = now() - t_start;

  struct drm_virtgpu_context_set_param sp = { .param = CONTEXT_PARAM_CAPSET_ID, .value = CAPSET_DRM };
  struct drm_virtgpu_context_init ci = { .num_params = 1, .ctx_set_params = (uint64_t)(uintptr_t)&sp };
  if (xioctl(fd, IOCTL_CONTEXT_INIT, &ci, "context_init") < 0) goto report;
  t_ctx = now() - t_start;

  if (create_blob(fd, 0, PAGE, NULL, 0, &shmem, "shmem_blob") < 0) goto report;
  uint32_t gem_new[8] = { CCMD_GEM_NEW, sizeof gem_new, 1, 0, DATA_SIZE, 0, DATA_BLOB_ID, 0 };
  if (create_blob(fd, DATA_BLOB_ID, DATA_SIZE, gem_new, sizeof gem_new, &data, "data_blob") < 0) goto report;
  t_blobs = now() - t_start;

  /* FILL {res_id, value, u64 offset, u64 length}: the host writes the first half of the blob. */
  uint32_t fill[10] = { CCMD_FILL, sizeof fill, 2, 0, data.res, HOST_VALUE, 0, 0, HOST_PAGES * PAGE, 0 };
  struct drm_virtgpu_execbuffer eb = { .size = sizeof fill, .command = (uint64_t)(uintptr_t)fill, .fence_fd = -1 };
  if (xioctl(fd, IOCTL_EXECBUFFER, &eb, "fill") < 0) goto report;
  if (wait_change(&shmem.map[SHMEM_SEQNO / 4], 1, 30) < 0 || shmem.map[SHMEM_SEQNO / 4] != 2) {
    fail("fill", "shmem.seqno never reached 2");
    goto report;
  }
  async_error = shmem.map[SHMEM_ASYNC_ERROR / 4];
  fill_ret = shmem.map[SHMEM_RSP_AREA / 4 + 1];
  if (async_error != 0 || fill_ret != 0) fail("fill", "the host refused the FILL packet");
  host_mismatch = 0;
  for (uint32_t i = 0; i < HOST_PAGES * PAGE / 4; i++) host_mismatch += data.map[i] != HOST_VALUE;
  if (host_mismatch) fail("host_pattern", "words the host wrote read back differently");
  t_fill = now() - t_start;

  /* The guest's pattern: memcpy (rep movs / vector moves) of a prepared buffer. */
  static uint32_t pattern[GUEST_PAGES * PAGE / 4];
  memcpy(pattern, SIGNATURE, sizeof SIGNATURE);
  for (uint32_t i = 4; i < GUEST_PAGES * PAGE / 4; i++) pattern[i] = guest_word(i);
  memcpy((void *)&data.map[GUEST_FIRST * PAGE / 4], pattern, sizeof pattern);
  __sync_synchronize();
  t_written = now() - t_start;
  printf("XT-HVM: guest-pattern-written res=%u\n", data.res);
  fflush(stdout);
  /* dom0 writes ACK_VALUE if it found the pattern intact, NACK_VALUE otherwise. */
  ack_word = wait_change(&data.map[ACK_PAGE * PAGE / 4], 0, ack_wait) == 0 ? data.map[ACK_PAGE * PAGE / 4] : 0;
  acked = ack_word == ACK_VALUE;
  if (!acked) fail("ack", "dom0 never acknowledged the guest's pattern");
  t_ack = now() - t_start;
  guest_mismatch = memcmp((const void *)&data.map[GUEST_FIRST * PAGE / 4], pattern, sizeof pattern) != 0;
  if (guest_mismatch) fail("guest_pattern", "the guest's own pattern read back differently");

report:
  printf("XT-HVM-RESULT {\"ok\":%s,\"failures\":%d,\"first_failure\":\"%s\",\"params\":{\"3d_features\":%d,\"resource_blob\":%d,"
         "\"host_visible\":%d,\"context_init\":%d},\"capset\":{\"wire_format\":%u,\"context_type\":%u},"
         "\"resources\":{\"shmem\":%u,\"data\":%u},\"fill\":{\"ret\":%d,\"async_error\":%u},"
         "\"host_pattern_mismatches\":%d,\"guest_pattern_mismatch\":%d,\"acked\":%s,\"ack_word\":%u,"
         "\"t_s\":{\"caps\":%.3f,\"context\":%.3f,\"blobs\":%.3f,\"fill_checked\":%.3f,\"written\":%.3f,\"acked\":%.3f}}\n",
         failures == 0 ? "true" : "false", failures, failure, p3d, pblob, pvis, pctx, wire, ctx_type, shmem.res, data.res,
         (int)fill_ret, async_error, host_mismatch, guest_mismatch, acked ? "true" : "false", ack_word,
         t_caps, t_ctx, t_blobs, t_fill, t_written, t_ack);
  fflush(stdout);
  return failures == 0 ? 0 : 1;
}
