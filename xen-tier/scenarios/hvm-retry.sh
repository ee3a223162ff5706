#!/bin/bash
# hvm-retry (issue 12; patched hypervisor): hvm-virtio-gpu's HVM guest and checks, with xvgpu as
# `run --platform xen` chooses by default where Xen reports the extension: map-then-retry on memfd
# RAM lent through the helper's xen-dmop back-end (no --vram, no --mode). The guest's own Linux
# virtio-gpu driver maps a host blob; its first touches of each page must be answered with a retry.
XT_HVM_BUFFERS=memfd XT_HVM_SCENARIO=hvm-retry exec bash /xt/scenarios/hvm-virtio-gpu.sh "$@"
