#!/bin/sh
# /init of the VM tier: load DRM, vgem and xvgpu_helper, run the C selftest and (when staged) the
# TypeScript tier on memfd and on vgem buffers; then reload the helper with test_skip_revoke=1 (a
# load-time parameter) for the TypeScript fault-injection case, which must report stale accesses.
# Prints a final marker with the exit status and powers off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "xvgpu-vm: kernel $(uname -r)"
status=0
while read -r m; do insmod "/modules/$m" || { echo "xvgpu-vm: insmod $m failed"; status=1; }; done < /modules/order
load_helper() {
  insmod /modules/xvgpu_helper.ko allow_evict=1 "$@" || { echo "xvgpu-vm: insmod xvgpu_helper $* failed"; status=1; }
}
load_helper
echo "xvgpu-vm: selftest"
/bin/helper_test || status=1
if [ -x /xvgpu/run-in-vm.sh ]; then
  echo "xvgpu-vm: typescript tier"
  /xvgpu/run-in-vm.sh memfd || status=1
  /xvgpu/run-in-vm.sh drm || status=1
  echo "xvgpu-vm: privsep (a bound helper fd kept past a drop to nobody)"
  # Captured, then echoed whole (as run-in-vm.sh does): the line must not interleave with the console.
  out=$(cd /tmp && HOME=/tmp /usr/bin/node /xvgpu/privsep-check.mjs 2>&1) || { echo "xvgpu-vm: privsep-check failed"; status=1; }
  echo "$out"
  /xvgpu/run-in-vm.sh service || status=1
  # The C selftest ran its own fault injection (the skip_revoke fixture reloads the module with
  # test_skip_revoke=1, then restores it). This one is the TypeScript side's: the module is reloaded
  # with revocation off right here, so nothing in between can restore it.
  echo "xvgpu-vm: fault injection (revocation off: test_skip_revoke=1 at load time)"
  rmmod xvgpu_helper || { echo "xvgpu-vm: rmmod xvgpu_helper failed"; status=1; }
  load_helper test_skip_revoke=1
  /xvgpu/run-in-vm.sh inject || status=1
fi
rmmod xvgpu_helper || { echo "xvgpu-vm: rmmod xvgpu_helper failed"; status=1; }
dmesg | grep -E 'xvgpu|BUG:|WARNING:|Oops|lockdep|INFO: task' | sed 's/^/xvgpu-vm: dmesg: /'
echo "xvgpu-vm: done status=$status"
poweroff -f
