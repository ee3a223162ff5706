// The transport floor: what a wake costs on this machine with no work attached. Each function
// returns per-round round-trip times in ns (a Float64Array) for the caller to summarize.
//
//   floorThreads(kind, rounds, cpuA, cpuB)  native thread <-> native thread: 'futex' | 'eventfd' |
//                                           'epoll' (epoll_wait then eventfd read). Blocks the caller.
//   floorTsfn(rounds, cpu, fn) → Promise    native thread → ThreadSafeFunction → JS fn → futex
//                                           wake back to the native thread: the waiter's path.
#include "floor.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "errors.h"
#include "syscalls.h"

namespace xvgpu {

namespace {

constexpr int kWarmup = 500;

double NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

void Pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// A one-shot signal between two threads, by the mechanism under test.
class Channel {
 public:
  virtual ~Channel() = default;
  virtual void Signal() = 0;
  virtual void Wait() = 0;
};

class FutexChannel : public Channel {
  std::atomic<int32_t> word_{0};

 public:
  void Signal() override {
    word_.store(1, std::memory_order_release);
    Futex(reinterpret_cast<int32_t*>(&word_), FUTEX_WAKE, 1, nullptr);
  }
  void Wait() override {
    while (word_.load(std::memory_order_acquire) == 0) Futex(reinterpret_cast<int32_t*>(&word_), FUTEX_WAIT, 0, nullptr);
    word_.store(0, std::memory_order_relaxed);
  }
};

class EventfdChannel : public Channel {
 protected:
  int fd_;

 public:
  EventfdChannel() : fd_(eventfd(0, EFD_CLOEXEC)) {}
  ~EventfdChannel() override { close(fd_); }
  void Signal() override {
    uint64_t one = 1;
    ssize_t ignored = write(fd_, &one, sizeof one);
    (void)ignored;
  }
  void Wait() override {
    uint64_t v;
    ssize_t ignored = read(fd_, &v, sizeof v);
    (void)ignored;
  }
};

class EpollChannel : public EventfdChannel {
  int ep_;

 public:
  EpollChannel() : ep_(epoll_create1(EPOLL_CLOEXEC)) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd_, &ev);
  }
  ~EpollChannel() override { close(ep_); }
  void Wait() override {
    struct epoll_event ev;
    while (epoll_wait(ep_, &ev, 1, -1) < 1) {
    }
    EventfdChannel::Wait();
  }
};

Channel* MakeChannel(const std::string& kind) {
  if (kind == "futex") return new FutexChannel();
  if (kind == "eventfd") return new EventfdChannel();
  if (kind == "epoll") return new EpollChannel();
  return nullptr;
}

Napi::Value FloorThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string kind = ArgString(info, 0, "kind");
  uint32_t rounds = ArgUint(info, 1, "rounds");
  int cpuA = ArgInt(info, 2, "cpuA");
  int cpuB = ArgInt(info, 3, "cpuB");
  if (rounds == 0 || rounds > 10'000'000) throw Napi::RangeError::New(env, "rounds must be 1..10M");
  std::unique_ptr<Channel> ping(MakeChannel(kind));
  std::unique_ptr<Channel> pong(MakeChannel(kind));
  if (!ping) throw Napi::RangeError::New(env, "kind must be futex, eventfd or epoll");
  std::vector<double> samples(rounds);
  const uint32_t total = rounds + kWarmup;
  std::thread echo([&] {
    Pin(cpuB);
    for (uint32_t i = 0; i < total; i++) {
      ping->Wait();
      pong->Signal();
    }
  });
  std::thread driver([&] {
    Pin(cpuA);
    for (uint32_t i = 0; i < total; i++) {
      double t0 = NowNs();
      ping->Signal();
      pong->Wait();
      if (i >= static_cast<uint32_t>(kWarmup)) samples[i - kWarmup] = NowNs() - t0;
    }
  });
  driver.join();
  echo.join();
  Napi::Float64Array out = Napi::Float64Array::New(env, rounds);
  for (uint32_t i = 0; i < rounds; i++) out[i] = samples[i];
  return out;
}

struct TsfnFloor {
  uint32_t rounds;
  int cpu;
  std::vector<double> samples;
  std::atomic<int32_t> word{0};
  Napi::ThreadSafeFunction tsfn;
  std::thread thread;
  Napi::Promise::Deferred deferred;
  explicit TsfnFloor(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void PingJs(Napi::Env env, Napi::Function fn, TsfnFloor* f) {
  if (env != nullptr) fn.Call({});
  f->word.store(1, std::memory_order_release);
  Futex(reinterpret_cast<int32_t*>(&f->word), FUTEX_WAKE, 1, nullptr);
}

void FinishTsfnFloor(Napi::Env env, void*, TsfnFloor* f) {
  f->thread.join();
  Napi::Float64Array out = Napi::Float64Array::New(env, f->rounds);
  for (uint32_t i = 0; i < f->rounds; i++) out[i] = f->samples[i];
  f->deferred.Resolve(out);
  delete f;
}

Napi::Value FloorTsfn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t rounds = ArgUint(info, 0, "rounds");
  int cpu = ArgInt(info, 1, "cpu");
  if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "argument 'fn' must be a function");
  if (rounds == 0 || rounds > 10'000'000) throw Napi::RangeError::New(env, "rounds must be 1..10M");
  TsfnFloor* f = new TsfnFloor(env);
  f->rounds = rounds;
  f->cpu = cpu;
  f->samples.resize(rounds);
  Napi::Promise promise = f->deferred.Promise();
  f->tsfn = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "xvgpu-floor", 0, 1, f, FinishTsfnFloor, static_cast<void*>(nullptr));
  f->thread = std::thread([f] {
    Pin(f->cpu);
    const uint32_t total = f->rounds + kWarmup;
    for (uint32_t i = 0; i < total; i++) {
      f->word.store(0, std::memory_order_relaxed);
      double t0 = NowNs();
      if (f->tsfn.BlockingCall(f, PingJs) != napi_ok) break;
      while (f->word.load(std::memory_order_acquire) == 0) Futex(reinterpret_cast<int32_t*>(&f->word), FUTEX_WAIT, 0, nullptr);
      if (i >= static_cast<uint32_t>(kWarmup)) f->samples[i - kWarmup] = NowNs() - t0;
    }
    f->tsfn.Release();
  });
  return promise;
}

}  // namespace

void InitFloor(Napi::Env env, Napi::Object exports) {
  exports.Set("floorThreads", Napi::Function::New(env, FloorThreads, "floorThreads"));
  exports.Set("floorTsfn", Napi::Function::New(env, FloorTsfn, "floorTsfn"));
}

}  // namespace xvgpu
