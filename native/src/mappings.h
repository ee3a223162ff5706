#pragma once
#include <napi.h>

#include <memory>

namespace xvgpu {

struct MappingRegistry;

struct Mapping {
  void* addr;
  size_t len;
  bool unmapped;
  std::shared_ptr<MappingRegistry> registry;
};

void InitMappings(Napi::Env env, Napi::Object exports);

}  // namespace xvgpu
