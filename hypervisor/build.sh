#!/usr/bin/env bash
# Build Xen 4.17.7 with xvgpu's patch series and print the path of the hypervisor binary.
#
# Inputs: the upstream tarball (../shared/xen/xen-4.17.7.tar.xz beside the clone, or
# $XVGPU_XEN_TARBALL), hypervisor/patches/*.patch (applied in name order) and hypervisor/config.
# Output: ${XVGPU_CACHE:-$HOME/.cache/xvgpu}/xen-patched-<key>/xen, where <key> is the sha256 of
# the tarball, the patches and the config. A cached binary is reused; a build happens in a
# temporary directory under a lock and is published with one rename, so a concurrent or an
# interrupted build never leaves a half-written cache entry.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# The clone sits beside shared/; a git worktree's main clone does.
default_tarball() {
  local rel=shared/xen/xen-4.17.7.tar.xz common
  if [ -f "$repo/../$rel" ]; then echo "$repo/../$rel"; return; fi
  common=$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) || true
  if [ -n "$common" ] && [ -f "$common/../../$rel" ]; then echo "$common/../../$rel"; return; fi
  echo "$repo/../$rel"
}
tarball=${XVGPU_XEN_TARBALL:-$(default_tarball)}
cache=${XVGPU_CACHE:-$HOME/.cache/xvgpu}
jobs=${XVGPU_XEN_JOBS:-2}

die() { echo "hypervisor/build.sh: $*" >&2; exit 1; }

[ -f "$tarball" ] || die "Xen tarball not found: $tarball (set XVGPU_XEN_TARBALL)"
[ -f "$here/config" ] || die "missing $here/config"
for tool in make gcc flex bison python3 patch sha256sum flock tar xz; do
  command -v "$tool" >/dev/null || die "required tool '$tool' is not installed"
done

shopt -s nullglob
patches=("$here"/patches/*.patch)
shopt -u nullglob
[ "${#patches[@]}" -gt 0 ] || die "no patches in $here/patches"

# The key covers every input byte that reaches the compiler: tarball, each patch (in order), config.
key=$(
  {
    sha256sum "$tarball" | cut -d' ' -f1
    for p in "${patches[@]}"; do sha256sum "$p" | cut -d' ' -f1; done
    sha256sum "$here/config" | cut -d' ' -f1
  } | sha256sum | cut -d' ' -f1
)
dest="$cache/xen-patched-$key"

if [ -f "$dest/xen" ]; then
  echo "$dest/xen"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$dest.lock"
flock 9
# Another build may have finished while this one waited for the lock.
if [ -f "$dest/xen" ]; then
  echo "$dest/xen"
  exit 0
fi

work=$(mktemp -d "$cache/.xen-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 143' TERM INT HUP
start=$(date +%s)
tar -xJf "$tarball" -C "$work"
src="$work/xen-4.17.7"
[ -d "$src/xen" ] || src="$work"
[ -d "$src/xen" ] || die "tarball has no xen/ directory"

for p in "${patches[@]}"; do
  echo "applying $(basename "$p")" >&2
  patch -d "$src" -p1 --forward --batch --quiet < "$p" >&2 || die "patch $(basename "$p") does not apply"
done

cp "$here/config" "$src/xen/.config"
log="$work/build.log"
if ! { make -C "$src/xen" olddefconfig && make -C "$src/xen" -j"$jobs"; } >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  die "hypervisor build failed (full log above, last 60 lines)"
fi
# The checked-in config must already be complete: olddefconfig must not have changed an option.
if ! diff -q <(grep -v '^#' "$here/config" | sed '/^$/d') <(grep -v '^#' "$src/xen/.config" | sed '/^$/d') >/dev/null; then
  diff <(grep -v '^#' "$here/config" | sed '/^$/d') <(grep -v '^#' "$src/xen/.config" | sed '/^$/d') >&2 || true
  die "hypervisor/config is not a complete config for this tree (olddefconfig changed it, diff above)"
fi

out="$work/out"
mkdir "$out"
cp "$src/xen/xen" "$out/xen"
cp "$src/xen/.config" "$out/config"
cp "$log" "$out/build.log"
echo "$key" > "$out/key"
echo "$(( $(date +%s) - start ))" > "$out/build-seconds"
mv -T "$out" "$dest"
echo "$dest/xen"
