#!/usr/bin/env bash
# verify.sh [UNIT]: `systemd-analyze verify` of the xvgpu@.service template (instance 5) in a scratch
# root holding the host's systemd units and stand-ins for the binaries it runs, so a missing
# /usr/bin/xvgpu on the build machine is not reported. systemd-analyze exits 0 even on directives it
# ignores, so any output is a failure here. Needs systemd-analyze (package systemd); fails without.
set -euo pipefail
unit=${1:-$(dirname "$0")/xvgpu@.service}
command -v systemd-analyze >/dev/null || { echo "verify.sh: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
for exe in /usr/bin/xvgpu /bin/kill; do printf '#!/bin/sh\n' >"$root$exe"; chmod +x "$root$exe"; done
cp "$unit" "$root/etc/systemd/system/xvgpu@.service"
out=$(systemd-analyze verify --root="$root" xvgpu@5.service 2>&1) || true
if [ -n "$out" ]; then
  echo "$out" | sed "s|$root||g"
  exit 1
fi
echo "verify.sh: xvgpu@5.service verified"
