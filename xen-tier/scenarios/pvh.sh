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
#   inject  b with the helper loaded test_lose_revoke=1 (revocations forget entries without removing
#           them): the guest must read the freed, poisoned VRAM, and its stale detector count it;
#   c       UNSAFE prototype, reported apart (never fails the scenario): b on RAM buffers (vgem's,
#           xvgpu's default source without --vram) with the helper loaded xen_ram_as_mmio=1, which
#           maps RAM frames as p2m_mmio_direct (docs/kernel-helper.md says why that is unsafe).
#           Freed RAM is not poisoned, so stale reads are not measurable (null); a read of the
#           revoked range that is not all ones still shows an entry that survived;
#   d       kill -9 of xvgpu while pages are mapped: the helper's release removes every entry (no
#           read reaches the old frames), and a restarted xvgpu serves the guest again;
#   e       xl destroy of the guest while pages are mapped: xvgpu stops cleanly with its summary,
#           the helper unloads (nothing held), no domain is left.
# XT_PVH_RUNS (words from "a b inject c d e") runs a subset; result.json then has those runs only.
# XT_PVH_HELPER_PARAMS: more module parameters for every run, e.g. test_lose_revoke=1 (mutation checks).
set -uo pipefail
. /xt/lib.sh
# A guest that reboots (a triple fault) is destroyed: the run notices and runs again (lib.sh).
XT_GUEST_ON_REBOOT=destroy
out=$1
MMIO_BASE=0xfe000000 BAR_GFN=0xe0000 BAR_SIZE=16M
# Pages per blob: every access to them is an ioreq in run a, and TCG makes each one slow.
PAGES=4
# Run a's blob has one page: each of its ~12k accesses is an ioreq (~6 ms each under TCG), and one
# page still takes every access kind, the FILL, the revocation and the refault. b then has 4 times
# the pages of a and must still need fewer ioreqs.
A_PAGES=1
# How long the guest of d sleeps with its pages mapped while the host kills and restarts xvgpu
# (kill to serving again took 14.6 s and 18.3 s in the runs of /tmp/s19; a guest that wakes first
# fails d with "raise HOLD_S").
HOLD_S=45

vram_resource() {
  local d
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] && { echo "$d/resource2"; return 0; }
  done
  echo "no ivshmem-plain device (1af4:1110) in dom0" >&2
  return 1
}

# say MSG: to the scenario's log and, as an XVGPU-TIER line, to the tier's console (live progress).
say() { xt_log "$*"; echo "XVGPU-TIER: pvh: $*" > /dev/console 2>/dev/null; }

# vgem_node: the DRM node of vgem (modprobed first), e.g. /dev/dri/card0.
vgem_node() {
  local c
  modprobe vgem || return 1
  for c in /sys/class/drm/card*; do
    [ "$(basename "$(readlink -f "$c/device")")" = vgem ] && { echo "/dev/dri/$(basename "$c")"; return 0; }
  done
  echo "no vgem DRM node after modprobe vgem" >&2
  return 1
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# map_frames add|remove: frames Xen reports having mapped or unmapped (memory_map:... nr=HEX lines).
map_frames() { xt_bounded 20 xl dmesg | sed -n "s/.*memory_map:$1: .* nr=\([0-9a-f]*\).*/\1/p" | { s=0; while read -r n; do s=$((s + 16#$n)); done; echo $s; }; }

# start_guest NAME HELPER_PARAMS ARGS: loads the helper, creates the guest paused (bar_client ARGS,
# comma separated); sets $dom.
start_guest() {
  insmod /xt/xvgpu_helper.ko $2 ${XT_PVH_HELPER_PARAMS:-} || return 1
  # No XSAVE (so no AVX) in the guest: xvgpu died of corrupted doubles ("async hook stack has become
  # corrupted") in 3 of 3 emulate-all runs whose guest had XSAVE/AVX (out2, out4: even with V8's AVX
  # off) and in none of 4 whose guest had not (out3): XSAVE state switching under QEMU TCG is suspect.
  xt_pvh_cfg "pvh-$1" bar_client "$3" 'cpuid = "host,xsave=0"' > "/tmp/pvh-$1.cfg"
  xt_bounded 60 xl create -p "/tmp/pvh-$1.cfg" || return 1
  dom=$(xt_domid "pvh-$1")
  xt_bounded 20 xl dmesg -c > /dev/null
}

# start_xvgpu TAG EXTRA...: xvgpu serving $dom as docs/deploy-xen.md says (EXTRA names the buffers:
# --vram or --drm-node); sets $xpid.
start_xvgpu() {
  local tag=$1; shift
  # shellcheck disable=SC2068 # the extra options are a word list
  (cd /xvgpu && exec node $XT_NODE_FLAGS dist/cli/main.js run --platform xen --domid "$dom" --bar-gfn $BAR_GFN --bar-size $BAR_SIZE \
      --mmio-base $MMIO_BASE --json --log-level info $@) > "$out/$tag.xvgpu.json" 2> "$out/$tag.xvgpu.log" &
  xpid=$!
  xt_wait_file_match "$out/$tag.xvgpu.log" '"msg":"serving"' 90 || { cat "$out/$tag.xvgpu.log"; kill -9 $xpid; wait $xpid; xrc=null xpid=; return 1; }
}

# wait_guest NAME REGEX SEC: until the guest's console matches REGEX (0). 2: the guest was lost to
# the platform (xt_platform_crash) or died at boot before its program started (PLATFORM_CRASH says
# which); 1: xvgpu died, the guest left otherwise, or SEC passed.
wait_guest() {
  local end log=$XT_CONSOLE_DIR/guest-pvh-$1.log why
  end=$(xt_deadline "$3")
  while [ "$(date +%s)" -lt "$end" ]; do
    grep -qE "$2" "$log" 2>/dev/null && return 0
    alive || { say "$1: xvgpu died while the guest ran"; return 1; }
    if ! xl domid "pvh-$1" > /dev/null 2>&1; then
      grep -qE "$2" "$log" 2>/dev/null && return 0
      why=$(xt_guest_gone_why "pvh-$1")
      say "$1: $why"
      xt_guest_loss "$dom" "$log" "$why"
      return $?
    fi
    sleep 0.2
  done
  echo "timed out after $3 s waiting for /$2/ from the guest of $1" >&2
  return 1
}

# alive: $xpid has not exited (a zombie, not yet reaped by wait, counts as exited: kill -0 says yes).
alive() { [ -e "/proc/$xpid/stat" ] && [ "$(awk '{ print $3 }' "/proc/$xpid/stat" 2>/dev/null)" != Z ]; }

# wait_dead SEC: until $xpid has exited (0) or SEC pass (1). `wait` alone could block forever
# (a process stuck in the kernel outlives SIGKILL); it is called only once alive says it is gone.
wait_dead() {
  local end
  end=$(xt_deadline "$1")
  while [ "$(date +%s)" -lt "$end" ]; do alive || return 0; sleep 0.2; done
  alive || return 0
  echo "xvgpu (pid $xpid) still alive after ${1}s: $(cat "/proc/$xpid/stat" 2>/dev/null)" >&2
  return 1
}

# stop_xvgpu: SIGTERM, bounded; sets $xrc to xvgpu's exit status (not in $(...): wait needs the
# shell that started it), null if it never exited.
stop_xvgpu() {
  kill -TERM $xpid
  wait_dead 30 || { echo "xvgpu did not exit on SIGTERM" >&2; kill -9 $xpid; }
  if wait_dead 30; then wait $xpid; xrc=$?; else xrc=null; fi
  xpid=
}

# unpause: xl unpause, bounded. If xl hangs, the domain's state says whether it did unpause.
unpause() {
  xt_bounded 30 xl unpause "$dom" && return 0
  say "xl unpause $dom did not return in 30 s; domain state: $(xt_bounded 10 xl list "$dom" 2>&1 | awk 'NR == 2 { print $5 }')"
  xt_bounded 10 xl list "$dom" 2>/dev/null | awk 'NR == 2 { exit $5 ~ /p/ }'
}

guest_log() { cp "$XT_CONSOLE_DIR/guest-pvh-$1.log" "$out/$1.guest.log" 2>/dev/null; }

# summarize NAME TAG MS EXTRA_JSON: $out/NAME.json from the guest's result line, xvgpu TAG's summary,
# Xen's memory_map counts and EXTRA_JSON (an object merged in).
summarize() {
  xt_bounded 20 xl dmesg > "$out/$1.xl-dmesg.txt"
  node - "$out" "$1" "$2" "$3" "$4" <<'JS'
const fs = require('fs');
const [out, name, tag, ms, extra] = process.argv.slice(2);
const guestLine = (() => { try { return fs.readFileSync(`${out}/${name}.guest.log`, 'utf8').split('\n').find((l) => l.startsWith('XT-GUEST: result ')); } catch { return undefined; } })();
const dmesg = fs.readFileSync(`${out}/${name}.xl-dmesg.txt`, 'utf8');
let xvgpu = null;
try { xvgpu = JSON.parse(fs.readFileSync(`${out}/${tag}.xvgpu.json`, 'utf8').trim().split('\n').pop()); } catch {}
// xvgpu's errors (pino level >= 50, and any line that is not pino's, e.g. a crash) and Xen's
// complaints about this guest's p2m: the evidence when a run fails.
const xvgpuErrors = (() => {
  try {
    return fs.readFileSync(`${out}/${tag}.xvgpu.log`, 'utf8').split('\n').filter((l) => l.trim() !== '').flatMap((l) => {
      try { const j = JSON.parse(l); return j.level >= 50 ? [`${j.msg}${j.err ? `: ${j.err.message}` : ''}`] : []; } catch { return [l]; }
    }).slice(0, 8);
  } catch { return ['no xvgpu log']; }
})();
const xenErrors = dmesg.split('\n').filter((l) => /memory_map:fail|not permitted|domain_crash|crashed|p2m.*(fail|error)/i.test(l)).slice(0, 8);
const r = {
  guest: guestLine ? JSON.parse(guestLine.slice('XT-GUEST: result '.length)) : null,
  xvgpu,
  xen_memory_map: Object.fromEntries(['add', 'remove', 'fail'].map((k) => [k, [...dmesg.matchAll(new RegExp(`memory_map:${k}: .* nr=([0-9a-f]+)`, 'g'))].reduce((s, m) => s + parseInt(m[1], 16), 0)])),
  wall_ms: Number(ms),
  xvgpu_errors: xvgpuErrors,
  xen_errors: xenErrors,
  ...JSON.parse(extra || '{}'),
};
fs.writeFileSync(`${out}/${name}.json`, JSON.stringify(r));
JS
}

# run_case NAME HELPER_PARAMS XVGPU_EXTRA [EXTRA_JSON]: one guest, one xvgpu, the guest's whole
# program. The run's summary is written whatever failed (c's failure is a finding, not a crash).
run_case() {
  local name=$1 t0 rc=0
  t0=$(now_ms)
  start_guest "$name" "$2" "$MMIO_BASE,${pages:-$PAGES}" || { lsmod | grep -q xvgpu_helper && rmmod xvgpu_helper; return 1; }
  if start_xvgpu "$name" $3; then
    unpause || { stop_xvgpu; return 1; }
    say "$name: unpaused"
    wait_guest "$name" '^XT-GUEST: exit' 300 || rc=$?
    guest_log "$name"
    xt_wait_gone "pvh-$name" 30 || xt_bounded 30 xl destroy "$dom"
    stop_xvgpu
  else
    rc=1
    xt_bounded 30 xl destroy "$dom"
  fi
  rmmod xvgpu_helper || rc=1
  summarize "$name" "$name" $(( $(now_ms) - t0 )) "{\"xvgpu_exit\":$xrc${4:+,$4}}"
  [ "$rc" = 2 ] && return 2
  [ "$xrc" = 0 ] && return $rc
  return 1
}

# d: kill -9 while mapped, then a restarted xvgpu serves the guest's second pass.
run_kill() {
  local t0 rc adds removes refcnt killed_ms
  t0=$(now_ms)
  start_guest d "" "$MMIO_BASE,$PAGES,$HOLD_S" || return 1
  start_xvgpu d1 --mode emulate --vram "$VRAM" || return 1
  unpause || return 1
  say "d: unpaused; waiting for the guest to hold its pages"
  wait_guest d '^XT-GUEST: (held|exit)' 300 || return $?
  say "d: guest holds; kill -9 of xvgpu"
  kill -9 $xpid
  wait_dead 30 || return 1
  wait $xpid
  xpid=
  killed_ms=$(now_ms)
  # The helper's release ran when the fd closed with the process: every entry added is removed.
  adds=$(map_frames add) removes=$(map_frames remove)
  refcnt=$(cat /sys/module/xvgpu_helper/refcnt)
  start_xvgpu d2 --mode emulate --vram "$VRAM" || return 1
  local restarted_ms; restarted_ms=$(now_ms)
  say "d: xvgpu restarted after $((restarted_ms - killed_ms)) ms; waiting for the guest's second pass"
  rc=0
  # The guest must still be asleep: its recheck is meant for the restarted xvgpu.
  grep -q '^XT-GUEST: rechecked' "$XT_CONSOLE_DIR/guest-pvh-d.log" && { echo "d: the guest rechecked before xvgpu was back (raise HOLD_S)" >&2; rc=1; }
  wait_guest d '^XT-GUEST: exit' 400 || rc=1
  guest_log d
  xt_wait_gone pvh-d 30 || xt_bounded 30 xl destroy "$dom"
  stop_xvgpu
  rmmod xvgpu_helper || rc=1
  summarize d d2 $(( $(now_ms) - t0 )) "{\"at_kill\":{\"frames_added\":$adds,\"frames_removed\":$removes,\"helper_refcnt\":$refcnt},\"restart_ms\":$((restarted_ms - killed_ms)),\"xvgpu_exit\":$xrc}"
  [ "$xrc" = 0 ] && return $rc
  return 1
}

# e: xl destroy while mapped; xvgpu is then stopped and must exit 0 with its summary.
run_destroy() {
  local t0 rc=0 xvgpu_alive domains rmmod_ok=true
  t0=$(now_ms)
  start_guest e "" "$MMIO_BASE,$PAGES,600" || return 1
  start_xvgpu e --mode emulate --vram "$VRAM" || return 1
  unpause || return 1
  wait_guest e '^XT-GUEST: (held|exit)' 300 || return $?
  xt_bounded 60 xl destroy "$dom" || rc=1
  guest_log e
  sleep 2
  alive && xvgpu_alive=true || xvgpu_alive=false
  stop_xvgpu
  rmmod xvgpu_helper || { rmmod_ok=false; rc=1; }
  domains=$(xt_bounded 10 xl list | awk 'NR > 2' | wc -l)
  summarize e e $(( $(now_ms) - t0 )) "{\"xvgpu_alive_after_destroy\":$xvgpu_alive,\"xvgpu_exit\":$xrc,\"helper_unloaded\":$rmmod_ok,\"domains_left\":$domains}"
  [ "$xrc" = 0 ] && return $rc
  return 1
}

# heartbeat: every 60 s, every user process of dom0 but the heartbeat's own (pid, name, state,
# kernel wait channel, command) on the console, so that a hang says in what. (Filtering by name
# hid the culprit in /tmp/pvh-out5: the scenario's shell and its children were not listed.)
heartbeat() {
  local p cmd
  while sleep 60; do
    say "heartbeat: $(for p in /proc/[0-9]*; do
      # (/proc files report size 0, so test -s cannot tell kernel threads, whose cmdline is empty)
      cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-40)
      [ -n "$cmd" ] && [ "${p#/proc/}" != "$BASHPID" ] || continue
      echo "${p#/proc/}:$(cat "$p/comm" 2>/dev/null):$(awk '{ print $3 }' "$p/stat" 2>/dev/null):$(cat "$p/wchan" 2>/dev/null) $cmd;"
    done)"
  done
}
heartbeat &
hb=$!
trap 'kill $hb 2>/dev/null' EXIT

VRAM=$(vram_resource) || exit 1
awk 'NR == 3' "${VRAM%/resource2}/resource" > "$out/vram-resource.txt"
UNSAFE_REASON="the helper's xen_ram_as_mmio=1 prototype maps RAM frames as p2m_mmio_direct: Xen holds no page reference for such an entry (only the MMU notifier stands between a freed page and the guest) and gives it an uncached type that conflicts with dom0's write-back mapping (docs/kernel-helper.md)"
STALE_REASON="vgem's RAM buffers are not poisoned when freed, so a read through a surviving entry cannot be told from data; post_unmap_not_all_ones still counts reads of the revoked range that are not all ones"
# run_one NAME: one run; 0 passed, 1 failed, 2 its guest was lost to the platform (lib.sh).
run_one() {
  case $1 in
    a) pages=$A_PAGES run_case a "" "--strategy emulate-all --vram $VRAM" ;;
    b) run_case b "" "--mode emulate --vram $VRAM" ;;
    inject) run_case inject "test_lose_revoke=1" "--mode emulate --vram $VRAM" ;;
    c) node=$(vgem_node) && run_case c "xen_ram_as_mmio=1" "--mode emulate --drm-node $node" \
         "\"unsafe\":true,\"unsafe_reason\":\"$UNSAFE_REASON\",\"stale_reads_null_reason\":\"$STALE_REASON\"" ;;
    d) run_kill ;;
    e) run_destroy ;;
    *) echo "XT_PVH_RUNS: no run $1" >&2; return 1 ;;
  esac
}

# cleanup: whatever a run left (its xvgpu, its guest, the helper).
cleanup() {
  [ -n "${xpid:-}" ] && kill -9 "$xpid" 2>/dev/null && wait "$xpid"
  xt_destroy_guests
  lsmod | grep -q xvgpu_helper && rmmod xvgpu_helper
  xpid=
}

status=0
runs=${XT_PVH_RUNS:-a b inject c d e}
for r in $runs; do
  say "run $r start"
  xt_run_once_more_on_platform_crash "$r"
  rc=$?
  if [ "$rc" != 0 ]; then
    if [ "$r" = c ]; then say "run c (unsafe prototype) did not pass; reported in c.json, not a failure of the scenario"
    else status=1; fi
  fi
  cleanup
  say "run $r end (status so far $status): $(head -c 400 "$out/$r.json" 2>/dev/null || echo 'no summary')"
done
printf '%s\n' "${XT_PLATFORM_CRASHES[@]}" > "$out/platform-crashes.txt"
# Every check below is of a run that ran; result.json has the runs of XT_PVH_RUNS only.
node - "$out" "$runs" <<'JS' || status=1
const fs = require('fs');
const [out, runList] = process.argv.slice(2);
const ran = runList.split(/\s+/).filter(Boolean);
const load = (n) => { try { return JSON.parse(fs.readFileSync(`${out}/${n}.json`, 'utf8')); } catch { return null; } };
const result = Object.fromEntries(ran.map((n) => [n, load(n)]));
const platformCrashes = fs.readFileSync(`${out}/platform-crashes.txt`, 'utf8').split('\n').filter(Boolean);
const { a, b, inject, c, d, e } = result;
const problems = [];
const clean = (n, r) => {
  if (!r || !r.guest || !r.xvgpu) return problems.push(`${n}: missing guest or xvgpu summary`);
  const g = r.guest;
  if (!g.ok) problems.push(`${n}: guest error ${g.error} (line ${g.error_line})`);
  for (const k of ['mismatches', 'stale_reads', 'post_unmap_not_all_ones', 'fill_mismatches', 'refault_mismatches']) if (g[k] !== 0) problems.push(`${n}: ${k} = ${g[k]}`);
};
if ('a' in result) {
  clean('a', a);
  if (a && a.xvgpu && a.xvgpu.helper.installed_pages !== 0) problems.push('a: emulate-all installed pages');
}
if ('b' in result) {
  clean('b', b);
  if (b && b.xvgpu && !(b.xvgpu.helper.installed_pages > 0 && b.xvgpu.helper.revoked_pages > 0)) problems.push('b: no page mapped and revoked');
}
if (a && b && a.xvgpu && b.xvgpu && !(b.xvgpu.requests < a.xvgpu.requests)) problems.push('b: mapping did not reduce ioreqs');
if ('inject' in result && !(inject && inject.guest && inject.guest.stale_reads > 0)) problems.push('inject: the stale detector caught nothing with test_lose_revoke=1');
if ('d' in result) {
  clean('d', d);
  if (d && !(d.at_kill.frames_added > 0 && d.at_kill.frames_added === d.at_kill.frames_removed)) problems.push(`d: at the kill ${d.at_kill.frames_added} frames mapped, ${d.at_kill.frames_removed} removed`);
  if (d && !(d.xvgpu && d.xvgpu.reclaimed_server !== null)) problems.push('d: the restarted xvgpu did not destroy the killed one\'s ioreq server');
  if (d && d.at_kill.helper_refcnt !== 0) problems.push(`d: the helper still held after the kill (refcnt ${d.at_kill.helper_refcnt})`);
}
if ('e' in result) {
  if (!e || e.xvgpu_exit !== 0 || !e.helper_unloaded || e.domains_left !== 0) problems.push(`e: ${JSON.stringify(e && { xvgpu_exit: e.xvgpu_exit, helper_unloaded: e.helper_unloaded, domains_left: e.domains_left })}`);
  if (e && !(e.xvgpu && e.xvgpu.helper.installed_pages > 0)) problems.push('e: nothing was mapped when the guest was destroyed');
}
// c (unsafe, apart): whether the prototype served the guest, and if not the evidence why.
if (c) {
  const g = c.guest;
  c.works = Boolean(g && g.ok && c.xvgpu && c.xvgpu.helper.installed_pages > 0 && c.xvgpu.helper.revoked_pages > 0 &&
    ['mismatches', 'post_unmap_not_all_ones', 'fill_mismatches', 'refault_mismatches'].every((k) => g[k] === 0));
  if (!c.works) c.failure = { guest_error: g ? (g.ok ? null : `${g.error} (line ${g.error_line})`) : 'no result line from the guest', xvgpu_errors: c.xvgpu_errors, xen_errors: c.xen_errors };
}
fs.writeFileSync(`${out}/result.json`, JSON.stringify({ runs: ran, ...result, platform_crashes: platformCrashes, problems }));
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
JS
exit $status
