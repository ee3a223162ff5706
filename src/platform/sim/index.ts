/** The embedded simulated platform (`--platform sim`, the default `npm start` runs). */
import type { GpuPort, HypervisorPort, KernelHelperPort } from '../ports.js';
import { HostMemory } from './host-memory.js';
import { MachineViews, type MachineConfig } from './machine.js';
import { SimGpu, type SimGpuOptions } from './gpu.js';
import { SimKernelHelper, type SimHelperHooks } from './kernel-helper.js';
import { SimMm } from './mm.js';
import { SimXen, type SimXenOptions } from './xen.js';

export interface SimPlatformOptions {
  readonly machine: MachineConfig;
  readonly xen: SimXenOptions;
  readonly gpu?: SimGpuOptions;
  readonly helperHooks?: SimHelperHooks;
}

export interface SimPlatform {
  readonly hv: HypervisorPort;
  readonly helper: KernelHelperPort;
  readonly gpu: GpuPort;
  readonly xen: SimXen;
  readonly simGpu: SimGpu;
  readonly mm: SimMm;
  readonly memory: HostMemory;
}

export function createSimPlatform(o: SimPlatformOptions): SimPlatform {
  const xen = new SimXen(o.machine, o.xen);
  const memory = new HostMemory(new MachineViews(o.machine, xen.buffers));
  const mm = new SimMm();
  const simGpu = new SimGpu(memory, mm, o.gpu);
  const helper = new SimKernelHelper(mm, xen, xen.buffers.host, o.helperHooks);
  return { hv: xen, helper, gpu: simGpu, xen, simGpu, mm, memory };
}
