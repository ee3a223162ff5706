/**
 * The shutdown's two halves on the back-end itself, with a guest that does not clean up (a real Xen
 * guest keeps running): the ioreq server stops taking ioreqs and answers those in flight, and
 * Backend.stop() revokes every mapping the guest still has.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { IoreqServer } from '../../src/ioreq/server.js';
import { createSimPlatform, type SimPlatform } from '../../src/platform/sim/index.js';
import { CTL_SERVER_ENABLED } from '../../src/platform/sim/machine.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { IOREQ_READ, STATE_IORESP_READY, STATE_IORESP_RETRY } from '../../src/xen/abi/ioreq.js';
import { BAR_BASE, exchange, fixture, ioreqPage, machine, request } from '../support/sim.js';

let current: SimPlatform | undefined;
afterEach(async () => { await current?.hv.close(); current = undefined; });

describe('shutdown', () => {
  it('quiesce() disables the server and resolves only once the ioreq in flight is answered', async () => {
    const p = createSimPlatform({ machine: machine(), xen: { retry: true } });
    current = p;
    const server = new IoreqServer(p.hv, silentLogger());
    let release = (): void => undefined;
    const REGION = 0x2000_0000;
    server.addRegion({ name: 'slow', start: REGION, end: REGION + 0x1000, handle: (_req, _v, out) => new Promise<void>((r) => { release = () => { out.lo = 0x77; r(); }; }) });
    server.start();
    const page = ioreqPage(p);
    page.post(0, request({ addr: REGION, dir: IOREQ_READ, vpEport: page.readVpEport(0) }));
    p.xen.views.sendToServer(Atomics.load(p.xen.views.ctl, p.xen.views.boundPortIndex(0)));
    while (server.inFlight() === 0) await new Promise((r) => setImmediate(r));
    let quiesced = false;
    const q = server.quiesce().then(() => { quiesced = true; });
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(Atomics.load(p.xen.views.ctl, CTL_SERVER_ENABLED)).toBe(0); // Xen routes no new ioreq here
    expect(quiesced).toBe(false); // the one in flight is still being served
    release();
    await q;
    expect(page.loadState(0)).toBe(STATE_IORESP_READY);
    expect(page.read(0, request({})).dataLo).toBe(0x77);
    server.stop();
  });

  it('Backend.stop() revokes what a guest that never unmapped still has mapped, and says none is left', async () => {
    const { platform, backend } = fixture({ faultAround: 16 });
    current = platform;
    const blob = backend.createBlob(64 * 4096);
    backend.mapBlob(blob.id, 0);
    for (const page of [0, 20, 40]) expect((await exchange(platform, 0, { addr: BAR_BASE + page * 4096, dir: IOREQ_READ })).state).toBe(STATE_IORESP_RETRY);
    expect(backend.mappedPages()).toBe(48);
    expect(backend.stop()).toBe(0);
  });
});
