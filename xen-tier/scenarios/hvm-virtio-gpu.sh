#!/bin/bash
# hvm-virtio-gpu (issue 11, scenario 2): an HVM guest whose own Linux virtio_mmio and virtio-gpu
# drivers are xvgpu's client. The device reaches the guest through an extra SSDT (LNRO0005 at
# 0xFE000000, ISA IRQ 7; xl acpi_firmware=); xvgpu is started as docs/deploy-xen.md says, with the
# guest created paused, on stock Xen (map-and-emulate) and blobs backed by the ivshmem VRAM BAR
# (MMIO frames: the safe memory_mapping path). The guest program (guest/hvm/virtgpu_client.c) uses
# the virtgpu DRM UAPI on its render node; dom0 checks the guest's pattern in VRAM and answers it.
# Writes $1/result.json (summary) even when a step fails; exits 0 only if every check passed.
# XT_HVM_BUFFERS=memfd (scenario hvm-retry, on the patched hypervisor): blobs on xvgpu's memfd RAM
# and no --mode, so xvgpu serves as `run --platform xen` chooses by default (map-then-retry through
# the helper's xen-dmop back-end where Xen reports the extension); dom0's check then reads the
# blobs' memfds through /proc/PID/fd instead of the VRAM BAR.
set -uo pipefail
. /xt/lib.sh
out=$1
here=/xt/scenarios/hvm-virtio-gpu
buffers=${XT_HVM_BUFFERS:-vram}
scenario=${XT_HVM_SCENARIO:-hvm-virtio-gpu}
guest=hvm
glog=$XT_CONSOLE_DIR/guest-$guest.log
t0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
declare -A T=()
xvgpu_pid= loaded_helper=0 failed= platform_crash=
# Progress also goes to dom0's console (the tier's console log), so a hang shows where it is.
say() { xt_log "$*"; echo "XVGPU-TIER: $scenario: $*" > /dev/console 2>/dev/null; }
step_fail() { [ -n "$failed" ] || failed=$1; say "FAIL: $1"; }
# wait_match FILE REGEX SEC: bounded by wall-clock time (an iteration count stretches under load).
wait_match() {
  # bash's own clock: a run saw `date` come back empty when a sibling died of SIGSEGV, ending the wait.
  local end=$((EPOCHSECONDS + $3))
  while [ "$EPOCHSECONDS" -lt "$end" ]; do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    if [ -n "${domid:-}" ] && ! xl domid "$guest" > /dev/null 2>&1; then
      grep -qE "$2" "$1" 2>/dev/null && return 0
      platform_crash=$(xt_platform_crash "$domid") && platform_crash="lost to the platform: $platform_crash"
      step_fail "$(xt_guest_gone_why "$guest"), while waiting for /$2/"
      return 1
    fi
    # A dead ioreq server leaves the guest's vCPU waiting on its window forever: fail at once.
    if [ -n "$xvgpu_pid" ] && ! kill -0 "$xvgpu_pid" 2>/dev/null; then
      wait "$xvgpu_pid"; local rc=$?
      echo "$rc" > "$out/xvgpu.rc"
      step_fail "xvgpu exited (status $rc) after $(since "$t0") s, while waiting for /$2/"
      xvgpu_pid=
      return 1
    fi
    sleep 1
  done
  echo "timed out after $3 s waiting for /$2/ in $1" >&2
  return 1
}
# stream FILE REGEX TAG: copies matching lines of FILE to dom0's console as they are written.
stream() {
  tail -n +1 -F "$1" 2>/dev/null > >(grep --line-buffered -E "$2" | sed -u -e 's/^\(.\{300\}\).*/\1/' -e "s/^/XVGPU-TIER: $3: /" > /dev/console) &
  streams+=($!)
}
streams=()

finish() {
  trap - EXIT
  [ "${#streams[@]}" -gt 0 ] && kill "${streams[@]}" 2>/dev/null
  if [ -n "$xvgpu_pid" ] && kill -0 "$xvgpu_pid" 2>/dev/null; then
    kill -TERM "$xvgpu_pid"
    for _ in $(seq 150); do kill -0 "$xvgpu_pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$xvgpu_pid" 2>/dev/null && { step_fail "xvgpu did not exit 30 s after SIGTERM"; kill -KILL "$xvgpu_pid"; }
    wait "$xvgpu_pid"; echo "$?" > "$out/xvgpu.rc"
  fi
  xl domid "$guest" >/dev/null 2>&1 && xt_bounded 30 xl destroy "$guest"
  cp "$glog" "$out/guest-$guest.log" 2>/dev/null
  [ "$loaded_helper" = 1 ] && rmmod xvgpu_helper
  # A guest lost to the platform (xt_platform_crash, dom0/lib.sh): the whole scenario once more, the
  # loss reported in the summary (platform_crashes). A second loss fails it.
  if [ -n "$platform_crash" ] && [ -z "${XT_HVM_PLATFORM_CRASH:-}" ]; then
    say "the guest was lost to the platform ($platform_crash); the scenario once more"
    XT_HVM_PLATFORM_CRASH=$platform_crash exec bash "$0" "$out"
  fi
  T[total]=$(since "$t0")
  local times="{"; local k
  for k in "${!T[@]}"; do times+="\"$k\":${T[$k]},"; done
  times="${times%,}}"
  # shellcheck disable=SC2086 # XT_NODE_FLAGS is a word list
  node $XT_NODE_FLAGS "$here/compose.mjs" "$out" "$times" "${failed:-}" "$scenario" "$buffers" "${XT_HVM_PLATFORM_CRASH:-}" "${vram:-}" > "$out/result.json" || step_fail "summary"
  cat "$out/result.json"
  # (compose.mjs pretty-prints: the summary's own "ok", read as JSON)
  [ -z "$failed" ] && node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).ok === true ? 0 : 1)' "$out/result.json"
  exit $?
}
trap finish EXIT

if [ ! -c /dev/xvgpu_helper ]; then insmod /xt/xvgpu_helper.ko && loaded_helper=1; fi
[ -c /dev/xvgpu_helper ] || { step_fail "kernel helper"; exit 1; }
# The VRAM stand-in: QEMU's ivshmem-plain (1af4:1110), BAR2, MMIO frames.
vram=
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] && vram=$d/resource2
done
[ -n "$vram" ] || { step_fail "no ivshmem device (1af4:1110) in dom0"; exit 1; }

cat > /tmp/$guest.cfg <<CFG
name = "$guest"
type = "hvm"
memory = 384
vcpus = 1
kernel = "$XT_GUEST_DIR/vmlinuz"
ramdisk = "$XT_GUEST_DIR/hvm-initrd.cpio.gz"
extra = "console=ttyS0,115200 loglevel=4 iommu=noaperture"
serial = "file:$glog"
vga = "none"
vnc = 0
sdl = 0
tsc_mode = "native"
acpi_firmware = "$XT_GUEST_DIR/xvgpu-ssdt.aml"
on_crash = "preserve"
on_poweroff = "destroy"
on_reboot = "destroy"
CFG
# iommu=noaperture: on this AMD-vendor CPU Linux looks for a GART aperture by reading the config
# space of every device slot of all 256 buses through ports 0xcf8/0xcfc, each access a trip through
# Xen to qemu-dm under TCG; a run's guest triple-faulted in that scan (bus 0xad) and, restarted by
# xl as a new domain nobody served, read all ones at the device. on_reboot = "destroy" (as pvh's
# guests): a guest that reboots is gone, the waits below say why (xt_guest_gone_why), and a triple
# fault runs the scenario once more (finish).
# docs/deploy-xen.md section 4: the ioreq server exists before the guest first touches the window.
t=$(date +%s.%N)
xt_bounded 120 xl create -p /tmp/$guest.cfg || { step_fail "xl create -p"; exit 1; }
T[create_paused_s]=$(since "$t")
domid=$(xt_domid "$guest")
say "guest $domid created paused in ${T[create_paused_s]}s"
say "dom0 CPU vector flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|fma|f16c|sse4_2)' | tr '\n' ' ')"
t=$(date +%s.%N)
# segv-report.so (xen-tier/dom0/preload) writes the native stack of a crash to xvgpu.log.
# The blobs' backing: the VRAM BAR (MMIO frames, stock Xen's safe path), or xvgpu's default memfd RAM.
buffer_opts=(--vram "$vram")
[ "$buffers" = memfd ] && buffer_opts=()
(cd /xvgpu && LD_PRELOAD=/xt/bin/segv-report.so exec node $XT_NODE_FLAGS dist/cli/main.js run --platform xen --domid "$domid" --bar-gfn 0x100000 --bar-size 256M \
   --mmio-base 0xfe000000 --irq 7 "${buffer_opts[@]}" --json --log-level info) > "$out/xvgpu.json" 2> "$out/xvgpu.log" &
xvgpu_pid=$!
stream "$out/xvgpu.log" '"level":(40|50|60)|"msg":"serving"|^segv-report' xvgpu
stream "$glog" '^XT-HVM|virtio|drm|LNRO|BUG|Oops|panic|rror' guest
wait_match "$out/xvgpu.log" '"msg":"serving"' 300 || { step_fail "xvgpu never served"; cat "$out/xvgpu.log"; exit 1; }
T[xvgpu_ready_s]=$(since "$t")
say "xvgpu serving in ${T[xvgpu_ready_s]}s; unpausing"
t=$(date +%s.%N)
xl unpause "$guest"
wait_match "$glog" '^XT-HVM: (guest-pattern-written|done)' 900 || { step_fail "the guest never wrote its pattern"; exit 1; }
T[unpause_to_pattern_s]=$(since "$t")
say "guest pattern after ${T[unpause_to_pattern_s]}s"
if grep -q '^XT-HVM: guest-pattern-written' "$glog"; then
  if [ "$buffers" = memfd ]; then
    # Every memfd BO xvgpu holds, reopened through /proc (the check finds the guest's by its signature).
    mapfile -t check_files < <(for f in /proc/"$xvgpu_pid"/fd/*; do case $(readlink "$f") in /memfd:xvgpu-bo*) echo "$f" ;; esac; done)
  else
    check_files=("$vram")
  fi
  node $XT_NODE_FLAGS "$here/vram-check.mjs" "${check_files[@]}" > "$out/vram-check.json" || step_fail "dom0's check of the guest's data"
  cat "$out/vram-check.json"
fi
wait_match "$glog" '^XT-HVM: done' 300 || step_fail "the guest never finished"
T[unpause_to_done_s]=$(since "$t")
xt_wait_gone "$guest" 60 || step_fail "the guest did not power off"
