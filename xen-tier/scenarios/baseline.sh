#!/bin/bash
# baseline: the in-run baseline of `xvgpu bench --xen`. The same xvgpu, kernel helper and dom0
# kernel (under the same QEMU TCG and Xen) as the pvh scenario's runs, but on `--platform linux`: the
# helper's soft p2m instead of Xen's, memfd buffers, and the simulated guest's vCPU threads instead
# of a PVH guest. Xen is not on the fault or revoke path here, so the pvh figures over these are
# what Xen's p2m, its ioreq transport and the guest add, on this machine in this run (absolute
# TCG times mean little). Writes the run's --json summary as result.json.
set -uo pipefail
. /xt/lib.sh
out=$1
insmod /xt/xvgpu_helper.ko || exit 1
# map-and-emulate with the default fault-around, as pvh's run b on stock Xen; random touches over
# two blobs re-fault what the evictions (100/s) revoke, so both histograms fill (a touch sweep
# faults each page once: under TCG that left 9 faults and 8 revokes in 30 s).
(cd /xvgpu && xt_bounded 240 node $XT_NODE_FLAGS dist/cli/main.js run --platform linux --json --mode emulate \
  --workload random --vcpus 1 --blobs 2 --blob-size 1M --evict-rate 100 --duration 20) \
  > "$out/run.json" 2> "$out/run.log"
rc=$?
rmmod xvgpu_helper || rc=1
[ "$rc" = 0 ] || { tail -n 40 "$out/run.log"; exit 1; }
tail -n 1 "$out/run.json" > "$out/result.json"
