/**
 * The patched hypervisor's boot (hypervisor/build.sh, cached by its inputs), shared by
 * ext.suite.ts and retry.suite.ts: one QEMU boot runs both scenarios.
 */
import { bootBoundS, tierBoot, type TierBoot } from '../support/xen-tier.js';
import { buildPatchedXen } from '../support/xen-ext.js';

// xen-ext (ext.suite.ts): the extension's own interface; pvh-retry and hvm-retry (retry.suite.ts):
// xvgpu in map-then-retry mode serving a PVH guest's program and an HVM guest's virtio-gpu driver.
const PATCHED_SCENARIOS: readonly string[] = ['xen-ext', 'pvh-retry', 'hvm-retry'];
// Per scenario. On a quiet 2-core host pvh-retry took 384 s and hvm-retry 181 s (/tmp/s19/patched1).
export const PATCHED_TIMEOUT_S = 900;
/** A cold build: 130 s on a quiet machine, 320 s seen beside a tier run. */
const BUILD_BOUND_S = 1200;

export const patchedBootBoundMs = (): number => (BUILD_BOUND_S + bootBoundS(PATCHED_SCENARIOS, PATCHED_TIMEOUT_S)) * 1000;

function patchedBoot(): TierBoot {
  return tierBoot(buildPatchedXen(), PATCHED_SCENARIOS, PATCHED_TIMEOUT_S);
}

/** One scenario's result.json from the patched boot; throws with the boot's log if it did not pass. */
export function patchedResult(name: string): unknown {
  const boot = patchedBoot();
  const st = boot.scenarioStatus(name);
  if (st !== 'ok') throw new Error(`scenario ${name}: ${st}\n${boot.log.slice(-20000)}`);
  return boot.load(name);
}
