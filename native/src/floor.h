#pragma once
#include <napi.h>

namespace xvgpu {
void InitFloor(Napi::Env env, Napi::Object exports);
}
