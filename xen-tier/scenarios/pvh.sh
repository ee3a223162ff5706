#!/bin/bash
# Scenario 1: a PVH guest on stock Xen, served by xvgpu started as docs/deploy-xen.md says, with a
# VRAM stand-in: QEMU's ivshmem-plain BAR in dom0 (MMIO frames), given to xvgpu with --vram. The
# guest program (guest/bar_client.c) drives the virtio-gpu device by polling (a PVH guest has no
# interrupt controller: xvgpu runs without --irq), creates blobs, places them in the BAR window and
# touches them (32-bit, rep movs, SSE, AVX where the guest CPU has AVX2), revokes one and checks that
# no read reaches a freed (poisoned) frame. Runs:
#   a       --strategy emulate-all: nothing is mapped, every access is an ioreq;
#   b       map-and-emulate (stock Xen's mode): a first touch maps the page (memory_mapping), later
#           touches cause no ioreq, UNMAP_BLOB revokes, the new blob faults again, no stale read;
#   inject  b with the helper loaded test_skip_revoke=1: the stale detector must count stale reads;
#   d       kill -9 of xvgpu while pages are mapped: the helper's release removes every entry (no
#           read reaches the old frames), and a restarted xvgpu serves the guest again;
#   e       xl destroy of the guest while pages are mapped: xvgpu stops cleanly with its summary,
#           the helper unloads (nothing held), no domain is left.
# XT_PVH_RUNS (words from "a b inject d e") runs a subset, for debugging; then no result.json.
set -uo pipefail
. /xt/lib.sh
out=$1
MMIO_BASE=0xfe000000 BAR_GFN=0xe0000 BAR_SIZE=16M
# Pages per blob (bar_client argument).
PAGES=16
# How long the guest of d and e sleeps with its pages mapped while the host acts (TCG is slow).
HOLD_S=150

vram_resource() {
  local d
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] && { echo "$d/resource2"; return 0; }
  done
  echo "no ivshmem-plain device (1af4:1110) in dom0" >&2
  return 1
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# map_frames add|remove: frames Xen reports having mapped or unmapped (memory_map:... nr=HEX lines).
map_frames() { xl dmesg | sed -n "s/.*memory_map:$1: .* nr=\([0-9a-f]*\).*/\1/p" | { s=0; while read -r n; do s=$((s + 16#$n)); done; echo $s; }; }

# start_guest NAME ARGS: creates the guest paused (bar_client ARGS, comma separated); sets $dom.
start_guest() {
  insmod /xt/xvgpu_helper.ko $2 || return 1
  xt_pvh_cfg "pvh-$1" bar_client "$3" > "/tmp/pvh-$1.cfg"
  xt_bounded 60 xl create -p "/tmp/pvh-$1.cfg" || return 1
  dom=$(xt_domid "pvh-$1")
  xl dmesg -c > /dev/null
}

# start_xvgpu TAG EXTRA...: xvgpu serving $dom as docs/deploy-xen.md says; sets $xpid.
start_xvgpu() {
  local tag=$1; shift
  # shellcheck disable=SC2068 # the extra options are a word list
  (cd /xvgpu && exec node dist/cli/main.js run --platform xen --domid "$dom" --bar-gfn $BAR_GFN --bar-size $BAR_SIZE \
      --mmio-base $MMIO_BASE --vram "$VRAM" --json --log-level info $@) > "$out/$tag.xvgpu.json" 2> "$out/$tag.xvgpu.log" &
  xpid=$!
  xt_wait_file_match "$out/$tag.xvgpu.log" '"msg":"serving"' 90 || { cat "$out/$tag.xvgpu.log"; kill -9 $xpid; return 1; }
}

# stop_xvgpu: SIGTERM, bounded; sets $xrc to xvgpu's exit status (not in $(...): wait needs the
# shell that started it).
stop_xvgpu() {
  kill -TERM $xpid
  for _ in $(seq 150); do kill -0 $xpid 2>/dev/null || break; sleep 0.2; done
  kill -0 $xpid 2>/dev/null && { echo "xvgpu did not exit on SIGTERM" >&2; kill -9 $xpid; }
  wait $xpid
  xrc=$?
}

guest_log() { cp "$XT_CONSOLE_DIR/guest-pvh-$1.log" "$out/$1.guest.log" 2>/dev/null; }

# summarize NAME TAG MS EXTRA_JSON: $out/NAME.json from the guest's result line, xvgpu TAG's summary,
# Xen's memory_map counts and EXTRA_JSON (an object merged in).
summarize() {
  xl dmesg > "$out/$1.xl-dmesg.txt"
  node - "$out" "$1" "$2" "$3" "$4" <<'JS'
const fs = require('fs');
const [out, name, tag, ms, extra] = process.argv.slice(2);
const guestLine = (() => { try { return fs.readFileSync(`${out}/${name}.guest.log`, 'utf8').split('\n').find((l) => l.startsWith('XT-GUEST: result ')); } catch { return undefined; } })();
const dmesg = fs.readFileSync(`${out}/${name}.xl-dmesg.txt`, 'utf8');
let xvgpu = null;
try { xvgpu = JSON.parse(fs.readFileSync(`${out}/${tag}.xvgpu.json`, 'utf8').trim().split('\n').pop()); } catch {}
const r = {
  guest: guestLine ? JSON.parse(guestLine.slice('XT-GUEST: result '.length)) : null,
  xvgpu,
  xen_memory_map: Object.fromEntries(['add', 'remove', 'fail'].map((k) => [k, [...dmesg.matchAll(new RegExp(`memory_map:${k}: .* nr=([0-9a-f]+)`, 'g'))].reduce((s, m) => s + parseInt(m[1], 16), 0)])),
  wall_ms: Number(ms),
  ...JSON.parse(extra || '{}'),
};
fs.writeFileSync(`${out}/${name}.json`, JSON.stringify(r));
JS
}

# run_case NAME HELPER_PARAMS XVGPU_EXTRA: one guest, one xvgpu, the guest's whole program.
run_case() {
  local name=$1 t0 rc
  t0=$(now_ms)
  start_guest "$name" "$2" "$MMIO_BASE,$PAGES" || return 1
  start_xvgpu "$name" $3 || return 1
  xl unpause "$dom"
  xt_wait_file_match "$XT_CONSOLE_DIR/guest-pvh-$name.log" '^XT-GUEST: exit' 300
  rc=$?
  guest_log "$name"
  xt_wait_gone "pvh-$name" 30 || xt_bounded 30 xl destroy "$dom"
  stop_xvgpu
  rmmod xvgpu_helper || rc=1
  summarize "$name" "$name" $(( $(now_ms) - t0 )) "{\"xvgpu_exit\":$xrc}"
  [ "$xrc" = 0 ] && return $rc
  return 1
}

# d: kill -9 while mapped, then a restarted xvgpu serves the guest's second pass.
run_kill() {
  local t0 rc adds removes refcnt killed_ms
  t0=$(now_ms)
  start_guest d "" "$MMIO_BASE,$PAGES,$HOLD_S" || return 1
  start_xvgpu d1 --mode emulate || return 1
  xl unpause "$dom"
  xt_wait_file_match "$XT_CONSOLE_DIR/guest-pvh-d.log" '^XT-GUEST: (held|exit)' 300 || return 1
  kill -9 $xpid
  wait $xpid
  killed_ms=$(now_ms)
  # The helper's release ran when the fd closed with the process: every entry added is removed.
  adds=$(map_frames add) removes=$(map_frames remove)
  refcnt=$(cat /sys/module/xvgpu_helper/refcnt)
  start_xvgpu d2 --mode emulate || return 1
  local restarted_ms; restarted_ms=$(now_ms)
  xt_wait_file_match "$XT_CONSOLE_DIR/guest-pvh-d.log" '^XT-GUEST: exit' 400
  rc=$?
  guest_log d
  grep -q '^XT-GUEST: rechecked' "$out/d.guest.log" || { echo "d: the guest slept past the restart (raise HOLD_S)" >&2; rc=1; }
  xt_wait_gone pvh-d 30 || xt_bounded 30 xl destroy "$dom"
  stop_xvgpu
  rmmod xvgpu_helper || rc=1
  summarize d d2 $(( $(now_ms) - t0 )) "{\"at_kill\":{\"frames_added\":$adds,\"frames_removed\":$removes,\"helper_refcnt\":$refcnt},\"restart_ms\":$((restarted_ms - killed_ms)),\"xvgpu_exit\":$xrc}"
  [ "$xrc" = 0 ] && return $rc
  return 1
}

# e: xl destroy while mapped; xvgpu is then stopped and must exit 0 with its summary.
run_destroy() {
  local t0 rc=0 alive domains rmmod_ok=true
  t0=$(now_ms)
  start_guest e "" "$MMIO_BASE,$PAGES,600" || return 1
  start_xvgpu e --mode emulate || return 1
  xl unpause "$dom"
  xt_wait_file_match "$XT_CONSOLE_DIR/guest-pvh-e.log" '^XT-GUEST: (held|exit)' 300 || return 1
  xt_bounded 60 xl destroy "$dom" || rc=1
  guest_log e
  sleep 2
  kill -0 $xpid 2>/dev/null && alive=true || alive=false
  stop_xvgpu
  rmmod xvgpu_helper || { rmmod_ok=false; rc=1; }
  domains=$(xl list | awk 'NR > 2' | wc -l)
  summarize e e $(( $(now_ms) - t0 )) "{\"xvgpu_alive_after_destroy\":$alive,\"xvgpu_exit\":$xrc,\"helper_unloaded\":$rmmod_ok,\"domains_left\":$domains}"
  [ "$xrc" = 0 ] && return $rc
  return 1
}

VRAM=$(vram_resource) || exit 1
awk 'NR == 3' "${VRAM%/resource2}/resource" > "$out/vram-resource.txt"
status=0
runs=${XT_PVH_RUNS:-a b inject d e}
for r in $runs; do
  xt_log "run $r"
  case $r in
    a) run_case a "" "--strategy emulate-all" || status=1 ;;
    b) run_case b "" "--mode emulate" || status=1 ;;
    inject) run_case inject "test_skip_revoke=1" "--mode emulate" || status=1 ;;
    d) run_kill || status=1 ;;
    e) run_destroy || status=1 ;;
  esac
  lsmod | grep -q xvgpu_helper && rmmod xvgpu_helper
done
[ "$runs" = "a b inject d e" ] || exit $status
node - "$out" <<'JS' || status=1
const fs = require('fs');
const out = process.argv[2];
const load = (n) => { try { return JSON.parse(fs.readFileSync(`${out}/${n}.json`, 'utf8')); } catch { return null; } };
const [a, b, inject, d, e] = ['a', 'b', 'inject', 'd', 'e'].map(load);
const problems = [];
const clean = (n, r) => {
  if (!r || !r.guest || !r.xvgpu) return problems.push(`${n}: missing guest or xvgpu summary`);
  const g = r.guest;
  if (!g.ok) problems.push(`${n}: guest error ${g.error} (line ${g.error_line})`);
  for (const k of ['mismatches', 'stale_reads', 'post_unmap_not_all_ones', 'fill_mismatches', 'refault_mismatches']) if (g[k] !== 0) problems.push(`${n}: ${k} = ${g[k]}`);
};
clean('a', a);
clean('b', b);
clean('d', d);
if (a && a.xvgpu && a.xvgpu.helper.installed_pages !== 0) problems.push('a: emulate-all installed pages');
if (b && b.xvgpu && !(b.xvgpu.helper.installed_pages > 0 && b.xvgpu.helper.revoked_pages > 0)) problems.push('b: no page mapped and revoked');
if (a && b && a.xvgpu && b.xvgpu && !(b.xvgpu.requests < a.xvgpu.requests)) problems.push('b: mapping did not reduce ioreqs');
if (!inject || !inject.guest || !(inject.guest.stale_reads > 0)) problems.push('inject: the stale detector caught nothing with test_skip_revoke=1');
if (d && !(d.at_kill.frames_added > 0 && d.at_kill.frames_added === d.at_kill.frames_removed)) problems.push(`d: at the kill ${d.at_kill.frames_added} frames mapped, ${d.at_kill.frames_removed} removed`);
if (d && !(d.xvgpu && d.xvgpu.reclaimed_server !== null)) problems.push('d: the restarted xvgpu did not destroy the killed one\'s ioreq server');
if (d && d.at_kill.helper_refcnt !== 0) problems.push(`d: the helper still held after the kill (refcnt ${d.at_kill.helper_refcnt})`);
if (!e || e.xvgpu_exit !== 0 || !e.helper_unloaded || e.domains_left !== 0) problems.push(`e: ${JSON.stringify(e && { xvgpu_exit: e.xvgpu_exit, helper_unloaded: e.helper_unloaded, domains_left: e.domains_left })}`);
if (e && !(e.xvgpu && e.xvgpu.helper.installed_pages > 0)) problems.push('e: nothing was mapped when the guest was destroyed');
const result = { a, b, inject, d, e, problems };
fs.writeFileSync(`${out}/result.json`, JSON.stringify(result));
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
JS
exit $status
