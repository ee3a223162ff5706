// Per-environment state of the addon (one per main thread or worker that loads it).
#pragma once
#include <napi.h>

#include <memory>
#include <unordered_map>

namespace xvgpu {

struct Mapping;

// Live mmaps handed to JS, by address: munmap() finds and detaches them here. Shared with every
// Mapping, so a finalizer that runs after the environment's data is gone still finds it.
struct MappingRegistry {
  std::unordered_map<void*, Mapping*> live;
};

struct AddonData {
  std::shared_ptr<MappingRegistry> mappings = std::make_shared<MappingRegistry>();
  Napi::FunctionReference waiterCtor;
  ~AddonData();
};

AddonData* Data(Napi::Env env);

}  // namespace xvgpu
