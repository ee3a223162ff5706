#include "syscalls.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "errors.h"

namespace xvgpu {

uint8_t* ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name, size_t* len) {
  if (info.Length() <= i || !info[i].IsTypedArray()) {
    throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a TypedArray or Buffer");
  }
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = ta.ArrayBuffer();
  *len = ta.ByteLength();
  return static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset();
}

int32_t* ArgInt32Slot(const Napi::CallbackInfo& info, size_t arr, size_t index) {
  if (info.Length() <= arr || !info[arr].IsTypedArray() || info[arr].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(info.Env(), "argument 'words' must be an Int32Array");
  }
  Napi::Int32Array a = info[arr].As<Napi::Int32Array>();
  uint32_t i = ArgUint(info, index, "index");
  if (i >= a.ElementLength()) throw Napi::RangeError::New(info.Env(), "index beyond the Int32Array");
  return a.Data() + i;
}

long Futex(int32_t* addr, int op, int32_t val, const struct timespec* timeout) {
  return syscall(SYS_futex, addr, op, val, timeout, nullptr, 0);
}

static Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int flags = ArgInt(info, 1, "flags");
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), ("open(" + path + ")").c_str(), errno);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  if (close(fd) < 0) ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

// ioctl(fd, request, arg, fixups?): arg is a TypedArray (passed by pointer, in/out), a number
// (passed by value) or absent (0). The struct codecs live in TypeScript. `fixups` is a list of
// { offset, buffer }: for structs that embed user pointers (DRM_IOCTL_VERSION), the addon writes the
// address of each buffer's bytes into `arg` at `offset` (u64, little-endian) just for this call,
// so JavaScript never handles a raw pointer that the GC could invalidate.
static Napi::Value Ioctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  unsigned long req = ArgUint(info, 1, "request");
  long r;
  if (info.Length() > 2 && info[2].IsTypedArray()) {
    size_t len = 0;
    uint8_t* p = ArgBytes(info, 2, "arg", &len);
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      if (!info[3].IsArray()) throw Napi::TypeError::New(env, "argument 'fixups' must be an array");
      Napi::Array fx = info[3].As<Napi::Array>();
      for (uint32_t i = 0; i < fx.Length(); i++) {
        Napi::Value e = fx.Get(i);
        if (!e.IsObject()) throw Napi::TypeError::New(env, "each fixup must be { offset, buffer }");
        Napi::Value off = e.As<Napi::Object>().Get("offset");
        Napi::Value buf = e.As<Napi::Object>().Get("buffer");
        if (!off.IsNumber() || !buf.IsTypedArray()) throw Napi::TypeError::New(env, "each fixup must be { offset: number, buffer: TypedArray }");
        double o = off.As<Napi::Number>().DoubleValue();
        if (o < 0 || o + 8 > static_cast<double>(len) || o != static_cast<double>(static_cast<size_t>(o))) {
          throw Napi::RangeError::New(env, "fixup offset outside the ioctl argument");
        }
        Napi::TypedArray ta = buf.As<Napi::TypedArray>();
        uint64_t addr = reinterpret_cast<uintptr_t>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
        memcpy(p + static_cast<size_t>(o), &addr, sizeof addr);
      }
    }
    r = ioctl(fd, req, p);
  } else if (info.Length() > 2 && !info[2].IsUndefined()) {
    r = ioctl(fd, req, static_cast<unsigned long>(ArgU64(info, 2, "arg")));
  } else {
    r = ioctl(fd, req, 0UL);
  }
  if (r < 0) ThrowErrno(env, "ioctl", errno);
  return Napi::Number::New(env, static_cast<double>(r));
}

static Napi::Value EventFd(const Napi::CallbackInfo& info) {
  uint32_t init = info.Length() > 0 ? ArgUint(info, 0, "initval") : 0;
  int flags = info.Length() > 1 ? ArgInt(info, 1, "flags") : 0;
  int fd = eventfd(init, flags | EFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "eventfd", errno);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  uint64_t v = info.Length() > 1 ? ArgU64(info, 1, "value") : 1;
  if (write(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) ThrowErrno(info.Env(), "write(eventfd)", errno);
  return info.Env().Undefined();
}

// Returns the counter, or 0 when a non-blocking eventfd is empty (EAGAIN).
static Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  uint64_t v = 0;
  if (read(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) {
    if (errno == EAGAIN) return Napi::Number::New(info.Env(), 0);
    ThrowErrno(info.Env(), "read(eventfd)", errno);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(v));
}

static Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  unsigned flags = info.Length() > 1 ? ArgUint(info, 1, "flags") : 0;
  int fd = memfd_create(name.c_str(), flags | MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "memfd_create", errno);
  return Napi::Number::New(info.Env(), fd);
}

// fallocate(fd, mode, offset, length); mode bits from fallocConstants (linux/falloc.h).
static Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  int mode = ArgInt(info, 1, "mode");
  uint64_t off = ArgU64(info, 2, "offset");
  uint64_t len = ArgU64(info, 3, "length");
  if (off > static_cast<uint64_t>(LLONG_MAX) || len == 0 || len > static_cast<uint64_t>(LLONG_MAX) - off) {
    throw Napi::RangeError::New(info.Env(), "fallocate: offset + length out of range");
  }
  if (fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len)) < 0) ThrowErrno(info.Env(), "fallocate", errno);
  return info.Env().Undefined();
}

// Pins the calling thread (0 = the JS thread that calls it) to the given CPUs.
static Napi::Value PinThread(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "argument 'cpus' must be an array of CPU numbers");
  Napi::Array cpus = info[0].As<Napi::Array>();
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < cpus.Length(); i++) {
    Napi::Value v = cpus.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), "CPU numbers must be numbers");
    int c = v.As<Napi::Number>().Int32Value();
    if (c < 0 || c >= CPU_SETSIZE) throw Napi::RangeError::New(info.Env(), "CPU number out of range");
    CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) < 0) ThrowErrno(info.Env(), "sched_setaffinity", errno);
  return info.Env().Undefined();
}

static Napi::Value GetAffinity(const Napi::CallbackInfo& info) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) < 0) ThrowErrno(info.Env(), "sched_getaffinity", errno);
  Napi::Array out = Napi::Array::New(info.Env());
  for (int c = 0, n = 0; c < CPU_SETSIZE; c++) {
    if (CPU_ISSET(c, &set)) out.Set(n++, Napi::Number::New(info.Env(), c));
  }
  return out;
}

// prctl(PR_SET_NO_NEW_PRIVS): execve can no longer grant privileges (setuid bits, file
// capabilities). Per thread, inherited by threads and children created afterwards.
static Napi::Value SetNoNewPrivs(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) ThrowErrno(info.Env(), "prctl(PR_SET_NO_NEW_PRIVS)", errno);
  return info.Env().Undefined();
}

static Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) ThrowErrno(info.Env(), "socketpair", errno);
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, Napi::Number::New(info.Env(), sv[0]));
  out.Set(1u, Napi::Number::New(info.Env(), sv[1]));
  return out;
}

static constexpr size_t kMaxFds = 32;

// sendFds(sock, data, fds): one message carrying `data` and the descriptors (SCM_RIGHTS).
static Napi::Value SendFds(const Napi::CallbackInfo& info) {
  int sock = ArgInt(info, 0, "sock");
  size_t len = 0;
  uint8_t* data = ArgBytes(info, 1, "data", &len);
  if (len == 0) throw Napi::RangeError::New(info.Env(), "data must not be empty (a message needs at least one byte)");
  if (info.Length() < 3 || !info[2].IsArray()) throw Napi::TypeError::New(info.Env(), "argument 'fds' must be an array");
  Napi::Array arr = info[2].As<Napi::Array>();
  if (arr.Length() > kMaxFds) throw Napi::RangeError::New(info.Env(), "too many descriptors in one message");
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0) throw Napi::TypeError::New(info.Env(), "fds must be non-negative numbers");
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  struct iovec iov = {data, len};
  alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = ctrl;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  if (n < 0) ThrowErrno(info.Env(), "sendmsg", errno);
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// recvFds(sock, maxBytes) → { data: Buffer, fds: number[] }; descriptors arrive close-on-exec.
static Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  int sock = ArgInt(info, 0, "sock");
  uint32_t max = ArgUint(info, 1, "maxBytes");
  if (max == 0 || max > (1u << 20)) throw Napi::RangeError::New(info.Env(), "maxBytes must be 1..1 MiB");
  std::vector<uint8_t> buf(max);
  struct iovec iov = {buf.data(), buf.size()};
  alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof ctrl;
  ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) ThrowErrno(info.Env(), "recvmsg", errno);
  Napi::Array fds = Napi::Array::New(info.Env());
  uint32_t nf = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < count; k++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
      fds.Set(nf++, Napi::Number::New(info.Env(), fd));
    }
  }
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("data", Napi::Buffer<uint8_t>::Copy(info.Env(), buf.data(), static_cast<size_t>(n)));
  out.Set("fds", fds);
  out.Set("truncated", Napi::Boolean::New(info.Env(), (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0));
  return out;
}

// futexWake(words, index, count = INT_MAX): wakes native waiters on a shared word. V8's
// Atomics.notify does not reach them (they are not V8 waiters), hence this call.
static Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  int32_t* addr = ArgInt32Slot(info, 0, 1);
  int32_t count = info.Length() > 2 ? ArgInt(info, 2, "count") : INT_MAX;
  long r = Futex(addr, FUTEX_WAKE, count, nullptr);
  if (r < 0) ThrowErrno(info.Env(), "futex(WAKE)", errno);
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

// futexWait(words, index, expected, timeoutMs = -1) → "ok" | "not-equal" | "timed-out". Blocks the
// calling thread: for worker threads, never the main thread of a server.
static Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  int32_t* addr = ArgInt32Slot(info, 0, 1);
  int32_t expected = ArgInt(info, 2, "expected");
  double ms = info.Length() > 3 ? info[3].As<Napi::Number>().DoubleValue() : -1;
  struct timespec ts;
  struct timespec* tp = nullptr;
  if (ms >= 0) {
    ts.tv_sec = static_cast<time_t>(ms / 1000);
    ts.tv_nsec = static_cast<long>((ms - ts.tv_sec * 1000.0) * 1e6);
    tp = &ts;
  }
  long r = Futex(addr, FUTEX_WAIT, expected, tp);
  const char* res = "ok";
  if (r < 0) {
    if (errno == EAGAIN) res = "not-equal";
    else if (errno == ETIMEDOUT) res = "timed-out";
    else if (errno == EINTR) res = "ok";
    else ThrowErrno(info.Env(), "futex(WAIT)", errno);
  }
  return Napi::String::New(info.Env(), res);
}

void InitSyscalls(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("ioctl", Napi::Function::New(env, Ioctl, "ioctl"));
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead, "eventfdRead"));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate, "fallocate"));
  Napi::Object falloc = Napi::Object::New(env);
  falloc.Set("FALLOC_FL_KEEP_SIZE", FALLOC_FL_KEEP_SIZE);
  falloc.Set("FALLOC_FL_PUNCH_HOLE", FALLOC_FL_PUNCH_HOLE);
  exports.Set("fallocConstants", falloc);
  exports.Set("pinThread", Napi::Function::New(env, PinThread, "pinThread"));
  exports.Set("getAffinity", Napi::Function::New(env, GetAffinity, "getAffinity"));
  exports.Set("setNoNewPrivs", Napi::Function::New(env, SetNoNewPrivs, "setNoNewPrivs"));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  exports.Set("sendFds", Napi::Function::New(env, SendFds, "sendFds"));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds, "recvFds"));
  exports.Set("futexWake", Napi::Function::New(env, FutexWake, "futexWake"));
  exports.Set("futexWait", Napi::Function::New(env, FutexWait, "futexWait"));
}

}  // namespace xvgpu
