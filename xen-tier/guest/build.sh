#!/usr/bin/env bash
# build.sh KREL OUTDIR: the guest initramfs OUTDIR/initrd.cpio.gz for the tier's PVH guests: a
# static busybox, the static C guest programs (guest/*.c), and guest/init.sh as /init, which runs
# /bin/<xt_cmd> (from the kernel command line) and powers the guest off.
set -euo pipefail
krel=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
busybox=${XVGPU_BUSYBOX:-/bin/busybox}
"$here/../../kernel-helper/vm/check-busybox.sh" "$busybox"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
for src in "$here"/*.c; do
  [ -e "$src" ] || continue
  # No -mavx2: AVX code lives in target("avx2") functions, called only where the CPU has it.
  gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/$(basename "$src" .c)" "$src"
done
cp "$here/init.sh" "$root/init"
chmod +x "$root/init"
echo "$krel" > "$root/lib/modules/krel"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.cpio.gz"
