/**
 * What this host can run. A worker only listens on the queues of the platforms found here, so it
 * never takes a cell it cannot serve.
 *
 *  - sim:   always (everything simulated);
 *  - linux: the kernel helper's device node, /dev/xvgpu_helper, exists;
 *  - xen:   this is a Xen domain with privcmd. The issue asks for `xvgpu xen-info`, which does not
 *           exist yet; until it does, the evidence is /proc/xen/capabilities or /dev/xen/privcmd.
 */
import { existsSync } from 'node:fs';
import type { Platform } from './campaign.js';

export interface Capabilities {
  readonly platforms: readonly Platform[];
  /** Why each platform is, or is not, served: shown by the worker and in its advertisement. */
  readonly notes: readonly string[];
}

export const HELPER_NODE = '/dev/xvgpu_helper';
export const XEN_EVIDENCE = ['/proc/xen/capabilities', '/dev/xen/privcmd'];

export function detectCapabilities(exists: (path: string) => boolean = existsSync): Capabilities {
  const platforms: Platform[] = ['sim'];
  const notes = ['sim: always'];
  if (exists(HELPER_NODE)) {
    platforms.push('linux');
    notes.push(`linux: ${HELPER_NODE} present`);
  } else {
    notes.push(`linux: not served (${HELPER_NODE} missing: insmod kernel-helper/xvgpu_helper.ko)`);
  }
  const xen = XEN_EVIDENCE.find((p) => exists(p));
  if (xen !== undefined) {
    platforms.push('xen');
    notes.push(`xen: ${xen} present (detected from the file: \`xvgpu xen-info\` does not exist yet)`);
  } else {
    notes.push(`xen: not served (neither ${XEN_EVIDENCE.join(' nor ')} exists)`);
  }
  return { platforms, notes };
}
