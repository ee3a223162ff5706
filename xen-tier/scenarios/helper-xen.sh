#!/bin/bash
# helper-xen: the kernel helper's xen back-end on real Xen 4.17 (kernel-helper/selftest/xen_test.c)
# against domains created here: a PVH guest (maps; it runs gfn_probe on the test window's first
# page, so the selftest sees the guest read the mapped frame and lose it), a PV guest (BIND
# refused), a PVH victim that the stale-domain case destroys, an absent domid; the ivshmem BAR dom0
# sees (resource2) as the MMIO.
# Afterwards `xl dmesg` must show Xen's memory_map add lines for the PVH guest, each with its remove
# line (same gfn, mfn, nr).
set -euo pipefail
. /xt/lib.sh
out=$1
bar=
for d in /sys/bus/pci/devices/*; do
  if [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ]; then bar=$d/resource2; fi
done
[ -n "$bar" ] && [ -e "$bar" ] || { echo "no ivshmem BAR (1af4:1110 resource2) in dom0"; exit 1; }
insmod /xt/xvgpu_helper.ko
xt_pvh_cfg xpvh "gfn_probe" "0xe0000000,1500" > /tmp/xpvh.cfg
xt_pvh_cfg xvictim "sleep" "600" > /tmp/xvictim.cfg
xt_pvh_cfg xpv "sleep" "600" | sed 's/^type = "pvh"/type = "pv"/' > /tmp/xpv.cfg
# Every guest is created paused, and only xpvh (the one the guest-read case needs) is then let run:
# once a guest ran, later `xl create`s failed in dom0 under load, libxl unable to XZ-decompress the
# same kernel image it had just loaded ("Invalid kernel", and the same again on a retry, with 1 GB
# free). The victim and the PV guest only have to exist (BIND, destroy). Under TCG on a loaded host
# one xl create takes a minute or more.
for g in xpvh xvictim xpv; do xt_bounded 240 xl create -p "/tmp/$g.cfg"; done
xl unpause xpvh
probe_log=$XT_CONSOLE_DIR/guest-xpvh.log
xt_wait_file_match "$probe_log" '^XT-PROBE: ' 240
export XVGPU_XEN_PROBE_LOG=$probe_log XVGPU_XEN_PVH=$(xt_domid xpvh) XVGPU_XEN_VICTIM=$(xt_domid xvictim) XVGPU_XEN_PV=$(xt_domid xpv)
export XVGPU_XEN_ABSENT=$((XVGPU_XEN_PV + 100)) XVGPU_XEN_MMIO=$bar
xl list
xl dmesg -c > /dev/null
set +e
xt_bounded 600 /xt/xen_test | tee "$out/xen_test.ktap"
rc=${PIPESTATUS[0]}
set -e
xl dmesg > "$out/xl-dmesg.txt"
# Xen's own record for the PVH guest: every entry added (gfn, mfn, nr) must have been removed.
entries() { grep -o "memory_map:$1: d${XVGPU_XEN_PVH} .*" "$out/xl-dmesg.txt" | cut -d' ' -f3- | sort > "$out/$1s.txt" || true; }
entries add
entries remove
comm -23 "$out/adds.txt" "$out/removes.txt" > "$out/unremoved.txt"
adds=$(wc -l < "$out/adds.txt") removes=$(wc -l < "$out/removes.txt") unremoved=$(wc -l < "$out/unremoved.txt")
xt_destroy_guests
rmmod xvgpu_helper
passed=$(grep -c '^ok ' "$out/xen_test.ktap" || true)
failed=$(grep -c '^not ok ' "$out/xen_test.ktap" || true)
printf '{"selftest_rc":%d,"passed":%d,"failed":%d,"xen_memory_map_adds":%d,"xen_memory_map_removes":%d,"xen_memory_map_unremoved":%d}\n' \
  "$rc" "$passed" "$failed" "$adds" "$removes" "$unremoved" > "$out/result.json"
[ "$unremoved" = 0 ] || { echo "entries Xen added for d$XVGPU_XEN_PVH and never removed:"; cat "$out/unremoved.txt"; }
[ "$rc" = 0 ] && [ "$failed" = 0 ] && [ "$adds" -gt 0 ] && [ "$removes" -gt 0 ] && [ "$unremoved" = 0 ]
