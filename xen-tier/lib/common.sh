# Sourced by the xen-tier scripts: logging, the cache directory, atomic cache builds, prerequisites.
# shellcheck shell=bash
XT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XT_REPO=$(cd "$XT_DIR/.." && pwd)
XT_CACHE=${XVGPU_CACHE:-$HOME/.cache/xvgpu}/xen-tier

xt_log() { printf 'xen-tier: %s\n' "$*" >&2; }
xt_die() { printf 'xen-tier: FAIL: %s\n' "$*" >&2; exit 1; }

# One line naming every missing command (the tier never passes by skipping).
xt_require_cmds() {
  local missing=() c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  [ "${#missing[@]}" -eq 0 ] || xt_die "missing prerequisites: ${missing[*]} (.ci/run installs them)"
}

# The Debian mirror apt already uses (deb.debian.org if none is configured).
xt_mirror() {
  local m
  m=$(grep -h -o -E 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | tr -d ' ')
  echo "${m:-http://deb.debian.org/debian}"
}

# xt_cached NAME KEY BUILDER...: prints the path of cache entry NAME-KEY, building it first with
# "BUILDER... TMPDIR" when absent. Concurrent builders (several helpers, several CI jobs) are
# serialised by flock and the result appears atomically (built in a temp dir, then renamed).
xt_cached() {
  local name=$1 key=$2; shift 2
  local dst="$XT_CACHE/$name-$key" tmp
  mkdir -p "$XT_CACHE"
  if [ ! -d "$dst" ]; then
    exec {lockfd}>"$XT_CACHE/$name.lock"
    flock "$lockfd"
    if [ ! -d "$dst" ]; then
      tmp=$(mktemp -d "$XT_CACHE/.$name.XXXXXX")
      xt_log "building cache entry $name-$key"
      if ! "$@" "$tmp" >&2; then rm -rf "$tmp"; exec {lockfd}>&-; xt_die "building $name failed"; fi
      mv "$tmp" "$dst"
    fi
    exec {lockfd}>&-
  fi
  echo "$dst"
}

# sha256 of files and strings, the cache key (first 16 hex digits).
xt_key() { { for a in "$@"; do if [ -f "$a" ]; then cat "$a"; else printf '%s\n' "$a"; fi; done; } | sha256sum | cut -c1-16; }
