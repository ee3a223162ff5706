#include "errors.h"

#include <cerrno>
#include <cmath>
#include <cstring>

namespace xvgpu {

void ThrowErrno(Napi::Env env, const char* syscall, int err) {
  const char* name = strerrorname_np(err);
  std::string code = name ? name : "E" + std::to_string(err);
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + code + " (" + strerror(err) + ")");
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  throw e;
}

static double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || v != std::floor(v)) {
    throw Napi::RangeError::New(info.Env(), std::string("argument '") + name + "' must be an integer");
  }
  return v;
}

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = ArgNumber(info, i, name);
  if (v < INT32_MIN || v > INT32_MAX) throw Napi::RangeError::New(info.Env(), std::string("argument '") + name + "' out of int32 range");
  return static_cast<int32_t>(v);
}

uint32_t ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = ArgNumber(info, i, name);
  if (v < 0 || v > UINT32_MAX) throw Napi::RangeError::New(info.Env(), std::string("argument '") + name + "' out of uint32 range");
  return static_cast<uint32_t>(v);
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() > i && info[i].IsBigInt()) {
    bool lossless = false;
    uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), std::string("argument '") + name + "' out of uint64 range");
    return v;
  }
  double v = ArgNumber(info, i, name);
  if (v < 0 || v > 9007199254740991.0) throw Napi::RangeError::New(info.Env(), std::string("argument '") + name + "' must be a safe non-negative integer");
  return static_cast<uint64_t>(v);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

}  // namespace xvgpu
