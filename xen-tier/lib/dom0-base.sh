#!/usr/bin/env bash
# dom0-base.sh KREL OUTDIR: the dom0 root filesystem without the project, packed as
# OUTDIR/base.cpio.gz: debootstrap minbase bookworm (+ bookworm-security, where Debian's Xen 4.17
# updates are), the Xen 4.17 tools and daemons, qemu-system-xen + seabios (HVM guests' device
# model), busybox-static, and the Xen/DRM modules of the host's Debian kernel KREL (depmod'ed).
set -euo pipefail
krel=$1 out=$2
. "$(dirname "$0")/common.sh"
mirror=$(xt_mirror)
root="$out/root"
mkdir -p "$root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$out/debootstrap.log" 2>&1 \
  || { tail -n 30 "$out/debootstrap.log"; exit 1; }
security=${mirror%/debian*}/debian-security
printf 'deb %s bookworm main\ndeb %s bookworm-security main\n' "$mirror" "$security" > "$root/etc/apt/sources.list"
chroot "$root" apt-get update -qq
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
  xen-utils-4.17 kmod qemu-system-xen seabios busybox-static >"$out/apt.log" 2>&1 || { tail -n 30 "$out/apt.log"; exit 1; }
chroot "$root" apt-get clean
rm -rf "$root"/usr/share/{doc,man,locale,info} "$root"/var/lib/apt/lists/*
# The kernel's modules: Xen front/back-ends, DRM + vgem (RAM-backed buffers), virtio-blk (the
# disk dom0 writes the results to).
mkdir -p "$root/lib/modules/$krel"
(cd "/lib/modules/$krel" && cp --parents -r kernel/drivers/xen kernel/drivers/gpu/drm/vgem kernel/drivers/gpu/drm/drm.ko \
   kernel/drivers/gpu/drm/drm_shmem_helper.ko kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko modules.order modules.builtin modules.builtin.modinfo "$root/lib/modules/$krel/")
chroot "$root" depmod "$krel"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/base.cpio.gz"
du -sh "$root" | sed 's/^/dom0 rootfs unpacked: /'
rm -rf "$root"
