#!/bin/bash
# helper-xen: the kernel helper's xen back-end on real Xen 4.17 (kernel-helper/selftest/xen_test.c)
# against domains created here: a PVH guest (maps), a PV guest (BIND refused), a PVH victim that the
# stale-domain case destroys, an absent domid; the ivshmem BAR dom0 sees (resource2) as the MMIO.
# Afterwards `xl dmesg` must show Xen's memory_map add and remove lines for the PVH guest.
set -euo pipefail
. /xt/lib.sh
out=$1
bar=
for d in /sys/bus/pci/devices/*; do
  if [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ]; then bar=$d/resource2; fi
done
[ -n "$bar" ] && [ -e "$bar" ] || { echo "no ivshmem BAR (1af4:1110 resource2) in dom0"; exit 1; }
insmod /xt/xvgpu_helper.ko
xt_pvh_cfg xpvh "sleep" "600" > /tmp/xpvh.cfg
xt_pvh_cfg xvictim "sleep" "600" > /tmp/xvictim.cfg
xt_pvh_cfg xpv "sleep" "600" | sed 's/^type = "pvh"/type = "pv"/' > /tmp/xpv.cfg
# Under TCG on a loaded host one xl create takes a minute or more.
for g in xpvh xvictim; do xt_bounded 240 xl create "/tmp/$g.cfg"; done
# The PV guest only has to exist (BIND must refuse it): created paused, it never boots (a booting PV
# guest vanished in the first run, libxl timing out on its console).
xt_bounded 240 xl create -p /tmp/xpv.cfg
export XVGPU_XEN_PVH=$(xt_domid xpvh) XVGPU_XEN_VICTIM=$(xt_domid xvictim) XVGPU_XEN_PV=$(xt_domid xpv)
export XVGPU_XEN_ABSENT=$((XVGPU_XEN_PV + 100)) XVGPU_XEN_MMIO=$bar
xl list
xl dmesg -c > /dev/null
set +e
xt_bounded 240 /xt/xen_test | tee "$out/xen_test.ktap"
rc=${PIPESTATUS[0]}
set -e
xl dmesg > "$out/xl-dmesg.txt"
adds=$(grep -c "memory_map:add: d${XVGPU_XEN_PVH} " "$out/xl-dmesg.txt" || true)
removes=$(grep -c "memory_map:remove: d${XVGPU_XEN_PVH} " "$out/xl-dmesg.txt" || true)
xt_destroy_guests
rmmod xvgpu_helper
passed=$(grep -c '^ok ' "$out/xen_test.ktap" || true)
failed=$(grep -c '^not ok ' "$out/xen_test.ktap" || true)
printf '{"selftest_rc":%d,"passed":%d,"failed":%d,"xen_memory_map_adds":%d,"xen_memory_map_removes":%d}\n' \
  "$rc" "$passed" "$failed" "$adds" "$removes" > "$out/result.json"
[ "$rc" = 0 ] && [ "$failed" = 0 ] && [ "$adds" -gt 0 ] && [ "$removes" -gt 0 ]
