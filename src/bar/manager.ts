/**
 * The BAR manager: decides *what* to map when the guest touches an unmapped BAR page, asks the
 * kernel helper to map it (the helper decides nothing but frames, D1), answers the vCPU, and
 * reconciles its view from the helper's revoke events.
 *
 * Policy, per fault on BAR page P of placement B:
 *  - run: the fault-around block of `faultAround` pages that holds P, clipped to B (D10);
 *  - superpage: when enabled and the 2 MiB-aligned window around P lies inside B, the helper maps the
 *    whole window as one superpage if the frames allow, else falls back to the run;
 *  - answer: `retry` (the vCPU re-executes against the new mapping) or `emulate` (the helper
 *    completes the access under its sequence check and we answer IORESP_READY, D4);
 *  - forward progress: a vCPU that faults on the same page `retryLimit` times in a row with retry
 *    answers is served by emulation (D5), so a revoke storm cannot starve it;
 *  - string requests (rep MOVS/STOS, count > 1 or data_is_ptr): `retry` maps and retries like any
 *    fault; `emulate` maps, then copies through StringAccess inside the helper's sequence check
 *    (settleString), because the helper's own ACCESS does at most 8 bytes.
 */
import { HelperSignal, type EmulatedAccess, type HelperEvent, type KernelHelperPort, type MapRequest, type MapResult } from '../platform/ports.js';
import { isStringAccess, repExtent } from '../ioreq/rep.js';
import type { StringAccess } from './string-access.js';
import { latencyHistogram, record, type Histogram } from '../telemetry/histogram.js';
import type { Logger } from '../telemetry/log.js';
import { IOREQ_WRITE, type Ioreq } from '../xen/abi/ioreq.js';
import type { IoAnswer, IoRegion } from '../ioreq/server.js';
import { allOnes } from '../ioreq/validate.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { BAR_PAGE, type BarWindow, type Placement } from './window.js';

export type AnswerMode = 'retry' | 'emulate';

/** Why a fault in retry mode was emulated (BarManager.emulationReason), or 'mode' in emulate mode. */
type EmulationReason = 'mode' | 'forced' | 'not-offered';

/**
 * `fault`: xvgpu (map on fault, exact revoke). The other two exist to be measured against it:
 * `emulate-all`: nothing is ever mapped, every access is an exit completed by the helper (what a
 * Xen ioreq back-end does for blob memory today); `eager`: the whole blob is mapped when placed and
 * revoked as a whole on any invalidation (what KVM VMMs do by mapping the BO over the BAR).
 */
export type Strategy = 'fault' | 'eager' | 'emulate-all';

export interface BarPolicy {
  readonly strategy?: Strategy;
  readonly mode: AnswerMode;
  /** Pages mapped per fault: a power of two, 1..512. */
  readonly faultAround: number;
  readonly hugePages: boolean;
  readonly retryLimit: number;
}

export const DEFAULT_POLICY: BarPolicy = { strategy: 'fault', mode: 'retry', faultAround: 16, hugePages: true, retryLimit: 4 };

const HUGE = 512;
/** A string copy that collides with this many invalidations in a row gives up (handler error). */
const MAX_STRING_REDOS = 16;

export interface BarCounters {
  faults: number;
  retries: number;
  emulated: number;
  forwardProgress: number;
  /** Faults emulated because the hypervisor offered no retry on them (Ioreq.mustComplete). */
  notOffered: number;
  holes: number;
  rejected: number;
  installedPages: number;
  /** Map calls that installed at least one page (a fault's run, or a chunk of an eager placement). */
  mapRuns: number;
  hugeMaps: number;
  collisions: number;
  invalidations: number;
  revokes: number;
  revokedPages: number;
  residentPages: number;
  /** String requests emulated (rep MOVS/STOS copies). */
  strings: number;
  /** String copies done again because the range was invalidated while they ran. */
  stringRedos: number;
  /** Helper events the ring dropped (reported in-band by an Overflow event). */
  eventsLost: number;
  /** Fatal helper events: a p2m removal failed, the binding is dead and the guest paused. */
  helperFatal: number;
}

export function validatePolicy(p: BarPolicy): void {
  if (!Number.isInteger(p.faultAround) || p.faultAround < 1 || p.faultAround > HUGE || (p.faultAround & (p.faultAround - 1)) !== 0) {
    throw new RangeError(`fault-around ${p.faultAround}: want a power of two from 1 to ${HUGE}`);
  }
  if (!Number.isInteger(p.retryLimit) || p.retryLimit < 1) throw new RangeError(`retry limit ${p.retryLimit}: want >= 1`);
}

/** Mutable twins of the port's request shapes, reused per vCPU so a fault allocates nothing here. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type MutableAccess = Mutable<EmulatedAccess>;
type MutableMapRequest = Mutable<MapRequest>;

export class BarManager implements IoRegion {
  readonly name = 'bar';
  readonly start: number;
  readonly end: number;
  readonly counters: BarCounters = {
    faults: 0, retries: 0, emulated: 0, forwardProgress: 0, notOffered: 0, holes: 0, rejected: 0, installedPages: 0, mapRuns: 0, hugeMaps: 0,
    collisions: 0, invalidations: 0, revokes: 0, revokedPages: 0, residentPages: 0, strings: 0, stringRedos: 0,
    eventsLost: 0, helperFatal: 0,
  };
  readonly acceptsStrings = true;
  /** Invalidation start → p2m entries gone, flush acknowledged (inside the helper's callback). */
  readonly revokeNs: Histogram = latencyHistogram();
  /** Revoke done → event seen here. */
  readonly revokeEventNs: Histogram = latencyHistogram();
  /** BAR ioreqs (faults, holes, emulations): slot taken → answer published, filed by the server. */
  readonly serviceNs: Histogram = latencyHistogram();
  private readonly firstGfn: number;
  private readonly hugeOk: boolean;
  /** Per BAR page: the interval seq the current mapping was validated at, -1 when unmapped. */
  private readonly mappedSeq: Float64Array;
  private readonly byRange = new Map<number, Placement>();
  private readonly streakGfn: Float64Array;
  private readonly streak: Int32Array;
  private readonly requests: MutableMapRequest[];
  private readonly accesses: MutableAccess[];
  private readonly rlog: RateLimitedLog;

  constructor(
    private readonly window: BarWindow,
    private readonly helper: KernelHelperPort,
    private readonly policy: BarPolicy,
    vcpus: number,
    private readonly log: Logger,
    /** Emulates string requests; without it they are refused in emulate mode (`rejected`). */
    private readonly strings?: StringAccess,
  ) {
    validatePolicy(policy);
    this.start = window.base;
    this.end = window.base + window.size;
    this.firstGfn = window.base / BAR_PAGE;
    this.hugeOk = policy.hugePages && this.firstGfn % HUGE === 0;
    this.mappedSeq = new Float64Array(window.pages).fill(-1);
    this.streakGfn = new Float64Array(vcpus).fill(-1);
    this.streak = new Int32Array(vcpus);
    this.requests = Array.from({ length: vcpus }, () => ({ range: 0, gfn: 0, pageInRange: 0, pages: 0, tryHuge: false }));
    this.accesses = Array.from({ length: vcpus }, () => ({ gfn: 0, byteInPage: 0, size: 8 as const, write: false, dataLo: 0, dataHi: 0 }));
    this.rlog = new RateLimitedLog(this.log);
  }

  // --- blob placement (RESOURCE_MAP_BLOB / RESOURCE_UNMAP_BLOB call these) ---------------------

  placeBlob(offset: number, size: number, range: number, pageInRange = 0): Placement {
    const pl = this.window.place(offset, size, range, pageInRange);
    this.byRange.set(range, pl);
    if (this.policy.strategy === 'eager') void this.mapWhole(pl).catch((e: unknown) => { this.rlog.warn('eager', { err: String(e) }, 'eager map at placement failed'); });
    return pl;
  }

  /** Takes a blob out of the BAR; every mapped page is revoked before this returns. */
  removeBlob(placementId: number): number {
    const pl = this.window.remove(placementId);
    this.byRange.delete(pl.range);
    const revoked = this.helper.unmap(this.firstGfn + pl.firstPage, pl.pages);
    for (let p = pl.firstPage; p < pl.firstPage + pl.pages; p++) this.forget(p);
    return revoked;
  }

  /** Current placements (tests and invariant checks). */
  placementsForTest(): Placement[] {
    return this.window.placements();
  }

  // --- the fault path ----------------------------------------------------------------------------

  handle(req: Ioreq, vcpu: number, out: IoAnswer): void | Promise<void> {
    const page = Math.floor((req.addr - this.start) / BAR_PAGE);
    const pl = this.window.at(page);
    if (!pl) {
      this.counters.holes++; // the guest touched a part of the BAR no blob occupies
      this.fillAllOnes(req, out);
      return;
    }
    const gfn = this.firstGfn + page;
    if (this.policy.strategy === 'emulate-all') return this.emulateOnly(pl, page, req, vcpu, out);
    if (this.policy.strategy === 'eager') return this.eagerFault(pl, page, req, vcpu, out);
    const why = this.emulationReason(req, vcpu, gfn);
    const emulate = why !== undefined;
    if (emulate && !this.canEmulate(req, vcpu, out)) return;
    const string = emulate && isStringAccess(req);
    const mreq = this.buildRequest(vcpu, pl, page, req, emulate && !string);
    const res = this.helper.map(mreq);
    if (res instanceof Promise) return res.then((r) => this.answer(r, mreq, pl, page, req, vcpu, why, out));
    return this.answer(res, mreq, pl, page, req, vcpu, why, out);
  }

  /**
   * Why this fault is completed by emulation instead of retried, or undefined to retry: the mode;
   * the forward-progress bound; or the hypervisor did not offer a retry on it (a later access of
   * an instruction whose earlier access completed: re-executing would repeat that access).
   */
  private emulationReason(req: Ioreq, vcpu: number, gfn: number): EmulationReason | undefined {
    if (this.policy.mode === 'emulate') return 'mode';
    if (req.mustComplete === true) return 'not-offered';
    if (this.streakGfn[vcpu] === gfn && (this.streak[vcpu] ?? 0) >= this.policy.retryLimit) return 'forced';
    return undefined;
  }

  /** A string request can only be emulated with a StringAccess; otherwise it is refused, counted. */
  private canEmulate(req: Ioreq, vcpu: number, out: IoAnswer): boolean {
    if (this.strings || !isStringAccess(req)) return true;
    this.counters.rejected++;
    this.rlog.warn('string', { vcpu, count: req.count, dataIsPtr: req.dataIsPtr }, 'string access to the BAR refused: no string emulation configured');
    this.fillAllOnes(req, out);
    return false;
  }

  private answer(r: MapResult, mreq: MapRequest, pl: Placement, page: number, req: Ioreq, vcpu: number, why: EmulationReason | undefined, out: IoAnswer): void | Promise<void> {
    this.finish(r, vcpu, this.firstGfn + page, why, out);
    if (why !== undefined && isStringAccess(req)) return this.settleString(r.seq, mreq, pl, page, req, vcpu, 0);
  }

  /**
   * Copies a string request through the back-end's CPU mapping, then asks the helper again for the
   * same run (MAP is idempotent: mapped pages stay, revoked ones come back) and compares sequences.
   * Equal: no invalidation touched the range while the copy ran, so the copy happened entirely
   * against the frames the guest's mapping points at, one atomic step as seen from the guest.
   * Different: it raced an invalidation (a migration or a discard), so the copy runs again.
   */
  private settleString(seq: number, mreq: MapRequest, pl: Placement, page: number, req: Ioreq, vcpu: number, redos: number): void | Promise<void> {
    for (;;) {
      this.strings?.perform(req, vcpu, pl.range, this.boOffset(pl, page, repExtent(req).mmioFirst));
      const again = this.helper.map(mreq);
      if (again instanceof Promise) return again.then((r) => this.checkSettled(seq, r, mreq, pl, page, req, vcpu, redos));
      if (again.seq === seq) {
        this.counters.strings++;
        return;
      }
      if (++redos > MAX_STRING_REDOS) throw new Error(`string copy collided with ${redos - 1} invalidations`);
      this.counters.stringRedos++;
      seq = again.seq;
    }
  }

  private checkSettled(seq: number, r: MapResult, mreq: MapRequest, pl: Placement, page: number, req: Ioreq, vcpu: number, redos: number): void | Promise<void> {
    if (r.seq === seq) {
      this.counters.strings++;
      return;
    }
    if (redos + 1 > MAX_STRING_REDOS) throw new Error(`string copy collided with ${redos} invalidations`);
    this.counters.stringRedos++;
    return this.settleString(r.seq, mreq, pl, page, req, vcpu, redos + 1);
  }

  /** Byte offset in the BO (= helper range) of guest-physical BAR address `gpa` on page `page`. */
  private boOffset(pl: Placement, page: number, gpa: number): number {
    return (pl.pageInRange + (page - pl.firstPage)) * BAR_PAGE + ((gpa - this.start) % BAR_PAGE);
  }

  /** emulate-all: the access is completed by the helper on the frame; nothing is installed. */
  private emulateOnly(pl: Placement, page: number, req: Ioreq, vcpu: number, out: IoAnswer): void | Promise<void> {
    if (!this.canEmulate(req, vcpu, out)) return;
    const m = this.buildRequest(vcpu, pl, page, req, true);
    // For a string request the helper's access is only a probe (a 1-byte read under its lock) that
    // yields the sequence settleString checks the copy against.
    const access = m.access && isStringAccess(req) ? { ...m.access, size: 1 as const, write: false } : m.access;
    const one: MapRequest = { ...m, gfn: this.firstGfn + page, pageInRange: pl.pageInRange + (page - pl.firstPage), pages: 1, tryHuge: false, noInstall: true, ...(access ? { access } : {}) };
    const res = this.helper.map(one);
    if (res instanceof Promise) return res.then((r) => this.answer(r, one, pl, page, req, vcpu, 'mode', out));
    return this.answer(res, one, pl, page, req, vcpu, 'mode', out);
  }

  /** eager: a fault (after a whole-blob revoke) maps the whole blob again, then answers. */
  private eagerFault(pl: Placement, page: number, req: Ioreq, vcpu: number, out: IoAnswer): void | Promise<void> {
    const why = this.policy.mode === 'emulate' ? 'mode' : req.mustComplete === true ? 'not-offered' : undefined;
    const emulate = why !== undefined;
    if (emulate && !this.canEmulate(req, vcpu, out)) return;
    const mreq = this.buildRequest(vcpu, pl, page, req, emulate && !isStringAccess(req));
    return this.mapWhole(pl).then(() => {
      const last = this.helper.map(mreq);
      return last instanceof Promise ? last : Promise.resolve(last);
    }).then((r) => this.answer(r, mreq, pl, page, req, vcpu, why, out));
  }

  /** Maps every page of a placement, 2 MiB at a time where frames allow. */
  private async mapWhole(pl: Placement): Promise<void> {
    for (let p = pl.firstPage; p < pl.firstPage + pl.pages; p += HUGE) {
      const n = Math.min(HUGE, pl.firstPage + pl.pages - p);
      const r = await this.helper.map({ range: pl.range, gfn: this.firstGfn + p, pageInRange: pl.pageInRange + (p - pl.firstPage), pages: n, tryHuge: this.hugeOk && p % HUGE === 0 && n === HUGE });
      this.counters.installedPages += r.installed;
      if (r.installed > 0) this.counters.mapRuns++;
      if (r.huge) this.counters.hugeMaps++;
      this.noteMapped(r);
    }
  }

  private noteMapped(r: MapResult): void {
    const first = r.gfn - this.firstGfn;
    for (let p = first; p < first + r.pages; p++) {
      if ((this.mappedSeq[p] ?? -1) < 0) this.counters.residentPages++;
      if ((this.mappedSeq[p] ?? -1) < r.seq) this.mappedSeq[p] = r.seq;
    }
  }

  private buildRequest(vcpu: number, pl: Placement, page: number, req: Ioreq, emulate: boolean): MapRequest {
    const n = this.policy.faultAround;
    const plEnd = pl.firstPage + pl.pages;
    const runStart = Math.max(pl.firstPage, page - (page % n));
    const runEnd = Math.min(plEnd, page - (page % n) + n);
    const w0 = page - (page % HUGE);
    const m = this.requests[vcpu] ?? { range: 0, gfn: 0, pageInRange: 0, pages: 0, tryHuge: false };
    m.range = pl.range;
    m.gfn = this.firstGfn + runStart;
    m.pageInRange = pl.pageInRange + (runStart - pl.firstPage);
    m.pages = runEnd - runStart;
    m.tryHuge = this.hugeOk && w0 >= pl.firstPage && w0 + HUGE <= plEnd;
    if (emulate) {
      const a = this.accesses[vcpu] ?? { gfn: 0, byteInPage: 0, size: 8 as const, write: false, dataLo: 0, dataHi: 0 };
      a.gfn = this.firstGfn + page;
      a.byteInPage = (req.addr - this.start) % BAR_PAGE;
      a.size = req.size as 1 | 2 | 4 | 8;
      a.write = req.dir === IOREQ_WRITE;
      a.dataLo = req.dataLo;
      a.dataHi = req.dataHi;
      m.access = a;
    } else {
      delete m.access;
    }
    return m;
  }

  private finish(r: MapResult, vcpu: number, gfn: number, why: EmulationReason | undefined, out: IoAnswer): void {
    this.counters.faults++;
    this.counters.installedPages += r.installed;
    this.counters.collisions += r.collisions;
    if (r.huge) this.counters.hugeMaps++;
    if (r.installed > 0) {
      this.counters.mapRuns++;
      this.noteMapped(r);
    }
    if (why !== undefined) {
      this.counters.emulated++;
      // A forced emulation keeps the streak: the same instruction may still send more ioreqs for this
      // page (Xen splits a vector move into 8-byte chunks), and answering one of them with a retry
      // would re-execute an instruction that already completed a chunk. The streak resets when this
      // vCPU faults on another page (docs/model: MUT_RETRY_CONT). A request Xen offered no retry
      // on is such a later chunk: it leaves the streak alone too.
      if (why === 'forced') this.counters.forwardProgress++;
      else if (why === 'not-offered') this.counters.notOffered++;
      else this.streak[vcpu] = 0;
      out.lo = r.dataLo;
      out.hi = r.dataHi;
      return;
    }
    this.counters.retries++;
    out.retry = true;
    if (this.streakGfn[vcpu] === gfn) this.streak[vcpu] = (this.streak[vcpu] ?? 0) + 1;
    else {
      this.streakGfn[vcpu] = gfn;
      this.streak[vcpu] = 1;
    }
  }

  // --- revoke reconciliation -----------------------------------------------------------------------

  /** Helper events: the p2m entries are already gone; bring our view and metrics up to date. */
  onHelperEvent(ev: HelperEvent): void {
    if (ev.event === HelperSignal.Overflow) {
      this.resyncAfterLoss(ev.lost ?? 0);
      return;
    }
    if (ev.event === HelperSignal.Fatal) {
      this.counters.helperFatal++;
      this.log.error({ range: ev.range, firstPage: ev.firstPage, pages: ev.pages }, 'kernel helper: a p2m removal failed; the binding is dead and the guest paused');
      return;
    }
    this.counters.invalidations++;
    if (ev.revoked > 0) {
      this.counters.revokes++;
      this.counters.revokedPages += ev.revoked;
      record(this.revokeNs, Number(ev.doneNs - ev.startNs));
      record(this.revokeEventNs, Number(process.hrtime.bigint() - ev.doneNs));
    }
    const pl = this.byRange.get(ev.range);
    if (!pl) return;
    if (this.policy.strategy === 'eager' && ev.revoked > 0) {
      // eager: any invalidation of the blob takes the whole blob out of the guest.
      this.counters.revokedPages += this.helper.unmap(this.firstGfn + pl.firstPage, pl.pages);
      for (let p = pl.firstPage; p < pl.firstPage + pl.pages; p++) this.forget(p);
      return;
    }
    const from = Math.max(ev.firstPage, pl.pageInRange);
    const to = Math.min(ev.firstPage + ev.pages, pl.pageInRange + pl.pages);
    for (let rp = from; rp < to; rp++) {
      const p = pl.firstPage + (rp - pl.pageInRange);
      // Only a mapping made before this invalidation is gone; a newer one (seq >= ev.seq) stays.
      if ((this.mappedSeq[p] ?? -1) >= 0 && (this.mappedSeq[p] ?? -1) < ev.seq) this.forget(p);
    }
  }

  /**
   * Events were dropped, so residency may count pages whose revocation this manager never heard of.
   * The helper's QUERY is the truth: forget every page it no longer maps.
   */
  private resyncAfterLoss(lost: number): void {
    this.counters.eventsLost += lost;
    const mapped = new Uint8Array(this.mappedSeq.length);
    for (const run of this.helper.query(this.firstGfn, this.mappedSeq.length)) {
      mapped.fill(1, run.gfn - this.firstGfn, run.gfn - this.firstGfn + run.pages);
    }
    for (let p = 0; p < this.mappedSeq.length; p++) if (mapped[p] === 0) this.forget(p);
  }

  private forget(p: number): void {
    if ((this.mappedSeq[p] ?? -1) >= 0) this.counters.residentPages--;
    this.mappedSeq[p] = -1;
  }

  private fillAllOnes(req: Ioreq, out: IoAnswer): void {
    if (req.dir === IOREQ_WRITE) return;
    const o = allOnes(req.size);
    out.lo = o.lo;
    out.hi = o.hi;
  }
}
