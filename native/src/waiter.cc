#include "waiter.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "errors.h"
#include "syscalls.h"

namespace xvgpu {

namespace {

constexpr size_t kMaxWatches = 127;  // futex_waitv takes at most 128 words, one is ours
constexpr uint64_t kStopToken = ~0ull;

// Not in glibc 2.36's headers: the futex_waitv syscall (Linux 5.16+).
long FutexWaitv(struct futex_waitv* w, unsigned n) {
  return syscall(SYS_futex_waitv, w, n, 0, nullptr, CLOCK_MONOTONIC);
}

void PinSelf(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);  // best effort: a refused pin leaves the thread floating
}

}  // namespace

Napi::Function Waiter::Init(Napi::Env env) {
  return DefineClass(env, "Waiter",
                     {InstanceMethod("addFd", &Waiter::AddFd), InstanceMethod("addFutex", &Waiter::AddFutex),
                      InstanceMethod("start", &Waiter::Start), InstanceMethod("close", &Waiter::Close),
                      InstanceMethod("ref", &Waiter::Ref), InstanceMethod("unref", &Waiter::Unref),
                      InstanceMethod("stats", &Waiter::Stats)});
}

// new Waiter(callback: (tokens: number[]) => void)
Waiter::Waiter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Waiter>(info) {
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "Waiter needs a callback");
  callback_ = Napi::Persistent(info[0].As<Napi::Function>());
}

Waiter::~Waiter() { Stop(); }

Napi::Value Waiter::AddFd(const Napi::CallbackInfo& info) {
  if (started_) throw Napi::Error::New(info.Env(), "Waiter: add watches before start()");
  if (!futexes_.empty()) throw Napi::Error::New(info.Env(), "Waiter: one waiter watches either fds or futex words");
  if (fds_.size() >= kMaxWatches) throw Napi::RangeError::New(info.Env(), "Waiter: too many watches");
  int fd = ArgInt(info, 0, "fd");
  if (fd < 0) throw Napi::RangeError::New(info.Env(), "fd must be >= 0");
  fds_.push_back({fd, ArgUint(info, 1, "token")});
  return info.Env().Undefined();
}

// addFutex(words: Int32Array, index, token): wakes when the word's value changes.
Napi::Value Waiter::AddFutex(const Napi::CallbackInfo& info) {
  if (started_) throw Napi::Error::New(info.Env(), "Waiter: add watches before start()");
  if (!fds_.empty()) throw Napi::Error::New(info.Env(), "Waiter: one waiter watches either fds or futex words");
  if (futexes_.size() >= kMaxWatches) throw Napi::RangeError::New(info.Env(), "Waiter: too many watches");
  int32_t* addr = ArgInt32Slot(info, 0, 1);
  uint32_t token = ArgUint(info, 2, "token");
  keepAlive_.push_back(Napi::Persistent(info[0]));
  futexes_.push_back({addr, __atomic_load_n(addr, __ATOMIC_SEQ_CST), token});
  return info.Env().Undefined();
}

// start({ cpu?: number })
Napi::Value Waiter::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (started_) throw Napi::Error::New(env, "Waiter: already started");
  if (fds_.empty() && futexes_.empty()) throw Napi::Error::New(env, "Waiter: nothing to watch");
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Value c = info[0].As<Napi::Object>().Get("cpu");
    if (c.IsNumber()) cpu_ = c.As<Napi::Number>().Int32Value();
  }
  if (!fds_.empty()) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) ThrowErrno(env, "epoll_create1", errno);
    stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stopFd_ < 0) ThrowErrno(env, "eventfd", errno);
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = kStopToken;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, stopFd_, &ev);
    for (size_t i = 0; i < fds_.size(); i++) {
      // Edge-triggered: the consumer drains each fd completely when told it is ready.
      ev.events = EPOLLIN | EPOLLET;
      ev.data.u64 = i;
      if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fds_[i].fd, &ev) < 0) ThrowErrno(env, "epoll_ctl", errno);
    }
  }
  tsfn_ = Napi::ThreadSafeFunction::New(env, callback_.Value(), "xvgpu-waiter", 0, 1);
  started_ = true;
  env_ = env;
  // Registered after the TSFN's own hook, so it runs first (hooks run in reverse order): the thread
  // is joined and the TSFN released while both still exist.
  napi_add_env_cleanup_hook(env, OnEnvTeardown, this);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "xvgpu-waiter");
    PinSelf(cpu_);
    if (epfd_ >= 0) RunEpoll();
    else RunFutex();
  });
  return env.Undefined();
}

void Waiter::RunEpoll() {
  struct epoll_event evs[64];
  uint32_t tokens[64];
  while (!stopping_.load(std::memory_order_acquire)) {
    int n = epoll_wait(epfd_, evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == kStopToken) return;
      tokens[k++] = fds_[evs[i].data.u64].token;
    }
    Deliver(tokens, k);
  }
}

void Waiter::RunFutex() {
  std::vector<struct futex_waitv> wv(futexes_.size() + 1);
  std::vector<uint32_t> tokens;
  tokens.reserve(futexes_.size());
  while (!stopping_.load(std::memory_order_acquire)) {
    // Deliver every word that moved since we last looked, then sleep on the values we saw: a word
    // that changes after we read it makes futex_waitv return at once (EAGAIN), so no wake is lost.
    tokens.clear();
    for (FutexWatch& w : futexes_) {
      int32_t v = __atomic_load_n(w.addr, __ATOMIC_SEQ_CST);
      if (v != w.last) {
        w.last = v;
        tokens.push_back(w.token);
      }
    }
    if (!tokens.empty()) Deliver(tokens.data(), tokens.size());
    wv[0] = {0, reinterpret_cast<uintptr_t>(&stopWord_), FUTEX_32, 0};
    for (size_t i = 0; i < futexes_.size(); i++) {
      wv[i + 1] = {static_cast<uint32_t>(futexes_[i].last), reinterpret_cast<uintptr_t>(futexes_[i].addr), FUTEX_32, 0};
    }
    long r = FutexWaitv(wv.data(), static_cast<unsigned>(wv.size()));
    if (r < 0 && errno != EAGAIN && errno != EINTR) break;  // ENOSYS etc.: the JS side sees stats
    wakeups_.fetch_add(1, std::memory_order_relaxed);
  }
}

void Waiter::Deliver(const uint32_t* tokens, size_t n) {
  if (n == 0) return;
  bool schedule;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < n; i++) {
      bool dup = false;
      for (uint32_t t : pending_) dup = dup || t == tokens[i];
      if (!dup) pending_.push_back(tokens[i]);
    }
    schedule = !inflight_;
    inflight_ = true;
  }
  if (!schedule) {
    batched_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  deliveries_.fetch_add(1, std::memory_order_relaxed);
  if (tsfn_.NonBlockingCall(this, CallJs) != napi_ok) stopping_.store(true);  // closing
}

void Waiter::CallJs(Napi::Env env, Napi::Function fn, Waiter* self) {
  if (env == nullptr || fn.IsEmpty()) return;
  std::vector<uint32_t> batch;
  {
    // inflight is cleared under the same lock that takes the batch, so a token added after this
    // point schedules a new call: nothing is stranded.
    std::lock_guard<std::mutex> lock(self->mu_);
    batch.swap(self->pending_);
    self->inflight_ = false;
  }
  Napi::Array arr = Napi::Array::New(env, batch.size());
  for (uint32_t i = 0; i < batch.size(); i++) arr.Set(i, Napi::Number::New(env, batch[i]));
  fn.Call({arr});
}

void Waiter::OnEnvTeardown(void* self) {
  Waiter* w = static_cast<Waiter*>(self);
  w->env_ = nullptr;  // this hook is running: nothing to remove
  w->Stop();
}

void Waiter::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  if (env_ != nullptr) napi_remove_env_cleanup_hook(env_, OnEnvTeardown, this);
  stopping_.store(true, std::memory_order_release);
  if (stopFd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(stopFd_, &one, sizeof one);
    (void)ignored;
  }
  __atomic_store_n(&stopWord_, 1, __ATOMIC_SEQ_CST);
  Futex(&stopWord_, FUTEX_WAKE, 1, nullptr);
  if (thread_.joinable()) thread_.join();
  tsfn_.Release();
  if (epfd_ >= 0) close(epfd_);
  if (stopFd_ >= 0) close(stopFd_);
  epfd_ = stopFd_ = -1;
}

Napi::Value Waiter::Close(const Napi::CallbackInfo& info) {
  Stop();
  keepAlive_.clear();
  return info.Env().Undefined();
}

Napi::Value Waiter::Ref(const Napi::CallbackInfo& info) {
  if (started_ && !stopped_) tsfn_.Ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value Waiter::Unref(const Napi::CallbackInfo& info) {
  if (started_ && !stopped_) tsfn_.Unref(info.Env());
  return info.Env().Undefined();
}

Napi::Value Waiter::Stats(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("wakeups", static_cast<double>(wakeups_.load()));
  o.Set("deliveries", static_cast<double>(deliveries_.load()));
  o.Set("batched", static_cast<double>(batched_.load()));
  o.Set("running", started_ && !stopped_);
  return o;
}

}  // namespace xvgpu
