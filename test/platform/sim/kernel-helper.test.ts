/**
 * The simulated kernel helper's contract: the mmu_interval sequence protocol (a MAP racing an
 * invalidation never installs a stale frame), revoke inside the callback, events, and refusals.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NotifyEvent, type HelperEvent, type MapRequest, type MapResult } from '../../../src/platform/ports.js';
import { createSimPlatform, type SimPlatform } from '../../../src/platform/sim/index.js';
import { BAR_BASE, machine } from '../../support/sim.js';

const P = 4096;
const G0 = BAR_BASE / P;

interface Rig {
  p: SimPlatform;
  bo: number;
  va: number;
  range: number;
  events: HelperEvent[];
}

let hook: ((req: MapRequest) => void) | undefined;
let rig: Rig | undefined;
afterEach(async () => { hook = undefined; await rig?.p.hv.close(); rig = undefined; });

function setup(pages = 16, asyncMigration = false): Rig {
  const p = createSimPlatform({
    machine: machine(),
    xen: { retry: true },
    gpu: { asyncMigration },
    helperHooks: { afterLookup: (req) => hook?.(req) },
  });
  p.helper.bind({ domid: 1, firstGfn: G0, pages: 2048 });
  const bo = p.gpu.createBo(pages * P).handle;
  const m = p.gpu.mmapBo(bo);
  const range = p.helper.registerRange(m.va, m.length);
  const events: HelperEvent[] = [];
  p.helper.onEvent((e) => events.push(e));
  rig = { p, bo, va: m.va, range, events };
  return rig;
}

const mapReq = (r: Rig, over: Partial<MapRequest> = {}): MapRequest => ({ range: r.range, gfn: G0, pageInRange: 0, pages: 1, tryHuge: false, ...over });
const p2m = (r: Rig, i: number): number => Atomics.load(r.p.xen.views.p2m, i) - 1;
const tick = (): Promise<void> => new Promise((res) => setImmediate(res));

describe('sim kernel helper: sequence protocol', () => {
  it('maps the current frame when nothing races', async () => {
    const r = setup();
    const res = (await r.p.helper.map(mapReq(r, { pages: 4 })));
    expect(res).toMatchObject({ gfn: G0, pages: 4, installed: 4, collisions: 0, huge: false });
    for (let i = 0; i < 4; i++) expect(p2m(r, i)).toBe(r.p.simGpu.frameOf(r.bo, i));
  });

  it('a MAP whose lookup races an eviction retries and installs the new frame, never the old one', async () => {
    const r = setup();
    const old = r.p.simGpu.frameOf(r.bo, 0);
    let fired = 0;
    hook = () => {
      // Between the frame lookup and the locked retry check, the host moves the page.
      if (fired++ === 0) void r.p.simGpu.evict(r.bo, 0, 1);
    };
    const res = await r.p.helper.map(mapReq(r));
    const now = r.p.simGpu.frameOf(r.bo, 0);
    expect(now).not.toBe(old);
    expect(res.collisions).toBe(1);
    expect(p2m(r, 0)).toBe(now);
  });

  it('without the retry check the same race would have installed the freed frame (the test can fail)', () => {
    const r = setup();
    const old = r.p.simGpu.frameOf(r.bo, 0);
    // What a user-space map racing the invalidation would do: look up, then install regardless.
    void r.p.simGpu.evict(r.bo, 0, 1);
    expect(r.p.simGpu.frameOf(r.bo, 0)).not.toBe(old);
    r.p.xen.install(G0, old);
    expect(p2m(r, 0)).toBe(old); // a stale frame in the guest p2m: exactly what D1 forbids
  });

  it('read_begin waits for an invalidation in flight; the MAP then sees the migrated frames', async () => {
    const r = setup(16, true);
    const evict = r.p.simGpu.evict(r.bo, 0, 8); // async: invalidate_range_end comes a macrotask later
    const pending = r.p.helper.map(mapReq(r, { pages: 8 }));
    expect(pending).toBeInstanceOf(Promise);
    const res: MapResult = await pending;
    await evict;
    for (let i = 0; i < 8; i++) expect(p2m(r, i)).toBe(r.p.simGpu.frameOf(r.bo, i));
    expect(res.installed).toBe(8);
  });

  it('many MAPs racing many evictions never leave a stale frame in the p2m', async () => {
    const r = setup(64, true);
    let i = 0;
    hook = () => { if (i++ % 3 === 0) void r.p.simGpu.evict(r.bo, i % 64, 1 + (i % 7)); };
    for (let round = 0; round < 300; round++) {
      const page = (round * 13) % 64;
      await r.p.helper.map(mapReq(r, { gfn: G0 + page, pageInRange: page }));
      if (round % 5 === 0) void r.p.simGpu.evict(r.bo, page, 2);
      await tick();
      // Invariant: every present entry points at the BO's current frame for that page.
      for (let pg = 0; pg < 64; pg++) {
        const e = p2m(r, pg);
        if (e >= 0) expect(e).toBe(r.p.simGpu.frameOf(r.bo, pg));
      }
    }
    expect(r.p.helper.stats().mapCollisions).toBeGreaterThan(0);
  });
});

describe('sim kernel helper: revoke and events', () => {
  it('eviction revokes inside the callback and queues a CLEAR event', async () => {
    const r = setup();
    await r.p.helper.map(mapReq(r, { pages: 8 }));
    await r.p.simGpu.evict(r.bo, 2, 3);
    expect([1, 2, 4, 5].map((i) => p2m(r, i) >= 0)).toEqual([true, false, false, true]);
    await tick();
    expect(r.events).toHaveLength(1);
    const ev = r.events[0];
    expect(ev).toMatchObject({ range: r.range, firstPage: 2, pages: 3, revoked: 3, event: NotifyEvent.Clear });
    expect((ev?.seq ?? 0) % 2).toBe(1); // cur_seq is odd
    expect(ev && ev.doneNs >= ev.startNs).toBe(true);
  });

  it('reports UNMAP, PROTECTION_VMA and RELEASE with the kernel event types', async () => {
    const r = setup();
    await r.p.helper.map(mapReq(r, { pages: 2 }));
    r.p.mm.mprotect(r.va, 4 * P);
    await r.p.helper.map(mapReq(r, { pages: 2 }));
    r.p.mm.exit();
    await tick();
    expect(r.events.map((e) => e.event)).toEqual([NotifyEvent.ProtectionVma, NotifyEvent.Release, NotifyEvent.Unmap]);
    expect(r.events.map((e) => e.revoked)).toEqual([2, 2, 0]);
    // The range is dead once its VMA is gone: MAP fails with EFAULT.
    expect(() => r.p.helper.map(mapReq(r))).toThrow(/EFAULT/);
  });

  it('close() revokes everything (a dead back-end leaves nothing mapped)', async () => {
    const r = setup();
    await r.p.helper.map(mapReq(r, { pages: 16 }));
    r.p.helper.close();
    for (let i = 0; i < 16; i++) expect(p2m(r, i)).toBe(-1);
    expect(r.p.helper.stats().residentPages).toBe(0);
  });
});

describe('sim kernel helper: refusals', () => {
  it('refuses work before BIND and a second BIND', () => {
    const p = createSimPlatform({ machine: machine(), xen: { retry: true } });
    expect(() => p.helper.registerRange(0x1000, P)).toThrow(/ENOTCONN/);
    p.helper.bind({ domid: 1, firstGfn: G0, pages: 16 });
    expect(() => { p.helper.bind({ domid: 1, firstGfn: G0, pages: 16 }); }).toThrow(/EBUSY/);
    expect(() => { createSimPlatform({ machine: machine(), xen: { retry: true } }).helper.bind({ domid: 1, firstGfn: G0 - 1, pages: 16 }); }).toThrow(/EINVAL/);
  });

  it('refuses MAPs outside the window, the range, or the size limits', () => {
    const r = setup();
    const h = r.p.helper;
    expect(() => h.map(mapReq(r, { gfn: G0 + 2048 }))).toThrow(/EINVAL/);
    expect(() => h.map(mapReq(r, { gfn: G0 - 1 }))).toThrow(/EINVAL/);
    expect(() => h.map(mapReq(r, { pageInRange: 15, pages: 2 }))).toThrow(/EINVAL/);
    expect(() => h.map(mapReq(r, { pages: 0 }))).toThrow(/EINVAL/);
    expect(() => h.map(mapReq(r, { pages: 100_000 }))).toThrow(/EINVAL/);
    expect(() => h.map(mapReq(r, { range: 99 }))).toThrow(/ENOENT/);
    expect(() => h.map(mapReq(r, { access: { gfn: G0 + 5, byteInPage: 0, size: 8, write: false, dataLo: 0, dataHi: 0 } }))).toThrow(/EINVAL/);
    expect(() => h.map(mapReq(r, { access: { gfn: G0, byteInPage: 4092, size: 8, write: false, dataLo: 0, dataHi: 0 } }))).toThrow(/EINVAL/);
  });

  it('refuses overlapping ranges, unaligned ranges and a GFN already owned by another page', async () => {
    const r = setup();
    const h = r.p.helper;
    expect(() => h.registerRange(r.va + P, P)).toThrow(/EEXIST/);
    expect(() => h.registerRange(r.va + 1, P)).toThrow(/EINVAL/);
    expect(() => h.registerRange(0x1000, P)).toThrow(/EFAULT/);
    await h.map(mapReq(r));
    expect(() => h.map(mapReq(r, { pageInRange: 1 }))).toThrow(/EEXIST/); // gfn G0 is page 0's
    expect(() => h.unmap(G0 + 2047, 2)).toThrow(/EINVAL/);
    expect(h.unmap(G0, 1)).toBe(1);
    expect(() => { h.unregisterRange(77); }).toThrow(/ENOENT/);
  });
});
