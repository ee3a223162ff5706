# Sourced by dom0's /init and by every scenario (/xt/lib.sh): bounded waits and guest handling.
# shellcheck shell=bash
XT_GUEST_DIR=/xt/guest
XT_CONSOLE_DIR=/var/log/xen/console
# Options for every node process in dom0 (one place: every scenario uses them): V8's JIT without
# AVX, AVX2 and FMA3. Under QEMU 7.2 TCG, V8 code using them corrupted doubles: xvgpu died in 3 of 3
# pvh runs with its async ids garbled, and node's heap compaction segfaulted even in a plain node
# with no addon (README.md). The tier's CPU now has no AVX at all (run.sh), so these matter only
# when XT_QEMU_CPU gives it back; XT_NODE_FLAGS from the host's environment overrides them.
XT_NODE_FLAGS=${XT_NODE_FLAGS---no-enable-avx --no-enable-avx2 --no-enable-fma3}

# xt_bounded SEC CMD...: CMD, killed after SEC seconds (every wait in the tier is bounded).
xt_bounded() { local s=$1; shift; timeout -k 5 "$s" "$@"; }

xt_log() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*"; }

# Every domain but dom0, destroyed (bounded).
xt_destroy_guests() {
  local d
  for d in $(xl list 2>/dev/null | awk 'NR > 2 { print $2 }'); do xt_bounded 30 xl destroy "$d"; done
}

# xt_pvh_cfg NAME CMD ARGS EXTRA...: an xl config on stdout for a PVH guest running /bin/CMD ARGS
# (ARGS: words joined by commas) from the tier's guest initramfs; EXTRA lines are appended.
# pci=off: a PVH guest has no PCI, and the AMD-vendor CPU makes Linux probe every bus for a GART
# aperture through ports 0xcf8/0xcfc at boot (each a trip through Xen under TCG); one such boot
# triple-faulted at that probe (pvh run b of /tmp/s19/pvh1, RIP at an `in` with rdx=0xcf8).
# on_reboot: a triple fault is a reboot. XT_GUEST_ON_REBOOT=destroy (pvh, pvh-retry): the domain is
# gone, and the scenario's wait says so and runs the run again (xt_run_once_more_on_platform_crash);
# xl's restart would boot it again as a new domain no xvgpu served (it read all ones: "no
# virtio-mmio v2 GPU"). Otherwise (smoke, helper-xen, xen-ext) xl's default restart: the guest
# boots again under its name, whose console the waits read (a smoke guest once triple-faulted at
# boot, before its first console line).
xt_pvh_cfg() {
  local name=$1 cmd=$2 args=$3; shift 3
  cat <<CFG
name = "$name"
type = "pvh"
memory = 256
vcpus = 1
kernel = "$XT_GUEST_DIR/vmlinuz"
ramdisk = "$XT_GUEST_DIR/initrd.cpio.gz"
extra = "console=hvc0 quiet pci=off xt_cmd=$cmd xt_args=$args"
tsc_mode = "native"
on_crash = "preserve"
on_poweroff = "destroy"
on_reboot = "${XT_GUEST_ON_REBOOT:-restart}"
CFG
  local line
  for line in "$@"; do echo "$line"; done
}

# xt_domid NAME: the domain id of a running guest, or nothing.
xt_domid() { xl domid "$1" 2>/dev/null; }

# xt_deadline SEC: the wall-clock second SEC from now (date +%s). Waits compare against it, not
# against an iteration count: under a loaded TCG a 0.2 s poll iteration took ~0.5 s (a "300 s"
# wait lasted 740 s).
xt_deadline() { echo $(( $(date +%s) + $1 )); }

# xt_wait_file_match FILE REGEX SEC: waits (bounded) until FILE has a line matching REGEX.
xt_wait_file_match() {
  local f=$1 re=$2 s=$3 i
  for ((i = 0; i < s * 5; i++)); do
    grep -qE "$re" "$f" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "timed out after ${s}s waiting for /$re/ in $f" >&2
  return 1
}

# xt_guest_gone_why NAME: why guest NAME left before its program exited, from Xen's log (a triple
# fault, a crash), for the failure message.
xt_guest_gone_why() {
  local why
  why=$(xt_bounded 20 xl dmesg 2>/dev/null | grep -E 'Triple fault|domain_crash|crashed' | tail -n 2 | tr '\n' ' ')
  echo "guest $1 left before its program exited${why:+ (xl dmesg: $why)}"
}

# xt_platform_crash DOMID: succeeds, printing Xen's lines (the triple fault and the RIP of its
# dump), when domain DOMID ended in a triple fault. Under QEMU 7.2 TCG that is the platform's
# doing (docs/xen-tier-findings.md): most dumps show Xen's own code as the guest's state (`RIP:
# e008:[<ffff82d0...>]`, CS e008: the emulated SVM left the vCPU in host state), one showed the
# HVM guest kernel in its timer interrupt's EOI on an exception stack while it slept between polls,
# after xvgpu's work was done. A guest fault xvgpu caused would not be a triple fault but an oops,
# and would come back when the run is started again.
xt_platform_crash() {
  local dump
  dump=$(xt_bounded 20 xl dmesg 2>/dev/null | grep -A 6 "d$1v[0-9]* Triple fault")
  [ -n "$dump" ] || return 1
  echo "$dump" | grep -E 'Triple fault|RIP:' | sed 's/^(XEN) *//' | tr '\n' ' '
}

# xt_guest_loss DOMID CONSOLE WHY: for a guest that left before the line a scenario waited for:
# 2, with PLATFORM_CRASH saying how, when it was lost to the platform (xt_platform_crash) or died at
# boot before its program started (no "XT-GUEST: start" on CONSOLE; WHY is xt_guest_gone_why's
# line); 1 when its program ran and then it left otherwise.
xt_guest_loss() {
  local crash
  if crash=$(xt_platform_crash "$1"); then PLATFORM_CRASH="lost to the platform: $crash"; return 2; fi
  grep -q '^XT-GUEST: start' "$2" 2>/dev/null && return 1
  PLATFORM_CRASH="died at boot, before its program: $3"
  return 2
}

# xt_run_once_more_on_platform_crash NAME: the scenario's `run_one NAME` (0 passed, 1 failed, 2 its
# guest was lost to the platform, PLATFORM_CRASH saying how); after such a loss the scenario's
# `cleanup`, and the run once more. Each loss is appended to XT_PLATFORM_CRASHES (the scenario
# reports them). Under QEMU 7.2 TCG about one guest boot in ten, and one emulate-all run in five
# (some 8000 ioreqs), ended in a triple fault (xt_platform_crash); a scenario's wait returns 2 for
# that, and for a guest that died at boot before its program started (before any BAR access:
# nothing of xvgpu's had run for it). A second loss in the same run fails it.
XT_PLATFORM_CRASHES=()
xt_run_once_more_on_platform_crash() {
  PLATFORM_CRASH=
  run_one "$1"
  local rc=$?
  [ "$rc" = 2 ] || return $rc
  XT_PLATFORM_CRASHES+=("$1: $PLATFORM_CRASH")
  echo "XVGPU-TIER: run $1: the guest was lost to the platform ($PLATFORM_CRASH); the run once more" > /dev/console 2>/dev/null
  cleanup
  rm -f "$out/$1.json"
  PLATFORM_CRASH=
  run_one "$1"
}

# xt_wait_gone NAME SEC: waits (bounded) until the guest has left the domain list.
xt_wait_gone() {
  local name=$1 s=$2 i
  for ((i = 0; i < s * 5; i++)); do
    xl domid "$name" >/dev/null 2>&1 || return 0
    sleep 0.2
  done
  echo "timed out after ${s}s waiting for guest $name to end" >&2
  return 1
}
