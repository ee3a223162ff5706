/**
 * Discovery of xvgpu's Xen extension (hypervisor/patches, docs/xen-extension.md):
 * XEN_DMOP_get_dm_ext_info answers {version, features}; stock Xen fails the op with EOPNOTSUPP (it
 * is past the end of its op table), so asking is safe. It names no domain state: any domain the
 * caller is device model of will do.
 */
import { EOPNOTSUPP, XenCallError } from './ffi.js';
import { XEN_DMOP_DM_EXT_IORESP_RETRY, XEN_DMOP_DM_EXT_LEND_PAGES, type PrivcmdLib } from './privcmd.js';

export interface DmExtension {
  readonly version: number;
  readonly features: number;
  /** XEN_DMOP_lend_pages / XEN_DMOP_revoke_pages (the helper's xen-dmop back-end). */
  readonly lendPages: boolean;
  /** STATE_IORESP_RETRY for servers created with XEN_DMOP_IOREQ_SERVER_RETRY. */
  readonly ioreqRetry: boolean;
}

/** The extension's report, or null on a hypervisor without it. */
export function probeDmExtension(privcmd: PrivcmdLib, domid: number): DmExtension | null {
  let info: { version: number; features: number };
  try {
    info = privcmd.dmExtInfo(domid);
  } catch (e) {
    if (e instanceof XenCallError && e.errno === EOPNOTSUPP) return null;
    throw e;
  }
  return { ...info, lendPages: (info.features & XEN_DMOP_DM_EXT_LEND_PAGES) !== 0, ioreqRetry: (info.features & XEN_DMOP_DM_EXT_IORESP_RETRY) !== 0 };
}
