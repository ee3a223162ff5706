#!/usr/bin/env bash
# The Xen tier: boots Xen (Debian's 4.17 package, or any xen binary) under QEMU TCG with a PV dom0
# running Debian's Xen tools, the kernel helper and the built project, runs the named scenarios
# (xen-tier/scenarios/NAME.sh) inside dom0 and collects each one's summary as OUT/NAME.json.
#
#   bash xen-tier/run.sh --hypervisor debian|/path/to/xen --scenarios NAME[,NAME...] --out DIR
#                        [--timeout SEC] [--keep-logs]
#
# --timeout bounds each scenario inside dom0 (default 300 s); the whole QEMU run is bounded by
# 180 s + scenarios x timeout. Exit 0 only when every scenario wrote its summary and succeeded;
# otherwise the console (Xen's and dom0's), the failing scenario's log, the guests' consoles and
# `xl dmesg` are printed. Caches: ${XVGPU_CACHE:-~/.cache/xvgpu}/xen-tier (see xen-tier/README.md).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { sed -n '6,7p' "$0" >&2; exit 2; }
hypervisor= scenarios= out= timeout=300 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --hypervisor) hypervisor=${2:?}; shift 2 ;;
    --scenarios) scenarios=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --keep-logs) keep=1; shift ;;
    *) usage ;;
  esac
done
[ -n "$hypervisor" ] && [ -n "$scenarios" ] && [ -n "$out" ] || usage
[[ $timeout =~ ^[1-9][0-9]*$ ]] || xt_die "--timeout wants a positive number of seconds, got $timeout"
for s in ${scenarios//,/ }; do
  [ -f "$XT_DIR/scenarios/$s.sh" ] || xt_die "no scenario $s (xen-tier/scenarios/$s.sh)"
done
xt_require_cmds qemu-system-x86_64 debootstrap apt-get apt-cache dpkg cpio gzip zcat flock gcc make node npm timeout tar
t0=$SECONDS
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/xen-tier.XXXXXX")
vram=$(mktemp /dev/shm/xen-tier-vram.XXXXXX)
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
  rm -f "$vram"
  if [ "$keep" = 1 ]; then mkdir -p "$out/logs" && cp -r "$work"/console.log "$work"/results "$out/logs/" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

krel=$("$XT_REPO/kernel-helper/vm/kernel.sh")
xen=$("$XT_DIR/lib/hypervisor.sh" "$hypervisor" "$work")
base=$(xt_cached dom0-base "$(xt_key "$XT_DIR/lib/dom0-base.sh" "$krel" "$(xt_mirror)")" "$XT_DIR/lib/dom0-base.sh" "$krel")
nodel=$(xt_cached node-layer "$(xt_key "$XT_DIR/lib/node-layer.sh" "$(command -v node)" "$(sha256sum "$(command -v node)")")" "$XT_DIR/lib/node-layer.sh")
t_cache=$((SECONDS - t0))
make -s -C "$XT_REPO/kernel-helper" module KVER="$krel" >"$work/kbuild.log" 2>&1 || { cat "$work/kbuild.log"; xt_die "the kernel helper does not build against $krel"; }
"$XT_DIR/lib/overlay.sh" "$krel" "$scenarios" "$timeout" "$work/overlay.cpio.gz"
cat "$base/base.cpio.gz" "$nodel/node.cpio.gz" "$work/overlay.cpio.gz" > "$work/dom0.cpio.gz"
t_build=$((SECONDS - t0))
n=$(echo "${scenarios//,/ }" | wc -w)
qemu_limit=$((180 + n * (timeout + 30)))
xt_log "hypervisor $xen, kernel $krel, caches+build ${t_build}s; booting (limit ${qemu_limit}s)"

truncate -s 16M "$vram"
truncate -s 64M "$work/results.img"
# The CPU: max without SMAP (QEMU 7.2 TCG applies it to IRET's stack reads; reference
# vm-and-xen-in-qemu.md) and without the AVX family: with it, node in dom0 corrupted its own data
# (V8's GC faulting in page evacuation, in xvgpu and in a plain node control alike, even with V8's
# --no-enable-avx: glibc's and node's own AVX2 routines are chosen at run time; README.md).
# XT_QEMU_CPU overrides it.
# Xen's eager FPU switching (spec-ctrl=eager-fpu): on this AMD-vendor CPU Xen switches lazily, relying
# on #NM from CR0.TS; dom0's processes still faulted in V8's GC with no AVX at all once the HVM guest
# ran (/tmp/hvm-out6), as if a vCPU's SSE state leaked across domains.
cpu=${XT_QEMU_CPU:-max,-smap,-avx,-avx2,-fma,-f16c,-avx-vnni,-vaes,-vpclmulqdq}
# The dom0 initrd carries its own command line after the path; a literal comma is written ",,".
timeout "$qemu_limit" qemu-system-x86_64 -accel tcg -cpu "$cpu" -m 3G -smp 2 -nographic -no-reboot \
  -kernel "$xen" \
  -append 'console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M loglvl=all guest_loglvl=all spec-ctrl=eager-fpu' \
  -initrd "/boot/vmlinuz-$krel console=hvc0 earlyprintk=xen panic=-1 loglevel=4,$work/dom0.cpio.gz" \
  -object "memory-backend-file,id=vram,share=on,mem-path=$vram,size=16M" -device ivshmem-plain,memdev=vram \
  -drive "file=$work/results.img,format=raw,if=virtio" \
  </dev/null >"$work/console.log" 2>&1 &
qemu_pid=$!
echo "$qemu_pid" > "$work/qemu.pid"
set +e
wait "$qemu_pid"
qrc=$?
set -e
qemu_pid=
t_run=$((SECONDS - t0))
mkdir -p "$work/results"
tar -xf "$work/results.img" -C "$work/results" 2>/dev/null || true

failed=()
for s in ${scenarios//,/ }; do
  st=$(cat "$work/results/$s/status" 2>/dev/null || echo "not run")
  if [ "$st" = ok ] && [ -s "$work/results/$s/result.json" ]; then
    cp "$work/results/$s/result.json" "$out/$s.json"
  else
    failed+=("$s: $st")
  fi
done
# Each scenario's status and wall time (dom0's uptime at its start and end lines on the console).
per=$(for s in ${scenarios//,/ }; do
  st=$(cat "$work/results/$s/status" 2>/dev/null || echo "not run")
  w=$(grep -a -E "^XVGPU-TIER: scenario $s " "$work/console.log" | awk '{ t[$4 == "start" ? "s" : "e"] = $NF + 0 } END { if ("s" in t && "e" in t) printf "%.1f", t["e"] - t["s"]; else printf "null" }')
  printf '"%s":{"status":"%s","wall_s":%s}\n' "$s" "$st" "$w"
done | paste -sd,)
printf '{"hypervisor":"%s","cache_and_build_s":%d,"caches_s":%d,"total_s":%d,"qemu_exit":%d,"scenarios":{%s}}\n' \
  "$hypervisor" "$t_build" "$t_cache" "$t_run" "$qrc" "$per" > "$out/tier.json"
# One summary line per scenario on stdout (a failed scenario's too, from what it wrote).
node "$XT_DIR/lib/summary.mjs" "$out/tier.json" $(for s in ${scenarios//,/ }; do echo "$s=$work/results/$s/result.json"; done) || true
if [ "${#failed[@]}" -eq 0 ] && grep -q 'XVGPU-TIER: done' "$work/console.log"; then
  xt_log "all scenarios passed (${t_run}s: caches ${t_cache}s, build $((t_build - t_cache))s, QEMU $((t_run - t_build))s)"
  exit 0
fi
[ $qrc -eq 124 ] && xt_log "QEMU hit its ${qemu_limit}s limit (killed)"
{
  echo "==== console (Xen and dom0), last 150 lines"
  tail -n 150 "$work/console.log"
  for s in ${scenarios//,/ }; do
    d="$work/results/$s"
    [ -d "$d" ] || continue
    echo "==== scenario $s log (last 80 lines)"; tail -n 80 "$d/log" 2>/dev/null
    for g in "$d"/guest-*.log; do [ -f "$g" ] && { echo "==== $s: $(basename "$g") (last 60 lines)"; tail -n 60 "$g"; }; done
  done
  [ -f "$work/results/xl-dmesg.txt" ] && { echo "==== xl dmesg (last 60 lines)"; tail -n 60 "$work/results/xl-dmesg.txt"; }
} >&2
xt_die "scenarios failed: ${failed[*]:-none} (QEMU exit $qrc)"
