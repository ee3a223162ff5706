/**
 * One run of the back-end on the simulated platform with the synthetic guest and host pressure:
 * what `xvgpu run --platform sim` and the end-to-end tests execute.
 */
import { Backend } from '../backend.js';
import { DEFAULT_POLICY, type AnswerMode, type Strategy } from '../bar/manager.js';
import { SyntheticGuest, type GuestResult } from '../guest/synthetic.js';
import type { BlobView, PatternName } from '../guest/workload.js';
import type { GuestGpuPlan } from '../guest/gpu-guest.js';
import { HostPressure } from '../platform/sim/host-pressure.js';
import type { SimFaultInjection } from '../platform/sim/index.js';
import type { HelperStatsWithHistograms } from '../platform/linux/kernel-helper.js';
import { openPlatform, type PlatformName, type RunPlatform } from './platforms.js';
import { CTL_SWEEP_DONE, HUGE_PAGES, PAGE_SIZE, type MachineConfig } from '../platform/sim/machine.js';
import { formatNs, summarize, type Histogram, type LatencySummary, type NullReasons } from '../telemetry/histogram.js';
import type { Logger } from '../telemetry/log.js';
import { native } from '../native/index.js';
import type { StringFault } from '../bar/string-access.js';
import { FLOOR_PROBE_GPA, nullRegion } from '../bench/floor.js';
import type { FloorProbe } from '../guest/vcpu-worker.js';

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
  /** Called with the back-end once it is built (the service's metrics read its counters). */
  readonly onBackend?: (backend: Backend) => void;
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
  /**
   * The measured window is the workload's: it opens at each vCPU's first workload access (after the
   * guest booted and placed its blobs) and closes when its sweep share is done or it sees the stop.
   * Figures below are of that window unless they say otherwise.
   */
  /** Guest memory accesses the workload made, and how many exited on the BAR (faults, holes, refusals). */
  accesses: number;
  bar_exits: number;
  /** BAR exits per MiB of blob memory. */
  exits_per_mib: number;
  /** Accesses per second of the window, on the guest's clock (the longest vCPU's window). */
  accesses_per_s: number | null;
  /** ns until the first guest access of the workload completed (slowest vCPU). */
  first_access_ns: number | null;
  /** Sweeps: ns, on the vCPUs' own clocks, until the slowest vCPU had covered its share. */
  sweep_ns: number | null;
  /** Sweeps: MiB of blob covered per second of sweep_ns. */
  sweep_mib_per_s: number | null;
  /** Bytes the workload stored, and bytes it loaded back and checked (a `sweep`: the whole blob, each). */
  bytes_written: number;
  bytes_verified: number;
  /** Guest-visible stall: ms the vCPUs spent blocked in BAR exits per second of window. */
  stall_ms_per_s: number | null;
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
  /** Evictions that failed with an error (the first message in host_pressure_error). */
  host_pressure_errors: number;
  host_pressure_error?: string;
  bad_ioreqs: number;
  unclaimed: number;
  holes: number;
  guest_crashes: string[];
  /** Every ioreq the guest made, boot, device registers and floor probes included. */
  ioreqs: number;
  evictions: number;
  tlb_flushes: number;
  /** Guest-visible: vCPU blocked on a BAR exit in the window, post → answer. */
  fault_ns: LatencySummary | null;
  /** The same distribution as [percentile, ns] points, for CDF plots. */
  fault_cdf: [number, number][];
  /** Server side: slot taken → answer published, every ioreq served in the window. */
  service_ns: LatencySummary | null;
  /** Invalidation start → p2m entries gone, every vCPU's flush acknowledged. */
  revoke_ns: LatencySummary | null;
  /** Revoke done → the BAR manager saw the event. */
  revoke_event_ns: LatencySummary | null;
  /**
   * The floor, measured in this run after the window: the same vCPU threads, exit, event channel
   * (doorbell futex → native waiter → TSFN), server and answer as a fault, to a region whose
   * handler answers at once (bench/floor.ts nullRegion).
   */
  floor_ns: LatencySummary | null;
  /** fault_ns.p50 / floor_ns.p50. */
  fault_over_floor_p50: number | null;
  /** BAR pages still mapped in the guest p2m after the teardown revoked every blob (helper QUERY). */
  mapped_after_stop: number;
  /** Why each null figure above is null. */
  null_reasons: NullReasons;
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

/**
 * Floor probes per run, shared among the vCPUs (each probes concurrently, as they fault). 600 give
 * a stable p50; each costs a full wake chain, which on a loaded machine is milliseconds.
 */
const FLOOR_PROBES = 600;

/** Each vCPU's share of the floor probes (at least 100 each), after 20 untimed ones. */
export function floorProbe(vcpus: number): FloorProbe {
  return { gpa: FLOOR_PROBE_GPA, rounds: Math.max(100, Math.ceil(FLOOR_PROBES / vcpus)), warmup: 20 };
}
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
  o.onBackend?.(backend);
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
  backend.server.addRegion(nullRegion(FLOOR_PROBE_GPA));
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
  const guest = new SyntheticGuest(platform.xen, { pattern: o.workload, blobs: views, seed: o.seed }, platform.guestMemory, plan, floorProbe(o.vcpus));
  const pressure = new HostPressure(platform.pressure, () => backend.blobHandles(), o.evictRate, o.seed);
  const tBoot = performance.now();
  await guest.start(); // the guest has set the device up and placed its blobs
  const bootS = (performance.now() - tBoot) / 1000;
  // The measured window is the workload's, after the guest booted (the vCPUs time it themselves).
  const t0 = performance.now();
  backend.server.serviceNs.reset();
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
  await windowEnd(o, platform.xen.views.ctl, t0, () => {
    const p = progress();
    onProgress?.(p);
    // A stuck TLB flush ends the window at once: no figure of this run can be trusted.
    return platform.xen.failure !== undefined || o.until?.(p) === true || signal?.aborted === true;
  });
  const elapsed = (performance.now() - t0) / 1000;
  const serviceNs = summarize(backend.server.serviceNs);
  pressure.stop();
  const g = await guest.stop(); // the vCPUs measure the floor, then the guest tears its device down
  if (platform.xen.failure) throw platform.xen.failure; // no figure of this run can be trusted
  // Let evictions in flight finish, then take the back-end down (revokes everything).
  await new Promise((r) => setTimeout(r, 20));
  const m = windowFigures(g, o);
  const c = backend.bar.counters;
  const s = backend.server.counters;
  const kstats = platform.kernelStats();
  // A read of an unmapped blob's old range that reached the buffer is an access after revoke.
  const stale = g.totals.staleAccesses + g.totals.staleReads + (g.gpu?.postUnmapHits ?? 0);
  const moved = platform.movedFrames();
  const pressureErrors = platform.pressureErrors();
  const summary: Omit<RunSummary, 'mapped_after_stop'> = {
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
    ...m.figures,
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
    stale_accesses: stale === 0 && platform.staleUnmeasurable !== undefined ? m.why('stale_accesses', platform.staleUnmeasurable) : stale,
    integrity_errors: g.totals.integrityErrors + (g.gpu?.fillMismatches ?? 0),
    moved_frames: typeof moved === 'number' ? moved : m.why('moved_frames', moved.reason),
    host_pressure_errors: pressureErrors.count,
    ...(pressureErrors.first !== undefined ? { host_pressure_error: pressureErrors.first } : {}),
    bad_ioreqs: s.bad,
    unclaimed: s.unclaimed + g.totals.unclaimed,
    holes: c.holes,
    guest_crashes: g.crashes,
    ioreqs: g.totals.ioreqs,
    evictions: pressure.evictions,
    tlb_flushes: platform.xen.flushes,
    fault_cdf: cdf(g.barFaultNs),
    service_ns: serviceNs ?? m.why('service_ns', 'the server answered no ioreq in the measured window'),
    revoke_ns: summarize(backend.bar.revokeNs) ?? m.why('revoke_ns', 'no revokes in this run'),
    revoke_event_ns: summarize(backend.bar.revokeEventNs) ?? m.why('revoke_event_ns', 'no revokes in this run'),
    null_reasons: m.nullReasons,
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
  const mappedAfterStop = backend.stop();
  await platform.close();
  return { ...summary, mapped_after_stop: mappedAfterStop };
}

/** Resolves when the window ends: every vCPU finished its sweep, the duration passed, or `stop()` says so (checked every 100 ms). */
async function windowEnd(o: SimRunOptions, ctl: Int32Array, t0: number, stop: () => boolean): Promise<void> {
  const end = t0 + o.durationS * 1000;
  const sweep = o.workload === 'sweep' || o.workload === 'sweep-touch';
  let nextTick = t0 + 100;
  for (;;) {
    const done = Atomics.load(ctl, CTL_SWEEP_DONE);
    if (sweep && done >= o.vcpus) return;
    const now = performance.now();
    if (now >= end) return;
    if (now >= nextTick) {
      nextTick = now + 100;
      if (stop()) return;
    }
    // Woken by a vCPU finishing its sweep share, or at the next tick.
    const w = Atomics.waitAsync(ctl, CTL_SWEEP_DONE, done, Math.max(1, Math.min(nextTick, end) - now));
    if (w.async) await w.value;
  }
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

/** The window's figures from what each vCPU measured on its own clock, with the reason for each null. */
type WindowFields = 'blob_mib' | 'accesses' | 'bar_exits' | 'exits_per_mib' | 'accesses_per_s' | 'first_access_ns' | 'sweep_ns' | 'sweep_mib_per_s' | 'bytes_written' | 'bytes_verified' | 'stall_ms_per_s' | 'fault_ns' | 'floor_ns' | 'fault_over_floor_p50';

/**
 * The window's figures from what each vCPU measured on its own clock. Each null gets its reason in
 * `nullReasons`; `why` records one more (it returns null, to stand in for the figure).
 */
export function windowFigures(g: GuestResult, o: SimRunOptions): { figures: Pick<RunSummary, WindowFields>; nullReasons: NullReasons; why: (field: string, reason: string) => null } {
  const w = g.vcpus.map((v) => v.window);
  const blobMiB = (o.blobs * o.blobSize) / (1024 * 1024);
  const accesses = w.reduce((n, x) => n + x.accesses, 0);
  const barExits = w.reduce((n, x) => n + x.barExits, 0);
  const windowNs = Math.max(0, ...w.map((x) => x.workloadNs));
  const ran = w.length > 0 && w.every((x) => x.accesses > 0);
  const sweepDone = w.length > 0 && w.every((x) => x.sweepNs !== null);
  const sweepNs = sweepDone ? Math.max(...w.map((x) => x.sweepNs ?? 0)) : null;
  const faultNs = summarize(g.barFaultNs);
  const floorNs = summarize(g.floorNs);
  const nullReasons: NullReasons = {};
  const why = (field: string, reason: string): null => {
    nullReasons[field] = reason;
    return null;
  };
  const noWindow = 'the workload did not run on every vCPU (see guest_crashes)';
  return {
    figures: {
      blob_mib: blobMiB,
      accesses,
      bar_exits: barExits,
      exits_per_mib: round2(barExits / blobMiB),
      accesses_per_s: windowNs > 0 ? Math.round(accesses / (windowNs / 1e9)) : why('accesses_per_s', noWindow),
      first_access_ns: ran ? Math.round(Math.max(...w.map((x) => x.firstAccessNs))) : why('first_access_ns', noWindow),
      sweep_ns: sweepNs !== null ? Math.round(sweepNs) : why('sweep_ns', o.workload.startsWith('sweep') ? `a vCPU did not finish its share within ${o.durationS} s` : 'not a sweep workload'),
      sweep_mib_per_s: sweepNs !== null && sweepNs > 0 ? round2(blobMiB / (sweepNs / 1e9)) : why('sweep_mib_per_s', 'no sweep time (see sweep_ns)'),
      bytes_written: g.totals.bytesWritten,
      bytes_verified: g.totals.bytesVerified,
      stall_ms_per_s: windowNs > 0 ? round2(w.reduce((n, x) => n + x.blockedNs, 0) / 1e6 / (windowNs / 1e9)) : why('stall_ms_per_s', noWindow),
      fault_ns: faultNs ?? why('fault_ns', 'no BAR faults in the measured window'),
      floor_ns: floorNs ?? why('floor_ns', 'no floor probe completed (see guest_crashes)'),
      fault_over_floor_p50: faultNs && floorNs ? round2(faultNs.p50 / floorNs.p50) : why('fault_over_floor_p50', faultNs ? 'no floor (see floor_ns)' : 'no fault latency (see fault_ns)'),
    },
    nullReasons,
    why,
  };
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

/** No check failed: no stale access detected, no integrity error, no crash, no failed eviction, nothing left mapped. */
export function runPassed(r: RunSummary): boolean {
  return (r.stale_accesses ?? 0) === 0 && r.integrity_errors === 0 && r.guest_crashes.length === 0 && r.host_pressure_errors === 0 && r.helper_fatal === 0 && r.mapped_after_stop === 0;
}

/** A figure, or `null (why)`. */
function orNull(r: RunSummary, key: 'stale_accesses' | 'moved_frames'): string {
  const v = r[key];
  return v === null ? `null (${r.null_reasons[key] ?? 'not measured'})` : String(v);
}

/** The human-readable summary `npm start` prints. */
export function formatSummary(r: RunSummary): string {
  const lat = (l: LatencySummary | null, field: string): string => (l ? `p50 ${formatNs(l.p50)}  p99 ${formatNs(l.p99)}  p99.9 ${formatNs(l.p999)}  max ${formatNs(l.max)}` : `none: ${r.null_reasons[field] ?? ''}`);
  const ok = runPassed(r);
  const pressure = r.host_pressure_errors > 0 ? `, ${r.host_pressure_errors} failed evictions (${r.host_pressure_error ?? ''})` : '';
  return [
    `xvgpu run: ${r.platform} platform (${r.host_buffers} buffers), ${r.vcpus} vCPUs, ${r.workload} workload, mode ${r.mode}, fault-around ${r.fault_around}${r.huge_pages ? ' + 2 MiB' : ''}, ${r.duration_s.toFixed(1)} s`,
    `  guest     ${r.accesses} workload accesses, ${r.bar_exits} BAR exits (${((r.bar_exits / Math.max(1, r.accesses)) * 100).toFixed(2)} % of accesses exit)`,
    `  faults    ${r.faults} (${r.retries} retried, ${r.emulated} emulated, ${r.forward_progress} by forward progress), ${r.mapped_pages} pages mapped, ${r.huge_maps} as 2 MiB`,
    `  fault     ${lat(r.fault_ns, 'fault_ns')}   (guest-visible, BAR exits in the window)`,
    `  floor     ${lat(r.floor_ns, 'floor_ns')}   (same exit and wakes to a handler that does nothing: fault p50 = ${r.fault_over_floor_p50 === null ? 'n/a' : `${r.fault_over_floor_p50}x`} floor)`,
    `  service   ${lat(r.service_ns, 'service_ns')}   (server)`,
    `  simulated ${r.simulated}`,
    `  revokes   ${r.revokes} (${r.revoked_pages} pages) from ${r.evictions} host evictions${pressure}, ${r.tlb_flushes} TLB flushes`,
    `  frames    moved_frames ${orNull(r, 'moved_frames')}`,
    `  revoke    ${lat(r.revoke_ns, 'revoke_ns')}   (invalidate → p2m clear → flush acked)`,
    `  checks    stale_accesses ${orNull(r, 'stale_accesses')}, integrity_errors ${r.integrity_errors}, bad_ioreqs ${r.bad_ioreqs}, guest crashes ${r.guest_crashes.length}  ${ok ? 'OK' : 'FAILED'}`,
    `  teardown  ${r.mapped_after_stop === 0 ? 'every mapping revoked' : `${r.mapped_after_stop} pages still mapped after revoking every blob`}`,
  ].join('\n');
}
