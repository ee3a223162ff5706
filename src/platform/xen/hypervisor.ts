/**
 * The HypervisorPort on real Xen: xvgpu as an IOREQ server of one HVM/PVH guest.
 *
 * open(): check the host, ask libxenctrl about the domain (then close it: it cannot be restricted),
 * open libxendevicemodel and privcmd and restrict both to the domain, then every other handle the
 * libraries hold (xentoolcore_restrict_all, confine.ts), probe the retry extension.
 * createIoreqServer(): create (buffered ioreqs off), map the synchronous ioreq page with
 * XENMEM_acquire_resource (type 0 = ioreq server, frame 1 = ioreq page 0; public/memory.h).
 * openEventChannels(): libxenevtchn restricted to the domain, its fd on the native waiter.
 *
 * Every resource is pushed on a teardown stack as it is created: a failure at any step, and
 * close(), undo everything in reverse. The libraries come in through `XenLibs`, so the tests run
 * all of this against fakes (test/platform/xen/).
 */
import type { EventChannels, HypervisorCaps, HypervisorPort, IoRangeKind, IoreqServerHandle } from '../ports.js';
import { IOREQ_SLOTS_PER_PAGE, IoreqPage } from '../../xen/abi/ioreq.js';
import { ConfigError } from '../../backend.js';
import { openXenCtrl, type DomainInfo, type XenCtrlLib } from './ctrl.js';
import { restrictAllXenHandles } from './confine.js';
import { probeDmExtension, type DmExtension } from './dm-ext.js';
import { openDeviceModel, type DeviceModelLib } from './devicemodel.js';
import { XenEventChannels } from './event-channels.js';
import { openEvtchn, type EvtchnLib } from './evtchn.js';
import { EINVAL, ENOENT, ESRCH, XenCallError, requireXenDevices } from './ffi.js';
import { XenGuestMemory } from './guest-memory.js';
import {
  HVM_IOREQSRV_BUFIOREQ_OFF,
  PAGE_SIZE,
  XENMEM_RESOURCE_IOREQ_SERVER,
  XEN_DMOP_IOREQ_SERVER_RETRY,
  ioreqServerFrameIoreq,
  openPrivcmd,
  type PrivcmdLib,
} from './privcmd.js';
import { processAlive, readServerRecord, recordPath, removeServerRecord, writeServerRecord } from './server-record.js';
import { Teardown, type UndoStep } from './teardown.js';

/** Where the Xen libraries come from: the real ones, or fakes in tests. */
export interface XenLibs {
  requireDevices(): void;
  ctrl(): XenCtrlLib;
  devicemodel(): DeviceModelLib;
  privcmd(): PrivcmdLib;
  evtchn(): EvtchnLib;
  /** xentoolcore_restrict_all: every handle the Xen libraries hold, e.g. libxendevicemodel's own xencall (confine.ts). */
  restrictAll(domid: number): void;
  /** x86: interrupts are ISA IRQ lines; arm: SPIs (XEN_DMOP_set_irq_level). */
  readonly arch: 'x86' | 'arm';
  /** Where the records of the ioreq servers xvgpu created live (server-record.ts). */
  readonly stateDir: string;
}

export const realXenLibs: XenLibs = {
  requireDevices: () => { requireXenDevices(); },
  ctrl: openXenCtrl,
  devicemodel: openDeviceModel,
  privcmd: openPrivcmd,
  evtchn: openEvtchn,
  restrictAll: restrictAllXenHandles,
  arch: process.arch === 'arm64' ? 'arm' : 'x86',
  stateDir: '/run/xvgpu',
};

/** DOMID_FIRST_RESERVED (public/xen.h): ids from here on are DOMID_SELF, DOMID_IO and friends. */
export const DOMID_FIRST_RESERVED = 0x7ff0;

/** The domain cannot be served (missing, dying, PV, too many vCPUs) or vanished: one line. */
export class XenDomainError extends ConfigError {
  override readonly name = 'XenDomainError';
}

function explain(e: unknown, domid: number): unknown {
  if (e instanceof XenCallError && e.errno === ESRCH) return new XenDomainError(`domain ${domid} is gone (${e.fn}: ESRCH)`);
  return e;
}

function checkServable(domid: number, info: DomainInfo | undefined): DomainInfo {
  if (!info) throw new XenDomainError(`domain ${domid} does not exist`);
  if (info.dying) throw new XenDomainError(`domain ${domid} is dying`);
  if (info.type === 'pv') throw new XenDomainError(`domain ${domid} is a PV guest: xvgpu serves HVM and PVH guests (ioreq servers and p2m mappings need a translated guest)`);
  if (info.vcpus < 1 || info.vcpus > IOREQ_SLOTS_PER_PAGE) throw new XenDomainError(`domain ${domid} has ${info.vcpus} vCPUs: one ioreq page serves 1..${IOREQ_SLOTS_PER_PAGE}`);
  return info;
}

/** Whether Xen accepts the retry flag (the proposed extension); stock Xen refuses it with EINVAL. */
export function probeRetry(privcmd: PrivcmdLib, dm: DeviceModelLib, domid: number): boolean {
  let id: number;
  try {
    id = privcmd.createIoreqServerFlagged(domid, HVM_IOREQSRV_BUFIOREQ_OFF, XEN_DMOP_IOREQ_SERVER_RETRY);
  } catch (e) {
    if (e instanceof XenCallError && e.errno === EINVAL) return false;
    throw e;
  }
  dm.destroyIoreqServer(domid, id);
  return true;
}

export class XenHypervisor implements HypervisorPort {
  readonly kind = 'xen';
  readonly caps: HypervisorCaps;
  readonly vcpus: number;
  readonly domainType: DomainInfo['type'];
  /** xvgpu's Xen extension as XEN_DMOP_get_dm_ext_info reports it, or null (stock Xen). */
  readonly extension: DmExtension | null;
  /** The server a killed predecessor left registered and this run destroyed (server-record.ts). */
  reclaimedServer: number | undefined;
  private readonly handle: string;
  private memory: XenGuestMemory | undefined;

  private constructor(
    readonly domid: number,
    info: DomainInfo,
    private readonly maxGfn: number,
    retry: boolean,
    extension: DmExtension | null,
    private readonly dm: DeviceModelLib,
    private readonly privcmd: PrivcmdLib,
    private readonly libs: XenLibs,
    private readonly teardown: Teardown,
  ) {
    // A server created with the retry flag gets Xen's offer bit on each request (patch 0003).
    this.caps = { retry, retryOffer: retry };
    this.extension = extension;
    this.vcpus = info.vcpus;
    this.domainType = info.type;
    this.handle = info.handle;
  }

  /** Everything up to (not including) the ioreq server; nothing stays open if it throws. */
  static open(domid: number, libs: XenLibs = realXenLibs): XenHypervisor {
    if (!Number.isInteger(domid) || domid < 1 || domid >= DOMID_FIRST_RESERVED) {
      throw new XenDomainError(`domain id ${domid} cannot be served (1..${DOMID_FIRST_RESERVED - 1})`);
    }
    const t = new Teardown();
    try {
      libs.requireDevices();
      const { info, maxGfn } = queryDomain(libs, domid);
      const dm = libs.devicemodel();
      t.push('xendevicemodel_close', () => { dm.close(); });
      dm.restrict(domid);
      const privcmd = libs.privcmd();
      t.push('privcmd close', () => { privcmd.close(); });
      privcmd.restrict(domid);
      // Before the evtchn handle exists: a second restriction of an evtchn fd is refused.
      libs.restrictAll(domid);
      const retry = probeRetry(privcmd, dm, domid);
      const extension = probeDmExtension(privcmd, domid);
      return new XenHypervisor(domid, info, maxGfn, retry, extension, dm, privcmd, libs, t);
    } catch (e) {
      t.run();
      throw explain(e, domid);
    }
  }

  createIoreqServer(): IoreqServerHandle {
    const { dm, privcmd, domid } = this;
    const dir = this.libs.stateDir;
    try {
      this.reclaimPredecessorServer();
      const id = this.caps.retry
        ? privcmd.createIoreqServerFlagged(domid, HVM_IOREQSRV_BUFIOREQ_OFF, XEN_DMOP_IOREQ_SERVER_RETRY)
        : dm.createIoreqServer(domid, HVM_IOREQSRV_BUFIOREQ_OFF);
      const destroyStep = this.teardown.push(`destroy ioreq server ${id}`, () => {
        ifServerExists(() => { dm.destroyIoreqServer(domid, id); });
        removeServerRecord(dir, domid);
      });
      let buffer: ArrayBuffer;
      try {
        writeServerRecord(dir, { domid, handle: this.handle, server: id, pid: process.pid });
        buffer = privcmd.mapResource(domid, XENMEM_RESOURCE_IOREQ_SERVER, id, ioreqServerFrameIoreq(0), 1);
      } catch (e) {
        destroyStep.runNow();
        throw e;
      }
      const unmapStep = this.teardown.push(`unmap ioreq page of server ${id}`, () => { privcmd.unmap(buffer); });
      return new XenIoreqServer(dm, domid, id, new IoreqPage(buffer, 0, this.vcpus), () => {
        unmapStep.runNow();
        destroyStep.runNow();
      });
    } catch (e) {
      throw explain(e, domid);
    }
  }

  /**
   * Destroys the server a previous xvgpu created for this domain instance and could not destroy
   * (killed), so it neither keeps claiming our ranges nor holds one of Xen's 8 server slots. A
   * live predecessor is refused: two back-ends on one guest would fight over the same ranges.
   */
  private reclaimPredecessorServer(): void {
    const dir = this.libs.stateDir;
    const r = readServerRecord(dir, this.domid);
    if (!r) return;
    if (r.handle === this.handle) {
      if (r.pid !== process.pid && processAlive(r.pid)) {
        throw new XenDomainError(`domain ${this.domid} is already served by process ${r.pid} (ioreq server ${r.server}; record ${recordPath(dir, this.domid)})`);
      }
      ifServerExists(() => { this.dm.destroyIoreqServer(this.domid, r.server); });
      this.reclaimedServer = r.server;
    }
    // A record of another instance of this domid: its servers died with it.
    removeServerRecord(dir, this.domid);
  }

  openEventChannels(): EventChannels {
    const ev = this.libs.evtchn();
    const held: { step?: UndoStep } = {};
    try {
      ev.restrict(this.domid);
    } catch (e) {
      ev.close();
      throw explain(e, this.domid);
    }
    const channels = new XenEventChannels(ev, this.domid, () => { held.step?.forget(); });
    held.step = this.teardown.push('event channels', () => { channels.close(); });
    return channels;
  }

  guestMemory(): XenGuestMemory {
    if (!this.memory) {
      const mem = new XenGuestMemory(this.privcmd, this.domid, (this.maxGfn + 1) * PAGE_SIZE);
      // Pages are unmapped before the privcmd handle that mapped them closes (the stack is LIFO).
      this.teardown.push('guest memory', () => { mem.close(); });
      this.memory = mem;
    }
    return this.memory;
  }

  setIrqLevel(irq: number, level: boolean): void {
    // Xen 4.17's XEN_DMOP_set_isa_irq_level does not check the domain has an emulated PIC: on a
    // PVH domain it runs vpic_irq_positive_edge() over the never-initialised vpic[0] (is_master is
    // 0, so it "asserts the slave line" in vpic[-1]), and walks backwards through struct
    // hvm_domain, corrupting the hvm_irq pointer in front of vpic[] (seen in the Xen tier: a GPF in
    // hvm_vcpu_has_pending_irq with that pointer's low byte |= 4 and its top byte cleared).
    if (this.libs.arch === 'x86' && this.domainType !== 'hvm') {
      throw new XenDomainError(`domain ${this.domid} is ${this.domainType.toUpperCase()}: it has no emulated PIC or IO-APIC, so it cannot be given an ISA interrupt (and Xen 4.17 corrupts its state if asked to)`);
    }
    try {
      if (this.libs.arch === 'x86') this.dm.setIsaIrqLevel(this.domid, irq, level);
      else this.dm.setIrqLevel(this.domid, irq, level);
    } catch (e) {
      throw explain(e, this.domid);
    }
  }

  /** Resources still held (for tests and the status line): 0 after close(). */
  get heldResources(): number {
    return this.teardown.size;
  }

  close(): Promise<void> {
    const failures = this.teardown.run();
    this.memory = undefined;
    return failures.length === 0 ? Promise.resolve() : Promise.reject(new Error(`xen teardown: ${failures.join('; ')}`));
  }
}

/** Asks libxenctrl what it must and closes it at once (it cannot be restricted to one domain). */
function queryDomain(libs: XenLibs, domid: number): { info: DomainInfo; maxGfn: number } {
  const ctrl = libs.ctrl();
  try {
    const info = checkServable(domid, ctrl.domainInfo(domid));
    return { info, maxGfn: ctrl.maximumGpfn(domid) };
  } finally {
    ctrl.close();
  }
}

/**
 * Runs a step that disables or destroys our ioreq server, unless the server is already gone: a
 * domain being destroyed destroys its ioreq servers itself (ioreq_server_destroy_all(), from
 * hvm_domain_relinquish_resources()), after which Xen answers ENOENT (the domain lingers, dying,
 * while we still map its pages) or ESRCH (it is gone). Either way nothing of the server is left.
 */
function ifServerExists(step: () => void): void {
  try {
    step();
  } catch (e) {
    if (e instanceof XenCallError && (e.errno === ENOENT || e.errno === ESRCH)) return;
    throw e;
  }
}

class XenIoreqServer implements IoreqServerHandle {
  private destroyed = false;

  constructor(
    private readonly dm: DeviceModelLib,
    private readonly domid: number,
    readonly id: number,
    readonly page: IoreqPage,
    private readonly release: () => void,
  ) {}

  mapRange(kind: IoRangeKind, start: number, end: number): void {
    this.explained(() => { this.dm.mapIoRange(this.domid, this.id, kind === 'mmio', start, end); });
  }

  unmapRange(kind: IoRangeKind, start: number, end: number): void {
    this.explained(() => { this.dm.unmapIoRange(this.domid, this.id, kind === 'mmio', start, end); });
  }

  setEnabled(enabled: boolean): void {
    const set = (): void => { this.dm.setIoreqServerState(this.domid, this.id, enabled); };
    // Disabling a server the dying domain already destroyed leaves it disabled: nothing to do.
    this.explained(enabled ? set : () => { ifServerExists(set); });
  }

  private explained(op: () => void): void {
    try {
      op();
    } catch (e) {
      throw explain(e, this.domid);
    }
  }

  /** Unmaps the page and destroys the server (Xen drops its ranges with it). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.release();
  }
}
