/** `xvgpu xen-info`: what this host offers xvgpu on Xen. Exit 1 (one line) where there is no Xen. */
import { XenUnavailableError } from '../platform/xen/ffi.js';
import { DOMID_FIRST_RESERVED } from '../platform/xen/hypervisor.js';
import { formatXenInfo, gatherXenInfo } from '../platform/xen/info.js';
import { addressOption, parse, type Options } from './args.js';

export const XEN_INFO_HELP = `Usage: xvgpu xen-info [--domid N] [--json]

Prints what this Xen host offers xvgpu: the Xen version, the domctl interface version (the kernel
helper's xen back-end must match it), whether xvgpu's hypervisor extension is present (the ioreq
RETRY flag, and XEN_DMOP_get_dm_ext_info's version and feature bits: lend pages, ioreq retry), and the kernel helper (/dev/xvgpu_helper) with its back-ends. Run it as root in dom0 or
the driver domain.

Options:
  --domid N    probe the extension on this HVM/PVH guest (DM ops need a target; the flag probe
               creates and destroys one ioreq server there); without it the extension is unknown
  --json       one JSON object on stdout
  -h, --help   show this help

Exit status: 0 when Xen was examined, 1 when this is not a usable Xen domain, 2 on bad usage.
`;

const OPTIONS: Options = { domid: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };

export function xenInfoCommand(argv: string[]): number {
  const v = parse('xen-info', argv, OPTIONS);
  if (v.help === true) {
    process.stdout.write(XEN_INFO_HELP);
    return 0;
  }
  const domid = v.domid === undefined ? undefined : addressOption('xen-info', 'domid', v.domid, 1, DOMID_FIRST_RESERVED - 1);
  try {
    const info = gatherXenInfo(domid);
    process.stdout.write(v.json === true ? `${JSON.stringify(info)}\n` : `${formatXenInfo(info)}\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof XenUnavailableError)) throw e;
    process.stderr.write(`xvgpu: xen-info: ${e.message}\n`);
    return 1;
  }
}
