#!/usr/bin/env bash
# run.sh [--timeout S] [--with-node] [--extra DIR] [--init FILE]: builds the module and the selftest against the
# kernel of linux-image-amd64, packs an initramfs and boots Debian's kernel under QEMU (TCG; KVM
# cannot boot a stock kernel on these machines). Every wait is bounded; on a guest kernel panic the
# lines that explain it are shown, on a timeout or a missing result the console log. Exit status:
# the VM's.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
timeout=300 extra="" with_node=0 init="$here/vm/init-selftest.sh"
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout=$2; shift 2 ;;
    --extra) extra=$2; shift 2 ;;
    --with-node) with_node=1; shift ;;
    --init) init=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
krel=$("$here/vm/kernel.sh")
for tool in qemu-system-x86_64 cpio; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 1; }
done
"$here/vm/check-busybox.sh" "${XVGPU_BUSYBOX:-/bin/busybox}"
make -s -C "$here" module selftest KVER="$krel" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$with_node" = 1 ]; then
  extra="$work/extra"
  "$here/vm/stage-node.sh" "$extra"
fi
"$here/vm/build-initramfs.sh" "$krel" "$work/initrd.cpio.gz" "$init" "$extra"
log="$work/console.log"
set +e
timeout "$timeout" qemu-system-x86_64 -accel tcg -cpu max -m 2G -smp 2 -nographic -no-reboot \
  -kernel "/boot/vmlinuz-$krel" -initrd "$work/initrd.cpio.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4" </dev/null >"$log" 2>&1
qemu=$?
set -e
tr -d '\r' <"$log" | grep -E '^(ok|not ok|#|[0-9]+ passed|xvgpu-vm:|\{)' || true
"$here/vm/explain-panic.sh" "$log" || exit 1
if ! grep -q 'xvgpu-vm: done status=0' "$log"; then
  echo "run.sh: the VM did not finish cleanly (qemu exit $qemu, timeout ${timeout}s). Console:" >&2
  tr -d '\r' <"$log" | tail -n 80 >&2
  exit 1
fi
