/**
 * One run of the back-end on the simulated platform with the synthetic guest and host pressure:
 * what `xvgpu run --platform sim` and the end-to-end tests execute.
 */
import { Backend } from '../backend.js';
import { DEFAULT_POLICY, type AnswerMode, type Strategy } from '../bar/manager.js';
import { SyntheticGuest, type VcpuResult } from '../guest/synthetic.js';
import type { BlobView, PatternName } from '../guest/workload.js';
import type { GuestGpuPlan } from '../guest/gpu-guest.js';
import { HostPressure } from '../platform/sim/host-pressure.js';
import type { SimFaultInjection } from '../platform/sim/index.js';
import type { HelperStatsWithHistograms } from '../platform/linux/kernel-helper.js';
import { openPlatform, type PlatformName, type RunPlatform } from './platforms.js';
import { CTL_SWEEP_DONE, HUGE_PAGES, PAGE_SIZE, type MachineConfig } from '../platform/sim/machine.js';
import { formatNs, summarize, type Histogram, type LatencySummary } from '../telemetry/histogram.js';
import type { Logger } from '../telemetry/log.js';
import { native } from '../native/index.js';
import { waiterFloor } from '../bench/floor.js';
import type { StringFault } from '../bar/string-access.js';

export interface SimRunOptions {
  /** sim (default): everything simulated; linux: the real kernel helper and a DRM device. */
  readonly platform?: PlatformName;
  /** linux: BOs are this DRM node's dumb buffers instead of memfd. */
  readonly drmNode?: string;
  readonly vcpus: number;
  readonly durationS: number;
  readonly workload: PatternName;
  readonly evictRate: number;
  /** fault (xvgpu), or a baseline to compare with: eager, emulate-all. */
  readonly strategy?: Strategy;
  readonly mode: AnswerMode;
  readonly faultAround: number;
  readonly hugePages: boolean;
  readonly blobs: number;
  readonly blobSize: number;
  readonly seed: number;
  /**
   * Thread placement. `auto`: the server thread, and the waiter thread it starts (which inherits
   * its affinity), on the first allowed CPU, so the waiter → JS hop never crosses CPUs; vCPUs stay
   * free to run anywhere (confining them to the other CPUs was measured slower: a woken vCPU then
   * queues behind a busy sibling). `none`: leave all placement to the scheduler.
   */
  readonly pin?: 'auto' | 'none';
  /** Model stock Xen (no retry state). */
  readonly stockXen?: boolean;
  /** Test-only fault injection (sim platform; never a CLI option). */
  readonly inject?: SimFaultInjection & { readonly stringFault?: StringFault };
  /** Stop early once this returns true (checked with every progress tick). */
  readonly until?: (p: Progress) => boolean;
}

export interface Progress {
  readonly elapsedS: number;
  readonly faults: number;
  readonly revokes: number;
  readonly evictions: number;
  readonly residentPages: number;
  readonly faultP50: number;
}

export interface RunSummary {
  platform: 'sim' | 'linux-soft';
  /** Where the host buffers live: sim, memfd or drm:<node>. */
  host_buffers: string;
  /** What was real and what was simulated in this run. */
  simulated: string;
  strategy: Strategy;
  pinned: { server: number } | null;
  mode: AnswerMode;
  workload: PatternName;
  vcpus: number;
  duration_s: number;
  evict_rate: number;
  fault_around: number;
  huge_pages: boolean;
  /** Blob memory the workload covers. */
  blob_mib: number;
  /** BAR exits (ioreqs on the BAR: faults, holes, refusals) per MiB of blob memory. */
  exits_per_mib: number;
  /** ns until the first guest access of the workload completed (slowest vCPU). */
  first_access_ns: number;
  /** sweep: ns until every vCPU had touched its share once (0 for timed workloads). */
  sweep_ns: number;
  /** Guest-visible stall: ms the vCPUs spent blocked in ioreqs per second of run. */
  stall_ms_per_s: number;
  /** Seconds the guest took to bring the device up and place its blobs (not in duration_s). */
  boot_s: number;
  faults: number;
  retries: number;
  emulated: number;
  forward_progress: number;
  /** String requests (rep MOVS/STOS) the back-end emulated, and copies it redid after a race. */
  string_copies: number;
  string_redos: number;
  /** Helper events its ring dropped (an in-band Overflow event; residency was resynced by QUERY). */
  events_lost: number;
  /** Fatal helper events: a p2m removal failed, the binding failed closed. A run with one fails. */
  helper_fatal: number;
  revokes: number;
  revoked_pages: number;
  invalidations: number;
  mapped_pages: number;
  resident_pages: number;
  huge_maps: number;
  map_collisions: number;
  /** null where the platform cannot detect them (see null_reasons); a detection is always counted. */
  stale_accesses: number | null;
  integrity_errors: number;
  /** Pages whose host frame really changed at an eviction (null: not measured, see null_reasons). */
  moved_frames: number | null;
  /** Why each null figure could not be measured. */
  null_reasons: Record<string, string>;
  /** Evictions that failed with an error (the first message in host_pressure_error). */
  host_pressure_errors: number;
  host_pressure_error?: string;
  bad_ioreqs: number;
  unclaimed: number;
  holes: number;
  guest_crashes: string[];
  accesses: number;
  ioreqs: number;
  evictions: number;
  tlb_flushes: number;
  /** Guest-visible: vCPU blocked on an ioreq, post → answer. */
  fault_ns: LatencySummary;
  /** The same distribution as [percentile, ns] points, for CDF plots. */
  fault_cdf: [number, number][];
  /** Server side: slot taken → answer published. */
  service_ns: LatencySummary;
  /** Invalidation start → p2m entries gone, every vCPU's flush acknowledged. */
  revoke_ns: LatencySummary;
  /** Revoke done → the BAR manager saw the event. */
  revoke_event_ns: LatencySummary;
  /** The same-run floor of the fault path's wakes, with no work (see bench/floor.ts waiterFloor). */
  floor_ns: LatencySummary;
  /** fault_ns.p50 / floor_ns.p50. */
  fault_over_floor_p50: number;
  integrity_samples: string[];
  /** The virtio-gpu device the guest drove: every blob was created and placed through it. */
  virtio: {
    commands: number;
    errors: number;
    blobs_created: number;
    blobs_mapped: number;
    blobs_unmapped: number;
    transport_resets: number;
    needs_reset: number;
  };
  /** linux: the kernel helper's STATS (histograms: bucket i counts [2^i, 2^(i+1)) ns). */
  kernel_helper?: {
    maps: number;
    map_collisions: number;
    invalidations: number;
    revoked_pages: number;
    events_dropped: number;
    invalidate_ns_log2: number[];
    map_ns_log2: number[];
  };
}

const FLOOR_ROUNDS = 2000;
const VIRTIO_MMIO_BASE = 0x2000_0000;
const VIRTIO_IRQ = 5;
const GUEST_RAM = 4 << 20;
/** Resource ids the guest driver gives the workload blobs (gpu-guest.ts). */
const FIRST_GUEST_RESOURCE = 10;
const BAR_BASE = 0x1_0000_0000; // 4 GiB: above RAM, 2 MiB aligned (superpages possible)

/** Each blob sits at a 2 MiB-aligned offset so superpages are possible when frames allow. */
function blobStride(blobPages: number): number {
  return Math.ceil(blobPages / HUGE_PAGES) * HUGE_PAGES;
}

/**
 * The simulated machine a run needs: the blobs, then the guest's shmem page and a probe blob in
 * the BAR; host memory for every blob, one spare blob's worth for a migration in flight, and slack
 * for shmem and probes. `xvgpu run` checks it against the simulator's limits before starting.
 */
export function simMachine(o: Pick<SimRunOptions, 'vcpus' | 'blobs' | 'blobSize'>): MachineConfig {
  const blobPages = o.blobSize / PAGE_SIZE;
  return {
    vcpus: o.vcpus,
    barBase: BAR_BASE,
    barPages: blobStride(blobPages) * o.blobs + 2 * HUGE_PAGES,
    hostFrames: blobPages * (o.blobs + 1) + 4 * HUGE_PAGES,
    guestRamBytes: GUEST_RAM,
  };
}

/** Pins the calling (server) thread per `pin`; returns the placement and how to undo it. */
function placeThreads(pin: 'auto' | 'none' | undefined): { pinned: RunSummary['pinned']; restore: () => void } {
  const cpus = native.getAffinity();
  const server = cpus[0];
  if (pin === 'none' || cpus.length < 2 || server === undefined) return { pinned: null, restore: () => undefined };
  native.pinThread([server]);
  return { pinned: { server }, restore: () => { native.pinThread(cpus); } };
}

export async function runSimulation(o: SimRunOptions, log: Logger, onProgress?: (p: Progress) => void, signal?: AbortSignal): Promise<RunSummary> {
  const placement = placeThreads(o.pin);
  try {
    return await simulate(o, log, placement.pinned, onProgress, signal);
  } finally {
    placement.restore();
  }
}

async function simulate(o: SimRunOptions, log: Logger, pinned: RunSummary['pinned'], onProgress?: (p: Progress) => void, signal?: AbortSignal): Promise<RunSummary> {
  const machine = simMachine(o);
  const platform = openPlatform(o.platform ?? 'sim', { machine, retry: o.stockXen !== true, ...(o.inject ? { inject: o.inject } : {}), ...(o.drmNode !== undefined ? { drmNode: o.drmNode } : {}) });
  const stringFault = o.inject?.stringFault;
  const backend = new Backend(
    platform.ports,
    {
      barBase: BAR_BASE,
      barPages: machine.barPages,
      policy: { ...DEFAULT_POLICY, strategy: o.strategy ?? 'fault', mode: o.mode, faultAround: o.faultAround, hugePages: o.hugePages },
      ...(stringFault ? { injectStringFault: stringFault } : {}),
    },
    log,
  );
  try {
    return await drive(o, log, pinned, platform, backend, onProgress, signal);
  } catch (e) {
    throw await causeOf(e, platform, backend, log);
  }
}

/**
 * After a stuck TLB flush, whatever failed next (a half-done unmap, the teardown) is a consequence:
 * stop what still runs and report the flush.
 */
async function causeOf(e: unknown, platform: RunPlatform, backend: Backend, log: Logger): Promise<unknown> {
  const stuck = platform.xen.failure;
  if (!stuck) return e;
  if (e !== stuck) log.warn({ err: e }, 'failure after a stuck TLB flush');
  try {
    backend.stop();
  } catch (e2) {
    log.warn({ err: e2 }, 'back-end teardown after a stuck TLB flush');
  }
  await platform.close(); // stops the vCPUs
  return stuck;
}

async function drive(
  o: SimRunOptions,
  log: Logger,
  pinned: RunSummary['pinned'],
  platform: RunPlatform,
  backend: Backend,
  onProgress?: (p: Progress) => void,
  signal?: AbortSignal,
): Promise<RunSummary> {
  const blobPages = o.blobSize / PAGE_SIZE;
  const stride = blobStride(blobPages);
  backend.start();
  const device = backend.attachVirtioGpu(VIRTIO_MMIO_BASE, VIRTIO_IRQ);
  // The guest creates and places every blob through the virtio-gpu device (vCPU 0 at boot).
  const plan: GuestGpuPlan = {
    mmioBase: VIRTIO_MMIO_BASE,
    queueBase: 0,
    blobs: Array.from({ length: o.blobs }, (_, i) => ({ size: o.blobSize, offset: i * stride * PAGE_SIZE })),
    shmemOffset: stride * o.blobs * PAGE_SIZE,
    probeOffset: (stride * o.blobs + HUGE_PAGES) * PAGE_SIZE,
  };
  const views: BlobView[] = plan.blobs.map((b, i) => ({ id: FIRST_GUEST_RESOURCE + i, gpa: BAR_BASE + b.offset, pages: blobPages }));
  const guest = new SyntheticGuest(platform.xen, { pattern: o.workload, blobs: views, seed: o.seed }, platform.guestMemory, plan);
  const pressure = new HostPressure(platform.pressure, () => backend.blobHandles(), o.evictRate, o.seed);
  const tBoot = performance.now();
  await guest.start(); // the guest has set the device up and placed its blobs
  const bootS = (performance.now() - tBoot) / 1000;
  // The measured window (duration, throughput) is the workload's, after the guest booted.
  const t0 = performance.now();
  pressure.start();
  log.info({ vcpus: o.vcpus, blobs: o.blobs, blobSize: o.blobSize, mode: o.mode, bootS }, 'simulation running');

  const progress = (): Progress => ({
    elapsedS: (performance.now() - t0) / 1000,
    faults: backend.bar.counters.faults,
    revokes: backend.bar.counters.revokes,
    evictions: pressure.evictions,
    residentPages: backend.bar.counters.residentPages,
    faultP50: backend.server.serviceNs.totalCount > 0 ? backend.server.serviceNs.getValueAtPercentile(50) : 0,
  });
  await new Promise<void>((resolve) => {
    const end = t0 + o.durationS * 1000;
    const tick = setInterval(() => {
      const p = progress();
      onProgress?.(p);
      const swept = o.workload === 'sweep' && Atomics.load(platform.xen.views.ctl, CTL_SWEEP_DONE) >= o.vcpus;
      const wedged = platform.xen.failure !== undefined;
      if (swept || wedged || performance.now() >= end || o.until?.(p) === true || signal?.aborted === true) {
        clearInterval(tick);
        resolve();
      }
    }, 100);
  });
  pressure.stop();
  const g = await guest.stop();
  if (platform.xen.failure) throw platform.xen.failure; // no figure of this run can be trusted
  const elapsed = (performance.now() - t0) / 1000;
  // Let evictions in flight finish, then take the back-end down (revokes everything).
  await new Promise((r) => setTimeout(r, 20));
  const floor = await waiterFloor(FLOOR_ROUNDS, pinned?.server ?? -1, -1);
  const faultNs = summarize(g.ioreqNs);
  const c = backend.bar.counters;
  const s = backend.server.counters;
  const kstats = platform.kernelStats();
  const blobMiB = (o.blobs * o.blobSize) / (1024 * 1024);
  // A read of an unmapped blob's old range that reached the buffer is an access after revoke.
  const stale = g.totals.staleAccesses + g.totals.staleReads + (g.gpu?.postUnmapHits ?? 0);
  const moved = platform.movedFrames();
  const pressureErrors = platform.pressureErrors();
  const nullReasons: Record<string, string> = {};
  if (stale === 0 && platform.staleUnmeasurable !== undefined) nullReasons.stale_accesses = platform.staleUnmeasurable;
  if (typeof moved !== 'number') nullReasons.moved_frames = moved.reason;
  const maxOf = (f: (t: VcpuResult['timing']) => number): number => Math.max(0, ...g.vcpus.map((v) => f(v.timing)));
  const blockedNs = g.vcpus.reduce((n, v) => n + v.timing.blockedNs, 0);
  const summary: RunSummary = {
    platform: platform.name,
    host_buffers: platform.buffers,
    simulated: platform.simulated,
    strategy: o.strategy ?? 'fault',
    pinned,
    mode: o.mode,
    workload: o.workload,
    vcpus: o.vcpus,
    duration_s: Math.round(elapsed * 1000) / 1000,
    evict_rate: o.evictRate,
    fault_around: o.faultAround,
    huge_pages: o.hugePages,
    blob_mib: blobMiB,
    exits_per_mib: Math.round(((c.faults + c.holes + c.rejected) / blobMiB) * 100) / 100,
    first_access_ns: Math.round(maxOf((t) => t.firstAccessNs)),
    sweep_ns: Math.round(maxOf((t) => t.sweepNs)),
    stall_ms_per_s: Math.round((blockedNs / 1e6 / elapsed) * 100) / 100,
    boot_s: Math.round(bootS * 1000) / 1000,
    faults: c.faults,
    retries: c.retries,
    emulated: c.emulated,
    forward_progress: c.forwardProgress,
    string_copies: c.strings,
    string_redos: c.stringRedos,
    events_lost: c.eventsLost,
    helper_fatal: c.helperFatal,
    revokes: c.revokes,
    revoked_pages: c.revokedPages,
    invalidations: c.invalidations,
    mapped_pages: c.installedPages,
    resident_pages: platform.ports.helper.stats().residentPages,
    huge_maps: c.hugeMaps,
    map_collisions: c.collisions,
    stale_accesses: nullReasons.stale_accesses === undefined ? stale : null,
    integrity_errors: g.totals.integrityErrors + (g.gpu?.fillMismatches ?? 0),
    moved_frames: typeof moved === 'number' ? moved : null,
    null_reasons: nullReasons,
    host_pressure_errors: pressureErrors.count,
    ...(pressureErrors.first !== undefined ? { host_pressure_error: pressureErrors.first } : {}),
    bad_ioreqs: s.bad,
    unclaimed: s.unclaimed + g.totals.unclaimed,
    holes: c.holes,
    guest_crashes: g.crashes,
    accesses: g.totals.accesses,
    ioreqs: g.totals.ioreqs,
    evictions: pressure.evictions,
    tlb_flushes: platform.xen.flushes,
    fault_ns: faultNs,
    fault_cdf: cdf(g.ioreqNs),
    service_ns: summarize(backend.server.serviceNs),
    revoke_ns: summarize(backend.bar.revokeNs),
    revoke_event_ns: summarize(backend.bar.revokeEventNs),
    floor_ns: floor,
    fault_over_floor_p50: floor.p50 > 0 ? Math.round((faultNs.p50 / floor.p50) * 100) / 100 : 0,
    integrity_samples: g.samples,
    virtio: {
      commands: device.counters.commands,
      errors: device.counters.errors,
      blobs_created: device.counters.blobsCreated,
      blobs_mapped: device.counters.blobsMapped,
      blobs_unmapped: device.counters.blobsUnmapped,
      transport_resets: backend.transport?.counters.resets ?? 0,
      needs_reset: backend.transport?.counters.needsReset ?? 0,
    },
    ...(kstats ? { kernel_helper: kernelSummary(kstats) } : {}),
  };
  backend.stop();
  await platform.close();
  return summary;
}

const CDF_POINTS = [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9, 99.99, 100];

function cdf(h: Histogram): [number, number][] {
  return h.totalCount === 0 ? [] : CDF_POINTS.map((p) => [p, h.getValueAtPercentile(p)]);
}

function kernelSummary(k: HelperStatsWithHistograms): NonNullable<RunSummary['kernel_helper']> {
  return {
    maps: k.maps,
    map_collisions: k.mapCollisions,
    invalidations: k.invalidations,
    revoked_pages: k.revokedPages,
    events_dropped: k.eventsDropped,
    invalidate_ns_log2: k.invalidateNs,
    map_ns_log2: k.mapNs,
  };
}

/** No check failed: no stale access detected, no integrity error, no crash, no failed eviction. */
export function runPassed(r: RunSummary): boolean {
  return (r.stale_accesses ?? 0) === 0 && r.integrity_errors === 0 && r.guest_crashes.length === 0 && r.host_pressure_errors === 0 && r.helper_fatal === 0;
}

/** A figure, or `null (why)`. */
function orNull(r: RunSummary, key: 'stale_accesses' | 'moved_frames'): string {
  const v = r[key];
  return v === null ? `null (${r.null_reasons[key] ?? 'not measured'})` : String(v);
}

/** The human-readable summary `npm start` prints. */
export function formatSummary(r: RunSummary): string {
  const lat = (l: LatencySummary): string => `p50 ${formatNs(l.p50)}  p99 ${formatNs(l.p99)}  p99.9 ${formatNs(l.p999)}  max ${formatNs(l.max)}`;
  const ok = runPassed(r);
  const pressure = r.host_pressure_errors > 0 ? `, ${r.host_pressure_errors} failed evictions (${r.host_pressure_error ?? ''})` : '';
  return [
    `xvgpu run: ${r.platform} platform (${r.host_buffers} buffers), ${r.vcpus} vCPUs, ${r.workload} workload, mode ${r.mode}, fault-around ${r.fault_around}${r.huge_pages ? ' + 2 MiB' : ''}, ${r.duration_s.toFixed(1)} s`,
    `  guest     ${r.accesses} accesses, ${r.ioreqs} ioreqs (${((r.ioreqs / Math.max(1, r.accesses)) * 100).toFixed(2)} % of accesses exit)`,
    `  faults    ${r.faults} (${r.retries} retried, ${r.emulated} emulated, ${r.forward_progress} by forward progress), ${r.mapped_pages} pages mapped, ${r.huge_maps} as 2 MiB`,
    `  fault     ${lat(r.fault_ns)}   (guest-visible)`,
    `  floor     ${lat(r.floor_ns)}   (same wakes, no work: fault p50 = ${r.fault_over_floor_p50}x floor)`,
    `  service   ${lat(r.service_ns)}   (server)`,
    `  simulated ${r.simulated}`,
    `  revokes   ${r.revokes} (${r.revoked_pages} pages) from ${r.evictions} host evictions${pressure}, ${r.tlb_flushes} TLB flushes`,
    `  frames    moved_frames ${orNull(r, 'moved_frames')}`,
    `  revoke    ${lat(r.revoke_ns)}   (invalidate → p2m clear → flush acked)`,
    `  checks    stale_accesses ${orNull(r, 'stale_accesses')}, integrity_errors ${r.integrity_errors}, bad_ioreqs ${r.bad_ioreqs}, guest crashes ${r.guest_crashes.length}  ${ok ? 'OK' : 'FAILED'}`,
  ].join('\n');
}
