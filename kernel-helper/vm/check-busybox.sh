#!/usr/bin/env bash
# check-busybox.sh [PATH]: succeeds when PATH (default /bin/busybox) is a statically linked busybox,
# which the initramfs needs (it has no shared libraries). Otherwise one line on stderr naming the
# package to install, and exit 1. Debian's busybox-static provides /bin/busybox (dpkg -L
# busybox-static); the dynamic `busybox` package installs the same path, and a guest booted with it
# panics ("libresolv.so.2: cannot open shared object file", then "Attempted to kill init").
set -uo pipefail
bb=${1:-/bin/busybox}
fail() { echo "check-busybox: $bb $1: the VM tier needs a static busybox (apt-get install busybox-static)" >&2; exit 1; }
[ -f "$bb" ] || fail "is missing"
[ -x "$bb" ] || fail "is not executable"
command -v readelf >/dev/null || { echo "check-busybox: readelf is missing (apt-get install binutils)" >&2; exit 1; }
[ "$(head -c 4 "$bb" | od -An -c | tr -d ' \n')" = '177ELF' ] || fail "is not an ELF binary"
# A dynamic executable names its loader in a PT_INTERP program header.
if LC_ALL=C readelf -lW "$bb" 2>/dev/null | grep -q 'program interpreter'; then fail "is dynamically linked"; fi
"$bb" true 2>/dev/null || fail "does not run"
