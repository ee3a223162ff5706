#!/bin/bash
# xen-ext-stock: on a hypervisor without the extension (Debian's), the discovery op fails with
# EOPNOTSUPP and changes nothing, so a device model can probe for it safely; the kernel helper's
# xen-dmop back-end refuses to bind (EOPNOTSUPP).
set -uo pipefail
. /xt/lib.sh
out=$1
xt_pvh_cfg xe-stock sleep 600 > /tmp/xe-stock.cfg
xt_bounded 60 xl create -p /tmp/xe-stock.cfg || exit 1
dom=$(xt_domid xe-stock)
xt_bounded 30 /xt/bin/xen_ext_test query "$dom" > "$out/query.json"
rc=$?
cat "$out/query.json"
# The ioreq-server flags byte was padding: any non-zero value is refused (EINVAL).
xt_bounded 30 /xt/bin/xen_ext_test retry-flag "$dom" > "$out/retry-flag.json"
frc=$?
cat "$out/retry-flag.json"
# xvgpu's probe reports the extension absent (EOPNOTSUPP is stock Xen, not an error).
(cd /xvgpu && xt_bounded 60 node $XT_NODE_FLAGS dist/cli/main.js xen-info --domid "$dom" --json) > "$out/xen-info.json"
irc=$?
cat "$out/xen-info.json"
# The kernel helper's xen-dmop back-end refuses to bind.
insmod /xt/xvgpu_helper.ko || exit 1
xt_bounded 30 /xt/bin/xen_dmop_helper_test bind "$dom" > "$out/bind.json"
brc=$?
cat "$out/bind.json"
rmmod xvgpu_helper
xt_bounded 60 xl destroy "$dom"
# Exit 3 = EOPNOTSUPP (95), nothing else is accepted.
[ $rc -eq 3 ] && grep -q '"errno":95' "$out/query.json" || { echo "query exit $rc, want 3 (EOPNOTSUPP)"; exit 1; }
[ $brc -eq 3 ] && grep -q '"errno":95' "$out/bind.json" || { echo "helper bind exit $brc, want 3 (EOPNOTSUPP)"; exit 1; }
[ $frc -eq 3 ] || { echo "retry-flag exit $frc, want 3 (EINVAL for the flag)"; exit 1; }
[ $irc -eq 0 ] && grep -q '"mapDmop":{"value":false}' "$out/xen-info.json" \
  || { echo "xen-info exit $irc, want 0 with mapDmop false"; exit 1; }
printf '{"query":%s,"retry_flag":%s,"helper_bind":%s,"xen_info":%s}\n' "$(cat "$out/query.json")" \
  "$(cat "$out/retry-flag.json")" "$(cat "$out/bind.json")" "$(cat "$out/xen-info.json")" > "$out/result.json"
