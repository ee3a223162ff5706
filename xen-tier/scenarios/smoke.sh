#!/bin/bash
# smoke: the tier's own plumbing. dom0 sees Xen with HAP, the kernel helper loads with its xen
# back-end, xvgpu xen-info runs on real Xen, and a PVH guest boots, runs a program and powers off.
set -euo pipefail
. /xt/lib.sh
out=$1
t0=$(date +%s.%N)
xl info | grep -E 'xen_version|virt_caps'
xl info | grep -q "virt_caps.*hap" || { echo "no HAP in virt_caps"; exit 1; }
insmod /xt/xvgpu_helper.ko
[ -c /dev/xvgpu_helper ] || { echo "/dev/xvgpu_helper missing after insmod"; exit 1; }
(cd /xvgpu && xt_bounded 60 node $XT_NODE_FLAGS dist/cli/main.js xen-info) | tee "$out/xen-info.txt"
xt_pvh_cfg smoke true "" > /tmp/smoke.cfg
xt_bounded 60 xl create /tmp/smoke.cfg
xt_wait_file_match "$XT_CONSOLE_DIR/guest-smoke.log" '^XT-GUEST: exit 0' 90
xt_wait_gone smoke 30
rmmod xvgpu_helper
t1=$(date +%s.%N)
printf '{"xen_version":"%s","guest_exit":0,"wall_s":%s}\n' "$(xl info | awk -F': ' '/xen_version/ {print $2}')" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" > "$out/result.json"
