#!/bin/sh
# Inside the VM: the TypeScript back-end against the real module (soft p2m) and vgem buffers, with
# the synthetic guest and EVICT as host pressure. Prints the JSON summary on one line.
cd /xvgpu || exit 1
export HOME=/tmp
out=$(/usr/bin/node dist/cli/main.js run --platform linux --json --vcpus 2 --duration "${XVGPU_VM_DURATION:-20}" \
  --evict-rate 50 --blobs 4 --blob-size 256K --fault-around 1 --no-huge --workload random 2>/tmp/node.err)
status=$?
echo "xvgpu-vm: summary $out"
[ $status -eq 0 ] || { echo "xvgpu-vm: node exited $status"; sed 's/^/xvgpu-vm: node: /' /tmp/node.err | tail -n 20; }
exit $status
