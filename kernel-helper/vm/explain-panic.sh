#!/usr/bin/env bash
# explain-panic.sh CONSOLE_LOG: when the guest's console shows a kernel panic, prints the lines that
# explain it (the panic line and the lines before it, where the cause is: "Attempted to kill
# init" follows init's own error, an Oops follows its trace) on stderr, and exits 1. Exits 0 when
# there was no panic.
set -uo pipefail
log=$1
before=${XVGPU_PANIC_CONTEXT:-25}
line=$(tr -d '\r' <"$log" | grep -n -m1 'Kernel panic' | cut -d: -f1)
[ -n "$line" ] || exit 0
from=$(( line > before ? line - before : 1 ))
echo "run.sh: the guest kernel panicked; the console up to the panic:" >&2
tr -d '\r' <"$log" | sed -n "${from},$((line + 2))p" | sed 's/^/  | /' >&2
exit 1
