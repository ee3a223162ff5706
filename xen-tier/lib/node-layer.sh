#!/usr/bin/env bash
# node-layer.sh OUTDIR: the host's node binary and the shared libraries it links, packed as
# OUTDIR/node.cpio.gz (a second initramfs layer; the dom0 base has glibc, but node may need more).
set -euo pipefail
out=$1
node=$(command -v node)
root="$out/root"
mkdir -p "$root/usr/local/bin"
cp "$node" "$root/usr/local/bin/node"
# Under their canonical directories: the base is merged-/usr, and a real /lib or /lib64 directory in
# this layer would replace its /lib -> usr/lib symlink when the archives unpack.
for lib in $(ldd "$node" | grep -oE '/[^ ]+\.so[^ ]*'); do
  dir=$(readlink -f "$(dirname "$lib")")
  mkdir -p "$root$dir"
  cp -L "$lib" "$root$dir/"
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/node.cpio.gz"
rm -rf "$root"
