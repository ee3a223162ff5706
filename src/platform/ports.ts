/**
 * The ports (ARCHITECTURE D7): every contact xvgpu has with the outside world goes through one of
 * these three interfaces. Each has a simulated implementation (src/platform/sim/) and a real one
 * (src/platform/linux/, src/platform/xen/). The ioreq server, the BAR manager and the device code
 * only ever see these types.
 */
import type { IoreqPage } from '../xen/abi/ioreq.js';

// ---------------------------------------------------------------------------------------------
// Hypervisor

/** What the hypervisor can do; decisions are taken from this, never guessed (D4). */
export interface HypervisorCaps {
  /** The hypervisor understands STATE_IORESP_RETRY (xvgpu's proposed extension). */
  readonly retry: boolean;
  /**
   * Requests carry the hypervisor's retry offer (Ioreq.retryOffered; Xen with patch 0003): only a
   * request with the offer may be answered with a retry. Without it (the simulator) any may.
   */
  readonly retryOffer?: boolean;
}

export type IoRangeKind = 'mmio' | 'port';

/** One ioreq server of one guest domain (XEN_DMOP_create_ioreq_server and friends). */
export interface IoreqServerHandle {
  readonly id: number;
  /** The synchronous ioreq page (XENMEM_resource_ioreq_server_frame_ioreq(0)), one slot per vCPU. */
  readonly page: IoreqPage;
  /** `end` is inclusive, as in XEN_DMOP_map_io_range_to_ioreq_server. */
  mapRange(kind: IoRangeKind, start: number, end: number): void;
  unmapRange(kind: IoRangeKind, start: number, end: number): void;
  setEnabled(enabled: boolean): void;
  destroy(): void;
}

/** Event channels bound to a guest's per-vCPU ports (libxenevtchn semantics). */
export interface EventChannels {
  /** Interdomain bind to `remotePort` in the guest; returns the local port. */
  bindInterdomain(remotePort: number): number;
  /** Delivers every local port that fired; a fired port stays masked until `unmask`. */
  onPending(handler: (localPort: number) => void): void;
  unmask(localPort: number): void;
  notify(localPort: number): void;
  close(): void;
}

/** Bounds-checked access to guest RAM (virtqueues, data_is_ptr requests); rust-vmm vm-memory style. */
export interface GuestMemory {
  readonly size: number;
  read(gpa: number, into: Uint8Array): void;
  write(gpa: number, from: Uint8Array): void;
  /** Aligned 16-bit load with acquire semantics (a ring index the guest publishes). */
  load16(gpa: number): number;
  /** Aligned 16-bit store with release semantics: everything written before is visible first. */
  store16(gpa: number, value: number): void;
  /**
   * Drops every cached mapping of guest RAM. Xen broadcasts an INVALIDATE ioreq when the guest's
   * RAM changed under the device model (ballooning, decrease_reservation): a cached frame may no
   * longer be the guest's. Memory that caches nothing has nothing to drop.
   */
  invalidate?(): void;
}

export interface HypervisorPort {
  readonly kind: 'sim' | 'xen';
  readonly domid: number;
  readonly caps: HypervisorCaps;
  readonly vcpus: number;
  createIoreqServer(): IoreqServerHandle;
  openEventChannels(): EventChannels;
  guestMemory(): GuestMemory;
  /** Level-triggered interrupt line (XEN_DMOP_set_irq_level on Arm, INTx on x86). */
  setIrqLevel(irq: number, level: boolean): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Kernel helper (kernel-helper/include/uapi/xvgpu_helper.h mirrors these shapes)

/** MMU-notifier event types, values as in the kernel's enum mmu_notifier_event. */
export const NotifyEvent = {
  Unmap: 0,
  Clear: 1,
  ProtectionVma: 2,
  ProtectionPage: 3,
  SoftDirty: 4,
  Release: 5,
  Migrate: 6,
  Exclusive: 7,
} as const;
export type NotifyEvent = (typeof NotifyEvent)[keyof typeof NotifyEvent];

/**
 * The helper's own events, beside the kernel's (values as in xvgpu_helper.h): `Overflow` says the
 * event ring was full and `lost` events were dropped (their revocations did happen); `Fatal` says a
 * p2m removal failed, so the binding is dead and the guest paused (the helper fails closed).
 */
export const HelperSignal = { Overflow: 0x10000, Fatal: 0x10001 } as const;
export type HelperSignal = (typeof HelperSignal)[keyof typeof HelperSignal];

export const NOTIFY_EVENT_NAMES = ['unmap', 'clear', 'protection_vma', 'protection_page', 'soft_dirty', 'release', 'migrate', 'exclusive'] as const;

export interface HelperBinding {
  readonly domid: number;
  /** First GFN and page count of the BAR window; the helper maps nowhere else. */
  readonly firstGfn: number;
  readonly pages: number;
}

/** A registered user-VA range (the back-end's mmap of one BO), watched by an interval notifier. */
export type RangeId = number;

/** The faulting access, completed by the helper under its lock when the answer is `emulate` (D4). */
export interface EmulatedAccess {
  /** GFN of the access, inside the mapped run. */
  readonly gfn: number;
  readonly byteInPage: number;
  readonly size: 1 | 2 | 4 | 8;
  readonly write: boolean;
  readonly dataLo: number;
  readonly dataHi: number;
}

export interface MapRequest {
  readonly range: RangeId;
  /** GFN of the first page of the run and the page of the range that backs it. */
  readonly gfn: number;
  readonly pageInRange: number;
  readonly pages: number;
  /**
   * Try the whole 2 MiB-aligned window that holds `gfn` as one superpage first; the caller checked
   * that the window lies inside the blob. Falls back to [gfn, gfn+pages) when the frames are not
   * 2 MiB contiguous and aligned.
   */
  readonly tryHuge: boolean;
  readonly access?: EmulatedAccess;
  /** With `access`: complete the access under the lock but install nothing (the emulate-all baseline). */
  readonly noInstall?: boolean;
}

export interface MapResult {
  readonly gfn: number;
  readonly pages: number;
  /** Pages actually installed now (already-mapped pages are not counted). */
  readonly installed: number;
  readonly huge: boolean;
  /** Interval sequence the mapping was validated against (compare with HelperEvent.seq). */
  readonly seq: number;
  /** mmu_interval_read_retry() collisions before the mapping stuck. */
  readonly collisions: number;
  /** Data of an emulated read (low, high 32 bits). */
  readonly dataLo: number;
  readonly dataHi: number;
}

/** One revocation, queued by the invalidate callback after the p2m entries are gone (D1). */
export interface HelperEvent {
  readonly range: RangeId;
  readonly firstPage: number;
  readonly pages: number;
  /** Pages whose p2m entries this invalidation removed. */
  readonly revoked: number;
  readonly event: NotifyEvent | HelperSignal;
  readonly seq: number;
  /** `Overflow` only: how many events the ring dropped. */
  readonly lost?: number;
  /** monotonic ns: callback entry, and the moment the last flush acknowledgement arrived. */
  readonly startNs: bigint;
  readonly doneNs: bigint;
}

export interface MappedRun {
  readonly gfn: number;
  readonly pages: number;
  readonly range: RangeId;
  readonly pageInRange: number;
  readonly huge: boolean;
}

export interface HelperStats {
  readonly maps: number;
  readonly mapCollisions: number;
  readonly installedPages: number;
  readonly hugeMaps: number;
  readonly invalidations: number;
  readonly revokedPages: number;
  readonly residentPages: number;
}

export interface KernelHelperPort {
  bind(binding: HelperBinding): void;
  registerRange(va: number, length: number): RangeId;
  unregisterRange(range: RangeId): void;
  /** Synchronous unless it must wait for an invalidation in flight (mmu_interval_read_begin). */
  map(req: MapRequest): MapResult | Promise<MapResult>;
  unmap(gfn: number, pages: number): number;
  query(gfn: number, pages: number): MappedRun[];
  stats(): HelperStats;
  onEvent(handler: (ev: HelperEvent) => void): void;
  /** release(): revokes everything and removes every notifier. */
  close(): void;
}

// ---------------------------------------------------------------------------------------------
// GPU

export interface BoInfo {
  readonly handle: number;
  readonly size: number;
}

/** A CPU mapping of a BO in the back-end's address space. */
export interface CpuMapping {
  readonly handle: number;
  readonly va: number;
  readonly length: number;
}

export interface GpuPort {
  createBo(size: number): BoInfo;
  destroyBo(handle: number): void;
  mmapBo(handle: number): CpuMapping;
  munmapBo(mapping: CpuMapping): void;
  /** Host memory pressure: move pages of a BO (content kept, frames change). Sim and test only. */
  evict(handle: number, firstPage?: number, pages?: number): Promise<boolean>;
  /** CPU access to a BO's bytes through the back-end's own mapping (bounds-checked). */
  writeBo(handle: number, offset: number, data: Uint8Array): void;
  readBo(handle: number, offset: number, into: Uint8Array): void;
}
