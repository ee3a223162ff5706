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
# shellcheck disable=SC2086 # args is a word list
"/bin/$cmd" $args
echo "XT-GUEST: exit $?"
poweroff -f
