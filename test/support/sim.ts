/** Test fixtures: a small simulated platform + back-end, and a "Xen" that posts ioreqs by hand. */
import { Backend } from '../../src/backend.js';
import { DEFAULT_POLICY, type BarPolicy } from '../../src/bar/manager.js';
import { createSimPlatform, type SimPlatform, type SimPlatformOptions } from '../../src/platform/sim/index.js';
import type { MachineConfig } from '../../src/platform/sim/machine.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { IOREQ_TYPE_COPY, IoreqPage, STATE_IOREQ_NONE, STATE_IOREQ_READY, emptyIoreq, type Ioreq } from '../../src/xen/abi/ioreq.js';

export const BAR_BASE = 0x1_0000_0000;

export function machine(over: Partial<MachineConfig> = {}): MachineConfig {
  return { vcpus: 2, barBase: BAR_BASE, barPages: 2048, hostFrames: 8192, guestRamBytes: 1 << 16, ...over };
}

export interface Fixture {
  readonly platform: SimPlatform;
  readonly backend: Backend;
}

export function fixture(policy: Partial<BarPolicy> = {}, over: Partial<SimPlatformOptions> = {}): Fixture {
  const m = over.machine ?? machine();
  const platform = createSimPlatform({ machine: m, xen: { retry: true }, ...over });
  const backend = new Backend(platform, { barBase: m.barBase, barPages: m.barPages, policy: { ...DEFAULT_POLICY, ...policy } }, silentLogger());
  backend.start();
  return { platform, backend };
}

export function request(over: Partial<Ioreq>): Ioreq {
  return { ...emptyIoreq(), count: 1, size: 8, type: IOREQ_TYPE_COPY, state: STATE_IOREQ_READY, ...over };
}

/**
 * Plays Xen for one vCPU: posts `req` in the vCPU's slot, sends on its channel and waits (yielding
 * to the event loop, where the server runs) until the slot is answered. Returns the answered slot.
 */
export async function exchange(p: SimPlatform, vcpu: number, req: Partial<Ioreq>): Promise<Ioreq> {
  const server = p.xen.views;
  const page = ioreqPage(p);
  page.post(vcpu, request({ vpEport: page.readVpEport(vcpu), ...req }));
  server.sendToServer(Atomics.load(server.ctl, server.boundPortIndex(vcpu)));
  for (let i = 0; i < 10_000; i++) {
    const st = page.loadState(vcpu);
    if (st !== STATE_IOREQ_READY && st !== 2) {
      const out = page.read(vcpu, emptyIoreq());
      page.transitionState(vcpu, st, STATE_IOREQ_NONE);
      return out;
    }
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('ioreq was never answered');
}

export function ioreqPage(p: SimPlatform): IoreqPage {
  return new IoreqPage(p.xen.buffers.ioreq, 0, p.xen.vcpus);
}
