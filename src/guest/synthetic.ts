/**
 * The synthetic guest: one worker thread per vCPU running a named access pattern over the blobs the
 * guest has placed in the BAR. Results are merged when every vCPU has stopped.
 */
import { Worker } from 'node:worker_threads';
import type { CpuCounters } from '../platform/sim/cpu.js';
import type { SimXen } from '../platform/sim/xen.js';
import { CTL_GUEST_BOOT } from '../platform/sim/machine.js';
import { addEncoded, latencyHistogram, type Histogram } from '../telemetry/histogram.js';
import { distFile } from '../util/dist-path.js';
import type { FloorProbe, VcpuWorkerData, WindowMeasures } from './vcpu-worker.js';
import type { WorkloadCounters, WorkloadSpec } from './workload.js';
import type { GpuGuestResult, GuestGpuPlan } from './gpu-guest.js';

export interface VcpuResult {
  readonly vcpu: number;
  readonly cpu: CpuCounters;
  readonly mem: { readonly staleAccesses: number; readonly flushAcks: number };
  /** What the workload's window measured on this vCPU's clock. */
  readonly window: WindowMeasures;
  readonly work: WorkloadCounters;
  /** Encoded histograms: BAR exits inside the window; floor probes. */
  readonly barFaultHist: string;
  readonly floorHist: string;
  readonly crash?: string;
  readonly gpu?: GpuGuestResult;
}

export interface GuestResult {
  readonly vcpus: VcpuResult[];
  readonly totals: CpuCounters & { staleAccesses: number; flushAcks: number; reads: number; writes: number; integrityErrors: number; staleReads: number; bytesWritten: number; bytesVerified: number };
  /** Guest-visible time blocked per BAR exit in the workload's window, all vCPUs. */
  readonly barFaultNs: Histogram;
  /** Guest-visible time blocked per floor probe (a handler that answers at once), all vCPUs. */
  readonly floorNs: Histogram;
  readonly crashes: string[];
  readonly samples: string[];
  /** What the boot vCPU saw of the virtio-gpu device, when the guest used one. */
  readonly gpu?: GpuGuestResult;
}

export class SyntheticGuest {
  private readonly workers: Worker[] = [];
  private readonly results: Promise<VcpuResult>[] = [];

  constructor(
    private readonly xen: SimXen,
    private readonly workload: WorkloadSpec,
    private readonly memory: VcpuWorkerData['memory'] = { kind: 'sim' },
    private readonly gpu?: GuestGpuPlan,
    private readonly floorProbe?: FloorProbe,
  ) {}

  /** Starts one worker per vCPU; resolves once every vCPU is online and, with a GPU, the guest has booted. */
  async start(): Promise<void> {
    const online: Promise<void>[] = [];
    for (let v = 0; v < this.xen.vcpus; v++) {
      const data: VcpuWorkerData = { config: this.xen.config, buffers: this.xen.buffers, vcpu: v, retryCap: this.xen.caps.retry, workload: this.workload, cpus: [], memory: this.memory, ...(this.gpu ? { gpu: this.gpu } : {}), ...(this.floorProbe ? { floorProbe: this.floorProbe } : {}) };
      const w = new Worker(distFile('guest/vcpu-worker.js'), { workerData: data });
      this.workers.push(w);
      online.push(new Promise((resolve, reject) => { w.once('online', resolve); w.once('error', reject); }));
      this.results.push(
        new Promise((resolve, reject) => {
          w.once('message', (m: VcpuResult) => { resolve(m); });
          w.once('error', reject);
          w.once('exit', (code) => { reject(new Error(`vCPU ${v} worker exited (${code}) without a result`)); });
        }),
      );
    }
    await Promise.all(online);
    if (this.gpu) await this.booted();
  }

  /** Waits (without blocking the event loop: the server must keep answering) for the boot vCPU. */
  private async booted(): Promise<void> {
    const ctl = this.xen.views.ctl;
    while (Atomics.load(ctl, CTL_GUEST_BOOT) === 0) {
      const w = Atomics.waitAsync(ctl, CTL_GUEST_BOOT, 0, 100);
      if (w.async) await w.value;
    }
  }

  /** Asks every vCPU to stop and gathers the results. */
  async stop(): Promise<GuestResult> {
    this.xen.requestStop();
    const vcpus = await Promise.all(this.results);
    await Promise.all(this.workers.map((w) => w.terminate()));
    const barFaultNs = latencyHistogram();
    const floorNs = latencyHistogram();
    const totals = { accesses: 0, ioreqs: 0, retries: 0, unclaimed: 0, staleAccesses: 0, flushAcks: 0, reads: 0, writes: 0, integrityErrors: 0, staleReads: 0, bytesWritten: 0, bytesVerified: 0 };
    for (const r of vcpus) {
      addEncoded(barFaultNs, r.barFaultHist);
      addEncoded(floorNs, r.floorHist);
      for (const k of ['accesses', 'ioreqs', 'retries', 'unclaimed'] as const) totals[k] += r.cpu[k];
      totals.staleAccesses += r.mem.staleAccesses;
      totals.flushAcks += r.mem.flushAcks;
      totals.reads += r.work.reads;
      totals.writes += r.work.writes;
      totals.integrityErrors += r.work.integrityErrors;
      totals.staleReads += r.work.staleReads;
      totals.bytesWritten += r.work.bytesWritten;
      totals.bytesVerified += r.work.bytesVerified;
    }
    const gpu = vcpus[0]?.gpu;
    const crashes = vcpus.flatMap((r) => (r.crash ? [`vCPU ${r.vcpu}: ${r.crash}`] : []));
    if (gpu?.error !== undefined) crashes.push(`vCPU 0: virtio-gpu driver: ${gpu.error}`);
    return { vcpus, totals, barFaultNs, floorNs, crashes, samples: vcpus.flatMap((r) => r.work.samples), ...(gpu ? { gpu } : {}) };
  }
}
