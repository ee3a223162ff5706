/**
 * The platforms `xvgpu run` can put the back-end on, assembled from ports:
 *
 *  - sim:   simulated Xen, simulated kernel helper and mm, simulated GPU (the embedded default);
 *  - linux: the real kernel helper (/dev/xvgpu_helper, `soft` p2m) with real MMU notifiers, and
 *           real host buffers: memfd (shmem) BOs whose frames are freed and replaced on eviction
 *           (the default), or a DRM device's dumb buffers (--drm-node, vgem in the VM tier), which
 *           keep their frames. The guest and its ioreq page are still simulated vCPUs, which reach
 *           mapped pages through the helper's GUEST_ACCESS, as a guest would.
 *  - xen:   a real Xen guest (openXenPlatform, below): xvgpu is its IOREQ server (docs/deploy-xen.md).
 */
import { ConfigError, type BackendPorts } from '../backend.js';
import type { VcpuWorkerData } from '../guest/vcpu-worker.js';
import { DrmDevice } from '../platform/linux/drm.js';
import { DrmGpu } from '../platform/linux/gpu.js';
import { LinuxKernelHelper, type HelperStatsWithHistograms } from '../platform/linux/kernel-helper.js';
import { MemfdGpu, type MappedPages } from '../platform/linux/memfd-gpu.js';
import { openPagemap } from '../platform/linux/pagemap.js';
import { PlacementBoard } from '../platform/linux/placement-tags.js';
import { VramGpu } from '../platform/linux/vram-gpu.js';
import type { GpuPort } from '../platform/ports.js';
import type { EvictTarget } from '../platform/sim/host-pressure.js';
import { createSimPlatform, type SimFaultInjection } from '../platform/sim/index.js';
import type { MachineConfig } from '../platform/sim/machine.js';
import { SimXen } from '../platform/sim/xen.js';
import { P2M_XEN, P2M_XEN_DMOP } from '../platform/linux/helper-abi.js';
import { chooseXenServing, type XenBufferSource, type XenP2mBackend, type XenServing } from '../platform/xen/serving.js';
import type { AnswerMode } from '../bar/manager.js';
import { XenHypervisor, type XenLibs } from '../platform/xen/hypervisor.js';

export type PlatformName = 'sim' | 'linux';

/** What is real and what is simulated on each platform (run --help and the summary say it). */
export const SIMULATED = {
  sim: 'everything but the back-end is simulated: Xen (ioreq page, event channels, p2m, TLB flushes), the kernel helper and host mm, the GPU buffers and their eviction, and the guest',
  memfd: 'real: the kernel helper (soft p2m), MMU notifiers, memfd buffers whose frames are freed and replaced on eviction; simulated: Xen (ioreq page, event channels; the soft p2m stands in for its p2m), the guest (vCPU threads using GUEST_ACCESS), and the GPU (memfd stands in for VRAM, the eviction for TTM)',
  drm: 'real: the kernel helper (soft p2m), MMU notifiers, DRM dumb buffers; eviction is the helper\'s test-only EVICT, which zaps PTEs but keeps the frames; simulated: Xen (ioreq page, event channels), the guest (vCPU threads using GUEST_ACCESS)',
} as const;

export interface RunPlatform {
  readonly name: 'sim' | 'linux-soft';
  /** Where the host buffers live: sim, memfd, or drm:<node>. */
  readonly buffers: string;
  /** What is real and what is simulated here. */
  readonly simulated: string;
  readonly xen: SimXen;
  readonly ports: BackendPorts;
  readonly pressure: EvictTarget;
  readonly guestMemory: VcpuWorkerData['memory'];
  /** Why stale accesses after an eviction cannot be detected here; undefined when they can. */
  readonly staleUnmeasurable?: string;
  /** Pages whose host frame changed at an eviction, or why that is not measured. */
  movedFrames(): number | { reason: string };
  /** Evictions that failed (syscall errors), with the first message. */
  pressureErrors(): { count: number; first?: string };
  /** The kernel helper's own statistics, where there is a real one. */
  kernelStats(): HelperStatsWithHistograms | undefined;
  close(): Promise<void>;
}

export interface PlatformOptions {
  readonly machine: MachineConfig;
  readonly retry: boolean;
  /** Test-only fault injection (sim only). */
  readonly inject?: SimFaultInjection;
  /** linux: serve BOs from this DRM node's dumb buffers instead of memfd. */
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
    buffers: 'sim',
    simulated: SIMULATED.sim,
    xen: p.xen,
    ports: p,
    pressure: p.simGpu,
    guestMemory: { kind: 'sim' },
    movedFrames: () => ({ reason: 'sim: every eviction copies to newly allocated simulated frames by construction; there are no host frames to observe' }),
    pressureErrors: () => ({ count: 0 }),
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

interface HostBuffers {
  readonly gpu: GpuPort & EvictTarget & { readonly errors: { count: number; first: string | undefined } };
  readonly buffers: string;
  readonly simulated: string;
  readonly placementBoard?: SharedArrayBuffer;
  readonly staleUnmeasurable?: string;
  movedFrames(): number | { reason: string };
  close(): void;
}

/** Which pages of the mapping at `va` the helper's p2m maps now (QUERY over the BAR window). */
function helperMappedPages(helper: LinuxKernelHelper, machine: MachineConfig): MappedPages {
  return (va, first, n) => {
    const out = new Array<boolean>(n).fill(false);
    const range = helper.rangeAt(va);
    if (range === undefined) return out;
    for (const run of helper.query(machine.barBase / 4096, machine.barPages)) {
      if (run.range !== range) continue;
      const from = Math.max(first, run.pageInRange);
      const to = Math.min(first + n, run.pageInRange + run.pages);
      for (let p = from; p < to; p++) out[p - first] = true;
    }
    return out;
  };
}

/** memfd BOs: frames freed and replaced on eviction, placement tags for stale detection. */
function memfdBuffers(machine: MachineConfig, helper: LinuxKernelHelper): HostBuffers {
  const board = new PlacementBoard(machine.hostFrames);
  const pagemap = openPagemap();
  const frames = 'reason' in pagemap ? pagemap : pagemap.read;
  const gpu = new MemfdGpu(board, frames, helperMappedPages(helper, machine));
  return {
    gpu,
    buffers: 'memfd',
    simulated: SIMULATED.memfd,
    placementBoard: board.buffer,
    movedFrames: () => gpu.movedFrames(),
    close: () => { if ('close' in pagemap) pagemap.close(); },
  };
}

function drmBuffers(node: string, helper: LinuxKernelHelper): HostBuffers {
  const dev = need(() => DrmDevice.open(node), `a DRM device at ${node} (modprobe vgem)`);
  const gpu = new DrmGpu(dev, (va, first, n) => { helper.evictVa(va, first, n); });
  const keeps = `${node}: DRM dumb buffers keep their frames on EVICT`;
  return {
    gpu,
    buffers: `drm:${node}`,
    simulated: SIMULATED.drm,
    staleUnmeasurable: `${keeps}, so an entry a revocation missed still reaches the current frame and no content check can tell (use memfd buffers, the default)`,
    movedFrames: () => ({ reason: keeps }),
    close: () => { dev.close(); },
  };
}

function linuxSoftPlatform(o: PlatformOptions): RunPlatform {
  // The guest's p2m is the helper's soft p2m; the simulated machine only carries the ioreq page,
  // event channels and vCPU state, so it needs no host frames of its own.
  const helper = need(() => LinuxKernelHelper.open(), 'the kernel helper (insmod kernel-helper/xvgpu_helper.ko, as root)');
  let host: HostBuffers;
  try {
    host = o.drmNode === undefined ? memfdBuffers(o.machine, helper) : drmBuffers(o.drmNode, helper);
  } catch (e) {
    helper.close();
    throw e;
  }
  const xen = new SimXen({ ...o.machine, hostFrames: 1 }, { retry: o.retry });
  return {
    name: 'linux-soft',
    buffers: host.buffers,
    simulated: host.simulated,
    xen,
    ports: { hv: xen, helper, gpu: host.gpu },
    pressure: host.gpu,
    guestMemory: { kind: 'kernel-soft', helperFd: helper.fd, ...(host.placementBoard ? { placementBoard: host.placementBoard } : {}) },
    ...(host.staleUnmeasurable !== undefined ? { staleUnmeasurable: host.staleUnmeasurable } : {}),
    movedFrames: () => host.movedFrames(),
    pressureErrors: () => ({ count: host.gpu.errors.count, ...(host.gpu.errors.first !== undefined ? { first: host.gpu.errors.first } : {}) }),
    kernelStats: () => helper.stats(),
    close: async () => {
      await xen.close();
      host.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// xen: the real thing, in a dom0 or driver domain. The guest is a real HVM/PVH domain, so there is
// no synthetic guest and no simulated pressure: the host's own memory management evicts buffers.

export interface XenPlatformOptions {
  readonly domid: number;
  /** The DRM node whose buffers back blobs (serving.ts says which when none is named). */
  readonly drmNode?: string;
  /** Or a PCI BAR resource file whose MMIO frames back blobs (VRAM; vram-gpu.ts). */
  readonly vram?: string;
  /** --mode; unset: chosen by capability (serving.ts). */
  readonly mode?: AnswerMode;
  /** Injected libraries (tests); the real ones by default. */
  readonly libs?: XenLibs;
}

export interface XenRunPlatform {
  readonly hv: XenHypervisor;
  readonly ports: BackendPorts;
  /** The answer mode, the helper's p2m back-end and the buffers, as chosen for this hypervisor. */
  readonly serving: XenServing;
  /** The kernel helper's fd (bound to the guest's window once the back-end starts). */
  readonly helperFd: number;
  close(): Promise<void>;
}

const HELPER_BACKEND: Record<XenP2mBackend, number> = { xen: P2M_XEN, 'xen-dmop': P2M_XEN_DMOP };

/**
 * The hypervisor first (on a machine without Xen that is the one-line error the user sees), then
 * what it can do decides the mode, the helper's p2m back-end and the buffers (serving.ts); then the
 * kernel helper, then the buffers. A failure closes what opened.
 */
export function openXenPlatform(o: XenPlatformOptions): XenRunPlatform {
  const hv = XenHypervisor.open(o.domid, o.libs);
  try {
    const serving = chooseXenServing(hv.extension, hv.caps.retry, o);
    const helper = needXen(() => LinuxKernelHelper.open(HELPER_BACKEND[serving.backend]), 'the kernel helper (insmod xvgpu_helper.ko, see docs/deploy-xen.md)');
    const buffers = xenBuffers(serving.buffers, helper);
    return {
      hv,
      ports: { hv, helper, gpu: buffers.gpu },
      serving,
      helperFd: helper.fd,
      close: async () => {
        helper.close();
        buffers.close();
        await hv.close();
      },
    };
  } catch (e) {
    void hv.close();
    throw e;
  }
}

/** Host-memory budget of memfd buffers on Xen, in pages (1 GiB). */
const XEN_MEMFD_BUDGET_PAGES = 1 << 18;

/** The buffers serving.ts chose; the helper is closed if they do not open. */
function xenBuffers(src: XenBufferSource, helper: LinuxKernelHelper): { gpu: GpuPort; close(): void } {
  if (src.kind === 'vram') {
    const vram = needXen(() => VramGpu.open(src.path), `a PCI memory BAR at ${src.path}`, () => { helper.close(); });
    return { gpu: vram, close: () => { vram.close(); } };
  }
  if (src.kind === 'memfd') {
    // The host's memory management (reclaim, hole punching) takes frames away itself: xvgpu never
    // evicts on Xen, so MemfdGpu's eviction, and the mapped-pages query it needs, stay unused.
    const gpu = new MemfdGpu(new PlacementBoard(XEN_MEMFD_BUDGET_PAGES), { reason: 'xvgpu does not evict on Xen' }, (_va, _first, n) => new Array<boolean>(n).fill(true));
    return { gpu, close: () => undefined };
  }
  const dev = needXen(() => DrmDevice.open(src.node), `a DRM device at ${src.node}`, () => { helper.close(); });
  // The host's memory management moves buffers itself; xvgpu never asks the helper to evict.
  return { gpu: new DrmGpu(dev, () => undefined), close: () => { dev.close(); } };
}

function needXen<T>(open: () => T, what: string, undo: () => void = () => undefined): T {
  try {
    return open();
  } catch (e) {
    undo();
    throw new ConfigError(`--platform xen needs ${what}: ${(e as Error).message}`);
  }
}
