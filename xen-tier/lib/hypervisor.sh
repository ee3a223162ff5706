#!/usr/bin/env bash
# hypervisor.sh debian|PATH: prints the path of an uncompressed Xen binary (multiboot1 ELF).
# debian: the xen-hypervisor-4.17-amd64 package apt resolves today (usually bookworm-security),
# fetched with apt-get download + dpkg -x and cached under its version. PATH: used as given
# (gunzipped into the run's work dir when it is compressed).
set -euo pipefail
. "$(dirname "$0")/common.sh"
want=$1 work=${2:-}
fetch_debian() {
  local out=$1 deb
  (cd "$out" && apt-get download -q xen-hypervisor-4.17-amd64 >/dev/null)
  deb=$(ls "$out"/xen-hypervisor-4.17-amd64_*.deb)
  dpkg -x "$deb" "$out/pkg"
  zcat "$out"/pkg/boot/xen-4.17-amd64.gz > "$out/xen"
  rm -rf "$out/pkg" "$deb"
}
case $want in
  debian)
    ver=$(apt-cache policy xen-hypervisor-4.17-amd64 | awk '/Candidate:/ {print $2}')
    [ -n "$ver" ] && [ "$ver" != "(none)" ] || xt_die "apt knows no xen-hypervisor-4.17-amd64 (apt-get update? a bookworm mirror?)"
    dir=$(xt_cached hypervisor-debian "$(xt_key "$ver")" fetch_debian)
    echo "$dir/xen" ;;
  *)
    [ -f "$want" ] || xt_die "--hypervisor $want: no such file"
    if gzip -t "$want" 2>/dev/null; then
      [ -n "$work" ] || xt_die "hypervisor.sh: a compressed binary needs a work dir"
      zcat "$want" > "$work/xen"; echo "$work/xen"
    else
      readlink -f "$want"
    fi ;;
esac
