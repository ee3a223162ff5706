/**
 * Worker-thread entry of one synthetic guest vCPU: a SimCpu running a Workload until the machine
 * asks it to stop, then one result message with its counters and its fault-latency histogram.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native } from '../native/index.js';
import { DomainCrash, SimCpu, SimP2mMemory, VcpuStopped, type BarMemory } from '../platform/sim/cpu.js';
import { SoftP2mMemory } from '../platform/linux/soft-p2m-memory.js';
import type { MachineBuffers, MachineConfig } from '../platform/sim/machine.js';
import { encode, latencyHistogram, record } from '../telemetry/histogram.js';
import { Workload, type WorkloadSpec } from './workload.js';
import type { VcpuResult } from './synthetic.js';

export interface VcpuWorkerData {
  readonly config: MachineConfig;
  readonly buffers: MachineBuffers;
  readonly vcpu: number;
  readonly retryCap: boolean;
  readonly workload: WorkloadSpec;
  /** CPUs this vCPU's thread may run on (empty: anywhere). */
  readonly cpus: readonly number[];
  /** Where mapped BAR pages live: the simulated p2m, or the kernel helper's soft p2m (its fd). */
  readonly memory: { readonly kind: 'sim' } | { readonly kind: 'kernel-soft'; readonly helperFd: number };
}

function barMemory(data: VcpuWorkerData): BarMemory {
  return data.memory.kind === 'sim' ? new SimP2mMemory(data.config, data.buffers, data.vcpu) : new SoftP2mMemory(data.memory.helperFd);
}

function run(data: VcpuWorkerData): VcpuResult {
  if (data.cpus.length > 0) native.pinThread([...data.cpus]);
  const hist = latencyHistogram();
  const cpu = new SimCpu(data.config, data.buffers, data.vcpu, barMemory(data), { retryCap: data.retryCap, onIoreqDone: (ns) => { record(hist, ns); } });
  const work = new Workload(data.workload, data.vcpu, data.config.vcpus);
  let crash: string | undefined;
  cpu.online();
  try {
    while (!cpu.stopRequested()) {
      for (let i = 0; i < 256; i++) work.step(cpu);
    }
  } catch (e) {
    if (e instanceof DomainCrash) crash = e.message;
    else if (!(e instanceof VcpuStopped)) throw e;
  } finally {
    cpu.offline();
  }
  const mem = { staleAccesses: cpu.memory.staleAccesses, flushAcks: cpu.memory.flushAcks };
  return { vcpu: data.vcpu, cpu: cpu.counters, mem, work: work.counters, ioreqHist: encode(hist), ...(crash ? { crash } : {}) };
}

parentPort?.postMessage(run(workerData as VcpuWorkerData));
