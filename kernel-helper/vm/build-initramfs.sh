#!/usr/bin/env bash
# build-initramfs.sh KREL OUT.cpio.gz INIT [EXTRA_DIR]
# An initramfs for the VM tier: a static busybox ($XVGPU_BUSYBOX, default /bin/busybox from
# busybox-static; checked by check-busybox.sh), Debian's drm / drm_shmem_helper / vgem modules with
# their dependencies (resolved with modinfo), our module and selftest, the given /init, and
# optionally a directory tree copied to / (the Node.js runtime and the project for the TS tier).
set -euo pipefail
krel=$1 out=$2 init=$3 extra=${4:-}
here=$(cd "$(dirname "$0")/.." && pwd)
busybox=${XVGPU_BUSYBOX:-/bin/busybox}
"$here/vm/check-busybox.sh" "$busybox"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,modules,lib64,run}
cp "$busybox" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done

# Modules in load order: dependencies first.
declare -A seen=()
order=()
add_module() {
  local name=$1 path dep
  [ -n "${seen[$name]:-}" ] && return
  seen[$name]=1
  path=$(modinfo -k "$krel" -n "$name")
  for dep in $(modinfo -k "$krel" -F depends "$name" | tr ',' ' '); do add_module "$dep"; done
  case "$path" in
    *.ko) cp "$path" "$root/modules/" ;;
    *.ko.xz) xz -dc "$path" > "$root/modules/$(basename "${path%.xz}")" ;;
    *.ko.zst) zstd -qdc "$path" > "$root/modules/$(basename "${path%.zst}")" ;;
    *) echo "build-initramfs: cannot use $path" >&2; exit 1 ;;
  esac
  order+=("$(basename "${path%.*}" .ko).ko")
}
add_module vgem
printf '%s\n' "${order[@]}" > "$root/modules/order"
cp "$here/xvgpu_helper.ko" "$root/modules/"
cp "$here/selftest/helper_test" "$root/bin/"
cp "$init" "$root/init"
chmod +x "$root/init"
if [ -n "$extra" ]; then cp -a "$extra"/. "$root/"; fi
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
