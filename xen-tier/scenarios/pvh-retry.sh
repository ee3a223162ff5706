#!/bin/bash
# pvh-retry (patched hypervisor, hypervisor/build.sh): a PVH guest served in map-then-retry mode on
# RAM buffers, as `xvgpu run --platform xen` chooses by default where Xen reports the extension:
# memfd buffers lent with XEN_DMOP_lend_pages through the kernel helper's xen-dmop back-end, and
# STATE_IORESP_RETRY on first touch. The guest program is guest/bar_client.c (as in pvh.sh). Runs:
#   ea   --strategy emulate-all: nothing is lent, every BAR access is an ioreq (the baseline);
#   me   --mode emulate: map-and-emulate, a first touch lends the page and is emulated;
#   rt   no --mode: the default must be retry on xen-dmop/memfd; a first touch lends the page and
#        is answered with a retry, the vCPU re-executes against the mapping;
#   rv   retry; once the guest has touched its blob, the host punches the blob's memfd pages out
#        (fallocate through /proc/PID/fd: the host's own memory management taking frames away): the
#        helper's MMU notifier revokes the lent entries (XEN_DMOP_revoke_pages), the guest's next
#        reads fault again and see the buffer's current content, never the old frames;
#   kl   retry; kill -9 of xvgpu while pages are lent: the helper's release revokes every entry (the
#        guest then reads all ones), the module is no longer held;
#   ds   retry; xl destroy of the guest while pages are lent: xvgpu exits 0 on SIGTERM, the helper
#        unloads, no domain is left.
# kl and ds take dom0's page count and Xen's free pages (dom0/xen_pages.c) before the guest is
# created and after everything is gone. ea, me and rt run the same workload with --fault-around 1
# (each page faults on its own), so exits per MiB touched and wall times are comparable:
# result.json carries them, fault and revoke latencies, and the ratios. ea touches EA_PAGES pages
# per blob (every access is an ioreq, about 3 ms each under TCG), the others PAGES; figures are per
# MiB touched. Every wait is bounded by the wall clock (TCG makes iteration counts much longer), and
# a run ends as soon as its xvgpu has died.
set -uo pipefail
. /xt/lib.sh
# A guest that reboots (a triple fault) is destroyed: the run notices and runs again (lib.sh).
XT_GUEST_ON_REBOOT=destroy
out=$1
MMIO_BASE=0xfe000000 BAR_GFN=0xe0000 BAR_SIZE=16M
# Pages per blob (bar_client argument; run() touches every word of blobs 10 and 11). rv's checks
# and blob_memfd expect 16 (a 64 KiB BO); ea touches 2 pages (one per blob), about 37 s of ioreqs.
PAGES=16 EA_PAGES=1
# The guest's sleep with its pages lent while the host acts (the punch takes seconds).
HOLD_S=30
# kl's guest sleeps through the kill and the second xvgpu's start (19 s in pvh's run).
KILL_HOLD_S=75

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# say MSG: to the scenario's log and, as an XVGPU-TIER line, to the tier's console (live progress).
say() { xt_log "$*"; echo "XVGPU-TIER: pvh-retry: $*" > /dev/console 2>/dev/null; }

# wait_match FILE RE SEC: until FILE matches RE, SEC seconds of wall clock at most; fails at once
# when xvgpu ($xpid, if set) has died (1) or the guest $gone_guest (if set) has left (2).
wait_match() {
  local end=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    [ -n "${xpid:-}" ] && ! kill -0 "$xpid" 2>/dev/null && { why="xvgpu ($xpid) died while waiting for /$2/ in $1"; echo "$why" >&2; return 1; }
    if [ -n "${gone_guest:-}" ] && ! xl domid "$gone_guest" > /dev/null 2>&1; then
      grep -qE "$2" "$1" 2>/dev/null && return 0
      why=$(xt_guest_gone_why "$gone_guest")
      echo "$why" >&2
      return 2
    fi
    sleep 0.5
  done
  why="timed out after $3 s (wall clock) waiting for /$2/ in $1"
  echo "$why" >&2
  return 1
}

# failed_run NAME: $out/NAME.json saying why, for a run that ended before its summary.
failed_run() {
  [ -s "$out/$1.json" ] && return
  printf '{"failed":"%s"}' "$(printf '%s' "${why:-see the scenario log}" | sed 's/[\\"]/\\&/g')" > "$out/$1.json"
}

# start_guest NAME ARGS: the guest created paused (bar_client ARGS, comma separated); sets $dom.
start_guest() {
  # No XSAVE in the guest, as in pvh.sh (its start_guest says why).
  xt_pvh_cfg "pr-$1" bar_client "$2" 'cpuid = "host,xsave=0"' > "/tmp/pr-$1.cfg"
  xt_bounded 180 xl create -p "/tmp/pr-$1.cfg" || return 1
  dom=$(xt_domid "pr-$1")
  xt_log "$1: guest $dom created"
}

# start_xvgpu TAG EXTRA...: xvgpu serving $dom (RAM buffers: no --vram); sets $xpid.
start_xvgpu() {
  local tag=$1; shift
  tag_last=$tag
  # shellcheck disable=SC2068 # the extra options are a word list
  (cd /xvgpu && exec node $XT_NODE_FLAGS dist/cli/main.js run --platform xen --domid "$dom" --bar-gfn $BAR_GFN --bar-size $BAR_SIZE \
      --mmio-base $MMIO_BASE --json --log-level info $@) > "$out/$tag.xvgpu.json" 2> "$out/$tag.xvgpu.log" &
  xpid=$!
  wait_match "$out/$tag.xvgpu.log" '"msg":"serving"' 120 || { cat "$out/$tag.xvgpu.log" >&2; kill -9 $xpid; wait $xpid; xpid=; return 1; }
  xt_log "$tag: xvgpu serving"
}

# stop_xvgpu: SIGTERM, 30 s at most; sets $xrc (xvgpu's log goes to stderr if it failed).
stop_xvgpu() {
  local end=$(( $(date +%s) + 30 ))
  [ -n "${xpid:-}" ] || { xrc=null; return; }
  kill -TERM $xpid 2>/dev/null
  while kill -0 $xpid 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
  kill -0 $xpid 2>/dev/null && { echo "xvgpu did not exit on SIGTERM" >&2; kill -9 $xpid; }
  wait $xpid
  xrc=$?
  [ "$xrc" = 0 ] || { echo "xvgpu exit $xrc; its log:" >&2; tail -n 40 "$out/$tag_last.xvgpu.log" >&2; }
  xpid=
}

guest_log() { cp "$XT_CONSOLE_DIR/guest-pr-$1.log" "$out/$1.guest.log" 2>/dev/null; }
# wait_guest NAME RE SEC: wait_match on the guest's console. 2: the guest was lost to the platform
# (xt_platform_crash) or died at boot before its program started (PLATFORM_CRASH says which);
# 1: any other failure.
wait_guest() {
  local log=$XT_CONSOLE_DIR/guest-pr-$1.log rc
  gone_guest=pr-$1 wait_match "$log" "$2" "$3" && return 0
  rc=$?
  grep -a 'XT-GUEST' "$log" >&2
  [ "$rc" = 2 ] || return 1
  xt_guest_loss "$dom" "$log" "$why"
}
# end_guest NAME: the guest gone (its own poweroff, 30 s at most, else xl destroy).
end_guest() {
  local end=$(( $(date +%s) + 30 ))
  while xl domid "pr-$1" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { xt_bounded 30 xl destroy "$dom"; return; }
    sleep 0.5
  done
}

# summarize NAME MS EXTRA_JSON: $out/NAME.json from the guest's result line and xvgpu's summary.
summarize() {
  # shellcheck disable=SC2086 # XT_NODE_FLAGS is a word list
  node $XT_NODE_FLAGS - "$out" "$1" "$2" "$3" <<'JS'
const fs = require('fs');
const [out, name, ms, extra] = process.argv.slice(2);
const line = (() => { try { return fs.readFileSync(`${out}/${name}.guest.log`, 'utf8').split('\n').find((l) => l.startsWith('XT-GUEST: result ')); } catch { return undefined; } })();
let xvgpu = null;
try { xvgpu = JSON.parse(fs.readFileSync(`${out}/${name}.xvgpu.json`, 'utf8').trim().split('\n').pop()); } catch {}
fs.writeFileSync(`${out}/${name}.json`, JSON.stringify({ guest: line ? JSON.parse(line.slice('XT-GUEST: result '.length)) : null, xvgpu, wall_ms: Number(ms), ...JSON.parse(extra || '{}') }));
JS
}

# run_case NAME WAIT_S PAGES XVGPU_EXTRA: one guest running the whole workload, one xvgpu.
run_case() {
  local name=$1 t0 rc
  t0=$(now_ms)
  start_guest "$name" "$MMIO_BASE,$3" || return 1
  start_xvgpu "$name" $4 || return 1
  xl unpause "$dom"
  wait_guest "$name" '^XT-GUEST: exit' "$2"
  rc=$?
  guest_log "$name"
  end_guest "$name"
  stop_xvgpu
  summarize "$name" $(( $(now_ms) - t0 )) "{\"xvgpu_exit\":$xrc}"
  [ "$xrc" = 0 ] && return $rc
  return 1
}

# The memfd of a 64 KiB BO in xvgpu (blob 10: BLOB_PAGES pages), found through /proc.
blob_memfd() {
  local f
  for f in /proc/"$xpid"/fd/*; do
    case $(readlink "$f") in /memfd:xvgpu-bo*) [ "$(stat -L -c %s "$f")" = 65536 ] && { echo "$f"; return 0; } ;; esac
  done
  echo "no 64 KiB memfd BO in xvgpu ($xpid)" >&2
  return 1
}

# rv: the host takes the blob's frames away while the guest has them lent.
run_revoke() {
  local t0 rc fd
  t0=$(now_ms)
  start_guest rv "$MMIO_BASE,$PAGES,$HOLD_S" || return 1
  start_xvgpu rv --fault-around 1 || return 1
  xl unpause "$dom"
  wait_guest rv '^XT-GUEST: (held|exit)' 240 || return $?
  fd=$(blob_memfd) || return 1
  xt_bounded 30 fallocate --punch-hole --offset 0 --length 65536 "$fd" || { echo "rv: punching $fd failed" >&2; return 1; }
  wait_guest rv '^XT-GUEST: exit' $((HOLD_S + 240))
  rc=$?
  guest_log rv
  grep -q '^XT-GUEST: rechecked' "$out/rv.guest.log" || { echo "rv: the guest never rechecked" >&2; rc=1; }
  end_guest rv
  stop_xvgpu
  summarize rv $(( $(now_ms) - t0 )) "{\"xvgpu_exit\":$xrc}"
  return $rc
}

# pages_settled BEFORE: dom0's and Xen's page counts (xen_pages) once Xen's free pages are back to
# BEFORE's, or after 10 s as they are then. A destroyed domain's last pages return to Xen
# asynchronously (its teardown runs as continuations and RCU): one ds run read one page short right
# after teardown. A page that never comes back still shows in the counts.
pages_settled() {
  local now want end
  want=$(echo "$1" | sed -n 's/.*"xen_free_pages":\([0-9]*\).*/\1/p')
  end=$(( $(date +%s) + 10 ))
  while :; do
    now=$(/xt/bin/xen_pages) || return 1
    [ "$(echo "$now" | sed -n 's/.*"xen_free_pages":\([0-9]*\).*/\1/p')" -ge "$want" ] && break
    [ "$(date +%s)" -lt "$end" ] || break
    sleep 0.5
  done
  echo "$now"
}

# hold_lent NAME TAG HOLD_S: dom0's and Xen's page counts into the caller's $before, the helper
# loaded, guest NAME created (sleeping HOLD_S with its pages lent) and served by xvgpu TAG, until
# the guest holds its pages; wait_guest's status (2: the guest was lost to the platform).
hold_lent() {
  before=$(/xt/bin/xen_pages) || return 1
  insmod /xt/xvgpu_helper.ko || return 1
  start_guest "$1" "$MMIO_BASE,$PAGES,$3" || return 1
  start_xvgpu "$2" || return 1
  xl unpause "$dom"
  wait_guest "$1" '^XT-GUEST: (held|exit)' 240
}

# kl: kill -9 while pages are lent. Xen keeps the killed server (it would leave the guest's next
# BAR access unanswered), so a second xvgpu reclaims it and serves the guest's recheck: with no
# blob placed every read is a hole (all ones); a lent entry that survived would be read without an
# ioreq and return the old data. The guest then runs its whole program on the second xvgpu.
run_kill() {
  local t0 rc before after refcnt
  t0=$(now_ms)
  hold_lent kl kl1 "$KILL_HOLD_S" || return $?
  kill -9 $xpid
  wait $xpid
  xpid=
  refcnt=$(cat /sys/module/xvgpu_helper/refcnt)
  # The restart died with SIGSEGV before its first log line in runs 1 and 2: dom0's kernel log kept.
  start_xvgpu kl || { dmesg | tail -n 20 >&2; return 1; }
  wait_guest kl '^XT-GUEST: exit' $((KILL_HOLD_S + 240))
  rc=$?
  guest_log kl
  grep -q '^XT-GUEST: rechecked' "$out/kl.guest.log" || { echo "kl: the guest slept past the restart (raise KILL_HOLD_S)" >&2; rc=1; }
  end_guest kl
  stop_xvgpu
  rmmod xvgpu_helper || rc=1
  after=$(pages_settled "$before") || return 1
  summarize kl $(( $(now_ms) - t0 )) "{\"xvgpu_exit\":$xrc,\"helper_refcnt_after_kill\":$refcnt,\"pages_before\":$before,\"pages_after\":$after}"
  return $rc
}

# ds: xl destroy while pages are lent; xvgpu keeps running, then stops cleanly.
run_destroy() {
  local t0 rc=0 before after rmmod_ok=true domains
  t0=$(now_ms)
  hold_lent ds ds 600 || return $?
  xt_bounded 60 xl destroy "$dom" || rc=1
  guest_log ds
  sleep 2
  stop_xvgpu
  rmmod xvgpu_helper || { rmmod_ok=false; rc=1; }
  domains=$(xl list | awk 'NR > 2' | wc -l)
  after=$(pages_settled "$before") || return 1
  summarize ds $(( $(now_ms) - t0 )) "{\"xvgpu_exit\":$xrc,\"helper_unloaded\":$rmmod_ok,\"domains_left\":$domains,\"pages_before\":$before,\"pages_after\":$after}"
  return $rc
}

command -v fallocate > /dev/null || { echo "dom0 has no fallocate (util-linux)" >&2; exit 1; }
# run_one NAME: one run; 0 passed, 1 failed, 2 its guest was lost to the platform (lib.sh).
run_one() {
  case $1 in
    ea|me|rt|rv) insmod /xt/xvgpu_helper.ko || return 1 ;;
  esac
  case $1 in
    ea) run_case ea 300 $EA_PAGES "--strategy emulate-all" ;;
    me) run_case me 240 $PAGES "--mode emulate --fault-around 1" ;;
    rt) run_case rt 240 $PAGES "--fault-around 1" ;;
    rv) run_revoke ;;
    kl) run_kill ;;
    ds) run_destroy ;;
  esac
}

# cleanup: whatever a run left (a run that failed half way).
cleanup() {
  [ -n "${xpid:-}" ] && stop_xvgpu
  lsmod | grep -q xvgpu_helper && rmmod xvgpu_helper
  xt_destroy_guests
}

status=0
# ea last: every access of the workload is an ioreq, about 3 ms each under TCG (some 12000 per
# page), so it is the long one. A run whose guest was lost to the platform runs once more (lib.sh).
for r in me rt rv kl ds ea; do
  say "run $r"
  why=
  xt_run_once_more_on_platform_crash "$r"
  rc=$?
  [ "$rc" = 0 ] || status=1
  failed_run "$r"
  cleanup
  say "run $r done (status $status): $(head -c 300 "$out/$r.json" 2>/dev/null)"
done
printf '%s\n' "${XT_PLATFORM_CRASHES[@]}" > "$out/platform-crashes.txt"
# shellcheck disable=SC2086 # XT_NODE_FLAGS is a word list
node $XT_NODE_FLAGS - "$out" <<'JS' || status=1
const fs = require('fs');
const out = process.argv[2];
const load = (n) => { try { return JSON.parse(fs.readFileSync(`${out}/${n}.json`, 'utf8')); } catch { return null; } };
const runs = Object.fromEntries(['ea', 'me', 'rt', 'rv', 'kl', 'ds'].map((n) => [n, load(n)]));
const { ea, me, rt, rv, kl, ds } = runs;
const problems = [];
const need = (n, r) => {
  if (r && r.failed) { problems.push(`${n}: ${r.failed}`); return false; }
  if (!r || !r.guest || !r.xvgpu) { problems.push(`${n}: missing guest or xvgpu summary`); return false; }
  return true;
};
const clean = (n, r) => {
  if (!need(n, r)) return;
  const g = r.guest;
  if (!g.ok) problems.push(`${n}: guest error ${g.error} (line ${g.error_line})`);
  for (const k of ['mismatches', 'stale_reads', 'post_unmap_not_all_ones', 'fill_mismatches', 'refault_mismatches']) if (g[k] !== 0) problems.push(`${n}: ${k} = ${g[k]}`);
  if (r.xvgpu_exit !== 0) problems.push(`${n}: xvgpu exit ${r.xvgpu_exit}`);
};
const served = (n, r, mode) => {
  if (!r || !r.xvgpu) return;
  const x = r.xvgpu;
  if (x.p2m_backend !== 'xen-dmop' || x.buffers !== 'memfd' || x.mode !== mode) problems.push(`${n}: served ${x.mode} on ${x.p2m_backend}/${x.buffers}, want ${mode} on xen-dmop/memfd`);
  if (!x.extension || x.extension.features !== 3) problems.push(`${n}: extension ${JSON.stringify(x.extension)}`);
};
clean('ea', ea); clean('me', me); clean('rt', rt);
served('ea', ea, 'retry'); served('me', me, 'emulate'); served('rt', rt, 'retry');
// run() touches blobs 10 and 11, guest.pages pages each.
const touched = (r) => 2 * r.guest.pages;
const mibOf = (r) => (touched(r) * 4096) / 2 ** 20;
const barIoreqs = (x) => x.bar.faults + x.bar.holes + x.bar.rejected;
const fig = (r, mib = r && r.guest && mibOf(r)) => (r && r.xvgpu && r.guest ? {
  touched_pages: touched(r), touched_mib: mib,
  ioreqs: r.xvgpu.requests, bar_ioreqs: barIoreqs(r.xvgpu), ioreqs_per_mib: r.xvgpu.requests / mib, bar_ioreqs_per_mib: barIoreqs(r.xvgpu) / mib,
  answered_retry: r.xvgpu.answered_retry, emulated: r.xvgpu.bar.emulated, lent_pages: r.xvgpu.helper.installed_pages,
  guest_wall_ms: r.guest.wall_ns / 1e6, guest_wall_ms_per_mib: r.guest.wall_ns / 1e6 / mib, first_touch_ns_avg: r.guest.first_touch_ns_avg, later_touch_ns_avg: r.guest.later_touch_ns_avg,
  bar_ioreq_ns: r.xvgpu.latency ? r.xvgpu.latency.bar_service_ns : null,
} : null);
const figures = { emulate_all: fig(ea), map_and_emulate: fig(me), retry: fig(rt) };
const ratio = (a, b, k) => (a && b && b[k] > 0 ? a[k] / b[k] : null);
const f = figures;
const ratios = {
  ioreqs_per_mib: { emulate_all_over_retry: ratio(f.emulate_all, f.retry, 'ioreqs_per_mib'), map_and_emulate_over_retry: ratio(f.map_and_emulate, f.retry, 'ioreqs_per_mib') },
  bar_ioreqs_per_mib: { emulate_all_over_retry: ratio(f.emulate_all, f.retry, 'bar_ioreqs_per_mib'), map_and_emulate_over_retry: ratio(f.map_and_emulate, f.retry, 'bar_ioreqs_per_mib') },
  // ea touches fewer pages: its sweep time is compared per MiB touched (the guest's fixed setup included).
  guest_wall_per_mib: { emulate_all_over_retry: ratio(f.emulate_all, f.retry, 'guest_wall_ms_per_mib'), map_and_emulate_over_retry: ratio(f.map_and_emulate, f.retry, 'guest_wall_ms_per_mib') },
  first_touch: {
    map_and_emulate_over_retry: ratio(f.map_and_emulate, f.retry, 'first_touch_ns_avg'),
    emulate_all_over_retry: ratio(f.emulate_all, f.retry, 'first_touch_ns_avg'),
    retry_first_over_later: f.retry && f.retry.later_touch_ns_avg > 0 ? f.retry.first_touch_ns_avg / f.retry.later_touch_ns_avg : null,
  },
};
// Retry: every first touch of a page is one fault answered with a retry; the re-execution reaches
// the lent page without an ioreq. Emulation in retry mode only where it has a reason.
if (rt && rt.xvgpu && rt.guest) {
  const b = rt.xvgpu.bar;
  if (!(rt.xvgpu.answered_retry > 0 && rt.xvgpu.answered_retry === b.retries)) problems.push(`rt: answered_retry ${rt.xvgpu.answered_retry}, bar retries ${b.retries}`);
  if (b.retries < touched(rt)) problems.push(`rt: ${b.retries} retries for ${touched(rt)} pages first touched`);
  if (b.emulated !== b.forward_progress + b.not_offered) problems.push(`rt: ${b.emulated} emulations, ${b.forward_progress} forced + ${b.not_offered} not offered`);
  if (!(rt.xvgpu.helper.installed_pages >= touched(rt) && rt.xvgpu.helper.revoked_pages > 0)) problems.push('rt: no pages lent and revoked');
}
if (me && me.xvgpu && me.xvgpu.answered_retry !== 0) problems.push(`me: ${me.xvgpu.answered_retry} retries in map-and-emulate`);
if (ea && ea.xvgpu && ea.xvgpu.helper.installed_pages !== 0) problems.push('ea: emulate-all lent pages');
if (f.retry && f.emulate_all && !(f.retry.bar_ioreqs_per_mib < f.emulate_all.bar_ioreqs_per_mib)) problems.push('retry did not take fewer BAR ioreqs per MiB than emulate-all');
// rv: the notifier revoked the punched pages; the guest's next reads faulted and saw the buffer's
// current content (zero), never the old frames.
if (need('rv', rv)) {
  const x = rv.xvgpu;
  if (!(x.bar.revokes > 0 && x.bar.revoked_pages >= 16 && x.helper.invalidations > 0)) problems.push(`rv: notifier revocations ${x.bar.revokes}, pages ${x.bar.revoked_pages}`);
  if (rv.guest.stale_reads !== 0) problems.push(`rv: ${rv.guest.stale_reads} stale reads after the punch`);
  if (rv.guest.post_unmap_not_all_ones !== 16) problems.push(`rv: ${rv.guest.post_unmap_not_all_ones} of 16 pages read back refaulted (want all 16 read as the buffer's new content)`);
  if (rv.xvgpu_exit !== 0) problems.push(`rv: xvgpu exit ${rv.xvgpu_exit}`);
  if (!x.latency || !x.latency.revoke_ns) problems.push('rv: no revoke latency recorded');
}
figures.revoke_ns = rv && rv.xvgpu && rv.xvgpu.latency ? rv.xvgpu.latency.revoke_ns : null;
// kl: no entry survives the kill; the module is not held.
clean('kl', kl);
if (kl && kl.xvgpu && kl.xvgpu.reclaimed_server === null) problems.push('kl: the second xvgpu did not destroy the killed one\'s ioreq server');
if (kl && !kl.failed && kl.helper_refcnt_after_kill !== 0) problems.push(`kl: helper held after the kill (refcnt ${kl && kl.helper_refcnt_after_kill})`);
if (!ds || ds.xvgpu_exit !== 0 || !ds.helper_unloaded || ds.domains_left !== 0) problems.push(`ds: ${JSON.stringify(ds && { xvgpu_exit: ds.xvgpu_exit, helper_unloaded: ds.helper_unloaded, domains_left: ds.domains_left })}`);
if (ds && !(ds.xvgpu && ds.xvgpu.helper.installed_pages > 0)) problems.push('ds: nothing was lent when the guest was destroyed');
const pages = {};
for (const [n, r] of [['kl', kl], ['ds', ds]]) {
  if (!r || !r.pages_before || !r.pages_after) continue;
  pages[n] = { dom0_tot_pages_delta: r.pages_after.dom0_tot_pages - r.pages_before.dom0_tot_pages, xen_free_pages_delta: r.pages_after.xen_free_pages - r.pages_before.xen_free_pages };
  if (pages[n].dom0_tot_pages_delta !== 0) problems.push(`${n}: dom0 tot_pages changed by ${pages[n].dom0_tot_pages_delta}`);
  if (pages[n].xen_free_pages_delta < 0) problems.push(`${n}: Xen free pages did not return (${pages[n].xen_free_pages_delta})`);
}
const platformCrashes = fs.readFileSync(`${out}/platform-crashes.txt`, 'utf8').split('\n').filter(Boolean);
const result = { figures, ratios, pages, runs, platform_crashes: platformCrashes, problems };
fs.writeFileSync(`${out}/result.json`, JSON.stringify(result));
console.log(`XVGPU-TIER: pvh-retry figures ${JSON.stringify(figures)}`);
console.log(`XVGPU-TIER: pvh-retry ratios ${JSON.stringify(ratios)}`);
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
JS
exit $status
