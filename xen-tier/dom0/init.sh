#!/bin/bash
# dom0's /init: mounts, the Xen daemons (what Debian's /etc/init.d/xen starts), the kernel helper,
# then each scenario of /xt/scenarios.list, bounded by /xt/timeout seconds. Progress goes to the
# console as "XVGPU-TIER: ..." lines; the results (each scenario's result.json, its log, guest
# consoles, xl dmesg) go to the results disk /dev/vda as a tar, which the host unpacks.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts devpts /dev/pts
ln -sf /proc/self/fd /dev/fd
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
. /xt/lib.sh
results=/xt/results
mkdir -p "$results"

finish() {
  xl dmesg > "$results/xl-dmesg.txt" 2>&1
  dmesg > "$results/dom0-dmesg.txt" 2>&1
  if [ -b /dev/vda ]; then
    tar -cf /dev/vda -C "$results" . && sync && echo "XVGPU-TIER: results written"
  else
    echo "XVGPU-TIER: no results disk (/dev/vda)"
  fi
  echo "XVGPU-TIER: done"
  busybox poweroff -f
  exit 0
}

start_xen_daemons() {
  modprobe -a xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs virtio_pci virtio_blk || return 1
  mount -t xenfs xenfs /proc/xen || return 1
  mkdir -p /run/xenstored /run/xen /var/log/xen/console /var/lib/xen
  XENSTORED_ROOTDIR=/run/xenstored /usr/lib/xen-4.17/bin/oxenstored --pid-file /run/xenstore.pid || return 1
  /usr/lib/xen-4.17/bin/xen-init-dom0 || return 1
  /usr/lib/xen-4.17/bin/xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || return 1
  xt_bounded 30 xl info > "$results/xl-info.txt" 2>&1
}

echo "XVGPU-TIER: dom0 up $(cut -d' ' -f1 /proc/uptime)s"
if ! start_xen_daemons; then
  echo "XVGPU-TIER: setup fail: the Xen daemons did not start"
  finish
fi
echo "XVGPU-TIER: xl ready $(cut -d' ' -f1 /proc/uptime)s"
# Wait for the results disk (virtio-blk probes asynchronously), bounded.
for _ in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.2; done

timeout=$(cat /xt/timeout)
# The scenarios' knobs from the host's environment (overlay.sh).
. /xt/scenario.env
for s in $(cat /xt/scenarios.list); do
  out="$results/$s"
  mkdir -p "$out"
  echo "XVGPU-TIER: scenario $s start $(cut -d' ' -f1 /proc/uptime)s"
  # timeout signals the scenario's whole process group (node, xl and friends with it).
  timeout -k 10 "$timeout" bash "/xt/scenarios/$s.sh" "$out" > "$out/log" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && [ -s "$out/result.json" ]; then
    echo "XVGPU-TIER: scenario $s ok $(cut -d' ' -f1 /proc/uptime)s"
    echo ok > "$out/status"
  else
    [ $rc -eq 124 ] && what=timeout || what="fail rc=$rc"
    echo "$what" > "$out/status"
    echo "XVGPU-TIER: scenario $s $what $(cut -d' ' -f1 /proc/uptime)s"
    xt_destroy_guests
    cp /var/log/xen/console/guest-*.log "$out/" 2>/dev/null
    tail -n 40 "$out/log" | sed "s/^/XVGPU-TIER: $s log: /"
  fi
  rm -f /var/log/xen/console/guest-*.log
done
finish
