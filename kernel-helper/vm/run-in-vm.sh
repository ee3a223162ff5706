#!/bin/sh
# run-in-vm.sh CASE: inside the VM, the TypeScript back-end against the real module (soft p2m), with
# the synthetic guest and host pressure. Prints "xvgpu-vm: summary CASE {json}" on one line.
#   memfd   memfd buffers (frames freed and replaced on eviction): must pass its checks;
#   drm     vgem dumb buffers (/dev/dri/card0) through the helper's EVICT: must pass its checks;
#   inject  memfd buffers with the helper loaded test_skip_revoke=1: must fail with stale accesses
#           (xvgpu run exits 1 for a failed check; any other status is an error).
case=$1
cd /xvgpu || exit 1
export HOME=/tmp
# An eviction runs on the main thread, which also serves the faults: under TCG a memfd move (two
# QUERYs, a copy, a hole punch, a rewrite) takes tens of ms, so the rates stay low enough for the
# workload to make progress (at 20/s the main thread did little but evict).
case $case in
  memfd) extra="--evict-rate 5" duration=${XVGPU_VM_DURATION:-12} ;;
  drm) extra="--evict-rate 20 --drm-node /dev/dri/card0" duration=${XVGPU_VM_DRM_DURATION:-6} ;;
  inject) extra="--evict-rate 5" duration=${XVGPU_VM_INJECT_DURATION:-6} ;;
  *) echo "run-in-vm: unknown case $case"; exit 2 ;;
esac
# shellcheck disable=SC2086 # $extra is a list of options
out=$(/usr/bin/node dist/cli/main.js run --platform linux $extra --json --vcpus 2 --duration "$duration" \
  --blobs 4 --blob-size 256K --fault-around 1 --no-huge --workload random 2>/tmp/node.err)
status=$?
echo "xvgpu-vm: summary $case $out"
sed 's/^/xvgpu-vm: node: /' /tmp/node.err | tail -n 10
want=0
[ "$case" = inject ] && want=1
[ $status -eq $want ] && exit 0
echo "xvgpu-vm: node exited $status in case $case (want $want)"
exit 1
