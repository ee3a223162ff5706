#!/bin/bash
# Scenario 1: a PVH guest on stock Xen, served by xvgpu started as docs/deploy-xen.md says, with a
# VRAM stand-in: QEMU's ivshmem-plain BAR in dom0 (MMIO frames), given to xvgpu with --vram. The
# guest program (guest/bar_client.c) drives the virtio-gpu device by polling, creates blobs, places
# them in the BAR window and touches them (32-bit, rep movs, SSE, AVX), revokes one and checks that
# no read reaches a freed (poisoned) frame. Runs:
#   a       --strategy emulate-all: nothing is mapped, every access is an ioreq;
#   b       map-and-emulate (stock Xen's mode): a first touch maps the page (memory_mapping), later
#           touches cause no ioreq, UNMAP_BLOB revokes, the new blob faults again, no stale read;
#   inject  b with the helper loaded test_skip_revoke=1: the stale detector must count stale reads.
set -uo pipefail
. /xt/lib.sh
out=$1
MMIO_BASE=0xfe000000 BAR_GFN=0xe0000 BAR_SIZE=16M IRQ=7

vram_resource() {
  local d
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] && { echo "$d/resource2"; return 0; }
  done
  echo "no ivshmem-plain device (1af4:1110) in dom0" >&2
  return 1
}

# run_case NAME HELPER_PARAMS XVGPU_EXTRA: one guest, one xvgpu; writes $out/NAME.json.
run_case() {
  local name=$1 params=$2 extra=$3 dom xpid rc t0 t1
  t0=$(date +%s%N)
  insmod /xt/xvgpu_helper.ko $params || return 1
  xt_pvh_cfg "pvh-$name" bar_client "$MMIO_BASE" > "/tmp/pvh-$name.cfg"
  xt_bounded 60 xl create -p "/tmp/pvh-$name.cfg" || return 1
  dom=$(xt_domid "pvh-$name")
  xl dmesg -c > /dev/null
  # shellcheck disable=SC2086 # extra is a word list
  (cd /xvgpu && exec node dist/cli/main.js run --platform xen --domid "$dom" --bar-gfn $BAR_GFN --bar-size $BAR_SIZE \
      --mmio-base $MMIO_BASE --irq $IRQ --vram "$VRAM" --json --log-level info $extra) > "$out/$name.xvgpu.json" 2> "$out/$name.xvgpu.log" &
  xpid=$!
  xt_wait_file_match "$out/$name.xvgpu.log" '"msg":"serving"' 60 || { cat "$out/$name.xvgpu.log"; kill -9 $xpid; return 1; }
  xl unpause "$dom"
  xt_wait_file_match "$XT_CONSOLE_DIR/guest-pvh-$name.log" '^XT-GUEST: exit' 240
  rc=$?
  cp "$XT_CONSOLE_DIR/guest-pvh-$name.log" "$out/$name.guest.log" 2>/dev/null
  xt_wait_gone "pvh-$name" 30 || xt_bounded 30 xl destroy "$dom"
  kill -TERM $xpid
  for _ in $(seq 100); do kill -0 $xpid 2>/dev/null || break; sleep 0.2; done
  kill -0 $xpid 2>/dev/null && { echo "xvgpu did not exit on SIGTERM"; kill -9 $xpid; rc=1; }
  wait $xpid
  xl dmesg > "$out/$name.xl-dmesg.txt"
  rmmod xvgpu_helper
  t1=$(date +%s%N)
  node - "$out" "$name" "$(( (t1 - t0) / 1000000 ))" <<'JS'
const fs = require('fs');
const [out, name, ms] = process.argv.slice(2);
const guestLine = fs.readFileSync(`${out}/${name}.guest.log`, 'utf8').split('\n').find((l) => l.startsWith('XT-GUEST: result '));
const dmesg = fs.readFileSync(`${out}/${name}.xl-dmesg.txt`, 'utf8');
let xvgpu = null;
try { xvgpu = JSON.parse(fs.readFileSync(`${out}/${name}.xvgpu.json`, 'utf8').trim().split('\n').pop()); } catch {}
const r = {
  guest: guestLine ? JSON.parse(guestLine.slice('XT-GUEST: result '.length)) : null,
  xvgpu,
  xen_memory_map: { add: (dmesg.match(/memory_map:add/g) || []).length, remove: (dmesg.match(/memory_map:remove/g) || []).length },
  wall_ms: Number(ms),
};
fs.writeFileSync(`${out}/${name}.json`, JSON.stringify(r));
JS
  return $rc
}

VRAM=$(vram_resource) || exit 1
awk 'NR == 3' "${VRAM%/resource2}/resource" > "$out/vram-resource.txt"
status=0
run_case a "" "--strategy emulate-all" || status=1
run_case b "" "--mode emulate" || status=1
run_case inject "test_skip_revoke=1" "--mode emulate" || status=1
node - "$out" <<'JS' || status=1
const fs = require('fs');
const out = process.argv[2];
const load = (n) => { try { return JSON.parse(fs.readFileSync(`${out}/${n}.json`, 'utf8')); } catch { return null; } };
const [a, b, inject] = ['a', 'b', 'inject'].map(load);
const problems = [];
const clean = (n, r) => {
  if (!r || !r.guest || !r.xvgpu) return problems.push(`${n}: missing guest or xvgpu summary`);
  const g = r.guest;
  if (!g.ok) problems.push(`${n}: guest error ${g.error} (line ${g.error_line})`);
  for (const k of ['mismatches', 'stale_reads', 'post_unmap_not_all_ones', 'fill_mismatches', 'refault_mismatches']) if (g[k] !== 0) problems.push(`${n}: ${k} = ${g[k]}`);
};
clean('a', a);
clean('b', b);
if (a && a.xvgpu && a.xvgpu.helper.installed_pages !== 0) problems.push('a: emulate-all installed pages');
if (b && b.xvgpu && !(b.xvgpu.helper.installed_pages > 0 && b.xvgpu.helper.revoked_pages > 0)) problems.push('b: no page mapped and revoked');
if (a && b && a.xvgpu && b.xvgpu && !(b.xvgpu.requests < a.xvgpu.requests)) problems.push('b: mapping did not reduce ioreqs');
if (!inject || !inject.guest || !(inject.guest.stale_reads > 0)) problems.push('inject: the stale detector caught nothing with test_skip_revoke=1');
const result = { a, b, inject, problems };
fs.writeFileSync(`${out}/result.json`, JSON.stringify(result));
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
JS
exit $status
