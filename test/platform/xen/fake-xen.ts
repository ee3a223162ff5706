/**
 * Fake Xen libraries behind the platform's XenLibs interfaces, for tests on a machine without Xen.
 *
 * - The ioreq page is a memfd mapped twice: once for the server (through the addon, like privcmd's
 *   mapping) and once for the test's "guest", so both sides really share one page.
 * - Event channels: the evtchn fd is a non-blocking eventfd on the real native waiter; a guest
 *   "send" queues the local port and bumps the eventfd; notify() records the port and wakes waiters.
 * - Every fallible call counts as one step; `failAt: k` makes step k throw (EIO), so a test can
 *   fail each step in turn. `live()` lists what is still open, created, mapped or bound.
 */
import { ftruncateSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, EFD_NONBLOCK } from '../../../src/native/index.js';
import type { DomainInfo, XenCtrlLib } from '../../../src/platform/xen/ctrl.js';
import type { DeviceModelLib } from '../../../src/platform/xen/devicemodel.js';
import type { EvtchnLib } from '../../../src/platform/xen/evtchn.js';
import { EINVAL, EOPNOTSUPP, ESRCH, XenCallError } from '../../../src/platform/xen/ffi.js';
import type { XenLibs } from '../../../src/platform/xen/hypervisor.js';
import type { PrivcmdLib } from '../../../src/platform/xen/privcmd.js';
import { IoreqPage } from '../../../src/xen/abi/ioreq.js';

export interface FakeXenOptions {
  domid?: number;
  vcpus?: number;
  type?: DomainInfo['type'];
  /** The hypervisor accepts the retry flag (the extension). */
  retry?: boolean;
  /** XEN_DMOP_get_dm_ext_info's features (the extension, version 1); absent: EOPNOTSUPP (stock Xen). */
  extFeatures?: number;
  failAt?: number;
  /** The domain disappears at this step: every later DM op fails with ESRCH. */
  goneAt?: number;
  exists?: boolean;
  /** The domain instance's handle (hex); a fresh FakeXen with another handle is a reused domid. */
  handle?: string;
  /** Shares the ioreq server records with another FakeXen (a restarted xvgpu). */
  stateDir?: string;
  /** A server left registered by a killed predecessor (it exists from the start). */
  leftoverServer?: number;
}

const EIO = 5;
const ENOENT = 2;
const PAGE = 4096;
const { PROT_READ, PROT_WRITE, MAP_SHARED } = native.mmapConstants;

export class FakeXen {
  readonly calls: string[] = [];
  /** Only the fallible calls, in order: stepNames[k - 1] is what `failAt: k` fails. */
  readonly stepNames: string[] = [];
  readonly notified: number[] = [];
  readonly domid: number;
  readonly vcpus: number;
  /** The guest's view of each server's ioreq page. */
  readonly guestPages = new Map<number, IoreqPage>();
  private steps = 0;
  private readonly open = new Set<string>();
  private readonly servers = new Map<number, { enabled: boolean; ranges: string[] }>();
  private readonly mapped = new Set<ArrayBuffer>();
  private readonly guestMaps: ArrayBuffer[] = [];
  private readonly bound = new Map<number, number>(); // local -> remote
  private readonly pendingPorts: number[] = [];
  private evtchnFd = -1;
  private nextServer = 1;
  private dying = false;
  private nextPort = 40;
  private notifyWaiters: (() => void)[] = [];

  readonly stateDir: string;

  constructor(private readonly o: FakeXenOptions = {}) {
    this.domid = o.domid ?? 7;
    this.vcpus = o.vcpus ?? 2;
    this.stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'fake-xen-state-'));
    if (o.leftoverServer !== undefined) {
      this.servers.set(o.leftoverServer, { enabled: true, ranges: [] });
      this.nextServer = o.leftoverServer + 1;
    }
  }

  /**
   * `xl destroy` while served: Xen destroys the domain's ioreq servers (ioreq_server_destroy_all)
   * and the domain lingers, dying, while our mappings hold its pages: DM ops on a server now fail
   * with ENOENT.
   */
  destroyDomain(): void {
    this.servers.clear();
    this.dying = true;
  }

  /** The servers vanish from a live domain (nothing in Xen does that: an error must surface). */
  forgetServers(): void {
    this.servers.clear();
  }

  /** Steps taken so far (a run with failAt beyond this succeeded). */
  get stepCount(): number {
    return this.steps;
  }

  live(): string[] {
    return [
      ...[...this.open].map((h) => `open ${h}`),
      ...[...this.servers.keys()].map((id) => `server ${id}`),
      ...[...this.mapped].map(() => 'mapping'),
      ...[...this.bound.keys()].map((p) => `port ${p}`),
    ];
  }

  libs(): XenLibs {
    return {
      requireDevices: () => { this.step('requireDevices'); },
      ctrl: () => this.ctrl(),
      devicemodel: () => this.devicemodel(),
      privcmd: () => this.privcmd(),
      evtchn: () => this.evtchn(),
      restrictAll: (domid) => { this.step(`toolcore restrict_all ${domid}`); },
      arch: 'x86',
      stateDir: this.stateDir,
    };
  }

  /** The guest side: vCPU `v` posts `req` in its slot and sends on its event channel. */
  send(server: number, v: number): void {
    const page = this.guestPages.get(server);
    if (!page) throw new Error(`no server ${server}`);
    const remote = page.readVpEport(v);
    const local = [...this.bound].find(([, r]) => r === remote)?.[0];
    if (local === undefined) throw new Error(`vCPU ${v}'s port ${remote} is not bound`);
    this.pendingPorts.push(local);
    native.eventfdWrite(this.evtchnFd, 1);
  }

  /** Resolves at the next notify() from the back-end. */
  nextNotify(): Promise<void> {
    return new Promise((resolve) => { this.notifyWaiters.push(resolve); });
  }

  serverState(id: number): { enabled: boolean; ranges: string[] } | undefined {
    return this.servers.get(id);
  }

  dispose(): void {
    for (const b of this.guestMaps) native.munmap(b);
    this.guestMaps.length = 0;
    if (this.o.stateDir === undefined) rmSync(this.stateDir, { recursive: true, force: true });
  }

  private step(name: string): void {
    this.steps++;
    this.calls.push(name);
    this.stepNames.push(name);
    if (this.steps === this.o.failAt) throw new XenCallError(name, EIO, 'injected failure');
  }

  private dmStep(name: string, domid: number): void {
    this.step(name);
    if (domid !== this.domid || (this.o.goneAt !== undefined && this.steps >= this.o.goneAt)) throw new XenCallError(name, ESRCH, 'No such process');
  }

  private handle(name: string): () => void {
    this.step(`${name} open`);
    this.open.add(name);
    return () => {
      this.calls.push(`${name} close`);
      if (!this.open.delete(name)) throw new Error(`${name} closed twice`);
    };
  }

  private ctrl(): XenCtrlLib {
    const close = this.handle('ctrl');
    return {
      version: () => { this.step('xc_version'); return { major: 4, minor: 17, extra: '.7' }; },
      domainInfo: (domid) => {
        this.step('getdomaininfo');
        if (domid !== this.domid || this.o.exists === false) return undefined;
        return { domid, type: this.o.type ?? 'pvh', dying: false, vcpus: this.vcpus, handle: this.o.handle ?? 'feedface'.repeat(4) };
      },
      maximumGpfn: () => { this.step('maximum_gpfn'); return 0x3ffff; },
      close,
    };
  }

  private devicemodel(): DeviceModelLib {
    const close = this.handle('devicemodel');
    return {
      createIoreqServer: (domid, bufioreq) => {
        this.dmStep(`create_ioreq_server bufioreq=${bufioreq}`, domid);
        return this.newServer();
      },
      mapIoRange: (domid, id, mmio, start, end) => {
        this.dmStep(`map_io_range ${mmio ? 'mmio' : 'port'} ${start.toString(16)}-${end.toString(16)}`, domid);
        this.servers.get(id)?.ranges.push(`${start.toString(16)}-${end.toString(16)}`);
      },
      unmapIoRange: (domid) => { this.dmStep('unmap_io_range', domid); },
      setIoreqServerState: (domid, id, enabled) => {
        this.dmStep(`set_ioreq_server_state ${enabled ? 1 : 0}`, domid);
        const s = this.servers.get(id);
        if (!s && this.dying) throw new XenCallError('set_ioreq_server_state', ENOENT, 'No such file or directory');
        if (s) s.enabled = enabled;
        // Xen writes the vCPUs' ports into the ioreq page only on enable (ioreq_server_enable).
        const page = this.guestPages.get(id);
        if (enabled && page) for (let v = 0; v < this.vcpus; v++) page.writeVpEport(v, 100 + v);
      },
      destroyIoreqServer: (domid, id) => {
        this.calls.push(`destroy_ioreq_server ${id}`);
        if (domid !== this.domid) throw new XenCallError('destroy_ioreq_server', ESRCH, 'No such process');
        if (!this.servers.delete(id)) throw new XenCallError('destroy_ioreq_server', this.dying ? ENOENT : EIO, 'no such server');
      },
      setIsaIrqLevel: (domid, irq, level) => { this.dmStep(`set_isa_irq_level ${irq} ${level ? 1 : 0}`, domid); },
      setIrqLevel: (domid) => { this.dmStep('set_irq_level', domid); },
      restrict: (domid) => { this.step(`devicemodel restrict ${domid}`); },
      close,
    };
  }

  private newServer(): number {
    const id = this.nextServer++;
    this.servers.set(id, { enabled: false, ranges: [] });
    return id;
  }

  private privcmd(): PrivcmdLib {
    const close = this.handle('privcmd');
    return {
      restrict: (domid) => { this.step(`privcmd restrict ${domid}`); },
      mapResource: (domid, type, id, frame, nr) => {
        this.dmStep(`map_resource type=${type} id=${id} frame=${frame} nr=${nr}`, domid);
        if (!this.servers.has(id)) throw new XenCallError('map_resource', EINVAL, 'no such server');
        return this.sharedPage(id);
      },
      mapGuestFrames: (domid, gfns) => {
        this.dmStep('mmapbatch', domid);
        const fd = native.memfdCreate('guest');
        try {
          ftruncateSync(fd, PAGE * gfns.length);
          const b = native.mmap(fd, PAGE * gfns.length, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
          this.mapped.add(b);
          return b;
        } finally {
          native.close(fd);
        }
      },
      unmap: (b) => {
        this.calls.push('unmap');
        if (!this.mapped.delete(b)) throw new Error('unmap of an unknown buffer');
        native.munmap(b);
      },
      createIoreqServerFlagged: (domid, _bufioreq, flags) => {
        this.dmStep(`create_ioreq_server flags=${flags}`, domid);
        if (this.o.retry !== true) throw new XenCallError('XEN_DMOP_create_ioreq_server', EINVAL, 'Invalid argument');
        return this.newServer();
      },
      getDmExtInfo: (domid) => {
        this.dmStep('get_dm_ext_info', domid);
        if (this.o.extFeatures === undefined) throw new XenCallError('XEN_DMOP_get_dm_ext_info', EOPNOTSUPP, 'Operation not supported');
        return { version: 1, features: this.o.extFeatures };
      },
      close,
    };
  }

  /** One memfd page, mapped for the server and for the guest; vp_eports stay 0 until the server is enabled. */
  private sharedPage(id: number): ArrayBuffer {
    const fd = native.memfdCreate(`ioreq-${id}`);
    try {
      ftruncateSync(fd, PAGE);
      const server = native.mmap(fd, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
      const guest = native.mmap(fd, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
      this.guestMaps.push(guest);
      const page = new IoreqPage(guest, 0, this.vcpus);
      this.guestPages.set(id, page);
      this.mapped.add(server);
      return server;
    } finally {
      native.close(fd);
    }
  }

  private evtchn(): EvtchnLib {
    const closeHandle = this.handle('evtchn');
    this.evtchnFd = native.eventfd(0, EFD_NONBLOCK);
    const fd = this.evtchnFd;
    return {
      fd,
      bindInterdomain: (domid, remote) => {
        this.dmStep(`bind_interdomain ${remote}`, domid);
        // Only a port Xen allocated for a vCPU is unbound in the guest; port 0 (unpublished) is EINVAL.
        if (remote < 100 || remote >= 100 + this.vcpus) throw new XenCallError('xenevtchn_bind_interdomain', EINVAL, 'Invalid argument');
        const local = this.nextPort++;
        this.bound.set(local, remote);
        return local;
      },
      unbind: (port) => {
        this.calls.push(`unbind ${port}`);
        if (!this.bound.delete(port)) throw new Error(`unbind of unbound port ${port}`);
      },
      restrict: (domid) => { this.step(`evtchn restrict ${domid}`); },
      pending: (out) => {
        native.eventfdRead(fd);
        let n = 0;
        while (n < out.length && this.pendingPorts.length > 0) out[n++] = this.pendingPorts.shift() ?? 0;
        return n;
      },
      unmask: (port) => { this.calls.push(`unmask ${port}`); },
      notify: (port) => {
        this.notified.push(port);
        const waiters = this.notifyWaiters;
        this.notifyWaiters = [];
        for (const w of waiters) w();
      },
      close: () => {
        closeHandle();
        native.close(fd);
      },
    };
  }
}
