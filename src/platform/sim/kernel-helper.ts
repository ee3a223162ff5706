/**
 * The simulated kernel helper: the same contract as kernel-helper/ (D1-D3) over the simulated mm,
 * GPU and p2m. The fault / invalidate / retry loop is here in one place, in the shape of Linux's
 * lib/test_hmm.c:
 *
 *   map():        seq = read_begin(range) → look up frames (faulting PTEs in) → lock →
 *                 read_retry(seq)? retry : install p2m entries, do the emulated access → unlock
 *   invalidate(): lock → set_seq(cur_seq) → clear every recorded p2m entry in the range →
 *                 flush TLBs (every running vCPU acknowledges) → unlock → queue an event
 *
 * "lock" is the JS thread: both critical sections are synchronous, so they cannot interleave, and
 * the only yield point is read_begin waiting for an invalidation in flight.
 */
import type {
  EmulatedAccess,
  HelperBinding,
  HelperEvent,
  HelperStats,
  KernelHelperPort,
  MapRequest,
  MapResult,
  MappedRun,
  RangeId,
} from '../ports.js';
import { NotifyEvent } from '../ports.js';
import { HUGE_PAGES, PAGE_SIZE } from './machine.js';
import type { IntervalSub, NotifierRange, SimMm } from './mm.js';
import type { SimP2m } from './xen.js';

/** Error carrying an errno name, as the real helper's ioctls fail. */
export class HelperError extends Error {
  constructor(readonly errno: 'EINVAL' | 'EBUSY' | 'EFAULT' | 'EEXIST' | 'ENOENT' | 'ENOTCONN', message: string) {
    super(`${errno}: ${message}`);
    this.name = 'HelperError';
  }
}

interface Range {
  readonly id: RangeId;
  readonly va: number;
  readonly pages: number;
  readonly sub: IntervalSub;
  /** Per page of the range: GFN + 1 it is mapped at, 0 if none. */
  readonly gfnOf: Float64Array;
  /** First pages of runs installed as 2 MiB superpages (split when partly revoked). */
  readonly huge: Set<number>;
  dead: boolean;
}

export interface SimHelperHooks {
  /**
   * Called between the frame lookup and the locked retry check (with the VA of the request's first
   * page): tests race invalidations here.
   */
  afterLookup?: (req: MapRequest, va: number) => void;
}

/** Test-only fault injection: each breaks the revoke protocol in one way the detectors must catch. */
export interface SimHelperInjection {
  /** MAP installs the frames it looked up even when an invalidation ran since read_begin. */
  readonly unsafeSkipReadRetry?: boolean;
  /** The invalidate callback returns at once and clears the p2m entries later, after the frames moved. */
  readonly unsafeRevokeAfterCallback?: boolean;
}

/** After this many read_retry collisions in one MAP the helper gives up with EBUSY (test_hmm bounds by time). */
const MAX_COLLISIONS = 1000;
const MAX_MAP_PAGES = HUGE_PAGES;

interface Plan {
  readonly gfn: number;
  readonly page0: number;
  readonly frames: Int32Array;
  readonly huge: boolean;
}

export class SimKernelHelper implements KernelHelperPort {
  private binding: HelperBinding | undefined;
  private readonly ranges = new Map<RangeId, Range>();
  private nextRange = 1;
  /** Reverse map per window page: owning range id (0 = none) and the page of that range. */
  private ownerRange = new Int32Array(0);
  private ownerPage = new Int32Array(0);
  private readonly handlers: ((ev: HelperEvent) => void)[] = [];
  private queue: HelperEvent[] = [];
  private readonly hostView: DataView;
  private emuLo = 0;
  private emuHi = 0;
  private counters = { maps: 0, mapCollisions: 0, installedPages: 0, hugeMaps: 0, invalidations: 0, revokedPages: 0, residentPages: 0 };

  constructor(
    private readonly mm: SimMm,
    private readonly p2m: SimP2m,
    host: SharedArrayBuffer,
    private readonly hooks: SimHelperHooks = {},
    private readonly inject: SimHelperInjection = {},
  ) {
    this.hostView = new DataView(host);
  }

  bind(b: HelperBinding): void {
    if (this.binding) throw new HelperError('EBUSY', 'already bound');
    if (b.firstGfn < this.p2m.firstGfn || b.firstGfn + b.pages > this.p2m.firstGfn + this.p2m.pages || b.pages <= 0) {
      throw new HelperError('EINVAL', 'BAR window outside the guest p2m window');
    }
    this.binding = b;
    this.ownerRange = new Int32Array(b.pages);
    this.ownerPage = new Int32Array(b.pages);
  }

  registerRange(va: number, length: number): RangeId {
    this.requireBound();
    if (va % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0 || length <= 0) throw new HelperError('EINVAL', 'range not page aligned');
    if (!this.mm.vmaCovering(va, va + length)) throw new HelperError('EFAULT', 'range is not one mapping');
    for (const r of this.ranges.values()) {
      if (va < r.va + r.pages * PAGE_SIZE && r.va < va + length) throw new HelperError('EEXIST', 'range overlaps a registered range');
    }
    const id = this.nextRange++;
    const pages = length / PAGE_SIZE;
    const range: Range = {
      id,
      va,
      pages,
      gfnOf: new Float64Array(pages),
      huge: new Set(),
      dead: false,
      sub: this.mm.insert(va, length, (nr, curSeq) => this.invalidate(range, nr, curSeq)),
    };
    this.ranges.set(id, range);
    return id;
  }

  unregisterRange(id: RangeId): void {
    const r = this.getRange(id);
    const n = this.revokePages(r, 0, r.pages);
    if (n > 0) this.p2m.flushTlbs();
    this.mm.remove(r.sub);
    this.ranges.delete(id);
  }

  map(req: MapRequest): MapResult | Promise<MapResult> {
    const r = this.validateMap(req);
    return this.mapLoop(req, r, 0);
  }

  private mapLoop(req: MapRequest, r: Range, collisions: number): MapResult | Promise<MapResult> {
    for (;;) {
      const seq = this.mm.readBegin(r.sub);
      if (typeof seq !== 'number') {
        // An invalidation is in flight over this range: wait for its end, then start over.
        return seq.then(() => {
          if (r.sub.removed) throw new HelperError('ENOENT', 'range unregistered while waiting');
          return this.mapLoop(req, r, collisions);
        });
      }
      const plan = this.lookup(r, req);
      this.hooks.afterLookup?.(req, r.va + req.pageInRange * PAGE_SIZE);
      // --- lock ---
      if (this.mm.readRetry(r.sub, seq) && this.honourReadRetry()) {
        if (++collisions >= MAX_COLLISIONS) throw new HelperError('EBUSY', 'range kept changing under MAP');
        this.counters.mapCollisions++;
        continue;
      }
      const installed = req.noInstall === true ? 0 : this.install(r, plan);
      if (req.access) this.emulate(plan, req.access);
      // --- unlock ---
      if (req.noInstall !== true) this.counters.maps++;
      if (plan.huge && req.noInstall !== true) this.counters.hugeMaps++;
      return {
        gfn: plan.gfn,
        pages: plan.frames.length,
        installed,
        huge: plan.huge,
        seq,
        collisions,
        dataLo: req.access ? this.emuLo : 0,
        dataHi: req.access ? this.emuHi : 0,
      };
    }
  }

  unmap(gfn: number, pages: number): number {
    const b = this.requireBound();
    if (!Number.isInteger(pages) || pages <= 0 || gfn < b.firstGfn || gfn + pages > b.firstGfn + b.pages) throw new HelperError('EINVAL', 'UNMAP outside the window');
    let n = 0;
    for (let g = gfn; g < gfn + pages; g++) {
      const w = g - b.firstGfn;
      const r = this.ranges.get(this.ownerRange[w] ?? 0);
      if (r) n += this.revokePages(r, this.ownerPage[w] ?? 0, 1);
    }
    if (n > 0) this.p2m.flushTlbs();
    return n;
  }

  query(gfn: number, pages: number): MappedRun[] {
    const b = this.requireBound();
    const out: MappedRun[] = [];
    const end = Math.min(gfn + pages, b.firstGfn + b.pages);
    for (let g = Math.max(gfn, b.firstGfn); g < end; g++) {
      const w = g - b.firstGfn;
      const r = this.ranges.get(this.ownerRange[w] ?? 0);
      if (!r) continue;
      const page = this.ownerPage[w] ?? 0;
      const last = out[out.length - 1];
      const hugeHere = hugeRunHolds(r, page);
      if (last && last.range === r.id && last.gfn + last.pages === g && last.pageInRange + last.pages === page && last.huge === hugeHere) {
        out[out.length - 1] = { ...last, pages: last.pages + 1 };
      } else {
        out.push({ gfn: g, pages: 1, range: r.id, pageInRange: page, huge: hugeHere });
      }
    }
    return out;
  }

  stats(): HelperStats {
    return { ...this.counters };
  }

  onEvent(handler: (ev: HelperEvent) => void): void {
    this.handlers.push(handler);
  }

  close(): void {
    for (const id of [...this.ranges.keys()]) this.unregisterRange(id);
    this.binding = undefined;
  }

  // -------------------------------------------------------------------------------------------

  /** False only under the test-only injection that ignores a collision (counted all the same). */
  private honourReadRetry(): boolean {
    if (this.inject.unsafeSkipReadRetry !== true) return true;
    this.counters.mapCollisions++;
    return false;
  }

  /** The invalidate callback (mmu_interval_notifier_ops.invalidate). */
  private invalidate(r: Range, nr: NotifierRange, curSeq: number): boolean {
    // Non-blockable callers would trylock; the simulated lock is never held across a yield, so it
    // is always free here.
    const startNs = process.hrtime.bigint();
    this.mm.setSeq(r.sub, curSeq);
    const end = r.va + r.pages * PAGE_SIZE;
    const first = Math.max(0, Math.floor((Math.max(nr.start, r.va) - r.va) / PAGE_SIZE));
    const last = Math.min(r.pages, Math.ceil((Math.min(nr.end, end) - r.va) / PAGE_SIZE));
    if (this.inject.unsafeRevokeAfterCallback === true) {
      setImmediate(() => { if (!r.sub.removed) this.revokeRange(r, nr, first, last, curSeq, startNs); });
    } else {
      this.revokeRange(r, nr, first, last, curSeq, startNs);
    }
    return true;
  }

  /** Clears the p2m entries of pages [first, last), flushes, and queues the event. */
  private revokeRange(r: Range, nr: NotifierRange, first: number, last: number, curSeq: number, startNs: bigint): void {
    const revoked = this.revokePages(r, first, last - first);
    if (revoked > 0) this.p2m.flushTlbs();
    const doneNs = process.hrtime.bigint();
    if (nr.event === NotifyEvent.Release || (nr.event === NotifyEvent.Unmap && first === 0 && last === r.pages)) r.dead = true;
    this.counters.invalidations++;
    this.enqueue({ range: r.id, firstPage: first, pages: last - first, revoked, event: nr.event, seq: curSeq, startNs, doneNs });
  }

  /** Clears the p2m entries of pages [first, first+count) of a range; the caller flushes. */
  private revokePages(r: Range, first: number, count: number): number {
    const b = this.requireBound();
    let n = 0;
    for (let p = first; p < first + count; p++) {
      const g1 = r.gfnOf[p] ?? 0;
      if (g1 === 0) continue;
      const gfn = g1 - 1;
      this.p2m.clear(gfn);
      r.gfnOf[p] = 0;
      this.ownerRange[gfn - b.firstGfn] = 0;
      n++;
    }
    // A partly revoked superpage is split: what remains stays mapped as 4 KiB entries.
    for (const h of r.huge) if (h < first + count && first < h + HUGE_PAGES) r.huge.delete(h);
    this.counters.revokedPages += n;
    this.counters.residentPages -= n;
    return n;
  }

  private enqueue(ev: HelperEvent): void {
    this.queue.push(ev);
    // The back-end reads queued records from the helper's fd; here a macrotask delivers the batch.
    if (this.queue.length === 1) setImmediate(() => { this.deliver(); });
  }

  private deliver(): void {
    const batch = this.queue;
    this.queue = [];
    for (const ev of batch) for (const h of this.handlers) h(ev);
  }

  private validateMap(req: MapRequest): Range {
    const b = this.requireBound();
    const r = this.getRange(req.range);
    if (r.dead) throw new HelperError('EFAULT', 'range was unmapped');
    if (!Number.isInteger(req.pages) || req.pages <= 0 || req.pages > MAX_MAP_PAGES) throw new HelperError('EINVAL', `pages ${req.pages}`);
    if (!Number.isInteger(req.pageInRange) || req.pageInRange < 0 || req.pageInRange + req.pages > r.pages) throw new HelperError('EINVAL', 'run outside the range');
    if (!Number.isInteger(req.gfn) || req.gfn < b.firstGfn || req.gfn + req.pages > b.firstGfn + b.pages) throw new HelperError('EINVAL', 'GFN outside the bound window');
    const a = req.access;
    if (req.noInstall === true && !a) throw new HelperError('EINVAL', 'noInstall without an access');
    if (a && (a.gfn < req.gfn || a.gfn >= req.gfn + req.pages || a.byteInPage < 0 || a.byteInPage + a.size > PAGE_SIZE)) {
      throw new HelperError('EINVAL', 'emulated access outside the run');
    }
    return r;
  }

  /** Chooses the run (a whole aligned superpage when frames allow) and looks its frames up. */
  private lookup(r: Range, req: MapRequest): Plan {
    if (req.tryHuge) {
      const b = this.requireBound();
      const wGfn = req.gfn - (req.gfn % HUGE_PAGES);
      const wPage = req.pageInRange - (req.gfn - wGfn);
      if (wPage >= 0 && wPage + HUGE_PAGES <= r.pages && wGfn >= b.firstGfn && wGfn + HUGE_PAGES <= b.firstGfn + b.pages) {
        const frames = this.frames(r, wPage, HUGE_PAGES);
        if (isAlignedRun(frames)) return { gfn: wGfn, page0: wPage, frames, huge: true };
      }
    }
    return { gfn: req.gfn, page0: req.pageInRange, frames: this.frames(r, req.pageInRange, req.pages), huge: false };
  }

  /** follow_pte() per page, fixup_user_fault() where the PTE is not present. */
  private frames(r: Range, page0: number, count: number): Int32Array {
    const vma = this.mm.vmaCovering(r.va, r.va + r.pages * PAGE_SIZE);
    if (!vma) throw new HelperError('EFAULT', 'no mapping behind the range');
    const base = (r.va - vma.start) / PAGE_SIZE;
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const p = base + page0 + i;
      let f = vma.backing.frameOf(p);
      if (f < 0) {
        vma.backing.faultIn(p);
        f = vma.backing.frameOf(p);
      }
      if (f < 0) throw new HelperError('EFAULT', `page ${p} cannot be faulted in`);
      out[i] = f;
    }
    return out;
  }

  private install(r: Range, plan: Plan): number {
    const b = this.requireBound();
    let installed = 0;
    for (let i = 0; i < plan.frames.length; i++) {
      const gfn = plan.gfn + i;
      const page = plan.page0 + i;
      const w = gfn - b.firstGfn;
      const owner = this.ownerRange[w] ?? 0;
      if (owner === r.id && this.ownerPage[w] === page) continue; // already mapped
      if (owner !== 0) throw new HelperError('EEXIST', `gfn ${gfn.toString(16)} is mapped by another range`);
      if ((r.gfnOf[page] ?? 0) !== 0) throw new HelperError('EEXIST', `page ${page} is mapped at another gfn`);
      this.p2m.install(gfn, plan.frames[i] ?? 0);
      r.gfnOf[page] = gfn + 1;
      this.ownerRange[w] = r.id;
      this.ownerPage[w] = page;
      installed++;
    }
    if (plan.huge) r.huge.add(plan.page0);
    this.counters.installedPages += installed;
    this.counters.residentPages += installed;
    return installed;
  }

  /** Completes the faulting access against the frame, still under the lock (D4 `emulate`). */
  private emulate(plan: Plan, a: EmulatedAccess): void {
    const frame = plan.frames[a.gfn - plan.gfn] ?? 0;
    const off = frame * PAGE_SIZE + a.byteInPage;
    const v = this.hostView;
    this.emuLo = 0;
    this.emuHi = 0;
    if (a.write) {
      // Only the low `size` bytes of the request's data are stored (as QEMU masks write data).
      if (a.size === 8) {
        v.setUint32(off, a.dataLo >>> 0, true);
        v.setUint32(off + 4, a.dataHi >>> 0, true);
      } else if (a.size === 4) v.setUint32(off, a.dataLo >>> 0, true);
      else if (a.size === 2) v.setUint16(off, a.dataLo & 0xffff, true);
      else v.setUint8(off, a.dataLo & 0xff);
      return;
    }
    if (a.size === 8) {
      this.emuLo = v.getUint32(off, true);
      this.emuHi = v.getUint32(off + 4, true);
    } else if (a.size === 4) this.emuLo = v.getUint32(off, true);
    else if (a.size === 2) this.emuLo = v.getUint16(off, true);
    else this.emuLo = v.getUint8(off);
  }

  private requireBound(): HelperBinding {
    if (!this.binding) throw new HelperError('ENOTCONN', 'helper fd is not bound');
    return this.binding;
  }

  private getRange(id: RangeId): Range {
    const r = this.ranges.get(id);
    if (!r) throw new HelperError('ENOENT', `no range ${id}`);
    return r;
  }
}

function hugeRunHolds(r: Range, page: number): boolean {
  for (const h of r.huge) if (h <= page && page < h + HUGE_PAGES) return true;
  return false;
}

function isAlignedRun(frames: Int32Array): boolean {
  const f0 = frames[0] ?? -1;
  if (f0 < 0 || f0 % HUGE_PAGES !== 0) return false;
  for (let i = 1; i < frames.length; i++) if (frames[i] !== f0 + i) return false;
  return true;
}
