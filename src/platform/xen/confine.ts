/**
 * Confining the Xen handles to the one guest, and proving it after the privilege drop.
 *
 * restrictAllXenHandles: xentoolcore_restrict_all (xentoolcore.h) restricts every handle the Xen
 * libraries hold. It matters for one handle xvgpu cannot reach otherwise: libxendevicemodel opens
 * its own libxencall handle (an unrestricted /dev/xen/privcmd plus /dev/xen/hypercall) next to the
 * privcmd fd it issues DM ops on, and only xentoolcore can neutralise it (it dup2()s /dev/null over
 * both fds: tools/libs/call/core.c, all_restrict_cb). It is called once, after
 * xendevicemodel_restrict and before the event channel handle exists: a second restriction of an
 * evtchn fd is refused (the header says a repeated call "may fail").
 *
 * auditXenHandles: reads /proc/self/fd and asks each Xen device fd itself whether it is
 * restricted, by trying what only an unrestricted fd may do:
 *  - /dev/xen/privcmd: IOCTL_PRIVCMD_HYPERCALL of xen_version(XENVER_version) (harmless if it runs);
 *    a restricted fd refuses every raw hypercall with EPERM (privcmd_ioctl_hypercall);
 *  - /dev/xen/evtchn: IOCTL_EVTCHN_RESTRICT_DOMID; an already restricted fd answers EACCES;
 *  - any other Xen device (/dev/xen/hypercall, gntdev, xenbus...) cannot be restricted: refused;
 *  - /dev/xvgpu_helper: only the fd bound to the guest's window.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { native } from '../../native/index.js';
import { ioc } from '../linux/drm-abi.js';
import { HELPER_DEVICE } from '../linux/helper-abi.js';
import { PrivilegeDropError } from '../linux/privileges.js';
import { XENVER_VERSION } from './ctrl.js';
import { callInt, cfn, type CFunction } from './ffi.js';

const IOC_NONE = 0;
/** struct privcmd_hypercall { __u64 op; __u64 arg[5]; } (<xen/sys/privcmd.h>) */
export const PRIVCMD_HYPERCALL_SIZE = 48;
export const IOCTL_PRIVCMD_HYPERCALL = ioc(IOC_NONE, 'P'.charCodeAt(0), 0, PRIVCMD_HYPERCALL_SIZE);
/** struct ioctl_evtchn_restrict_domid { domid_t domid; } (<xen/sys/evtchn.h>) */
export const IOCTL_EVTCHN_RESTRICT_DOMID = ioc(IOC_NONE, 'E'.charCodeAt(0), 6, 2);
/** public/xen.h */
export const HYPERVISOR_XEN_VERSION = 17;

const EPERM = 1;
const EACCES = 13;

export const TOOLCORE_FUNCTIONS = {
  restrictAll: cfn('xentoolcore_restrict_all', 'int', 'int', [['domid_t', 'domid_t']]),
} satisfies Record<string, CFunction>;

/** xentoolcore_restrict_all(domid) on every Xen library handle this process holds. */
export function restrictAllXenHandles(domid: number): void {
  callInt('toolcore', TOOLCORE_FUNCTIONS.restrictAll, [domid]);
}

export interface OpenFd {
  readonly fd: number;
  /** readlink of /proc/self/fd/N */
  readonly target: string;
}

/** How the audit looks at the process; a fake in tests. */
export interface FdProbe {
  openFds(): OpenFd[];
  /** The ioctl's errno (positive), or 0 when it succeeded. */
  ioctlErrno(fd: number, request: number, arg: Uint8Array): number;
}

export const procFdProbe: FdProbe = {
  openFds() {
    const out: OpenFd[] = [];
    for (const name of readdirSync('/proc/self/fd')) {
      try {
        out.push({ fd: Number(name), target: readlinkSync(`/proc/self/fd/${name}`) });
      } catch {
        // The directory's own fd, closed once listed.
      }
    }
    return out;
  },
  ioctlErrno(fd, request, arg) {
    try {
      native.ioctl(fd, request, arg);
      return 0;
    } catch (e) {
      return Math.abs((e as { errno?: number }).errno ?? -1);
    }
  },
};

function hypercallProbe(): Uint8Array {
  const a = new DataView(new ArrayBuffer(PRIVCMD_HYPERCALL_SIZE));
  a.setBigUint64(0, BigInt(HYPERVISOR_XEN_VERSION), true);
  a.setBigUint64(8, BigInt(XENVER_VERSION), true);
  return new Uint8Array(a.buffer);
}

/** Why fd `o` is not confined to `domid`, or undefined when it is (or is no Xen handle). */
function unconfined(o: OpenFd, domid: number, helperFds: ReadonlySet<number>, probe: FdProbe): string | undefined {
  const what = `fd ${o.fd} (${o.target})`;
  if (o.target === '/dev/xen/privcmd') {
    const err = probe.ioctlErrno(o.fd, IOCTL_PRIVCMD_HYPERCALL, hypercallProbe());
    if (err === EPERM) return undefined;
    return err === 0 ? `${what} still issues raw hypercalls` : `${what}: the hypercall probe gave errno ${err}, not EPERM`;
  }
  if (o.target === '/dev/xen/evtchn') {
    const err = probe.ioctlErrno(o.fd, IOCTL_EVTCHN_RESTRICT_DOMID, new Uint8Array(Uint16Array.of(domid).buffer));
    if (err === EACCES) return undefined;
    return err === 0 ? `${what} was not restricted` : `${what}: the restriction probe gave errno ${err}, not EACCES`;
  }
  if (o.target.startsWith('/dev/xen/') || o.target.startsWith('/proc/xen/')) return `${what} cannot be restricted to one domain and must not stay open`;
  if (o.target === HELPER_DEVICE && !helperFds.has(o.fd)) return `${what} is not the helper fd bound to the guest's window`;
  return undefined;
}

/**
 * Throws one line naming every handle that is not confined to `domid`. `helperFds`: the kernel
 * helper fds bound to the guest's window (the only ones allowed).
 */
export function auditXenHandles(domid: number, helperFds: ReadonlySet<number>, probe: FdProbe = procFdProbe): void {
  const bad = probe.openFds().map((o) => unconfined(o, domid, helperFds, probe)).filter((r): r is string => r !== undefined);
  if (bad.length > 0) throw new PrivilegeDropError(`handles not confined to domain ${domid}: ${bad.join('; ')}`);
}
