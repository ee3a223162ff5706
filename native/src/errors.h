// Turning failed syscalls into JS errors that carry the syscall and the errno name.
#pragma once
#include <napi.h>
#include <string>

namespace xvgpu {

// Throws an Error like "ioctl: ENOTTY (Inappropriate ioctl for device)" with .code = "ENOTTY",
// .errno = 25 and .syscall = "ioctl".
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, int err);

// Argument checks: bad arguments from JS become TypeError / RangeError, never an abort.
int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name);
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace xvgpu
