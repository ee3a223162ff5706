/**
 * libxenctrl (xenctrl.h, versioned per Xen release: libxenctrl.so.4.17), only where nothing else
 * answers: the hypervisor version and one domain's type, vCPUs and highest GFN. libxenctrl cannot
 * be restricted to one domain, so the platform opens it, asks, and closes it before serving.
 */
import { XenCallError, callHandle, callInt, cfn, type CFunction } from './ffi.js';

export type DomainType = 'pv' | 'hvm' | 'pvh';

export interface DomainInfo {
  readonly domid: number;
  readonly type: DomainType;
  readonly dying: boolean;
  /** max_vcpu_id + 1: ioreq slots are indexed by vCPU id. */
  readonly vcpus: number;
  /** xen_domain_handle_t in hex: the instance (xl's UUID), which a reused domid does not share. */
  readonly handle: string;
}

export interface XenVersion {
  readonly major: number;
  readonly minor: number;
  /** XENVER_extraversion, e.g. ".7". */
  readonly extra: string;
}

/** The subset of libxenctrl xvgpu uses; a fake implements it in tests. */
export interface XenCtrlLib {
  version(): XenVersion;
  /** undefined when no such domain exists. */
  domainInfo(domid: number): DomainInfo | undefined;
  /** The guest's highest GFN (XENMEM_maximum_gpfn). */
  maximumGpfn(domid: number): number;
  close(): void;
}

/** xen_domctl_getdomaininfo (public/domctl.h, interface 0x15), as xc_domaininfo_t. */
export const DOMAININFO = {
  sizeof: 112,
  offDomain: 0,
  offFlags: 4,
  offMaxVcpuId: 68,
  offHandle: 76,
  handleBytes: 16,
  offEmulationFlags: 104,
  DYING: 1 << 0,
  HVM_GUEST: 1 << 1,
  /** XEN_X86_EMU_PIC: HVM guests have an emulated PIC, PVH guests do not. */
  EMU_PIC: 1 << 5,
  INVALID_MAX_VCPU_ID: 0xffffffff,
} as const;
export const XENVER_VERSION = 0;
export const XENVER_EXTRAVERSION = 1;
export const XEN_EXTRAVERSION_LEN = 16;

const LIB = 'ctrl';
const H = ['xc_interface *', 'pointer'] as const;

export const CTRL_FUNCTIONS = {
  open: cfn('xc_interface_open', 'xc_interface *', 'pointer', [['xentoollog_logger *', 'NULL'], ['xentoollog_logger *', 'NULL'], ['unsigned int', 'unsigned int']]),
  close: cfn('xc_interface_close', 'int', 'int', [H]),
  versionNumber: cfn('xc_version', 'int', 'int', [H, ['int', 'int'], ['void *', 'NULL']]),
  versionString: cfn('xc_version', 'int', 'int', [H, ['int', 'int'], ['void *', 'out pointer']]),
  getinfolist: cfn('xc_domain_getinfolist', 'int', 'int', [H, ['uint32_t', 'uint32_t'], ['unsigned int', 'unsigned int'], ['xc_domaininfo_t *', 'out pointer']]),
  maximumGpfn: cfn('xc_domain_maximum_gpfn', 'int', 'int', [H, ['uint32_t', 'uint32_t'], ['xen_pfn_t *', 'out pointer']]),
} satisfies Record<string, CFunction>;

const F = CTRL_FUNCTIONS;

/** Decodes one xc_domaininfo_t record. */
export function decodeDomainInfo(b: Buffer): DomainInfo {
  const flags = b.readUInt32LE(DOMAININFO.offFlags);
  const maxVcpuId = b.readUInt32LE(DOMAININFO.offMaxVcpuId);
  const hvm = (flags & DOMAININFO.HVM_GUEST) !== 0;
  const emu = b.readUInt32LE(DOMAININFO.offEmulationFlags);
  return {
    domid: b.readUInt16LE(DOMAININFO.offDomain),
    type: !hvm ? 'pv' : (emu & DOMAININFO.EMU_PIC) !== 0 ? 'hvm' : 'pvh',
    dying: (flags & DOMAININFO.DYING) !== 0,
    vcpus: maxVcpuId === DOMAININFO.INVALID_MAX_VCPU_ID ? 0 : maxVcpuId + 1,
    handle: b.toString('hex', DOMAININFO.offHandle, DOMAININFO.offHandle + DOMAININFO.handleBytes),
  };
}

export function openXenCtrl(): XenCtrlLib {
  const xch = callHandle(LIB, F.open, [0, 0, 0]);
  let open = true;
  const call = (fn: CFunction, ...args: unknown[]): number => {
    if (!open) throw new XenCallError(fn.name, 0, 'handle already closed');
    return callInt(LIB, fn, [xch, ...args]);
  };
  return {
    version() {
      const v = call(F.versionNumber, XENVER_VERSION, 0);
      const extra = Buffer.alloc(XEN_EXTRAVERSION_LEN);
      call(F.versionString, XENVER_EXTRAVERSION, extra);
      const end = extra.indexOf(0);
      return { major: v >>> 16, minor: v & 0xffff, extra: extra.toString('latin1', 0, end < 0 ? extra.length : end) };
    },
    domainInfo(domid) {
      const b = Buffer.alloc(DOMAININFO.sizeof);
      // getinfolist returns the first domain >= domid; a different id means ours does not exist.
      if (call(F.getinfolist, domid, 1, b) < 1) return undefined;
      const info = decodeDomainInfo(b);
      return info.domid === domid ? info : undefined;
    },
    maximumGpfn(domid) {
      const b = Buffer.alloc(8);
      call(F.maximumGpfn, domid, b);
      return Number(b.readBigUInt64LE(0));
    },
    close() {
      if (!open) return;
      open = false;
      callInt(LIB, F.close, [xch]);
    },
  };
}
