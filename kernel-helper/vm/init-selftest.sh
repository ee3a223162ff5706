#!/bin/sh
# /init of the VM tier: load DRM, vgem and xvgpu_helper, run the C selftest (and the TS tier if
# present), print a final marker with the exit status, power off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "xvgpu-vm: kernel $(uname -r)"
status=0
while read -r m; do insmod "/modules/$m" || { echo "xvgpu-vm: insmod $m failed"; status=1; }; done < /modules/order
insmod /modules/xvgpu_helper.ko allow_evict=1 || { echo "xvgpu-vm: insmod xvgpu_helper failed"; status=1; }
echo "xvgpu-vm: selftest"
/bin/helper_test || status=1
echo "xvgpu-vm: fault injection (revocation off)"
echo 1 > /sys/module/xvgpu_helper/parameters/test_skip_revoke
/bin/helper_test --expect-stale || status=1
echo 0 > /sys/module/xvgpu_helper/parameters/test_skip_revoke
if [ -x /xvgpu/run-in-vm.sh ]; then
  echo "xvgpu-vm: typescript tier"
  /xvgpu/run-in-vm.sh || status=1
fi
dmesg | grep -E 'xvgpu|BUG:|WARNING:|Oops|lockdep|INFO: task' | sed 's/^/xvgpu-vm: dmesg: /'
echo "xvgpu-vm: done status=$status"
poweroff -f
