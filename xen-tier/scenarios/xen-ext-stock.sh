#!/bin/bash
# xen-ext-stock: on a hypervisor without the extension (Debian's), the discovery op fails with
# EOPNOTSUPP and changes nothing, so a device model can probe for it safely.
set -uo pipefail
. /xt/lib.sh
out=$1
xt_pvh_cfg xe-stock sleep 600 > /tmp/xe-stock.cfg
xt_bounded 60 xl create -p /tmp/xe-stock.cfg || exit 1
dom=$(xt_domid xe-stock)
xt_bounded 30 /xt/bin/xen_ext_test query "$dom" > "$out/query.json"
rc=$?
cat "$out/query.json"
xt_bounded 60 xl destroy "$dom"
# Exit 3 = the op failed with EOPNOTSUPP (95), nothing else is accepted.
[ $rc -eq 3 ] && grep -q '"errno":95' "$out/query.json" || { echo "query exit $rc, want 3 (EOPNOTSUPP)"; exit 1; }
cp "$out/query.json" "$out/result.json"
