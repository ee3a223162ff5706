#!/usr/bin/env bash
# check-in-chroot.sh: runs the Dockerfile's commands without a container engine, the way CI checks
# them (no engine runs on these machines):
#   build stage   its COPY and RUN lines, in a scratch directory on this Debian 12 host (what
#                 node:20-bookworm is: Debian 12, node 20, build-essential, python3);
#   runtime stage a Debian 12 minbase root (debootstrap) with this host's node 20 and npm in
#                 /usr/local and a `node` user (uid 1000), as node:20-bookworm-slim has them; its
#                 COPY --from=build lines, then its CMD as its USER, in a chroot.
# The root is cached in ${XVGPU_CACHE:-$HOME/.cache/xvgpu}/docker-rootfs, keyed by the debootstrap
# version, the mirror, the node version and this recipe. Needs root (chroot, mounts) and debootstrap.
# Prints the runtime's size and the CMD's output; exits non-zero if a command fails or the run does
# not say every mapping was revoked.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dockerfile=$repo/Dockerfile
mirror=${XVGPU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || { echo "check-in-chroot: needs root (chroot and mounts)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "check-in-chroot: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

work=$(mktemp -d)
root=$work/rootfs
cleanup() {
  for m in "$root/proc" "$root/dev"; do mountpoint -q "$m" && umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

# The lines of one stage (between its FROM ... AS NAME and the next FROM), continuation lines joined.
stage() {
  awk -v name="$1" '
    /^FROM / { on = ($NF == name); next }
    on && !/^#/ && NF { line = line $0; if (sub(/\\$/, "", line)) next; print line; line = "" }
  ' "$dockerfile"
}

echo "== build stage (host: $(. /etc/os-release; echo "$PRETTY_NAME"), node $(node --version))"
build=$work/build
while read -r op rest; do
  case $op in
    WORKDIR) bdir=$build$rest; mkdir -p "$bdir" ;;
    COPY) read -ra parts <<<"$rest"; dst=${parts[-1]}; unset 'parts[-1]'
          for src in "${parts[@]}"; do cp -r "$repo/$src" "$bdir/$dst"; done ;;
    RUN) (cd "$bdir" && bash -ec "$rest") ;;
    *) echo "check-in-chroot: build stage: no equivalent for '$op'" >&2; exit 1 ;;
  esac
done < <(stage build)

node_bin=$(command -v node)
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
key=$(printf '%s\n' "$(debootstrap --version)" "$mirror" "$(node --version)" "$(sed -n '/^ *# ROOTFS-RECIPE$/,/^ *# END-RECIPE$/p' "$0")" | sha256sum | cut -c1-16)
cache=${XVGPU_CACHE:-$HOME/.cache/xvgpu}/docker-rootfs
mkdir -p "$cache" "$root"
if [ ! -f "$cache/$key.tar" ]; then
  echo "== runtime root: debootstrap bookworm minbase (not cached: $key)"
  # ROOTFS-RECIPE
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log"; exit 1; }
  cp "$node_bin" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules"
  cp -r "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  chroot "$root" groupadd --gid 1000 node
  chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  # END-RECIPE
  tar -C "$root" -cf "$cache/$key.tar.tmp" . && mv "$cache/$key.tar.tmp" "$cache/$key.tar"
  find "$cache" -maxdepth 1 -name '*.tar' ! -name "$key.tar" -delete # roots of older inputs
else
  echo "== runtime root: cached $key"
  tar -C "$root" -xf "$cache/$key.tar"
fi

echo "== runtime stage"
rdir=/ user=root cmd=()
while read -r op rest; do
  case $op in
    WORKDIR) rdir=$rest; mkdir -p "$root$rdir" ;;
    COPY) read -ra parts <<<"$rest"
          [ "${parts[0]}" = --from=build ] || { echo "check-in-chroot: runtime COPY not from the build stage: $rest" >&2; exit 1; }
          src=${parts[1]} dst=${parts[2]}
          case $dst in /*) ;; *) dst=$rdir/$dst ;; esac
          mkdir -p "$(dirname "$root$dst")"; cp -a "$build$src" "$root$dst" ;;
    USER) user=$rest ;;
    CMD) mapfile -t cmd < <(node -e 'for (const a of JSON.parse(process.argv[1])) console.log(a)' "$rest") ;;
    *) echo "check-in-chroot: runtime stage: no equivalent for '$op'" >&2; exit 1 ;;
  esac
done < <(stage runtime)
echo "runtime project: $(du -sh "$root$rdir" | cut -f1) ($rdir: $(ls "$root$rdir" | tr '\n' ' '))"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
set +e
chroot --userspec="$user:$user" "$root" /usr/bin/env -i HOME="/home/$user" PATH=/usr/local/bin:/usr/bin:/bin \
  sh -c 'cd "$0" && exec "$@"' "$rdir" "${cmd[@]}" >"$work/out" 2>&1
status=$?
set -e
cat "$work/out"
echo "== CMD (${cmd[*]}) as $user exited $status"
[ "$status" -eq 0 ] && grep -q 'every mapping revoked' "$work/out"
