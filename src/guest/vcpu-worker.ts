/**
 * Worker-thread entry of one synthetic guest vCPU: a SimCpu running a Workload until the machine
 * asks it to stop, then one result message with its counters and its fault-latency histogram.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native } from '../native/index.js';
import { DomainCrash, SimCpu, VcpuStopped } from '../platform/sim/cpu.js';
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
}

function run(data: VcpuWorkerData): VcpuResult {
  if (data.cpus.length > 0) native.pinThread([...data.cpus]);
  const hist = latencyHistogram();
  const cpu = new SimCpu(data.config, data.buffers, data.vcpu, { retryCap: data.retryCap, onIoreqDone: (ns) => { record(hist, ns); } });
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
  return { vcpu: data.vcpu, cpu: cpu.counters, work: work.counters, ioreqHist: encode(hist), ...(crash ? { crash } : {}) };
}

parentPort?.postMessage(run(workerData as VcpuWorkerData));
