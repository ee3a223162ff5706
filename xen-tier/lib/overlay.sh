#!/usr/bin/env bash
# overlay.sh KREL SCENARIOS TIMEOUT OUT.cpio.gz: the per-run initramfs layer, unpacked over the dom0 base:
# /init (dom0-init.sh), the built project under /xvgpu (dist/, the native addon, production
# node_modules), the kernel helper module built for KREL, the tier's scenarios and the guest
# artefacts under /xt, and the list of scenarios to run.
set -euo pipefail
krel=$1 scenarios=$2 timeout=$3 out=$4
. "$(dirname "$0")/common.sh"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
repo=$XT_REPO
[ -f "$repo/dist/cli/main.js" ] && [ -f "$repo/build/Release/xvgpu_native.node" ] \
  || xt_die "build the project first (npm install && npm run build): dist/cli/main.js or build/Release/xvgpu_native.node is missing"
mkdir -p "$root/xvgpu/build/Release" "$root/xt"
cp "$repo/package.json" "$root/xvgpu/"
cp -r "$repo/dist" "$root/xvgpu/dist"
cp "$repo/build/Release/xvgpu_native.node" "$root/xvgpu/build/Release/"
# Production dependencies only (the dev toolchain stays on the host).
(cd "$repo" && npm ls --omit=dev --all --parseable 2>/dev/null) | grep '/node_modules/' | while read -r pkg; do
  rel=${pkg#"$repo"/}
  mkdir -p "$root/xvgpu/$(dirname "$rel")"
  cp -r "$pkg" "$root/xvgpu/$rel"
done
cp "$repo/kernel-helper/xvgpu_helper.ko" "$root/xt/"
# The xen back-end selftest (static; the helper-xen scenario runs it).
make -s -C "$repo/kernel-helper" selftest/xen_test
cp "$repo/kernel-helper/selftest/xen_test" "$root/xt/"
cp -r "$XT_DIR/scenarios" "$root/xt/scenarios"
cp "$XT_DIR/dom0/lib.sh" "$root/xt/lib.sh"
cp "$XT_DIR/dom0/init.sh" "$root/init"
chmod +x "$root/init"
# dom0 test programs (xen-tier/dom0/*.c), linked against dom0's Xen libraries (libxen-dev here).
mkdir -p "$root/xt/bin"
for src in "$XT_DIR"/dom0/*.c; do
  [ -e "$src" ] || continue
  gcc -O2 -Wall -Wextra -Werror -o "$root/xt/bin/$(basename "$src" .c)" "$src" -lxenctrl -lxenforeignmemory -lxenevtchn -lxendevicemodel
done
# The crash reporter a scenario may LD_PRELOAD into xvgpu (dom0 has no debugger).
gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$root/xt/bin/segv-report.so" "$XT_DIR/dom0/preload/segv-report.c" -ldl
mkdir -p "$root/xt/guest"
cp "/boot/vmlinuz-$krel" "$root/xt/guest/vmlinuz"
"$XT_DIR/guest/build.sh" "$krel" "$root/xt/guest"
# The HVM guest (initramfs with the virtio-gpu driver modules, the SSDT) only when a scenario needs it.
case " ${scenarios//,/ } " in *" hvm-virtio-gpu "* | *" hvm-retry "*) "$XT_DIR/guest/build-hvm.sh" "$krel" "$root/xt/guest" ;; esac
printf '%s\n' "${scenarios//,/ }" > "$root/xt/scenarios.list"
# Each scenario's knobs (XT_<NAME>_*, NAME upper-cased with - as _, e.g. XT_PVH_RUNS) pass from the
# host's environment to dom0's /init, which exports them to the scenarios.
for s in ${scenarios//,/ }; do
  prefix=XT_$(echo "${s//-/_}" | tr '[:lower:]' '[:upper:]')_
  for v in $(compgen -e | grep "^$prefix" || true); do printf 'export %s=%q\n' "$v" "${!v}"; done
done > "$root/xt/scenario.env"
# node's options for every scenario (dom0/lib.sh has the default).
[ -z "${XT_NODE_FLAGS+set}" ] || printf 'export XT_NODE_FLAGS=%q\n' "$XT_NODE_FLAGS" >> "$root/xt/scenario.env"
echo "$timeout" > "$root/xt/timeout"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
