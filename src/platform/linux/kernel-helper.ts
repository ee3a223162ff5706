/**
 * The Linux implementation of the kernel-helper port: /dev/xvgpu_helper through the addon's ioctl,
 * the event stream read from the fd whenever the native waiter reports it readable.
 *
 * MAP is a synchronous ioctl: it can sleep in the kernel while an invalidation of the same range
 * is in flight (mmu_interval_read_begin), which is bounded by that invalidation.
 */
import { readSync } from 'node:fs';
import { O_NONBLOCK, O_RDWR, isSyscallError, native, type Waiter } from '../../native/index.js';
import type { HelperBinding, HelperEvent, HelperSignal, HelperStats, KernelHelperPort, MapRequest, MapResult, MappedRun, NotifyEvent, RangeId } from '../ports.js';
import {
  EVENT_OFF,
  HELPER_DEVICE,
  HELPER_IOCTL,
  HIST_BUCKETS,
  MAP_ACCESS,
  MAP_OFF,
  MAP_TRY_HUGE,
  MAP_NO_INSTALL,
  MAP_WRITE,
  P2M_SOFT,
  SIZEOF,
  STATS_OFF,
  arg,
  getU64,
  setU64,
} from './helper-abi.js';

export interface HelperStatsWithHistograms extends HelperStats {
  /** Bucket i counts latencies in [2^i, 2^(i+1)) ns. */
  invalidateNs: number[];
  mapNs: number[];
  eventsDropped: number;
}

export class LinuxKernelHelper implements KernelHelperPort {
  private readonly mapArg = arg(SIZEOF.map);
  /** Reused by every drain: up to 64 event records per read(). */
  private readonly eventBuf = Buffer.alloc(SIZEOF.event * 64);
  private readonly handlers: ((ev: HelperEvent) => void)[] = [];
  private readonly vaToRange = new Map<number, RangeId>();
  private waiter: Waiter | undefined;
  private closed = false;

  private constructor(readonly fd: number, private readonly backend: number) {}

  /** Opens the device (non-blocking: events are read when the waiter says so). */
  static open(backend = P2M_SOFT, path = HELPER_DEVICE): LinuxKernelHelper {
    return new LinuxKernelHelper(native.open(path, O_RDWR | O_NONBLOCK), backend);
  }

  /** Wraps an fd BOUND by the privileged helper and passed over SCM_RIGHTS. */
  static fromFd(fd: number, backend = P2M_SOFT): LinuxKernelHelper {
    return new LinuxKernelHelper(fd, backend);
  }

  bind(b: HelperBinding): void {
    const a = arg(SIZEOF.bind);
    a.view.setUint32(4, b.domid, true);
    setU64(a.view, 8, b.firstGfn);
    setU64(a.view, 16, b.pages);
    a.view.setUint32(24, this.backend, true);
    native.ioctl(this.fd, HELPER_IOCTL.BIND, a.bytes);
  }

  registerRange(va: number, length: number): RangeId {
    const a = arg(SIZEOF.register);
    setU64(a.view, 8, va);
    setU64(a.view, 16, length);
    native.ioctl(this.fd, HELPER_IOCTL.REGISTER, a.bytes);
    const id = a.view.getUint32(4, true);
    this.vaToRange.set(va, id);
    return id;
  }

  /** The range registered at `va` (by this client), if any. */
  rangeAt(va: number): RangeId | undefined {
    return this.vaToRange.get(va);
  }

  unregisterRange(range: RangeId): void {
    const a = arg(SIZEOF.unregister);
    a.view.setUint32(4, range, true);
    native.ioctl(this.fd, HELPER_IOCTL.UNREGISTER, a.bytes);
    for (const [va, id] of this.vaToRange) if (id === range) this.vaToRange.delete(va);
  }

  map(req: MapRequest): MapResult {
    const { bytes, view: v } = this.mapArg; // reused: the fault path allocates nothing here
    bytes.fill(0, 4);
    v.setUint32(MAP_OFF.rangeId, req.range, true);
    setU64(v, MAP_OFF.gfn, req.gfn);
    setU64(v, MAP_OFF.pageInRange, req.pageInRange);
    v.setUint32(MAP_OFF.pages, req.pages, true);
    let flags = req.tryHuge ? MAP_TRY_HUGE : 0;
    const a = req.access;
    if (a) {
      flags |= MAP_ACCESS | (a.write ? MAP_WRITE : 0) | (req.noInstall === true ? MAP_NO_INSTALL : 0);
      setU64(v, MAP_OFF.accessGfn, a.gfn);
      v.setUint32(MAP_OFF.accessOffset, a.byteInPage, true);
      v.setUint32(MAP_OFF.accessSize, a.size, true);
      v.setUint32(MAP_OFF.data, a.dataLo >>> 0, true);
      v.setUint32(MAP_OFF.data + 4, a.dataHi >>> 0, true);
    }
    v.setUint32(MAP_OFF.flags, flags, true);
    native.ioctl(this.fd, HELPER_IOCTL.MAP, bytes);
    return {
      gfn: getU64(v, MAP_OFF.outGfn),
      pages: v.getUint32(MAP_OFF.outPages, true),
      installed: v.getUint32(MAP_OFF.installed, true),
      huge: v.getUint32(MAP_OFF.huge, true) !== 0,
      seq: getU64(v, MAP_OFF.seq),
      collisions: v.getUint32(MAP_OFF.collisions, true),
      dataLo: v.getUint32(MAP_OFF.data, true),
      dataHi: v.getUint32(MAP_OFF.data + 4, true),
    };
  }

  unmap(gfn: number, pages: number): number {
    const a = arg(SIZEOF.unmap);
    a.view.setUint32(4, pages, true);
    setU64(a.view, 8, gfn);
    native.ioctl(this.fd, HELPER_IOCTL.UNMAP, a.bytes);
    return getU64(a.view, 16);
  }

  query(gfn: number, pages: number): MappedRun[] {
    const cap = 256;
    const runs = new Uint8Array(cap * SIZEOF.run);
    const rv = new DataView(runs.buffer);
    const out: MappedRun[] = [];
    let from = gfn;
    const end = gfn + pages;
    while (from < end) {
      const a = arg(SIZEOF.query);
      a.view.setUint32(4, cap, true);
      setU64(a.view, 8, from);
      setU64(a.view, 16, end - from);
      native.ioctl(this.fd, HELPER_IOCTL.QUERY, a.bytes, [{ offset: 24, buffer: runs }]);
      const n = a.view.getUint32(4, true);
      for (let i = 0; i < n; i++) {
        const o = i * SIZEOF.run;
        out.push({ gfn: getU64(rv, o), pages: getU64(rv, o + 8), pageInRange: getU64(rv, o + 16), range: rv.getUint32(o + 24, true), huge: rv.getUint32(o + 28, true) !== 0 });
      }
      const last = out[out.length - 1];
      if (n < cap || !last) break;
      from = last.gfn + last.pages;
    }
    return out;
  }

  stats(): HelperStatsWithHistograms {
    // After close the fd may already name another file: never ioctl it. (Backend.stop keeps the
    // counters read just before its close: Backend.helperStatsAtStop.)
    if (this.closed) throw new Error('kernel helper: closed (read its statistics before close)');
    const a = arg(SIZEOF.stats);
    native.ioctl(this.fd, HELPER_IOCTL.STATS, a.bytes);
    const v = a.view;
    const hist = (off: number): number[] => Array.from({ length: HIST_BUCKETS }, (_, i) => getU64(v, off + 8 * i));
    return {
      maps: getU64(v, STATS_OFF.maps),
      mapCollisions: getU64(v, STATS_OFF.mapCollisions),
      installedPages: getU64(v, STATS_OFF.installedPages),
      hugeMaps: getU64(v, STATS_OFF.hugeMaps),
      invalidations: getU64(v, STATS_OFF.invalidations),
      revokedPages: getU64(v, STATS_OFF.revokedPages),
      residentPages: getU64(v, STATS_OFF.residentPages),
      eventsDropped: getU64(v, STATS_OFF.eventsDropped),
      invalidateNs: hist(STATS_OFF.invalidateNs),
      mapNs: hist(STATS_OFF.mapNs),
    };
  }

  /** Test-only host pressure: zaps the PTEs of pages of a registered mapping (module allow_evict=1). */
  evictVa(va: number, firstPage: number, pages: number): void {
    const range = this.vaToRange.get(va);
    if (range === undefined) throw new Error(`evict: no range registered at ${va.toString(16)}`);
    const a = arg(SIZEOF.evict);
    a.view.setUint32(4, range, true);
    setU64(a.view, 8, firstPage);
    setU64(a.view, 16, pages);
    native.ioctl(this.fd, HELPER_IOCTL.EVICT, a.bytes);
  }

  onEvent(handler: (ev: HelperEvent) => void): void {
    this.handlers.push(handler);
    if (this.waiter) return;
    const w = new native.Waiter(() => { this.drainEvents(); });
    w.addFd(this.fd, 1);
    w.start();
    this.waiter = w;
    this.drainEvents(); // anything queued before the waiter started
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiter?.close();
    native.close(this.fd); // release(): the module revokes everything and removes every notifier
  }

  /** The waiter is edge-triggered: read until the ring is empty. */
  private drainEvents(): void {
    const buf = this.eventBuf;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, buf, 0, buf.length, null);
      } catch (e) {
        if (isSyscallError(e, 'EAGAIN') || (e as NodeJS.ErrnoException).code === 'EAGAIN') return;
        throw e;
      }
      for (let o = 0; o + SIZEOF.event <= n; o += SIZEOF.event) this.dispatch(decodeEvent(buf, o));
      if (n < buf.length) return;
    }
  }

  private dispatch(ev: HelperEvent): void {
    for (const h of this.handlers) h(ev);
  }
}

export function decodeEvent(b: Buffer, o: number): HelperEvent {
  return {
    range: b.readUInt32LE(o + EVENT_OFF.rangeId),
    event: b.readUInt32LE(o + EVENT_OFF.event) as NotifyEvent | HelperSignal,
    firstPage: Number(b.readBigUInt64LE(o + EVENT_OFF.firstPage)),
    pages: Number(b.readBigUInt64LE(o + EVENT_OFF.pages)),
    revoked: Number(b.readBigUInt64LE(o + EVENT_OFF.revoked)),
    seq: Number(b.readBigUInt64LE(o + EVENT_OFF.seq)),
    startNs: b.readBigUInt64LE(o + EVENT_OFF.startNs),
    doneNs: b.readBigUInt64LE(o + EVENT_OFF.doneNs),
    lost: Number(b.readBigUInt64LE(o + EVENT_OFF.count)),
  };
}
