/**
 * Worker-thread entry of one synthetic guest vCPU: a SimCpu running a Workload until the machine
 * asks it to stop, then the floor probes, then one result message with its counters and its
 * histograms (BAR exits in the workload's window; floor probes).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native } from '../native/index.js';
import { DomainCrash, SimCpu, SimP2mMemory, VcpuStopped, type BarMemory } from '../platform/sim/cpu.js';
import { SoftP2mMemory, type KernelSoftMemory } from '../platform/linux/soft-p2m-memory.js';
import type { MachineBuffers, MachineConfig } from '../platform/sim/machine.js';
import { encode } from '../telemetry/histogram.js';
import { IoreqRecorder } from '../telemetry/ioreq-recorder.js';
import { Workload, type WorkloadCounters, type WorkloadSpec } from './workload.js';
import { MemcpyWorkload } from './memcpy.js';
import type { VcpuResult } from './synthetic.js';
import { bootGpu, teardownGpu, type GuestGpuPlan, type GpuGuestResult } from './gpu-guest.js';
import { CTL_GUEST_BOOT, CTL_GUEST_DONE, CTL_STOP, CTL_SWEEP_DONE, PAGE_SIZE } from '../platform/sim/machine.js';

export interface VcpuWorkerData {
  readonly config: MachineConfig;
  readonly buffers: MachineBuffers;
  readonly vcpu: number;
  readonly retryCap: boolean;
  readonly workload: WorkloadSpec;
  /** CPUs this vCPU's thread may run on (empty: anywhere). */
  readonly cpus: readonly number[];
  /** Where mapped BAR pages live: the simulated p2m, or the kernel helper's soft p2m (its fd, and a placement board when frames move). */
  readonly memory: { readonly kind: 'sim' } | KernelSoftMemory;
  /** The blobs come from the virtio-gpu device: vCPU 0 sets it up and tears it down. */
  readonly gpu?: GuestGpuPlan;
  /** After the workload, measure the floor: loads from a region whose handler answers at once. */
  readonly floorProbe?: FloorProbe;
}

export interface FloorProbe {
  /** Guest-physical address of the null region (outside the BAR and the device's registers). */
  readonly gpa: number;
  /** Loads timed, after `warmup` untimed ones. */
  readonly rounds: number;
  readonly warmup: number;
}

/** What one vCPU measured in the workload's window, on its own clock. */
export interface WindowMeasures {
  /** Workload start → its first access completed (0: the workload never ran). */
  firstAccessNs: number;
  /** Workload start → end (its sweep share done, or the stop seen). */
  workloadNs: number;
  /** Sweeps: workload start → this vCPU's share done; null if it is not a sweep or did not finish. */
  sweepNs: number | null;
  /** Time blocked in BAR exits. */
  blockedNs: number;
  /** Guest memory accesses the workload made, and how many of them exited on the BAR. */
  accesses: number;
  barExits: number;
}

/** What runWorkload drives: one guest memory operation per step. */
interface GuestWork {
  readonly counters: WorkloadCounters;
  readonly finished: boolean;
  step(cpu: SimCpu): void;
}

function workloadFor(data: VcpuWorkerData): GuestWork {
  const { workload, vcpu, config } = data;
  return workload.pattern === 'memcpy' ? new MemcpyWorkload(workload, vcpu, config.vcpus, new Uint8Array(data.buffers.ram)) : new Workload(workload, vcpu, config.vcpus);
}

function barMemory(data: VcpuWorkerData): BarMemory {
  return data.memory.kind === 'sim' ? new SimP2mMemory(data.config, data.buffers, data.vcpu) : SoftP2mMemory.forWorker(data.memory, data.config);
}

function run(data: VcpuWorkerData): VcpuResult {
  if (data.cpus.length > 0) native.pinThread([...data.cpus]);
  const rec = new IoreqRecorder(data.config.barBase, data.config.barBase + data.config.barPages * PAGE_SIZE, data.floorProbe?.gpa ?? -1);
  const cpu = new SimCpu(data.config, data.buffers, data.vcpu, barMemory(data), { retryCap: data.retryCap, onIoreqDone: rec.onIoreqDone });
  const work = workloadFor(data);
  let window: WindowMeasures = { firstAccessNs: 0, workloadNs: 0, sweepNs: null, blockedNs: 0, accesses: 0, barExits: 0 };
  let crash: string | undefined;
  let gpu: GpuGuestResult | undefined;
  cpu.online();
  try {
    if (data.gpu) gpu = bootOrWait(cpu, data);
    if (gpu?.error === undefined) window = runWorkload(cpu, work, rec);
    if (data.floorProbe) probeFloor(cpu, data.floorProbe, rec);
    if (data.gpu) finish(cpu, data, gpu);
  } catch (e) {
    if (e instanceof DomainCrash) crash = e.message;
    else if (!(e instanceof VcpuStopped)) throw e;
  } finally {
    cpu.offline();
  }
  const mem = { staleAccesses: cpu.memory.staleAccesses, flushAcks: cpu.memory.flushAcks };
  return {
    vcpu: data.vcpu, cpu: cpu.counters, mem, window, work: work.counters,
    barFaultHist: encode(rec.barFaultNs), floorHist: encode(rec.floorNs),
    ...(crash ? { crash } : {}), ...(gpu ? { gpu } : {}),
  };
}

/**
 * Runs the workload until stop (or, for a sweep, until this vCPU's share is done, then halts until
 * stop). The window opens at the workload's first access: boot is outside it.
 */
function runWorkload(cpu: SimCpu, work: GuestWork, rec: IoreqRecorder): WindowMeasures {
  const accesses0 = cpu.counters.accesses;
  rec.phase = 'workload';
  const t0 = performance.now();
  work.step(cpu);
  const firstAccessNs = (performance.now() - t0) * 1e6;
  let sweepNs: number | null = null;
  while (!cpu.stopRequested()) {
    for (let i = 0; i < 256; i++) work.step(cpu);
    if (work.finished) {
      sweepNs = (performance.now() - t0) * 1e6;
      break;
    }
  }
  const workloadNs = (performance.now() - t0) * 1e6;
  rec.phase = 'outside';
  const window = { firstAccessNs, workloadNs, sweepNs, blockedNs: rec.blockedNs, accesses: cpu.counters.accesses - accesses0, barExits: rec.barExits };
  if (sweepNs !== null) {
    Atomics.add(cpu.ctl, CTL_SWEEP_DONE, 1);
    Atomics.notify(cpu.ctl, CTL_SWEEP_DONE); // the main thread ends the window without waiting for its tick
    cpu.idleUntil(CTL_STOP, () => cpu.stopRequested());
  }
  return window;
}

/** The floor: the same exit, event channel, waiter and answer as a fault, to a handler that does nothing. */
function probeFloor(cpu: SimCpu, probe: FloorProbe, rec: IoreqRecorder): void {
  for (let i = 0; i < probe.warmup; i++) cpu.load64(probe.gpa);
  rec.phase = 'floor';
  for (let i = 0; i < probe.rounds; i++) cpu.load64(probe.gpa);
  rec.phase = 'outside';
}

/** vCPU 0 brings the GPU up and places the blobs; the others halt until it is done. */
function bootOrWait(cpu: SimCpu, data: VcpuWorkerData): GpuGuestResult | undefined {
  const ctl = cpu.ctl;
  if (data.vcpu !== 0 || !data.gpu) {
    cpu.idleUntil(CTL_GUEST_BOOT, () => Atomics.load(ctl, CTL_GUEST_BOOT) !== 0);
    return Atomics.load(ctl, CTL_GUEST_BOOT) === 1 ? undefined : { error: 'the boot vCPU failed to set up the GPU' } as GpuGuestResult;
  }
  let r: GpuGuestResult | undefined;
  try {
    r = bootGpu(cpu, new Uint8Array(data.buffers.ram), data.gpu);
    return r;
  } finally {
    // Set whatever happened (a domain crash mid-boot included): nobody may wait on it forever.
    Atomics.store(ctl, CTL_GUEST_BOOT, r?.error === undefined && r !== undefined ? 1 : 2);
    Atomics.notify(ctl, CTL_GUEST_BOOT); // wakes the halted vCPUs and the main thread's waitAsync
  }
}

/** Every vCPU reports done; vCPU 0 waits for the others, then unmaps and frees the blobs. */
function finish(cpu: SimCpu, data: VcpuWorkerData, gpu: GpuGuestResult | undefined): void {
  const ctl = cpu.ctl;
  if (data.vcpu !== 0 || !data.gpu || !gpu || gpu.error !== undefined) {
    Atomics.add(ctl, CTL_GUEST_DONE, 1);
    Atomics.notify(ctl, CTL_GUEST_DONE);
    return;
  }
  const others = data.config.vcpus - 1;
  if (!cpu.idleUntil(CTL_GUEST_DONE, () => Atomics.load(ctl, CTL_GUEST_DONE) >= others)) return;
  teardownGpu(cpu, data.gpu, gpu);
}

parentPort?.postMessage(run(workerData as VcpuWorkerData));
