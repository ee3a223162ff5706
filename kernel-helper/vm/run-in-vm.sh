#!/bin/sh
# run-in-vm.sh CASE: inside the VM, the TypeScript back-end against the real module (soft p2m), with
# the synthetic guest and host pressure. Prints "xvgpu-vm: summary CASE {json}" on one line.
#   memfd   memfd buffers (frames freed and replaced on eviction): must pass its checks;
#   drm     vgem dumb buffers (/dev/dri/card0) through the helper's EVICT: must pass its checks;
#   inject  memfd buffers with the helper loaded test_skip_revoke=1: must fail with stale accesses
#           (xvgpu run exits 1 for a failed check; any other status is an error).
#   service memfd buffers, the back-end as a service: SIGTERM under load must exit 0 with every
#           mapping revoked, and kill -9 under load must leave the module's soft p2m empty (its
#           release()). Prints "xvgpu-vm: service sigterm|kill9 ..." lines with the counts.
case=$1
cd /xvgpu || exit 1
export HOME=/tmp
SOFT=/sys/module/xvgpu_helper/parameters/soft_mapped

# start_loaded: xvgpu run in the background, faulting under evictions until stopped; waits until the
# workload runs and the soft p2m has entries. Sets $pid.
start_loaded() {
  /usr/bin/node dist/cli/main.js run --platform linux --evict-rate 5 --json --vcpus 2 --duration 600 \
    --blobs 4 --blob-size 256K --fault-around 1 --no-huge --workload random --log-level info \
    --shutdown-timeout 120 >/tmp/svc.out 2>/tmp/svc.err &
  pid=$!
  for _ in $(seq 600); do
    grep -q '"simulation running"' /tmp/svc.err && [ "$(cat $SOFT)" -gt 0 ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "xvgpu-vm: service: the run did not start mapping"; sed 's/^/xvgpu-vm: node: /' /tmp/svc.err | tail -n 10
  return 1
}

if [ "$case" = service ]; then
  [ "$(cat $SOFT)" -eq 0 ] || { echo "xvgpu-vm: service: soft p2m not empty before the case"; exit 1; }
  start_loaded || exit 1
  sleep 2
  during=$(cat $SOFT)
  kill -TERM "$pid"
  wait "$pid"
  status=$?
  left=$(grep -o '"mapped_after_stop":[0-9]*' /tmp/svc.out | cut -d: -f2)
  echo "xvgpu-vm: service sigterm status=$status mapped_after_stop=${left:-none} soft_mapped_during=$during soft_mapped_after=$(cat $SOFT)"
  sed 's/^/xvgpu-vm: node: /' /tmp/svc.err | grep -E '"(stopping|back-end stopped|exiting)' | cut -c1-300
  start_loaded || exit 1
  sleep 2
  during=$(cat $SOFT)
  kill -KILL "$pid"
  wait "$pid"
  status=$?
  echo "xvgpu-vm: service kill9 status=$status soft_mapped_during=$during soft_mapped_after=$(cat $SOFT)"
  exit 0
fi

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
