/**
 * The platforms `xvgpu run` can put the back-end on, assembled from ports:
 *
 *  - sim:   simulated Xen, simulated kernel helper and mm, simulated GPU (the embedded default);
 *  - linux: the real kernel helper (/dev/xvgpu_helper, `soft` p2m) and a real DRM device (vgem):
 *           real MMU notifiers and real buffers. The guest and its ioreq page are still simulated
 *           vCPUs, which reach mapped pages through the helper's GUEST_ACCESS, as a guest would.
 */
import { ConfigError, type BackendPorts } from '../backend.js';
import type { VcpuWorkerData } from '../guest/vcpu-worker.js';
import { DrmDevice } from '../platform/linux/drm.js';
import { DrmGpu } from '../platform/linux/gpu.js';
import { LinuxKernelHelper, type HelperStatsWithHistograms } from '../platform/linux/kernel-helper.js';
import type { EvictTarget } from '../platform/sim/host-pressure.js';
import { createSimPlatform, type SimFaultInjection } from '../platform/sim/index.js';
import type { MachineConfig } from '../platform/sim/machine.js';
import { SimXen } from '../platform/sim/xen.js';

export type PlatformName = 'sim' | 'linux';

export interface RunPlatform {
  readonly name: 'sim' | 'linux-soft';
  readonly xen: SimXen;
  readonly ports: BackendPorts;
  readonly pressure: EvictTarget;
  readonly guestMemory: VcpuWorkerData['memory'];
  /** The kernel helper's own statistics, where there is a real one. */
  kernelStats(): HelperStatsWithHistograms | undefined;
  close(): Promise<void>;
}

export interface PlatformOptions {
  readonly machine: MachineConfig;
  readonly retry: boolean;
  /** Test-only fault injection (sim only). */
  readonly inject?: SimFaultInjection;
  /** linux: the DRM node whose dumb buffers serve as GPU buffers. */
  readonly drmNode?: string;
}

export function openPlatform(name: PlatformName, o: PlatformOptions): RunPlatform {
  return name === 'sim' ? simPlatform(o) : linuxSoftPlatform(o);
}

function simPlatform(o: PlatformOptions): RunPlatform {
  const i = o.inject ?? {};
  const p = createSimPlatform({
    machine: o.machine,
    xen: {
      retry: o.retry,
      unsafeSkipTlbFlush: i.skipTlbFlush === true,
      unsafeSkipFlushAckWait: i.skipFlushAckWait === true,
      ...(i.flushWatchdogMs !== undefined ? { flushWatchdogMs: i.flushWatchdogMs } : {}),
    },
    gpu: { asyncMigration: true, ...i.gpu },
    helperInject: { unsafeSkipReadRetry: i.skipReadRetry === true, unsafeRevokeAfterCallback: i.revokeAfterCallback === true },
    ...(i.evictDuringMapEvery !== undefined ? { evictDuringMapEvery: i.evictDuringMapEvery } : {}),
  });
  return {
    name: 'sim',
    xen: p.xen,
    ports: p,
    pressure: p.simGpu,
    guestMemory: { kind: 'sim' },
    kernelStats: () => undefined,
    close: () => p.hv.close(),
  };
}

/** Opens a device the linux platform needs, turning a failure into one clear ConfigError line. */
function need<T>(open: () => T, what: string): T {
  try {
    return open();
  } catch (e) {
    throw new ConfigError(`--platform linux needs ${what}: ${(e as Error).message}`);
  }
}

function linuxSoftPlatform(o: PlatformOptions): RunPlatform {
  // The guest's p2m is the helper's soft p2m; the simulated machine only carries the ioreq page,
  // event channels and vCPU state, so it needs no host frames of its own.
  const helper = need(() => LinuxKernelHelper.open(), 'the kernel helper (insmod kernel-helper/xvgpu_helper.ko, as root)');
  const node = o.drmNode ?? '/dev/dri/card0';
  const dev = need(() => DrmDevice.open(node), `a DRM device at ${node} (modprobe vgem)`);
  const xen = new SimXen({ ...o.machine, hostFrames: 1 }, { retry: o.retry });
  const gpu = new DrmGpu(dev, (va, first, n) => { helper.evictVa(va, first, n); });
  return {
    name: 'linux-soft',
    xen,
    ports: { hv: xen, helper, gpu },
    pressure: gpu,
    guestMemory: { kind: 'kernel-soft', helperFd: helper.fd },
    kernelStats: () => helper.stats(),
    close: async () => {
      await xen.close();
      dev.close();
    },
  };
}
