// Thin, checked wrappers of the syscalls xvgpu needs. Each validates its JS arguments and turns a
// failure into a JS error naming the syscall and errno (errors.h).
#pragma once
#include <napi.h>

namespace xvgpu {

void InitSyscalls(Napi::Env env, Napi::Object exports);

// Pointer and byte length of a TypedArray/Buffer argument (throws TypeError otherwise).
uint8_t* ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name, size_t* len);
// Address of element `index` of an Int32Array argument, bounds-checked.
int32_t* ArgInt32Slot(const Napi::CallbackInfo& info, size_t arr, size_t index);

long Futex(int32_t* addr, int op, int32_t val, const struct timespec* timeout);

}  // namespace xvgpu
