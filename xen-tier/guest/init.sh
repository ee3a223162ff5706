#!/bin/sh
# The tier's PVH guest: runs the program named by xt_cmd= (with the words of xt_args=, commas for
# spaces) and reports its exit status on the console, which xenconsoled logs in dom0.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
cmd= args=
for w in $(cat /proc/cmdline); do
  case $w in
    xt_cmd=*) cmd=${w#xt_cmd=} ;;
    xt_args=*) args=$(echo "${w#xt_args=}" | tr ',' ' ') ;;
  esac
done
echo "XT-GUEST: start $cmd $args"
echo "XT-GUEST: cpu $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'sse4_2|xsave|avx|avx2' | tr '\n' ' ')"
# shellcheck disable=SC2086 # args is a word list
"/bin/$cmd" $args
rc=$?
# A program killed by a signal: the kernel's one-line report (ip, the faulting address) is below the
# console's loglevel, so it is copied out here.
[ $rc -gt 128 ] && dmesg | grep -E 'traps:|segfault at|general protection' | tail -n 3 | sed 's/^/XT-GUEST: /'
echo "XT-GUEST: exit $rc"
poweroff -f
