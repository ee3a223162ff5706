// Module entry: registers every native entry point. src/native/index.ts is the only loader and
// types this surface.
#include "addon.h"

#include "floor.h"
#include "mappings.h"
#include "syscalls.h"
#include "waiter.h"

namespace xvgpu {

AddonData::~AddonData() = default;

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  InitSyscalls(env, exports);
  InitMappings(env, exports);
  InitFloor(env, exports);
  exports.Set("Waiter", Waiter::Init(env));
  return exports;
}

}  // namespace xvgpu

static Napi::Object InitXvgpu(Napi::Env env, Napi::Object exports) { return xvgpu::Init(env, exports); }

NODE_API_MODULE(xvgpu_native, InitXvgpu)
