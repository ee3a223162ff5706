#!/bin/bash
# xen-ext: the patched hypervisor's device-model extension (hypervisor/patches), driven from dom0 by
# /xt/bin/xen_ext_test through /dev/xen/privcmd IOCTL_PRIVCMD_DM_OP. A paused PVH guest T runs
# lend_reader; the test refuses every hostile argument with its documented errno, lends dom0-owned
# pages to T (rw, ro, the same page twice), checks what T reads and writes, revokes and sees T lose
# them, lends again and destroys T without revoking, and checks that every page reference came back
# (dom0's page count and Xen's free memory). A second guest Z is destroyed while dom0 maps one of its
# pages, so that it stays a dying domain for the test's "dying target" case. An ioreq server created
# with XEN_DMOP_IOREQ_SERVER_RETRY serves a third guest: first touches lend the page and answer
# STATE_IORESP_RETRY, so the vCPU re-executes against the mapping. Then the kernel helper's
# xen-dmop back-end lends a registered buffer to a third guest and revokes it from its invalidate
# callback when the buffer's pages are dropped (xen_dmop_helper_test). Between them: retry by kind
# of access (split, rep movs, rep stos, PIO) and three hostile retries that must crash their guest
# (retry_probe); `xvgpu xen-info --domid` reports the extension.
set -uo pipefail
. /xt/lib.sh
out=$1
GFN=0xd0000

xt_pvh_cfg xe-zombie sleep 600 > /tmp/xe-zombie.cfg
xt_bounded 180 xl create /tmp/xe-zombie.cfg || exit 1
zombie=$(xt_domid xe-zombie)
/xt/bin/xen_ext_test hold "$zombie" 0x100 > /tmp/xe-hold.out 2>&1 &
hold=$!
xt_wait_file_match /tmp/xe-hold.out '^held' 30 || { cat /tmp/xe-hold.out; exit 1; }
xt_bounded 60 xl destroy "$zombie"
xl list > "$out/xl-list-with-zombie.txt"

xt_pvh_cfg xe-target lend_reader "$GFN" > /tmp/xe-target.cfg
xt_bounded 180 xl create -p /tmp/xe-target.cfg || exit 1
target=$(xt_domid xe-target)
xt_bounded 30 /xt/bin/xen_ext_test query "$target" > "$out/query.json"
qrc=$?
xt_bounded 30 /xt/bin/xen_ext_test retry-flag "$target" > "$out/retry-flag.json"
frc=$?
# xvgpu's own probe (probeDmExtension through privcmd): version, features and both bits.
(cd /xvgpu && xt_bounded 60 node $XT_NODE_FLAGS dist/cli/main.js xen-info --domid "$target" --json) > "$out/xen-info.json"
irc=$?
xl dmesg -c > /dev/null
xt_bounded 600 /xt/bin/xen_ext_test run "$target" "$GFN" "$XT_CONSOLE_DIR/guest-xe-target.log" "$zombie" \
  > "$out/run.json" 2> "$out/run.log"
rc=$?
cat "$out/run.log"
cp "$XT_CONSOLE_DIR/guest-xe-target.log" "$out/guest.log" 2>/dev/null
xl dmesg > "$out/xl-dmesg.txt"

# IORESP_RETRY: an ioreq server created with the RETRY flag lends on first touch and retries.
xt_pvh_cfg xe-retry lend_reader "$GFN" > /tmp/xe-retry.cfg
xt_bounded 180 xl create -p /tmp/xe-retry.cfg || exit 1
rdom=$(xt_domid xe-retry)
xt_bounded 500 /xt/bin/xen_ext_test retry "$rdom" "$GFN" "$XT_CONSOLE_DIR/guest-xe-retry.log" \
  > "$out/retry.json" 2> "$out/retry.log"
rrc=$?
cat "$out/retry.log"
cp "$XT_CONSOLE_DIR/guest-xe-retry.log" "$out/retry-guest.log" 2>/dev/null
xl list | grep -q xe-retry && xt_bounded 30 xl destroy "$rdom"

# IORESP_RETRY by kind of access (guest/retry_probe.c): a split read, rep movs (data_is_ptr), rep
# stos and PIO; then three guests whose server answers RETRY where Xen did not offer it (a server
# without the flag, a PIO request, a split access's second chunk): each must be crashed.
xt_pvh_cfg xe-kinds retry_probe "kinds,$GFN" > /tmp/xe-kinds.cfg
xt_bounded 180 xl create -p /tmp/xe-kinds.cfg || exit 1
kdom=$(xt_domid xe-kinds)
xt_bounded 500 /xt/bin/xen_ext_test retry-kinds "$kdom" "$GFN" "$XT_CONSOLE_DIR/guest-xe-kinds.log" \
  > "$out/retry-kinds.json" 2> "$out/retry-kinds.log"
krc=$?
cat "$out/retry-kinds.log"
cp "$XT_CONSOLE_DIR/guest-xe-kinds.log" "$out/retry-kinds-guest.log" 2>/dev/null
xl list | grep -q xe-kinds && xt_bounded 30 xl destroy "$kdom"
hostile_rc=0
for mode in noflag pio split; do
  guest_mode=$mode; [ "$mode" = noflag ] && guest_mode=touch
  xt_pvh_cfg "xe-h-$mode" retry_probe "$guest_mode,$GFN" > "/tmp/xe-h-$mode.cfg"
  xt_bounded 180 xl create -p "/tmp/xe-h-$mode.cfg" || exit 1
  hd=$(xt_domid "xe-h-$mode")
  xl dmesg -c > /dev/null
  xt_bounded 500 /xt/bin/xen_ext_test retry-hostile "$mode" "$hd" "$GFN" "$XT_CONSOLE_DIR/guest-xe-h-$mode.log" \
    > "$out/hostile-$mode.json" 2> "$out/hostile-$mode.log" || hostile_rc=1
  cat "$out/hostile-$mode.log"
  # Xen names where it crashed the guest (common/ioreq.c: wait_for_io()).
  xl dmesg | grep -m1 'domain_crash called from' > "$out/hostile-$mode-crash.txt"
  cp "$XT_CONSOLE_DIR/guest-xe-h-$mode.log" "$out/hostile-$mode-guest.log" 2>/dev/null
  xl list | grep -q "xe-h-$mode" && xt_bounded 30 xl destroy "$hd"
done

# The kernel helper's xen-dmop back-end: MAP lends, the invalidate callback revokes.
insmod /xt/xvgpu_helper.ko || exit 1
xt_pvh_cfg xe-helper lend_reader "$GFN" > /tmp/xe-helper.cfg
xt_bounded 180 xl create -p /tmp/xe-helper.cfg || exit 1
hdom=$(xt_domid xe-helper)
xt_bounded 500 /xt/bin/xen_dmop_helper_test run "$hdom" "$GFN" "$XT_CONSOLE_DIR/guest-xe-helper.log" \
  > "$out/helper.json" 2> "$out/helper.log"
hrc=$?
cat "$out/helper.log"
cp "$XT_CONSOLE_DIR/guest-xe-helper.log" "$out/helper-guest.log" 2>/dev/null
xt_bounded 30 xl destroy "$hdom"
rmmod xvgpu_helper

kill "$hold"; wait "$hold" 2>/dev/null
# The dying domain goes away once dom0 drops its mapping.
gone=0
for _ in $(seq 150); do xl list | awk 'NR > 1 { print $2 }' | grep -qx "$zombie" || { gone=1; break; }; sleep 0.2; done
[ $qrc -eq 0 ] && [ $frc -eq 0 ] && [ $irc -eq 0 ] && [ $rc -eq 0 ] && [ $rrc -eq 0 ] && [ $krc -eq 0 ] \
  && [ $hostile_rc -eq 0 ] && [ $hrc -eq 0 ] && [ $gone -eq 1 ] \
  || { echo "query rc=$qrc retry-flag rc=$frc xen-info rc=$irc run rc=$rc retry rc=$rrc kinds rc=$krc" \
       "hostile rc=$hostile_rc helper rc=$hrc zombie gone=$gone"; exit 1; }
node $XT_NODE_FLAGS -e '
const fs = require("fs");
const out = process.argv[1];
const run = JSON.parse(fs.readFileSync(`${out}/run.json`, "utf8"));
const query = JSON.parse(fs.readFileSync(`${out}/query.json`, "utf8"));
const helper = JSON.parse(fs.readFileSync(`${out}/helper.json`, "utf8"));
const retryFlag = JSON.parse(fs.readFileSync(`${out}/retry-flag.json`, "utf8"));
const retry = JSON.parse(fs.readFileSync(`${out}/retry.json`, "utf8"));
const xenInfo = JSON.parse(fs.readFileSync(`${out}/xen-info.json`, "utf8"));
const retryKinds = JSON.parse(fs.readFileSync(`${out}/retry-kinds.json`, "utf8"));
const hostile = {};
for (const m of ["noflag", "pio", "split"]) {
  hostile[m] = JSON.parse(fs.readFileSync(`${out}/hostile-${m}.json`, "utf8"));
  hostile[m].xen_crash_site = fs.readFileSync(`${out}/hostile-${m}-crash.txt`, "utf8").trim();
}
fs.writeFileSync(`${out}/result.json`, JSON.stringify({ query, retry_flag: retryFlag, xen_info: xenInfo, run, retry,
  retry_kinds: retryKinds, retry_hostile: hostile, helper, dying_domain_released: true }));
' "$out"
