/**
 * How `xvgpu run --platform xen` serves a guest on this hypervisor: the answer mode, the kernel
 * helper's p2m back-end and where blob memory comes from. Chosen by capability, never guessed:
 *
 *  - Xen with the extension (XEN_DMOP_get_dm_ext_info reports LEND_PAGES and IORESP_RETRY, and the
 *    retry flag is accepted): map-then-retry on RAM buffers (memfd, or the DRM node given) lent
 *    through the helper's `xen-dmop` back-end (refcounted, write-back, revocable);
 *  - stock Xen: map-and-emulate, frames mapped by the `xen` back-end (memory_mapping domctl), as
 *    before: a VRAM BAR (--vram) or the DRM node's buffers;
 *  - --vram on any Xen: its frames are MMIO, which XEN_DMOP_lend_pages refuses (it lends only the
 *    caller's RAM), so the `xen` back-end maps them; retry still applies where Xen has it.
 */
import { ConfigError } from '../../backend.js';
import type { AnswerMode } from '../../bar/manager.js';
import type { DmExtension } from './dm-ext.js';

export type XenP2mBackend = 'xen' | 'xen-dmop';

export type XenBufferSource =
  | { readonly kind: 'vram'; readonly path: string }
  | { readonly kind: 'drm'; readonly node: string }
  | { readonly kind: 'memfd' };

export interface XenServing {
  readonly mode: AnswerMode;
  readonly backend: XenP2mBackend;
  readonly buffers: XenBufferSource;
}

export interface XenServingRequest {
  readonly mode?: AnswerMode | undefined;
  readonly vram?: string | undefined;
  readonly drmNode?: string | undefined;
}

/** The DRM node used for buffers on stock Xen when none is named. */
export const DEFAULT_DRM_NODE = '/dev/dri/card0';

/**
 * `retryFlag`: Xen accepted an ioreq server with XEN_DMOP_IOREQ_SERVER_RETRY (probeRetry);
 * `ext`: XEN_DMOP_get_dm_ext_info's answer, null on stock Xen.
 */
export function chooseXenServing(ext: DmExtension | null, retryFlag: boolean, o: XenServingRequest): XenServing {
  const retry = retryFlag && ext?.ioreqRetry === true;
  if (o.mode === 'retry' && !retry) {
    throw new ConfigError(`--mode retry needs Xen's IORESP_RETRY extension (hypervisor/patches, docs/xen-extension.md); this hypervisor ${describe(ext, retryFlag)}: leave --mode out or use --mode emulate`);
  }
  const mode = o.mode ?? (retry ? 'retry' : 'emulate');
  if (o.vram !== undefined) return { mode, backend: 'xen', buffers: { kind: 'vram', path: o.vram } };
  const lend = ext?.lendPages === true;
  if (o.drmNode !== undefined) return { mode, backend: lend ? 'xen-dmop' : 'xen', buffers: { kind: 'drm', node: o.drmNode } };
  return lend ? { mode, backend: 'xen-dmop', buffers: { kind: 'memfd' } } : { mode, backend: 'xen', buffers: { kind: 'drm', node: DEFAULT_DRM_NODE } };
}

function describe(ext: DmExtension | null, retryFlag: boolean): string {
  if (ext === null) return `has no extension (XEN_DMOP_get_dm_ext_info: EOPNOTSUPP${retryFlag ? '' : '; the retry flag is refused'})`;
  if (!ext.ioreqRetry) return `reports extension version ${ext.version} with features 0x${ext.features.toString(16)}, without IORESP_RETRY`;
  return 'refused an ioreq server with the retry flag';
}

/** How the summary and the log name the buffers. */
export function bufferName(b: XenBufferSource): string {
  return b.kind === 'vram' ? `vram:${b.path}` : b.kind === 'drm' ? `drm:${b.node}` : 'memfd';
}
