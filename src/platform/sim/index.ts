/** The embedded simulated platform (`--platform sim`, the default `npm start` runs). */
import type { GpuPort, HypervisorPort, KernelHelperPort } from '../ports.js';
import { HostMemory } from './host-memory.js';
import { MachineViews, type MachineConfig } from './machine.js';
import { SimGpu, type SimGpuOptions } from './gpu.js';
import { SimKernelHelper, type SimHelperHooks, type SimHelperInjection } from './kernel-helper.js';
import { SimMm } from './mm.js';
import { SimXen, type SimXenOptions } from './xen.js';

export interface SimPlatformOptions {
  readonly machine: MachineConfig;
  readonly xen: SimXenOptions;
  readonly gpu?: SimGpuOptions;
  readonly helperHooks?: SimHelperHooks;
  /** Test-only fault injection into the kernel helper. */
  readonly helperInject?: SimHelperInjection;
  /**
   * Test-only: every Nth MAP, the host moves the page being mapped between the helper's frame
   * lookup and its read_retry check (forces the race read_retry exists for; replaces helperHooks).
   */
  readonly evictDuringMapEvery?: number;
}

/**
 * Test-only fault injection for a whole run (`runSimulation`'s `inject`; never a CLI option). Each
 * unsafe* switch breaks the revoke protocol in one way that stale accesses or integrity errors
 * must reveal.
 */
export interface SimFaultInjection {
  /** Revoke without any TLB flush. */
  readonly skipTlbFlush?: boolean;
  /** Post the flush but do not wait for the vCPUs' acknowledgements. */
  readonly skipFlushAckWait?: boolean;
  /** The helper's MAP ignores read_retry. */
  readonly skipReadRetry?: boolean;
  /** The invalidate callback returns first and clears the p2m entries after the frames moved. */
  readonly revokeAfterCallback?: boolean;
  /** Overrides the flush watchdog (SimXenOptions.flushWatchdogMs), to test how a stuck flush ends a run. */
  readonly flushWatchdogMs?: number;
  /** Forces a MAP / eviction race every Nth MAP (not a bug: the control runs use it too). */
  readonly evictDuringMapEvery?: number;
  readonly gpu?: SimGpuOptions;
}

export interface SimPlatform {
  readonly hv: HypervisorPort;
  readonly helper: KernelHelperPort;
  readonly gpu: GpuPort;
  readonly xen: SimXen;
  readonly simGpu: SimGpu;
  readonly mm: SimMm;
  readonly memory: HostMemory;
}

export function createSimPlatform(o: SimPlatformOptions): SimPlatform {
  const xen = new SimXen(o.machine, o.xen);
  const memory = new HostMemory(new MachineViews(o.machine, xen.buffers));
  const mm = new SimMm();
  const simGpu = new SimGpu(memory, mm, o.gpu);
  const hooks = o.evictDuringMapEvery !== undefined ? raceEvictionsIntoMaps(simGpu, o.evictDuringMapEvery) : o.helperHooks;
  const helper = new SimKernelHelper(mm, xen, xen.buffers.host, hooks, o.helperInject);
  return { hv: xen, helper, gpu: simGpu, xen, simGpu, mm, memory };
}

function raceEvictionsIntoMaps(gpu: SimGpu, every: number): SimHelperHooks {
  if (!Number.isInteger(every) || every < 1) throw new RangeError(`evictDuringMapEvery = ${every}, want a positive integer`);
  let maps = 0;
  return {
    afterLookup: (_req, va) => {
      // A failed eviction (busy BO, memory short) simply leaves this MAP unraced.
      if (++maps % every === 0) gpu.evictAt(va).catch(() => undefined);
    },
  };
}
