#!/bin/bash
# privsep: least privilege on real Xen. Two PVH guests, A and B, created paused (PVH: no --irq).
#  1. xvgpu serves A started as docs/deploy-xen.md says, with --run-as nobody: it must log the drop
#     (which includes its own audit of every Xen fd on the real drivers) and the kernel must show
#     its process as uid 65534 with no capabilities and no_new_privs.
#  2. privsep-probe.mjs sets the handles up as xvgpu does for A, drops to nobody, and tries domain B
#     through each: DM ops and foreign maps must fail with EPERM (privcmd's restriction), an
#     interdomain bind with EACCES (evtchn's), while the same calls for A still work.
set -uo pipefail
. /xt/lib.sh
out=$1
MMIO_BASE=0xfe000000 BAR_GFN=0xe0000 BAR_SIZE=16M

vram_resource() {
  local d
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] && { echo "$d/resource2"; return 0; }
  done
  echo "no ivshmem-plain device (1af4:1110) in dom0" >&2
  return 1
}

status_of() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }

VRAM=$(vram_resource) || exit 1
insmod /xt/xvgpu_helper.ko || exit 1
for g in a b; do
  xt_pvh_cfg "privsep-$g" sleep 600 > "/tmp/privsep-$g.cfg"
  # Bounded generously: under TCG on a loaded host one xl create took over 60 s.
  xt_bounded 180 xl create -p "/tmp/privsep-$g.cfg" || { echo "xl create privsep-$g failed (rc $?)"; exit 1; }
done
A=$(xt_domid privsep-a) B=$(xt_domid privsep-b)
echo "domains: A=$A B=$B"

(cd /xvgpu && exec node dist/cli/main.js run --platform xen --domid "$A" --bar-gfn $BAR_GFN --bar-size $BAR_SIZE \
    --mmio-base $MMIO_BASE --vram "$VRAM" --json --log-level info --run-as nobody) > "$out/xvgpu.json" 2> "$out/xvgpu.log" &
xpid=$!
served=0
xt_wait_file_match "$out/xvgpu.log" '"msg":"serving"' 60 && served=1
dropped=$(grep -c '"msg":"privileges dropped' "$out/xvgpu.log")
uid=$(status_of $xpid Uid) capeff=$(status_of $xpid CapEff) capprm=$(status_of $xpid CapPrm) nnp=$(status_of $xpid NoNewPrivs)
kill -TERM $xpid
for _ in $(seq 100); do kill -0 $xpid 2>/dev/null || break; sleep 0.2; done
kill -0 $xpid 2>/dev/null && { echo "xvgpu did not exit on SIGTERM"; kill -9 $xpid; }
wait $xpid
xrc=$?
tail -n 20 "$out/xvgpu.log"

probe=$(cd /xvgpu && xt_bounded 60 node /xt/scenarios/privsep-probe.mjs "$A" "$B" 2> "$out/probe.err")
echo "probe: $probe"
cat "$out/probe.err"
for g in a b; do xt_bounded 30 xl destroy "privsep-$g"; done
rmmod xvgpu_helper

node - "$out" "$served" "$dropped" "$uid" "$capeff" "$capprm" "$nnp" "$xrc" "$probe" <<'JS'
const fs = require('fs');
const [out, served, dropped, uid, capEff, capPrm, nnp, xrc, probe] = process.argv.slice(2);
let p = null;
try { p = JSON.parse(probe); } catch {}
const run = { served: served === '1', drop_logged: Number(dropped) > 0, uid, cap_eff: capEff, cap_prm: capPrm, no_new_privs: nnp, exit: Number(xrc) };
const problems = [];
if (!run.served || !run.drop_logged) problems.push('xvgpu --run-as nobody did not reach serving with the drop logged');
const ids = uid.trim().split(/\s+/);
if (ids.length !== 4 || ids.some((u) => u !== '65534')) problems.push(`xvgpu uid ${uid} (real, effective, saved, fs), want 65534`);
if (!/^0+$/.test(capEff) || !/^0+$/.test(capPrm)) problems.push(`xvgpu capabilities CapEff ${capEff} CapPrm ${capPrm}`);
if (nnp !== '1') problems.push(`xvgpu NoNewPrivs ${nnp}`);
if (run.exit !== 0) problems.push(`xvgpu exited ${run.exit} on SIGTERM (teardown as nobody)`);
const want = {
  uid: 65534, audit: 'ok',
  b_create_ioreq_server: 'EPERM', b_create_ioreq_server_raw: 'EPERM', b_map_guest_frame: 'EPERM', b_map_ioreq_page: 'EPERM',
  b_destroy_ioreq_server: 'EPERM', b_bind_evtchn: 'EACCES',
  a_create_ioreq_server: 'ok', a_map_ioreq_page: 'ok', a_destroy_ioreq_server: 'ok', a_map_guest_frame: 'ok',
};
if (!p) problems.push('the probe printed no result');
else for (const [k, v] of Object.entries(want)) if (p[k] !== v) problems.push(`probe ${k}: ${p[k]}, want ${v}`);
fs.writeFileSync(`${out}/result.json`, JSON.stringify({ xvgpu: run, probe: p, problems }));
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
JS
