/**
 * `xvgpu run --platform xen`: xvgpu as the IOREQ server of a real Xen guest. Options are checked
 * here (one line, exit 2, before anything is opened); the run serves until SIGINT/SIGTERM.
 */
import { Backend, ConfigError } from '../backend.js';
import { DEFAULT_POLICY, type AnswerMode, type Strategy } from '../bar/manager.js';
import { openXenPlatform, type XenPlatformOptions, type XenRunPlatform } from '../session/platforms.js';
import { summarize, type Histogram, type LatencySummary } from '../telemetry/histogram.js';
import type { Logger } from '../telemetry/log.js';
import { dropPrivileges, resolveRunAs, PrivilegeDropError, type RunAs } from '../platform/linux/privileges.js';
import { auditXenHandles } from '../platform/xen/confine.js';
import { DOMID_FIRST_RESERVED } from '../platform/xen/hypervisor.js';
import type { DomainType } from '../platform/xen/ctrl.js';
import { bufferName } from '../platform/xen/serving.js';
import { F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, VIRTIO_MMIO_SIZE } from '../virtio/constants.js';
import { F_CONTEXT_INIT, F_RESOURCE_BLOB, F_VIRGL } from '../gpu/device.js';
import { UsageError, addressOption, choiceOption, intOption, sizeOption, type Options } from './args.js';

const PAGE = 4096;
/** Guest-physical addresses stay below 2^52 (x86-64 and arm64 physical address limits). */
const MAX_GPA = 2 ** 52;

export const XEN_RUN_OPTIONS: Options = {
  domid: { type: 'string' },
  'bar-gfn': { type: 'string' },
  'bar-size': { type: 'string' },
  'mmio-base': { type: 'string' },
  irq: { type: 'string' },
  'run-as': { type: 'string' },
  vram: { type: 'string' },
};

export const XEN_RUN_HELP = `
Options for --platform xen (a real Xen guest; see docs/deploy-xen.md):
  --domid N               the guest (HVM or PVH), 1..0x7fef
  --bar-gfn G             first guest frame of the BAR window (decimal or 0x hex)
  --bar-size SIZE         BAR window size, a multiple of 4096 (K/M/G suffixes allowed)
  --mmio-base B           guest-physical base of the virtio-mmio window (page aligned)
  --irq I                 the device's interrupt: an ISA IRQ 1-15 except 2 on x86; required for an
                          HVM guest, refused for a PVH guest (no interrupt controller: its driver polls)
  --run-as USER[:GROUP]   once every Xen handle is open and restricted to the guest, become USER
                          (no capabilities, no supplementary groups, no_new_privs); needs root
  --mode retry|emulate    map-then-retry or map-and-emulate; by default retry where Xen has the
                          extension (hypervisor/patches), emulate on stock Xen; retry without it is an error
  --strategy fault|emulate-all   map on fault (default), or never map: every access is an ioreq
  --vram PATH             back blobs with a PCI memory BAR (e.g. /sys/bus/pci/devices/<bdf>/resource2,
                          MMIO frames: VRAM, mapped by the helper's xen back-end)
  --drm-node PATH         back blobs with this DRM device's buffers (e.g. vgem). Without --vram or
                          --drm-node: memfd RAM lent through the helper's xen-dmop back-end where
                          Xen has the extension, /dev/dri/card0 on stock Xen
  --json                  print the summary (mode, p2m back-end, buffers, ioreqs, faults, maps,
                          revocations, latencies) as JSON at exit
`;

export interface XenRunArgs {
  readonly platform: 'xen';
  readonly domid: number;
  readonly barGfn: number;
  readonly barSize: number;
  readonly mmioBase: number;
  readonly irq: number | undefined;
  /** The unprivileged account to serve as (QEMU's -runas), resolved at parse time. */
  readonly runAs: RunAs | undefined;
  readonly drmNode: string | undefined;
  readonly vram: string | undefined;
  readonly mode: AnswerMode | undefined;
  readonly strategy: Exclude<Strategy, 'eager'>;
  readonly faultAround: number;
  readonly hugePages: boolean;
  readonly json: boolean;
  readonly logLevel: string;
}

type Values = Record<string, string | boolean | undefined>;

/** Checks the xen options; shared ones (mode, fault-around, json, log level) come parsed. */
export function parseXenRunArgs(v: Values, shared: Pick<XenRunArgs, 'faultAround' | 'hugePages' | 'json' | 'logLevel'>): XenRunArgs {
  const cmd = 'run';
  const domid = addressOption(cmd, 'domid', v.domid, 0, DOMID_FIRST_RESERVED - 1);
  if (domid === 0) throw new UsageError('--domid 0 is dom0: xvgpu serves a guest domain', cmd);
  const barGfn = addressOption(cmd, 'bar-gfn', v['bar-gfn'], 1, MAX_GPA / PAGE - 1);
  const barSize = sizeOption(cmd, 'bar-size', v['bar-size'] ?? failRequired('bar-size'), 0, 0, 64 * 1024 ** 3);
  if (barSize < PAGE || barSize % PAGE !== 0) throw new UsageError(`--bar-size must be a non-zero multiple of 4096, got ${barSize}`, cmd);
  const barStart = barGfn * PAGE;
  if (barStart + barSize > MAX_GPA) throw new UsageError('--bar-gfn + --bar-size run past the 2^52 guest-physical limit', cmd);
  const mmioBase = addressOption(cmd, 'mmio-base', v['mmio-base'], 1, MAX_GPA - PAGE);
  if (mmioBase % PAGE !== 0) throw new UsageError(`--mmio-base must be page aligned (4096), got 0x${mmioBase.toString(16)}`, cmd);
  if (mmioBase < barStart + barSize && barStart < mmioBase + VIRTIO_MMIO_SIZE) {
    throw new UsageError(`the virtio-mmio window [0x${mmioBase.toString(16)}, +0x${VIRTIO_MMIO_SIZE.toString(16)}) overlaps the BAR [0x${barStart.toString(16)}, +0x${barSize.toString(16)})`, cmd);
  }
  const irq = v.irq === undefined ? undefined : intOption(cmd, 'irq', v.irq, 0, 1, 15);
  if (irq === 2) throw new UsageError('--irq 2 is the PIC cascade: pick another ISA IRQ (e.g. 5, 7, 10, 11)', cmd);
  return {
    platform: 'xen',
    domid,
    barGfn,
    barSize,
    mmioBase,
    irq,
    runAs: typeof v['run-as'] === 'string' ? runAsOption(v['run-as']) : undefined,
    drmNode: typeof v['drm-node'] === 'string' ? v['drm-node'] : undefined,
    vram: vramOption(v),
    strategy: choiceOption(cmd, 'strategy', v.strategy, 'fault', ['fault', 'emulate-all'] as const),
    mode: v.mode === undefined ? undefined : choiceOption(cmd, 'mode', v.mode, 'emulate', ['retry', 'emulate'] as const),
    ...shared,
  };
}

function runAsOption(spec: string): RunAs {
  try {
    return resolveRunAs(spec);
  } catch (e) {
    if (e instanceof PrivilegeDropError) throw new UsageError(e.message, 'run');
    throw e;
  }
}

function vramOption(v: Values): string | undefined {
  if (v.vram === undefined) return undefined;
  if (typeof v.vram !== 'string' || v.vram === '') throw new UsageError('--vram wants the path of a PCI BAR resource file', 'run');
  if (v['drm-node'] !== undefined) throw new UsageError('--vram and --drm-node both name the buffers: pick one', 'run');
  return v.vram;
}

function failRequired(name: string): never {
  throw new UsageError(`--${name} is required with --platform xen`, 'run');
}

/**
 * The device's ISA IRQ for this guest: an HVM guest needs one; a PVH guest has no emulated PIC or
 * IO-APIC, so none can be given (XenHypervisor.setIrqLevel says why it is refused).
 */
export function interruptFor(type: DomainType, irq: number | undefined): number | undefined {
  if (type === 'hvm' && irq === undefined) throw new ConfigError('--irq is required for an HVM guest');
  if (type !== 'hvm' && irq !== undefined) throw new ConfigError(`--irq given for a ${type.toUpperCase()} guest: it has no emulated interrupt controller (drop --irq; the guest's driver polls)`);
  return irq;
}

/** What runXen opens and how it confines itself: the real ones, or fakes in tests. */
export interface XenRunDeps {
  openPlatform(o: XenPlatformOptions): XenRunPlatform;
  dropPrivileges(target: RunAs): void;
  auditHandles(domid: number, helperFds: ReadonlySet<number>): void;
}

export const realXenRunDeps: XenRunDeps = {
  openPlatform: openXenPlatform,
  dropPrivileges: (target) => { dropPrivileges(target); },
  auditHandles: (domid, helperFds) => { auditXenHandles(domid, helperFds); },
};

/**
 * QEMU's way: every handle is open and restricted by now (open() and start() restrict each one as
 * it opens, the helper fd is bound to the window), so drop to the --run-as user and prove that
 * what is left is confined to the guest. Nothing later opens a device: guest frames, DM ops, event
 * channel notifies and helper ioctls all go through the fds held here.
 */
function confine(o: XenRunArgs, platform: XenRunPlatform, deps: XenRunDeps, log: Logger): void {
  if (!o.runAs) return;
  deps.dropPrivileges(o.runAs);
  deps.auditHandles(o.domid, new Set([platform.helperFd]));
  log.info({ user: o.runAs.spec, uid: o.runAs.uid, gid: o.runAs.gid, domid: o.domid }, 'privileges dropped; every Xen handle is confined to the guest');
}

/**
 * Serves the guest until `signal` aborts, then takes no new ioreqs, answers those in flight, revokes
 * every mapping and destroys the ioreq server; returns the exit status (1 if a page stayed mapped).
 * Order: open (each handle restricted as it opens) → bind and start → drop privileges → serve. A
 * failure at any step closes everything opened before it (the platform's teardown runs in `finally`).
 */
export async function runXen(o: XenRunArgs, log: Logger, signal: AbortSignal, onBackend?: (b: Backend) => void, deps: XenRunDeps = realXenRunDeps): Promise<number> {
  const platform = deps.openPlatform({
    domid: o.domid,
    ...(o.drmNode !== undefined ? { drmNode: o.drmNode } : {}),
    ...(o.vram !== undefined ? { vram: o.vram } : {}),
    ...(o.mode !== undefined ? { mode: o.mode } : {}),
  });
  try {
    const { mode, backend: p2m } = platform.serving;
    const buffers = bufferName(platform.serving.buffers);
    const policy = { ...DEFAULT_POLICY, mode, strategy: o.strategy, faultAround: o.faultAround, hugePages: o.hugePages };
    const backend = new Backend(platform.ports, { barBase: o.barGfn * PAGE, barPages: o.barSize / PAGE, policy }, log);
    backend.attachVirtioGpu(o.mmioBase, interruptFor(platform.hv.domainType, o.irq));
    onBackend?.(backend);
    backend.start();
    confine(o, platform, deps, log);
    log.info({ domid: o.domid, type: platform.hv.domainType, vcpus: platform.hv.vcpus, mode, p2m, buffers, extension: platform.hv.extension, reclaimedServer: platform.hv.reclaimedServer ?? null }, 'serving');
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => { resolve(); }, { once: true });
    });
    await backend.server.quiesce();
    const mappedAfterStop = backend.stop();
    const c = backend.server.counters;
    const b = backend.bar.counters;
    const h = backend.helperStatsAtStop; // stop() closed the helper: the counters read just before
    const summary = {
      domid: o.domid, mode, strategy: o.strategy, p2m_backend: p2m, buffers, extension: platform.hv.extension ? { version: platform.hv.extension.version, features: platform.hv.extension.features } : null, reclaimed_server: platform.hv.reclaimedServer ?? null, requests: c.requests, answered_ready: c.answeredReady, answered_retry: c.answeredRetry, bad: c.bad, unclaimed: c.unclaimed,
      bar: { faults: b.faults, retries: b.retries, emulated: b.emulated, forward_progress: b.forwardProgress, not_offered: b.notOffered, holes: b.holes, rejected: b.rejected, installed_pages: b.installedPages, revokes: b.revokes, revoked_pages: b.revokedPages, strings: b.strings, helper_fatal: b.helperFatal, events_lost: b.eventsLost },
      helper: { maps: h.maps, installed_pages: h.installedPages, invalidations: h.invalidations, revoked_pages: h.revokedPages, resident_pages: h.residentPages },
      virtio: virtioSummary(backend),
      latency: latencySummary(backend),
      mapped_after_stop: mappedAfterStop,
    };
    process.stdout.write(o.json ? `${JSON.stringify(summary)}\n` : `served domain ${o.domid} (${mode}, ${p2m} on ${buffers}): ${c.requests} ioreqs, ${c.bad} refused, ${c.unclaimed} unclaimed; ${mappedAfterStop === 0 ? 'every mapping revoked' : `${mappedAfterStop} pages still mapped`}\n`);
    return mappedAfterStop === 0 ? 0 : 1;
  } finally {
    await platform.close();
  }
}

/**
 * Service-time percentiles (ns) of a run on real Xen, each null with its reason when nothing was
 * recorded. bar_service_ns: BAR ioreqs (faults with their maps, or emulations under emulate-all);
 * register_service_ns: virtio-mmio register ioreqs, the same exit and wakes with a handler that does
 * almost nothing (the in-run baseline); revoke_ns: the helper's invalidation start → p2m entries
 * gone (inside its MMU-notifier callback); revoke_event_ns: that event reaching xvgpu.
 */
/** Why a run has no revoke figure: only the MMU-notifier path is timed (an explicit unmap is the back-end's own call). */
export const NO_NOTIFIER_REVOKE = "no revocation came through the helper's invalidate callback (MMU notifier); explicit revocations (UNMAP_BLOB, UNREGISTER) are not timed";

export function latencySummary(backend: Pick<Backend, 'server' | 'bar' | 'transport'>): Record<string, unknown> {
  const nullReasons: Record<string, string> = {};
  const figure = (key: string, h: Histogram | undefined, why: string): LatencySummary | null => {
    const s = h ? summarize(h) : null;
    if (s === null) nullReasons[key] = h ? why : 'no virtio-mmio transport in this run';
    return s;
  };
  return {
    ioreq_service_ns: figure('ioreq_service_ns', backend.server.serviceNs, 'the server answered no ioreq'),
    bar_service_ns: figure('bar_service_ns', backend.bar.serviceNs, 'the guest made no BAR access that exited'),
    register_service_ns: figure('register_service_ns', backend.transport?.serviceNs, 'the guest made no register access'),
    revoke_ns: figure('revoke_ns', backend.bar.revokeNs, NO_NOTIFIER_REVOKE),
    revoke_event_ns: figure('revoke_event_ns', backend.bar.revokeEventNs, NO_NOTIFIER_REVOKE),
    null_reasons: nullReasons,
  };
}

/** The virtio-gpu device's side of a run: commands and refusals, blobs, transport events. */
export function virtioSummary(backend: Pick<Backend, 'gpuDevice' | 'transport'>): Record<string, unknown> | null {
  const g = backend.gpuDevice?.counters;
  const t = backend.transport?.counters;
  if (!g || !t) return null;
  return {
    status: backend.transport?.deviceStatus ?? 0,
    driver_features: featureNames(backend.transport?.negotiatedFeatures),
    commands: g.commands,
    commands_by_kind: g.byKind,
    errors: g.errors,
    errors_by_type: g.errorsByType,
    blobs_created: g.blobsCreated,
    blobs_mapped: g.blobsMapped,
    blobs_unmapped: g.blobsUnmapped,
    fences: g.fences,
    register_reads: t.reads,
    register_writes: t.writes,
    notifies: t.notifies,
    interrupts_raised: t.interruptsRaised,
    interrupts_lowered: t.interruptsLowered,
    interrupt_line_high: backend.transport?.lineHigh ?? false,
    bad_register_accesses: t.badAccesses,
    unknown_registers: t.unknownRegisters,
    resets: t.resets,
    needs_reset: t.needsReset,
  };
}

/** The feature bits xvgpu offers (virtio 1.2 §5.7.3, §6), by name. */
const FEATURE_NAMES: ReadonlyArray<readonly [bigint, string]> = [
  [F_VIRGL, 'VIRGL'], [F_RESOURCE_BLOB, 'RESOURCE_BLOB'], [F_CONTEXT_INIT, 'CONTEXT_INIT'],
  [F_INDIRECT_DESC, 'RING_INDIRECT_DESC'], [F_EVENT_IDX, 'RING_EVENT_IDX'], [F_VERSION_1, 'VERSION_1'],
];

/** The features a driver acknowledged, by name (null: it never reached DRIVER_OK). */
export function featureNames(features: bigint | undefined): string[] | null {
  if (features === undefined) return null;
  const names = FEATURE_NAMES.filter(([b]) => (features >> b) & 1n).map(([, n]) => n);
  const known = FEATURE_NAMES.reduce((m, [b]) => m | (1n << b), 0n);
  const rest = features & ~known;
  return rest === 0n ? names : [...names, `0x${rest.toString(16)}`];
}
