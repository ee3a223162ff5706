#!/usr/bin/env bash
# stage-node.sh DIR: stages the TypeScript back-end for the VM tier under DIR (copied to the VM's /):
# the host's node binary with the shared libraries it links, and the built project (dist/, the
# native addon, production node_modules), plus /xvgpu/run-in-vm.sh, which /init runs.
set -euo pipefail
dir=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
node=$(command -v node)
mkdir -p "$dir/usr/bin" "$dir/xvgpu"
cp "$node" "$dir/usr/bin/node"
for lib in $(ldd "$node" | grep -oE '/[^ ]+\.so[^ ]*'); do
  mkdir -p "$dir$(dirname "$lib")"
  cp -L "$lib" "$dir$lib"
done
[ -f "$repo/dist/cli/main.js" ] && [ -f "$repo/build/Release/xvgpu_native.node" ] || { echo "stage-node: build the project first (npm install && npm run build)" >&2; exit 1; }
cp "$repo/package.json" "$dir/xvgpu/"
cp -r "$repo/dist" "$dir/xvgpu/dist"
mkdir -p "$dir/xvgpu/build/Release"
cp "$repo/build/Release/xvgpu_native.node" "$dir/xvgpu/build/Release/"
# Production dependencies only (the dev toolchain stays on the host).
(cd "$repo" && npm ls --omit=dev --all --parseable 2>/dev/null) | grep '/node_modules/' | while read -r pkg; do
  rel=${pkg#"$repo"/}
  mkdir -p "$dir/xvgpu/$(dirname "$rel")"
  cp -r "$pkg" "$dir/xvgpu/$rel"
done
cp "$repo/kernel-helper/vm/run-in-vm.sh" "$dir/xvgpu/run-in-vm.sh"
chmod +x "$dir/xvgpu/run-in-vm.sh"
cp "$repo/kernel-helper/vm/privsep-check.mjs" "$dir/xvgpu/privsep-check.mjs"
