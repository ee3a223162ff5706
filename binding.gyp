{
  "targets": [
    {
      "target_name": "xvgpu_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/errors.cc",
        "native/src/syscalls.cc",
        "native/src/mappings.cc",
        "native/src/waiter.cc",
        "native/src/floor.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=9", "NODE_ADDON_API_REQUIRE_BASIC_FINALIZERS", "_GNU_SOURCE"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-fexceptions"],
      "conditions": [["OS!='linux'", { "defines": ["XVGPU_UNSUPPORTED_OS"] }]]
    }
  ]
}
