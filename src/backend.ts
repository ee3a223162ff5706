/**
 * The back-end: the ioreq server and the BAR manager wired over the three ports, plus the host
 * blob lifecycle that virtio-gpu's RESOURCE_CREATE_BLOB / MAP_BLOB / UNMAP_BLOB / UNREF drive
 * (until that device lands, the synthetic guest calls these directly).
 */
import { BarManager, type BarPolicy } from './bar/manager.js';
import { BarWindow, type Placement } from './bar/window.js';
import { StringAccess, type StringFault } from './bar/string-access.js';
import { IoreqServer } from './ioreq/server.js';
import type { CpuMapping, GpuPort, HelperStats, HypervisorPort, KernelHelperPort, RangeId } from './platform/ports.js';
import type { Logger } from './telemetry/log.js';
import { VirtioGpuDevice } from './gpu/device.js';
import { GuestMemoryAccess } from './virtio/guest-memory.js';
import { NO_INTERRUPT_LINE, VirtioMmio } from './virtio/mmio.js';

export interface BackendPorts {
  readonly hv: HypervisorPort;
  readonly helper: KernelHelperPort;
  readonly gpu: GpuPort;
}

export interface BackendOptions {
  readonly barBase: number;
  readonly barPages: number;
  readonly policy: BarPolicy;
  /** Test-only fault injection into string-request emulation (src/bar/string-access.ts). */
  readonly injectStringFault?: StringFault;
}

export interface HostBlob {
  readonly id: number;
  readonly bo: number;
  readonly size: number;
  readonly mapping: CpuMapping;
  readonly range: RangeId;
  placement?: Placement;
}

export class ConfigError extends Error {}

export class Backend {
  readonly server: IoreqServer;
  readonly bar: BarManager;
  gpuDevice: VirtioGpuDevice | undefined;
  transport: VirtioMmio | undefined;
  private readonly blobs = new Map<number, HostBlob>();
  private readonly blobByRange = new Map<RangeId, HostBlob>();
  private nextBlob = 1;

  constructor(private readonly ports: BackendPorts, private readonly opts: BackendOptions, private readonly log: Logger) {
    // The answer mode is chosen by capability, never by guesswork (D4).
    if (opts.policy.mode === 'retry' && !ports.hv.caps.retry) {
      throw new ConfigError('--mode retry needs a hypervisor with the ioreq retry extension; this one has none (use --mode emulate)');
    }
    const window = new BarWindow(opts.barBase, opts.barPages);
    const strings = new StringAccess(
      { ram: ports.hv.guestMemory(), boAccess: (range, offset, data, write) => { this.boAccess(range, offset, data, write); } },
      ports.hv.vcpus,
      opts.injectStringFault,
    );
    this.bar = new BarManager(window, ports.helper, opts.policy, ports.hv.vcpus, log, strings);
    this.server = new IoreqServer(ports.hv, log);
    ports.helper.bind({ domid: ports.hv.domid, firstGfn: opts.barBase / 4096, pages: opts.barPages });
    ports.helper.onEvent((ev) => { this.bar.onHelperEvent(ev); });
    this.server.addRegion(this.bar);
  }

  start(): void {
    this.server.start();
  }

  /**
   * The virtio-gpu device on a virtio-mmio window at `mmioBase`, interrupting on line `irq`, with
   * the BAR as its host-visible shared-memory region. Without `irq` (a PVH guest has no interrupt
   * controller a device model can drive) the device raises no interrupt: InterruptStatus is still
   * latched, and the guest's driver polls it and the used ring.
   */
  attachVirtioGpu(mmioBase: number, irq: number | undefined): VirtioGpuDevice {
    const device = new VirtioGpuDevice(this, { base: this.opts.barBase, length: this.opts.barPages * 4096 }, this.log);
    const mem = new GuestMemoryAccess(this.ports.hv.guestMemory());
    const line = irq === undefined ? NO_INTERRUPT_LINE : { set: (level: boolean) => { this.ports.hv.setIrqLevel(irq, level); } };
    const transport = new VirtioMmio('virtio-gpu', mmioBase, device, mem, line, this.log);
    this.server.addRegion(transport);
    this.gpuDevice = device;
    this.transport = transport;
    return device;
  }

  /** A new host BO as a blob (the synthetic guest's path when no virtio-gpu device is used). */
  createBlob(size: number): HostBlob {
    return this.adoptBo(this.ports.gpu.createBo(size).handle, size);
  }

  /**
   * RESOURCE_CREATE_BLOB: an existing BO (from the native context) becomes a blob: mapped into our
   * address space and watched by the helper. The blob owns the BO from here on.
   */
  adoptBo(handle: number, size: number): HostBlob {
    const mapping = this.ports.gpu.mmapBo(handle);
    let range: RangeId;
    try {
      range = this.ports.helper.registerRange(mapping.va, mapping.length);
    } catch (e) {
      this.ports.gpu.munmapBo(mapping);
      throw e;
    }
    const blob: HostBlob = { id: this.nextBlob++, bo: handle, size, mapping, range };
    this.blobs.set(blob.id, blob);
    this.blobByRange.set(range, blob);
    return blob;
  }

  /** RESOURCE_MAP_BLOB: place the blob at `offset` of the BAR. Nothing is mapped until the guest touches it. */
  mapBlob(id: number, offset: number): Placement {
    const blob = this.blob(id);
    if (blob.placement) throw new ConfigError(`blob ${id} is already mapped`);
    blob.placement = this.bar.placeBlob(offset, blob.size, blob.range);
    return blob.placement;
  }

  /** RESOURCE_UNMAP_BLOB: every mapped page is revoked before this returns. */
  unmapBlob(id: number): void {
    const blob = this.blob(id);
    if (!blob.placement) throw new ConfigError(`blob ${id} is not mapped`);
    this.bar.removeBlob(blob.placement.id);
    delete blob.placement;
  }

  /** RESOURCE_UNREF. */
  destroyBlob(id: number): void {
    const blob = this.blob(id);
    if (blob.placement) this.unmapBlob(id);
    this.ports.helper.unregisterRange(blob.range);
    this.ports.gpu.munmapBo(blob.mapping);
    this.ports.gpu.destroyBo(blob.bo);
    this.blobs.delete(id);
    this.blobByRange.delete(blob.range);
  }

  get gpu(): GpuPort {
    return this.ports.gpu;
  }

  blobHandles(): number[] {
    return [...this.blobs.values()].map((b) => b.bo);
  }

  /** The helper's counters after stop() revoked everything, read before it closed the helper's fd. */
  helperStatsAtStop: HelperStats | undefined;

  /**
   * Revokes every mapping (each blob is unmapped and destroyed), destroys the ioreq server and closes
   * the helper. Returns the BAR pages the helper still had mapped after the revocations (its QUERY,
   * just before close): 0 unless a revocation was lost. The helper's close revokes those too.
   */
  stop(): number {
    this.gpuDevice?.reset();
    try {
      for (const id of [...this.blobs.keys()]) this.destroyBlob(id);
      this.server.stop();
      this.helperStatsAtStop = this.ports.helper.stats();
      const left = this.mappedPages();
      if (left > 0) this.log.error({ pages: left }, 'pages still mapped after every blob was revoked; the helper close revokes them');
      this.log.info({ mappedAfterRevoke: left }, 'back-end stopped');
      return left;
    } finally {
      this.ports.helper.close();
    }
  }

  /** BAR pages mapped in the guest p2m now, as the helper reports them. */
  mappedPages(): number {
    return this.ports.helper.query(this.opts.barBase / 4096, this.opts.barPages).reduce((n, r) => n + r.pages, 0);
  }

  /** String-request emulation reaches a blob's bytes through our own CPU mapping of its BO. */
  private boAccess(range: RangeId, offset: number, data: Uint8Array, write: boolean): void {
    const blob = this.blobByRange.get(range);
    if (!blob) throw new Error(`no blob on helper range ${range}`);
    if (write) this.ports.gpu.writeBo(blob.bo, offset, data);
    else this.ports.gpu.readBo(blob.bo, offset, data);
  }

  private blob(id: number): HostBlob {
    const b = this.blobs.get(id);
    if (!b) throw new ConfigError(`no blob ${id}`);
    return b;
  }
}
