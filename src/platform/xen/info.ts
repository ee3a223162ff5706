/**
 * What this host offers xvgpu on Xen (`xvgpu xen-info`): the hypervisor version, the domctl
 * interface version the kernel helper must speak, whether the proposed extension is there, and the
 * kernel helper. Figures that cannot be established are null with a reason, never guessed.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HELPER_DEVICE } from '../linux/helper-abi.js';
import { probeDmExtension, type DmExtension } from './dm-ext.js';
import { probeRetry, realXenLibs, type XenLibs } from './hypervisor.js';

/** XEN_DOMCTL_INTERFACE_VERSION in the libxen-dev xvgpu is built against (Debian 12: Xen 4.17). */
export const LIBRARY_DOMCTL_INTERFACE_VERSION = 0x15;

/** The domctl interface each release expects (public/domctl.h of each tag; reference xen-ioreq-p2m §3.1). */
const DOMCTL_BY_RELEASE: Record<string, number> = {
  '4.15': 0x13, '4.16': 0x14, '4.17': 0x15, '4.18': 0x16, '4.19': 0x17, '4.20': 0x17, '4.21': 0x17, '4.22': 0x18,
};

export function domctlVersionOf(major: number, minor: number): number | null {
  return DOMCTL_BY_RELEASE[`${major}.${minor}`] ?? null;
}

export interface KnownOrWhy<T> {
  readonly value: T | null;
  /** Why `value` is null. */
  readonly reason?: string;
}

export interface XenInfo {
  readonly xenVersion: string;
  readonly domctlInterfaceVersion: { readonly hypervisor: KnownOrWhy<number>; readonly library: number; readonly match: boolean | null };
  readonly extension: {
    /** The ioreq-server RETRY flag is accepted (an ioreq server is created with it and destroyed). */
    readonly retry: KnownOrWhy<boolean>;
    /** XEN_DMOP_get_dm_ext_info reports XEN_DMOP_DM_EXT_LEND_PAGES (lend/revoke DM ops). */
    readonly mapDmop: KnownOrWhy<boolean>;
    /** XEN_DMOP_get_dm_ext_info reports XEN_DMOP_DM_EXT_IORESP_RETRY. */
    readonly ioreqRetry: KnownOrWhy<boolean>;
    /** The query's answer; null on stock Xen (EOPNOTSUPP) with that reason. */
    readonly dmExtInfo: KnownOrWhy<{ readonly version: number; readonly features: number }>;
  };
  readonly domain: { readonly domid: number; readonly type: string; readonly vcpus: number } | null;
  readonly kernelHelper: {
    readonly device: string;
    readonly present: boolean;
    readonly moduleLoaded: boolean;
    readonly parameters: Record<string, string>;
    /** The p2m back-ends this xvgpu's UAPI knows (BIND selects one; the module may refuse it). */
    readonly backends: readonly string[];
  };
}

const HELPER_MODULE = '/sys/module/xvgpu_helper';

function helperInfo(): XenInfo['kernelHelper'] {
  const paramsDir = join(HELPER_MODULE, 'parameters');
  const parameters: Record<string, string> = {};
  if (existsSync(paramsDir)) {
    for (const name of readdirSync(paramsDir)) {
      try {
        parameters[name] = readFileSync(join(paramsDir, name), 'utf8').trim();
      } catch {
        parameters[name] = '(unreadable)';
      }
    }
  }
  return { device: HELPER_DEVICE, present: existsSync(HELPER_DEVICE), moduleLoaded: existsSync(HELPER_MODULE), parameters, backends: ['soft', 'xen'] };
}

/**
 * Probes the extension on `domid`: the RETRY flag (creates and destroys one ioreq server there)
 * and XEN_DMOP_get_dm_ext_info (null on stock Xen).
 */
function probeOn(libs: XenLibs, domid: number): { retry: boolean; ext: DmExtension | null } {
  const dm = libs.devicemodel();
  try {
    const privcmd = libs.privcmd();
    try {
      dm.restrict(domid);
      privcmd.restrict(domid);
      return { retry: probeRetry(privcmd, dm, domid), ext: probeDmExtension(privcmd, domid) };
    } finally {
      privcmd.close();
    }
  } finally {
    dm.close();
  }
}

type Extension = XenInfo['extension'];

function unknownExtension(reason: string): Extension {
  const u = { value: null, reason };
  return { retry: u, mapDmop: u, ioreqRetry: u, dmExtInfo: u };
}

function extensionOn(libs: XenLibs, domid: number): Extension {
  const { retry, ext } = probeOn(libs, domid);
  if (!ext) {
    const stock = 'XEN_DMOP_get_dm_ext_info failed with EOPNOTSUPP (stock Xen)';
    return { retry: { value: retry }, mapDmop: { value: false }, ioreqRetry: { value: false }, dmExtInfo: { value: null, reason: stock } };
  }
  return {
    retry: { value: retry },
    mapDmop: { value: ext.lendPages },
    ioreqRetry: { value: ext.ioreqRetry },
    dmExtInfo: { value: { version: ext.version, features: ext.features } },
  };
}

/** Gathers xen-info; throws XenUnavailableError (one line) on a host without Xen. */
export function gatherXenInfo(domid: number | undefined, libs: XenLibs = realXenLibs): XenInfo {
  libs.requireDevices();
  const ctrl = libs.ctrl();
  let version;
  let domain: XenInfo['domain'] = null;
  try {
    version = ctrl.version();
    if (domid !== undefined) {
      const d = ctrl.domainInfo(domid);
      domain = d ? { domid, type: d.type, vcpus: d.vcpus } : null;
    }
  } finally {
    ctrl.close();
  }
  const expected = domctlVersionOf(version.major, version.minor);
  const hypervisor: KnownOrWhy<number> = expected === null
    ? { value: null, reason: `Xen ${version.major}.${version.minor} is not in xvgpu's table of domctl interface versions` }
    : { value: expected };
  let extension: Extension;
  if (domid === undefined) extension = unknownExtension('probing needs --domid of an HVM/PVH guest (DM ops need a target; the flag probe creates and destroys one ioreq server there)');
  else if (!domain) extension = unknownExtension(`domain ${domid} does not exist`);
  else if (domain.type === 'pv') extension = unknownExtension(`domain ${domid} is PV: DM ops and ioreq servers need an HVM/PVH guest`);
  else extension = extensionOn(libs, domid);
  return {
    xenVersion: `${version.major}.${version.minor}${version.extra}`,
    domctlInterfaceVersion: { hypervisor, library: LIBRARY_DOMCTL_INTERFACE_VERSION, match: hypervisor.value === null ? null : hypervisor.value === LIBRARY_DOMCTL_INTERFACE_VERSION },
    extension,
    domain,
    kernelHelper: helperInfo(),
  };
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const yesNo = (k: KnownOrWhy<boolean>): string => (k.value === null ? 'unknown' : k.value ? 'yes' : 'no');
const known = <T>(k: KnownOrWhy<T>, show: (v: T) => string): string => (k.value === null ? `unknown (${k.reason ?? ''})` : show(k.value));

export function formatXenInfo(i: XenInfo): string {
  const d = i.domctlInterfaceVersion;
  const h = i.kernelHelper;
  const params = Object.entries(h.parameters).map(([k, v]) => `${k}=${v}`).join(' ');
  return [
    `Xen version:              ${i.xenVersion}`,
    `domctl interface:         hypervisor ${known(d.hypervisor, hex)}, libxenctrl ${hex(d.library)}${d.match === false ? ' (MISMATCH: rebuild against this Xen)' : ''}`,
    `extension retry state:    ${known(i.extension.retry, (v) => (v ? 'present' : 'absent (stock Xen: map-and-emulate)'))}`,
    `extension map DM op:      ${known(i.extension.mapDmop, (v) => (v ? 'present' : 'absent'))}`,
    `extension query:          ${known(i.extension.dmExtInfo, (v) => `version ${v.version}, features ${hex(v.features)} (lend pages ${yesNo(i.extension.mapDmop)}, ioreq retry ${yesNo(i.extension.ioreqRetry)})`)}`,
    ...(i.domain ? [`domain ${i.domain.domid}:${' '.repeat(Math.max(1, 17 - String(i.domain.domid).length))}${i.domain.type}, ${i.domain.vcpus} vCPUs`] : []),
    `kernel helper:            ${h.present ? h.device : `${h.device} absent`}${h.moduleLoaded ? `, module loaded${params ? ` (${params})` : ''}` : ', module not loaded'}; back-ends ${h.backends.join(', ')}`,
  ].join('\n');
}
