#!/usr/bin/env bash
# Prints the kernel release the VM tier uses: the one Debian's linux-image-amd64 meta package
# depends on (resolved at provision time, not hard-coded), provided its image and headers exist.
set -euo pipefail
pkg=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null | grep -o 'linux-image-[0-9][^ ,]*' | head -n1) || true
if [ -z "${pkg:-}" ]; then
  echo "kernel.sh: linux-image-amd64 is not installed (apt-get install linux-image-amd64 linux-headers-amd64)" >&2
  exit 1
fi
rel=${pkg#linux-image-}
for f in "/boot/vmlinuz-$rel" "/lib/modules/$rel/build/Makefile" "/lib/modules/$rel/kernel/drivers/gpu/drm/vgem/vgem.ko"; do
  [ -e "$f" ] || { echo "kernel.sh: $f is missing (need linux-image-$rel and linux-headers-$rel)" >&2; exit 1; }
done
echo "$rel"
