/**
 * The ioreq server loop (D6: one code path for the simulation and Xen):
 *
 *   event channel fires → unmask → slot READY→INPROCESS → decode → validate → dispatch by region →
 *   write data (reads) → INPROCESS→IORESP_READY or IORESP_RETRY → notify the vCPU's channel
 *
 * INVALIDATE (after dropping cached guest-RAM mappings) and TIMEOFFSET are acknowledged (Xen
 * broadcasts them to every server). Requests outside
 * every region read as all ones and their writes are dropped. Every refusal is counted and logged at
 * most once a second per reason. A handler may answer synchronously (the fast path: nothing is
 * allocated) or return a promise (it had to wait, e.g. for an invalidation in flight).
 */
import {
  IOREQ_READ,
  IOREQ_TYPE_INVALIDATE,
  IOREQ_TYPE_TIMEOFFSET,
  STATE_IOREQ_INPROCESS,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
  STATE_IORESP_RETRY,
  emptyIoreq,
  type Ioreq,
  type IoreqPage,
} from '../xen/abi/ioreq.js';
import type { EventChannels, GuestMemory, HypervisorPort, IoreqServerHandle } from '../platform/ports.js';
import { latencyHistogram, record, type Histogram } from '../telemetry/histogram.js';
import type { Logger } from '../telemetry/log.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { BAD_IOREQ_NAMES, BadIoreq, allOnes, validateIoreq } from './validate.js';
import { isStringAccess, repExtent } from './rep.js';

/** What a handler fills in: data for a read, or `retry` to have the vCPU re-execute. */
export interface IoAnswer {
  retry: boolean;
  lo: number;
  hi: number;
}

export interface IoRegion {
  readonly name: string;
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
  /**
   * The handler serves string requests (count > 1, data_is_ptr). Others never see one: the server
   * refuses it (counted as `string_unsupported`), so a register file cannot be fed a guest pointer.
   */
  readonly acceptsStrings?: boolean;
  /** Where the server files the service time (slot taken → answer) of the ioreqs this region served. */
  readonly serviceNs?: Histogram;
  handle(req: Ioreq, vcpu: number, out: IoAnswer): void | Promise<void>;
}

export interface ServerCounters {
  requests: number;
  invalidates: number;
  timeoffsets: number;
  spurious: number;
  unclaimed: number;
  bad: number;
  handlerErrors: number;
  answeredReady: number;
  answeredRetry: number;
  /** The slot left INPROCESS while we served it (only a misbehaving guest or Xen can do that). */
  slotLost: number;
  badByReason: Record<string, number>;
}

export class IoreqServer {
  readonly counters: ServerCounters = {
    requests: 0, invalidates: 0, timeoffsets: 0, spurious: 0, unclaimed: 0, bad: 0, handlerErrors: 0,
    answeredReady: 0, answeredRetry: 0, slotLost: 0, badByReason: {},
  };
  /** Server-side service time, slot taken → answer published. */
  readonly serviceNs: Histogram = latencyHistogram();
  private readonly regions: IoRegion[] = [];
  private readonly rlog: RateLimitedLog;
  private handle: IoreqServerHandle | undefined;
  private page: IoreqPage | undefined;
  private evtchn: EventChannels | undefined;
  private portOfVcpu: Int32Array;
  private readonly vcpuOfPort = new Map<number, number>();
  private readonly reqs: Ioreq[];
  private readonly answers: IoAnswer[];
  private readonly started: Float64Array;
  /** Per vCPU: the region serving its ioreq now (undefined: none, or the server itself). */
  private readonly servedBy: (IoRegion | undefined)[];
  /** Guest RAM size, the bound every data_is_ptr request is checked against. */
  private readonly ramBytes: number;
  private readonly guestMemory: GuestMemory;

  constructor(private readonly hv: HypervisorPort, private readonly log: Logger) {
    this.guestMemory = hv.guestMemory();
    this.ramBytes = this.guestMemory.size;
    this.rlog = new RateLimitedLog(log);
    this.portOfVcpu = new Int32Array(hv.vcpus);
    this.reqs = Array.from({ length: hv.vcpus }, emptyIoreq);
    this.answers = Array.from({ length: hv.vcpus }, () => ({ retry: false, lo: 0, hi: 0 }));
    this.started = new Float64Array(hv.vcpus);
    this.servedBy = new Array<IoRegion | undefined>(hv.vcpus).fill(undefined);
  }

  /** Claims [start, end) for a handler; regions may not overlap. */
  addRegion(region: IoRegion): void {
    if (!(region.start < region.end)) throw new RangeError(`region ${region.name}: empty`);
    for (const r of this.regions) {
      if (region.start < r.end && r.start < region.end) throw new RangeError(`region ${region.name} overlaps ${r.name}`);
    }
    this.regions.push(region);
    this.regions.sort((a, b) => a.start - b.start);
    this.handle?.mapRange('mmio', region.start, region.end - 1);
  }

  /** Creates the ioreq server, binds every vCPU's channel and enables it. */
  start(): void {
    if (this.handle) throw new Error('ioreq server already started');
    const h = this.hv.createIoreqServer();
    this.handle = h;
    this.page = h.page;
    for (const r of this.regions) h.mapRange('mmio', r.start, r.end - 1);
    // Enable first: Xen writes each vCPU's vp_eport into the ioreq page only when the server is
    // enabled (ioreq_server_enable -> ioreq_server_update_evtchn, common/ioreq.c); before that it
    // reads 0 and binding it fails with EINVAL (seen on Xen 4.17). QEMU does the same. The guest is
    // paused until we serve (docs/deploy-xen.md), so no request can be sent before the bind.
    h.setEnabled(true);
    const ev = this.hv.openEventChannels();
    this.evtchn = ev;
    for (let v = 0; v < this.hv.vcpus; v++) {
      const port = ev.bindInterdomain(h.page.readVpEport(v));
      this.portOfVcpu[v] = port;
      this.vcpuOfPort.set(port, v);
    }
    ev.onPending((port) => { this.onPort(port); });
    this.log.info({ server: h.id, vcpus: this.hv.vcpus, regions: this.regions.map((r) => r.name) }, 'ioreq server enabled');
  }

  /** ioreqs taken and not yet answered (every path through service() ends in one count below). */
  inFlight(): number {
    const c = this.counters;
    return c.requests - c.answeredReady - c.answeredRetry - c.slotLost;
  }

  /**
   * Takes no new ioreqs and answers those in flight: disabling the server makes Xen route no more to
   * it (xen/common/ioreq.c ioreq_server_disable only clears `enabled`), while an ioreq already posted
   * keeps its slot and its notification, which is still served. Resolves when none is in flight.
   */
  async quiesce(): Promise<void> {
    this.handle?.setEnabled(false);
    // Notifications sent before the disable are in the event loop's queue: let them in first.
    await new Promise<void>((resolve) => { setImmediate(resolve); });
    while (this.inFlight() > 0) await new Promise<void>((resolve) => { setTimeout(resolve, 1); });
  }

  stop(): void {
    this.handle?.setEnabled(false);
    this.handle?.destroy();
    this.evtchn?.close();
    this.handle = undefined;
  }

  private onPort(port: number): void {
    const v = this.vcpuOfPort.get(port);
    this.evtchn?.unmask(port);
    if (v === undefined) {
      this.counters.spurious++;
      return;
    }
    this.service(v);
  }

  private service(v: number): void {
    const page = this.page;
    if (!page) return;
    if (!page.transitionState(v, STATE_IOREQ_READY, STATE_IOREQ_INPROCESS)) {
      this.counters.spurious++; // a notification with no request posted (or one we already took)
      return;
    }
    this.started[v] = performance.now();
    this.servedBy[v] = undefined;
    this.counters.requests++;
    const req = page.read(v, this.reqs[v] ?? emptyIoreq());
    req.mustComplete = this.hv.caps.retryOffer === true && req.retryOffered !== true;
    const ans = this.answers[v] ?? { retry: false, lo: 0, hi: 0 };
    ans.retry = false;
    ans.lo = 0;
    ans.hi = 0;
    if (req.type === IOREQ_TYPE_INVALIDATE || req.type === IOREQ_TYPE_TIMEOFFSET) {
      // Mapcache invalidation: drop the cached guest-RAM mappings before answering (Xen waits for the
      // answer). Time offset: we keep no clock, so acknowledging is all.
      if (req.type === IOREQ_TYPE_INVALIDATE) {
        this.counters.invalidates++;
        this.guestMemory.invalidate?.();
      } else this.counters.timeoffsets++;
      this.complete(v, req, ans);
      return;
    }
    const bad = validateIoreq(req, this.ramBytes);
    if (bad !== BadIoreq.None) {
      this.refuse(v, req, ans, bad);
      return;
    }
    const ext = repExtent(req);
    const region = this.find(ext.mmioFirst);
    if (!region || ext.mmioFirst + ext.bytes > region.end) {
      this.counters.unclaimed++;
      this.rlog.warn('unclaimed', { addr: req.addr.toString(16), size: req.size }, 'ioreq outside every region');
      this.fillAllOnes(req, ans);
      this.complete(v, req, ans);
      return;
    }
    if (region.acceptsStrings !== true && isStringAccess(req)) {
      this.refuse(v, req, ans, BadIoreq.StringUnsupported);
      return;
    }
    this.servedBy[v] = region;
    let pending: void | Promise<void>;
    try {
      pending = region.handle(req, v, ans);
    } catch (e) {
      this.handlerFailed(v, req, ans, region, e);
      return;
    }
    if (pending) {
      pending.then(
        () => { this.complete(v, req, ans); },
        (e: unknown) => { this.handlerFailed(v, req, ans, region, e); },
      );
    } else {
      this.complete(v, req, ans);
    }
  }

  private refuse(v: number, req: Ioreq, ans: IoAnswer, bad: BadIoreq): void {
    const name = BAD_IOREQ_NAMES[bad];
    this.counters.bad++;
    this.counters.badByReason[name] = (this.counters.badByReason[name] ?? 0) + 1;
    this.rlog.warn(`bad:${name}`, { vcpu: v, reason: name, addr: req.addr.toString(16), size: req.size, count: req.count, type: req.type }, 'bad ioreq refused');
    this.fillAllOnes(req, ans);
    this.complete(v, req, ans);
  }

  private handlerFailed(v: number, req: Ioreq, ans: IoAnswer, region: IoRegion, e: unknown): void {
    this.counters.handlerErrors++;
    this.rlog.warn(`handler:${region.name}`, { vcpu: v, region: region.name, addr: req.addr.toString(16), err: String(e) }, 'handler failed; access completed as unclaimed');
    ans.retry = false;
    this.fillAllOnes(req, ans);
    this.complete(v, req, ans);
  }

  /** A handler asked to retry a request that must be completed: a handler bug, answered as unclaimed. */
  private retryNotOffered(v: number, req: Ioreq, ans: IoAnswer): void {
    this.counters.handlerErrors++;
    this.rlog.warn('retry-not-offered', { vcpu: v, addr: req.addr.toString(16) }, 'a handler answered retry to a request Xen did not offer a retry on; completed as unclaimed');
    ans.retry = false;
    this.fillAllOnes(req, ans);
  }

  private fillAllOnes(req: Ioreq, ans: IoAnswer): void {
    if (req.dir !== IOREQ_READ) return;
    const ones = allOnes(Math.min(Math.max(req.size, 1), 8));
    ans.lo = ones.lo;
    ans.hi = ones.hi;
  }

  /** Publishes the answer: data first, then the state (Atomics orders them), then the notify. */
  private complete(v: number, req: Ioreq, ans: IoAnswer): void {
    const page = this.page;
    const ev = this.evtchn;
    if (!page || !ev) return;
    // Never send the retry state to a hypervisor that did not advertise it (stock Xen kills the
    // guest), nor for a request Xen did not offer it on (patched Xen kills the guest too).
    if (ans.retry && req.mustComplete === true) this.retryNotOffered(v, req, ans);
    const retry = ans.retry && this.hv.caps.retry;
    // A data_is_ptr read already landed in guest RAM; Xen does not consume `data` for it
    // (wait_for_io: ioreq_needs_completion() is false), so the slot keeps the pointer, as with QEMU.
    if (req.dir === IOREQ_READ && !req.dataIsPtr && !retry) page.writeData(v, ans.lo, ans.hi);
    if (!page.transitionState(v, STATE_IOREQ_INPROCESS, retry ? STATE_IORESP_RETRY : STATE_IORESP_READY)) {
      this.counters.slotLost++;
      this.rlog.warn('slot-lost', { vcpu: v }, 'ioreq slot left INPROCESS while being served');
      return;
    }
    if (retry) this.counters.answeredRetry++;
    else this.counters.answeredReady++;
    const ns = (performance.now() - (this.started[v] ?? 0)) * 1e6;
    record(this.serviceNs, ns);
    const regionNs = this.servedBy[v]?.serviceNs;
    if (regionNs) record(regionNs, ns);
    ev.notify(this.portOfVcpu[v] ?? 0);
  }

  private find(addr: number): IoRegion | undefined {
    for (const r of this.regions) {
      if (addr < r.start) return undefined;
      if (addr < r.end) return r;
    }
    return undefined;
  }
}
