// mmap/munmap that hand out external ArrayBuffers and revoke them safely.
//
// munmap(buffer) first detaches the ArrayBuffer (every view over it becomes zero-length), then
// unmaps. A JS view kept past munmap therefore reads as empty, never as freed memory. A mapping the
// GC collects without munmap is unmapped by its finalizer. Data copied out stays, of course.
#include "mappings.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "errors.h"

namespace xvgpu {

static void FinalizeMapping(Napi::BasicEnv, void*, Mapping* m) {
  // Runs once the backing store is released: after munmap (detached) or on garbage collection.
  if (!m->unmapped) {
    munmap(m->addr, m->len);
    m->registry->live.erase(m->addr);
  }
  delete m;
}

// mmap(fd, length, prot, flags, offset) → ArrayBuffer over the mapping.
static Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  uint64_t len = ArgU64(info, 1, "length");
  int prot = ArgInt(info, 2, "prot");
  int flags = ArgInt(info, 3, "flags");
  uint64_t off = ArgU64(info, 4, "offset");
  if (len == 0 || len > (1ull << 40)) throw Napi::RangeError::New(env, "length must be 1 byte .. 1 TiB");
  void* p = mmap(nullptr, len, prot, flags, fd, static_cast<off_t>(off));
  if (p == MAP_FAILED) ThrowErrno(env, "mmap", errno);
  AddonData* data = Data(env);
  Mapping* m = new Mapping{p, static_cast<size_t>(len), false, data->mappings};
  data->mappings->live[p] = m;
  return Napi::ArrayBuffer::New(env, p, m->len, FinalizeMapping, m);
}

static Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "argument 'buffer' must be an ArrayBuffer from mmap()");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) throw Napi::Error::New(env, "munmap: buffer is already unmapped");
  MappingRegistry& reg = *Data(env)->mappings;
  auto it = reg.live.find(ab.Data());
  if (it == reg.live.end() || it->second->len != ab.ByteLength()) throw Napi::Error::New(env, "munmap: not a buffer from mmap()");
  Mapping* m = it->second;
  ab.Detach();  // views go zero-length before the pages go away
  if (munmap(m->addr, m->len) < 0) ThrowErrno(env, "munmap", errno);
  m->unmapped = true;
  reg.live.erase(it);
  return env.Undefined();
}

// addressOf(buffer): the user address of a live mmap() buffer, for interfaces that take one (the
// kernel helper registers the back-end's mapping of a BO by address). Only mmap() buffers qualify:
// their address cannot move, unlike a GC-managed ArrayBuffer's.
static Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "argument 'buffer' must be an ArrayBuffer from mmap()");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  MappingRegistry& reg = *Data(env)->mappings;
  if (ab.IsDetached() || reg.live.find(ab.Data()) == reg.live.end()) throw Napi::Error::New(env, "addressOf: not a live buffer from mmap()");
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(ab.Data())));
}

// madvise(buffer, offset, length, advice) on pages of a live mmap() buffer: the range is checked
// against the mapping, so JS can never advise memory it does not own (MADV_DONTNEED zaps PTEs).
static Napi::Value Madvise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "argument 'buffer' must be an ArrayBuffer from mmap()");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  MappingRegistry& reg = *Data(env)->mappings;
  if (ab.IsDetached() || reg.live.find(ab.Data()) == reg.live.end()) throw Napi::Error::New(env, "madvise: not a live buffer from mmap()");
  uint64_t off = ArgU64(info, 1, "offset");
  uint64_t len = ArgU64(info, 2, "length");
  int advice = ArgInt(info, 3, "advice");
  if (off % 4096 != 0 || len == 0 || off > ab.ByteLength() || len > ab.ByteLength() - off) {
    throw Napi::RangeError::New(env, "madvise: range must be page-aligned, non-empty and inside the mapping");
  }
  if (madvise(static_cast<uint8_t*>(ab.Data()) + off, len, advice) < 0) ThrowErrno(env, "madvise", errno);
  return env.Undefined();
}

// pinPages(buffer, offset, length) -> fd: a pipe whose buffers hold references to those pages of a
// live mmap() buffer (vmsplice without SPLICE_F_GIFT takes page references). The pages, and so
// their frames, stay allocated until the fd is closed, even after they leave their file or
// mapping. At most 256 pages per call (a 1 MiB pipe, the default pipe-max-size).
static Napi::Value PinPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "argument 'buffer' must be an ArrayBuffer from mmap()");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  MappingRegistry& reg = *Data(env)->mappings;
  if (ab.IsDetached() || reg.live.find(ab.Data()) == reg.live.end()) throw Napi::Error::New(env, "pinPages: not a live buffer from mmap()");
  uint64_t off = ArgU64(info, 1, "offset");
  uint64_t len = ArgU64(info, 2, "length");
  if (off % 4096 != 0 || len % 4096 != 0 || len == 0 || len > 256 * 4096 || off > ab.ByteLength() || len > ab.ByteLength() - off) {
    throw Napi::RangeError::New(env, "pinPages: range must be 1-256 whole pages inside the mapping");
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) ThrowErrno(env, "pipe2", errno);
  // One pipe slot per page: the pipe must have at least len / 4096 slots.
  if (fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(len)) < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    ThrowErrno(env, "fcntl(F_SETPIPE_SZ)", e);
  }
  struct iovec iov = {static_cast<uint8_t*>(ab.Data()) + off, static_cast<size_t>(len)};
  while (iov.iov_len > 0) {
    ssize_t n = vmsplice(p[1], &iov, 1, SPLICE_F_NONBLOCK);
    if (n <= 0) {
      int e = n < 0 ? errno : EAGAIN;
      close(p[0]);
      close(p[1]);
      ThrowErrno(env, "vmsplice", e);
    }
    iov.iov_base = static_cast<uint8_t*>(iov.iov_base) + n;
    iov.iov_len -= static_cast<size_t>(n);
  }
  close(p[1]);  // the read end keeps the pipe, and its page references, alive
  return Napi::Number::New(env, p[0]);
}

void InitMappings(Napi::Env env, Napi::Object exports) {
  exports.Set("pinPages", Napi::Function::New(env, PinPages, "pinPages"));
  exports.Set("madvise", Napi::Function::New(env, Madvise, "madvise"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("PROT_READ", PROT_READ);
  c.Set("PROT_WRITE", PROT_WRITE);
  c.Set("MAP_SHARED", MAP_SHARED);
  c.Set("MAP_PRIVATE", MAP_PRIVATE);
  c.Set("MADV_DONTNEED", MADV_DONTNEED);
  exports.Set("mmapConstants", c);
}

}  // namespace xvgpu
