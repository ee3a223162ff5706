// The waiter: one native thread that sleeps on either a set of file descriptors (epoll) or a set
// of 32-bit futex words in shared memory (futex_waitv), and delivers what became ready to JavaScript
// through a ThreadSafeFunction. Whatever becomes ready while a delivery is still queued is batched
// into that delivery, so a burst costs one JS call.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace xvgpu {

class Waiter : public Napi::ObjectWrap<Waiter> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Waiter(const Napi::CallbackInfo& info);
  ~Waiter() override;
  // Stops and joins the thread (idempotent); safe from finalizers and environment teardown.
  void Stop();

 private:
  struct FdWatch {
    int fd;
    uint32_t token;
  };
  struct FutexWatch {
    int32_t* addr;
    int32_t last;
    uint32_t token;
  };

  Napi::Value AddFd(const Napi::CallbackInfo& info);
  Napi::Value AddFutex(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);

  static void OnEnvTeardown(void* self);
  void RunEpoll();
  void RunFutex();
  void Deliver(const uint32_t* tokens, size_t n);
  static void CallJs(Napi::Env env, Napi::Function fn, Waiter* self);

  Napi::FunctionReference callback_;
  std::vector<FdWatch> fds_;
  std::vector<FutexWatch> futexes_;
  std::vector<Napi::Reference<Napi::Value>> keepAlive_;  // the shared buffers behind futex words
  Napi::ThreadSafeFunction tsfn_;
  napi_env env_ = nullptr;
  std::thread thread_;
  int cpu_ = -1;
  int epfd_ = -1;
  int stopFd_ = -1;
  int32_t stopWord_ = 0;  // futex word the thread also waits on, so Stop() can wake it
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  bool stopped_ = false;

  std::mutex mu_;  // guards pending_ and inflight_
  std::vector<uint32_t> pending_;
  bool inflight_ = false;
  std::atomic<uint64_t> wakeups_{0};
  std::atomic<uint64_t> deliveries_{0};
  std::atomic<uint64_t> batched_{0};
};

}  // namespace xvgpu
