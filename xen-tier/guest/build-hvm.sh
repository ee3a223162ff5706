#!/usr/bin/env bash
# build-hvm.sh KREL OUTDIR: the HVM guest of the hvm-virtio-gpu scenario:
#   OUTDIR/hvm-initrd.cpio.gz  static busybox, the modules virtio-gpu needs (and virtio_mmio) from
#                              the host's KREL in dependency order, hvm/virtgpu_client.c built static,
#                              hvm/init.sh as /init;
#   OUTDIR/xvgpu-ssdt.aml      hvm/xvgpu-ssdt.asl compiled by iasl (acpica-tools), for acpi_firmware=.
set -euo pipefail
krel=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
busybox=${XVGPU_BUSYBOX:-/bin/busybox}
command -v iasl >/dev/null || { echo "build-hvm.sh: iasl is missing (apt-get install acpica-tools)" >&2; exit 1; }
"$here/../../kernel-helper/vm/check-busybox.sh" "$busybox"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/virtgpu_client" "$here/hvm/virtgpu_client.c"
cp "$here/hvm/init.sh" "$root/init"
chmod +x "$root/init"

# Modules in dependency order (depth first: dependencies before dependants, each once).
declare -A seen=()
order=()
add_module() {
  local m=$1 dep
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  for dep in $(modinfo -k "$krel" -F depends "$m" | tr ',' ' '); do add_module "$dep"; done
  local f
  f=$(modinfo -k "$krel" -n "$m") || { echo "build-hvm.sh: no module $m in $krel" >&2; exit 1; }
  case $f in
    *.ko) cp "$f" "$root/lib/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *) echo "build-hvm.sh: $m is $f, neither .ko nor .ko.xz" >&2; exit 1 ;;
  esac
  order+=("$m.ko")
}
add_module virtio_mmio
add_module virtio-gpu
printf '%s\n' "${order[@]}" > "$root/lib/modules/order"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/hvm-initrd.cpio.gz"

aml=$(mktemp -d)
cp "$here/hvm/xvgpu-ssdt.asl" "$aml/"
(cd "$aml" && iasl -p xvgpu-ssdt xvgpu-ssdt.asl >/dev/null) || { echo "build-hvm.sh: iasl failed on xvgpu-ssdt.asl" >&2; rm -rf "$aml"; exit 1; }
cp "$aml/xvgpu-ssdt.aml" "$out/"
rm -rf "$aml"
