import { afterEach, describe, expect, it } from 'vitest';
import { IoreqServer } from '../../src/ioreq/server.js';
import { createSimPlatform, type SimPlatform } from '../../src/platform/sim/index.js';
import { silentLogger } from '../../src/telemetry/log.js';
import {
  IOREQ_READ,
  IOREQ_TYPE_INVALIDATE,
  IOREQ_TYPE_PIO,
  IOREQ_TYPE_TIMEOFFSET,
  IOREQ_WRITE,
  STATE_IOREQ_INPROCESS,
  STATE_IORESP_READY,
  STATE_IORESP_RETRY,
} from '../../src/xen/abi/ioreq.js';
import { exchange, ioreqPage, machine, request } from '../support/sim.js';

const REGION = 0x2000_0000;

function setup(retry = true): { p: SimPlatform; server: IoreqServer; seen: number[] } {
  const p = createSimPlatform({ machine: machine(), xen: { retry } });
  const server = new IoreqServer(p.hv, silentLogger());
  const seen: number[] = [];
  server.addRegion({
    name: 'test', start: REGION, end: REGION + 0x1000,
    handle(req, _v, out) {
      seen.push(req.addr);
      if (req.addr === REGION + 8) { out.retry = true; return; }
      if (req.addr === REGION + 16) return Promise.resolve().then(() => { out.lo = 0xabc; });
      if (req.addr === REGION + 24) throw new Error('boom');
      out.lo = 0x1234;
      out.hi = 0x5678;
    },
  });
  server.start();
  return { p, server, seen };
}

let current: SimPlatform | undefined;
afterEach(async () => { await current?.hv.close(); current = undefined; });

describe('IoreqServer', () => {
  it('answers a read in its region with the handler data and IORESP_READY', async () => {
    const { p, server } = setup();
    current = p;
    const r = await exchange(p, 0, { addr: REGION, dir: IOREQ_READ });
    expect([r.state, r.dataLo, r.dataHi]).toEqual([STATE_IORESP_READY, 0x1234, 0x5678]);
    expect(server.counters.answeredReady).toBe(1);
  });

  it('answers retry only when the hypervisor advertises it', async () => {
    const a = setup(true);
    current = a.p;
    expect((await exchange(a.p, 1, { addr: REGION + 8, dir: IOREQ_READ })).state).toBe(STATE_IORESP_RETRY);
    await a.p.hv.close();
    const b = setup(false);
    current = b.p;
    const r = await exchange(b.p, 1, { addr: REGION + 8, dir: IOREQ_READ });
    expect(r.state).toBe(STATE_IORESP_READY); // never state 4 to stock Xen: it would crash the guest
    expect(b.server.counters.answeredRetry).toBe(0);
  });

  it('completes asynchronous handlers', async () => {
    const { p } = setup();
    current = p;
    expect((await exchange(p, 0, { addr: REGION + 16, dir: IOREQ_READ })).dataLo).toBe(0xabc);
  });

  it('reads outside every region as all ones and drops writes, counting them', async () => {
    const { p, server, seen } = setup();
    current = p;
    const r = await exchange(p, 0, { addr: 0x3000_0000, size: 4, dir: IOREQ_READ });
    expect([r.state, r.dataLo, r.dataHi]).toEqual([STATE_IORESP_READY, 0xffff_ffff, 0]);
    const w = await exchange(p, 0, { addr: 0x3000_0000, size: 4, dir: IOREQ_WRITE, dataLo: 7 });
    expect(w.dataLo).toBe(7); // write data untouched, nothing stored anywhere
    expect(server.counters.unclaimed).toBe(2);
    expect(seen).toEqual([]);
  });

  it('acknowledges INVALIDATE and TIMEOFFSET without dispatching them', async () => {
    const { p, server, seen } = setup();
    current = p;
    expect((await exchange(p, 0, { type: IOREQ_TYPE_INVALIDATE, addr: 0 })).state).toBe(STATE_IORESP_READY);
    expect((await exchange(p, 1, { type: IOREQ_TYPE_TIMEOFFSET, addr: 0 })).state).toBe(STATE_IORESP_READY);
    expect([server.counters.invalidates, server.counters.timeoffsets, seen.length]).toEqual([1, 1, 0]);
  });

  it('refuses bad requests without harm and counts them by reason', async () => {
    const { p, server, seen } = setup();
    current = p;
    const bad = [
      { size: 3 }, { count: 0 }, { count: 9999 }, { type: IOREQ_TYPE_PIO }, { addr: REGION + 0xffc }, { type: 42 },
      { count: 2 }, // a rep read into one register: no emulator path sends it
      { count: 2, dataIsPtr: true, dataLo: 1 << 20 }, // a pointer past the end of guest RAM
      { count: 2, dataIsPtr: true, dataLo: 0x1ff8 }, // a rep whose RAM side crosses a page
      { dataIsPtr: true, dataLo: 0x100 }, // legitimate, but this region is a register file
    ];
    for (const b of bad) {
      const r = await exchange(p, 0, { addr: REGION, dir: IOREQ_READ, ...b });
      expect(r.state).toBe(STATE_IORESP_READY);
      expect(r.dataLo).not.toBe(0x1234);
    }
    expect(server.counters.bad).toBe(bad.length);
    expect(Object.keys(server.counters.badByReason).sort()).toEqual(['count', 'crosses_page', 'pio', 'ptr_crosses_page', 'ptr_outside_ram', 'rep_read', 'size', 'string_unsupported', 'type']);
    expect(seen).toEqual([]);
    // ...and it keeps serving good requests.
    expect((await exchange(p, 0, { addr: REGION, dir: IOREQ_READ })).dataLo).toBe(0x1234);
  });

  it('turns a throwing handler into an all-ones answer and keeps going', async () => {
    const { p, server } = setup();
    current = p;
    const r = await exchange(p, 0, { addr: REGION + 24, dir: IOREQ_READ });
    expect([r.state, r.dataLo]).toEqual([STATE_IORESP_READY, 0xffff_ffff]);
    expect(server.counters.handlerErrors).toBe(1);
    expect((await exchange(p, 0, { addr: REGION, dir: IOREQ_READ })).dataLo).toBe(0x1234);
  });

  it('ignores a notification for a slot that is not READY', async () => {
    const { p, server } = setup();
    current = p;
    const page = ioreqPage(p);
    page.post(1, request({ addr: REGION, state: STATE_IOREQ_INPROCESS, vpEport: page.readVpEport(1) }));
    p.xen.views.sendToServer(2);
    await new Promise((r) => setTimeout(r, 10));
    expect(server.counters.spurious).toBe(1);
    expect(page.loadState(1)).toBe(STATE_IOREQ_INPROCESS);
    expect(server.counters.requests).toBe(0);
  });

  it('refuses overlapping regions', () => {
    const { p, server } = setup();
    current = p;
    expect(() => { server.addRegion({ name: 'x', start: REGION + 0x800, end: REGION + 0x2000, handle() { /* never */ } }); }).toThrow(/overlaps/);
  });
});
