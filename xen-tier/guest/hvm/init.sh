#!/bin/sh
# /init of the tier's HVM guest (hvm-virtio-gpu): no udev, so the virtio-mmio and virtio-gpu modules
# are loaded by hand in dependency order (/lib/modules/order, written by build-hvm.sh); then it waits
# (bounded) for the render node and runs the client. Everything goes to the serial console.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "XT-HVM: init $(cut -d' ' -f1 /proc/uptime)s"
grep -i 'LNRO0005\|fe000000' /proc/iomem | sed 's/^/XT-HVM: iomem /'
# A headless guest: no fbdev console on the virtio-gpu (its 2D dumb buffer is not xvgpu's to serve:
# docs/virtio-gpu.md). busybox insmod does not read module options from the kernel command line.
while read -r m; do
  opts=
  [ "$m" = drm_kms_helper.ko ] && opts=fbdev_emulation=0
  insmod "/lib/modules/$m" $opts || echo "XT-HVM: FAIL insmod $m"
done < /lib/modules/order
echo "XT-HVM: modules loaded $(cut -d' ' -f1 /proc/uptime)s"
i=0
while [ ! -c /dev/dri/renderD128 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
dmesg | grep -iE 'virtio|drm|LNRO|\[drm' | sed 's/^/XT-HVM: dmesg /'
grep -E 'virtio|LNRO' /proc/interrupts | sed 's/^/XT-HVM: irq /'
if [ -c /dev/dri/renderD128 ]; then
  echo "XT-HVM: render node up $(cut -d' ' -f1 /proc/uptime)s"
  /bin/virtgpu_client /dev/dri/renderD128 240
  echo "XT-HVM: client exit $? $(cut -d' ' -f1 /proc/uptime)s"
else
  echo "XT-HVM: FAIL no /dev/dri/renderD128 after 60 s"
  echo 'XT-HVM-RESULT {"ok":false,"failures":1,"first_failure":"no render node"}'
fi
sed 's/^/XT-HVM: irq-end /' /proc/interrupts
dmesg | tail -n 20 | sed 's/^/XT-HVM: dmesg-tail /'
echo "XT-HVM: done"
poweroff -f
