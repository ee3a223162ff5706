/**
 * The Xen hypervisor port under the real IoreqServer, on fake libraries: a shared memfd ioreq page,
 * an eventfd standing in for the evtchn fd on the real native waiter. Checks the setup sequence,
 * the slot protocol (READY → INPROCESS → data → IORESP_READY → notify), mode by capability, and
 * that a failure at any step of setup leaves nothing behind.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { IoreqServer, type IoRegion } from '../../../src/ioreq/server.js';
import { XenDomainError, XenHypervisor } from '../../../src/platform/xen/hypervisor.js';
import { XenUnavailableError, dlopenOrExplain, requireXenDevices } from '../../../src/platform/xen/ffi.js';
import { silentLogger } from '../../../src/telemetry/log.js';
import {
  IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_INVALIDATE, IOREQ_WRITE, STATE_IOREQ_INPROCESS, STATE_IOREQ_READY, STATE_IORESP_READY,
  STATE_IORESP_RETRY, emptyIoreq, type Ioreq,
} from '../../../src/xen/abi/ioreq.js';
import { FakeXen, type FakeXenOptions } from './fake-xen.js';
import { existsSync, readFileSync } from 'node:fs';
import { recordPath, writeServerRecord, type ServerRecord } from '../../../src/platform/xen/server-record.js';

const BASE = 0xfe00_0000;
const fakes: FakeXen[] = [];
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of closers.splice(0)) await c().catch(() => undefined);
  for (const f of fakes.splice(0)) f.dispose();
});

interface Served {
  fake: FakeXen;
  hv: XenHypervisor;
  server: IoreqServer;
  seen: { req: Ioreq; stateDuring: number }[];
}

function serve(o: FakeXenOptions = {}): Served {
  const fake = new FakeXen(o);
  fakes.push(fake);
  const hv = XenHypervisor.open(fake.domid, fake.libs());
  closers.push(() => hv.close());
  const server = new IoreqServer(hv, silentLogger());
  const seen: Served['seen'] = [];
  const region: IoRegion = {
    name: 'test', start: BASE, end: BASE + 0x1000,
    handle(req, v, out) {
      seen.push({ req: { ...req }, stateDuring: [...fake.guestPages.values()].at(-1)?.loadState(v) ?? -1 });
      if (req.addr === BASE + 8) out.retry = true;
      out.lo = 0xcafe;
    },
  };
  server.addRegion(region);
  server.start();
  return { fake, hv, server, seen };
}

function post(fake: FakeXen, v: number, fields: Partial<Ioreq>, server: number): void {
  const page = fake.guestPages.get(server);
  if (!page) throw new Error('no ioreq page');
  const req = { ...emptyIoreq(), addr: BASE, size: 4, count: 1, type: IOREQ_TYPE_COPY, dir: IOREQ_READ, ...fields, vpEport: page.readVpEport(v), state: STATE_IOREQ_READY };
  page.post(v, req);
  fake.send(server, v);
}

/** Posts a request as vCPU `v` of ioreq server `server` and waits for the back-end's notify. */
async function exchange(fake: FakeXen, v: number, fields: Partial<Ioreq>, server = 1): Promise<Ioreq> {
  const done = fake.nextNotify();
  post(fake, v, fields, server);
  await done;
  const page = fake.guestPages.get(server);
  if (!page) throw new Error('no ioreq page');
  return page.read(v, emptyIoreq());
}

describe('Xen platform: setup over the libraries', () => {
  it('restricts every handle to the domain, creates the server without buffered ioreqs, maps frame 1, enables it, then binds each vCPU (Xen publishes vp_eport on enable)', () => {
    const { fake } = serve({ vcpus: 3 });
    const c = fake.calls;
    expect(c.slice(0, 4)).toEqual(['requireDevices', 'ctrl open', 'getdomaininfo', 'maximum_gpfn']);
    expect(c).toContain('ctrl close');
    expect(c.indexOf('ctrl close')).toBeLessThan(c.indexOf('devicemodel open')); // libxenctrl is not held while serving
    expect(c).toContain('devicemodel restrict 7');
    expect(c).toContain('privcmd restrict 7');
    expect(c).toContain('evtchn restrict 7');
    expect(c).toContain('create_ioreq_server flags=1'); // the retry probe, refused by this stock fake
    expect(c).toContain('create_ioreq_server bufioreq=0');
    expect(c).toContain('map_resource type=0 id=1 frame=1 nr=1');
    expect(c).toContain(`map_io_range mmio ${BASE.toString(16)}-${(BASE + 0xfff).toString(16)}`); // end inclusive
    expect(c.filter((x) => x.startsWith('bind_interdomain'))).toEqual(['bind_interdomain 100', 'bind_interdomain 101', 'bind_interdomain 102']);
    expect(c.indexOf('set_ioreq_server_state 1')).toBeLessThan(c.indexOf('bind_interdomain 100'));
    expect(fake.serverState(1)?.enabled).toBe(true);
  });

  it('close() releases everything: server destroyed, page unmapped, ports unbound, handles closed', async () => {
    const { fake, hv, server } = serve();
    server.stop();
    await hv.close();
    expect(fake.live()).toEqual([]);
    expect(hv.heldResources).toBe(0);
  });
});

describe('Xen platform: the slot protocol through the waiter', () => {
  it('serves a read: INPROCESS while handled, data written, IORESP_READY, notify on that vCPU’s port', async () => {
    const { fake, seen } = serve();
    const answer = await exchange(fake, 1, { addr: BASE + 4, dir: IOREQ_READ });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.stateDuring).toBe(STATE_IOREQ_INPROCESS);
    expect(answer.state).toBe(STATE_IORESP_READY);
    expect(answer.dataLo).toBe(0xcafe);
    expect(fake.notified).toEqual([41]); // vCPU 1's local port
    expect(fake.calls).toContain('unmask 41');
  });

  it('serves a write with its data; INVALIDATE drops the cached guest-RAM mappings, then is acknowledged', async () => {
    const { fake, seen, hv } = serve();
    const w = await exchange(fake, 0, { addr: BASE + 12, dir: IOREQ_WRITE, dataLo: 0x1234 });
    expect(w.state).toBe(STATE_IORESP_READY);
    expect(seen[0]?.req.dataLo).toBe(0x1234);
    hv.guestMemory().read(0x3000, new Uint8Array(8)); // a cached foreign mapping of guest RAM
    expect(hv.guestMemory().cachedPages).toBe(1);
    const inv = await exchange(fake, 0, { addr: 0, type: IOREQ_TYPE_INVALIDATE, size: 0 });
    expect(inv.state).toBe(STATE_IORESP_READY);
    expect(hv.guestMemory().cachedPages).toBe(0);
  });

  it('never sends the retry state to stock Xen; uses it where the hypervisor accepted the flag', async () => {
    const stock = serve();
    expect(stock.hv.caps.retry).toBe(false);
    expect((await exchange(stock.fake, 0, { addr: BASE + 8 })).state).toBe(STATE_IORESP_READY);
    const ext = serve({ retry: true });
    expect(ext.hv.caps.retry).toBe(true);
    expect(ext.fake.calls).toContain('destroy_ioreq_server 1'); // the probe's server is not kept
    expect(ext.fake.calls).toContain('map_resource type=0 id=2 frame=1 nr=1'); // the served one, created with the flag
    expect((await exchange(ext.fake, 0, { addr: BASE + 8, retryOffered: true }, 2)).state).toBe(STATE_IORESP_RETRY);
    expect(ext.server.counters.answeredRetry).toBe(1);
  });

  it('answers a retry only where Xen offered one (the request\'s retry bit); otherwise completes it and counts the handler\'s error', async () => {
    const ext = serve({ retry: true });
    expect(ext.hv.caps.retryOffer).toBe(true);
    const r = await exchange(ext.fake, 0, { addr: BASE + 8, dir: IOREQ_READ, size: 4 }, 2);
    expect(r.state).toBe(STATE_IORESP_READY);
    expect(r.dataLo).toBe(0xffffffff); // completed as unclaimed, never as a retry Xen would crash the guest for
    expect(ext.seen.at(-1)?.req.mustComplete).toBe(true);
    expect(ext.server.counters).toMatchObject({ answeredRetry: 0, handlerErrors: 1 });
  });

  it('raises an HVM guest\'s ISA IRQ line through set_isa_irq_level', () => {
    const { fake, hv } = serve({ type: 'hvm' });
    hv.setIrqLevel(5, true);
    hv.setIrqLevel(5, false);
    expect(fake.calls.slice(-2)).toEqual(['set_isa_irq_level 5 1', 'set_isa_irq_level 5 0']);
  });

  // Regression (Xen tier, stock Xen 4.17): set_isa_irq_level on a PVH domain made Xen run its absent
  // vPIC over struct hvm_domain, corrupting it (a Xen GPF in hvm_vcpu_has_pending_irq).
  it('never asks Xen for an ISA IRQ on a PVH guest (no emulated PIC): a clear refusal instead', () => {
    const { fake, hv } = serve({ type: 'pvh' });
    const before = fake.calls.length;
    expect(() => { hv.setIrqLevel(5, true); }).toThrow(XenDomainError);
    expect(() => { hv.setIrqLevel(5, false); }).toThrow(/PVH: it has no emulated PIC/);
    expect(fake.calls.slice(before)).toEqual([]);
  });

  // Xen tier scenario e: `xl destroy` of the guest while served made stop/close fail (ENOENT).
  it('stops and closes cleanly after the guest was destroyed (Xen took the server with it)', async () => {
    const { fake, hv, server } = serve();
    fake.destroyDomain();
    expect(() => { server.stop(); }).not.toThrow();
    await expect(hv.close()).resolves.toBeUndefined();
    expect(fake.live()).toEqual([]);
  });

  it('still reports a destroy Xen refuses for another reason', () => {
    const { fake, server } = serve();
    fake.forgetServers();
    expect(() => { server.stop(); }).toThrow(/no such server/);
  });

  // Xen tier scenario d: after kill -9 Xen keeps the dead xvgpu's server, enabled, on our ranges.
  it('a restarted xvgpu destroys the server its killed predecessor left, and only that one', async () => {
    const first = serve();
    const record = JSON.parse(readFileSync(recordPath(first.fake.stateDir, first.fake.domid), 'utf8')) as ServerRecord;
    expect(record).toMatchObject({ domid: 7, server: 1, pid: process.pid });
    const state = first.fake.stateDir;
    const restarted = serve({ stateDir: state, leftoverServer: 1 });
    expect(restarted.hv.reclaimedServer).toBe(1);
    const calls = restarted.fake.calls;
    expect(calls.indexOf('destroy_ioreq_server 1')).toBeGreaterThan(-1);
    expect(calls.indexOf('destroy_ioreq_server 1')).toBeLessThan(calls.indexOf('create_ioreq_server bufioreq=0'));
    await restarted.hv.close();
    expect(existsSync(recordPath(state, 7))).toBe(false); // a clean stop leaves no record
  });

  it('leaves a record of another instance of the domid alone in Xen, and refuses a live predecessor', () => {
    const first = serve();
    const state = first.fake.stateDir;
    const reused = serve({ stateDir: state, leftoverServer: 1, handle: 'ab'.repeat(16) });
    expect(reused.hv.reclaimedServer).toBeUndefined();
    expect(reused.fake.calls).not.toContain('destroy_ioreq_server 1');
    writeServerRecord(state, { domid: 7, handle: 'ab'.repeat(16), server: 2, pid: process.ppid });
    expect(() => serve({ stateDir: state, leftoverServer: 2, handle: 'ab'.repeat(16) })).toThrow(/already served by process/);
  });

  it('reads and writes guest RAM through cached foreign mappings, unmapped on close', async () => {
    const { fake, hv } = serve();
    const mem = hv.guestMemory();
    mem.write(0x1ffe, Uint8Array.of(1, 2, 3, 4)); // spans two pages
    const back = new Uint8Array(4);
    mem.read(0x1ffe, back);
    expect([...back]).toEqual([1, 2, 3, 4]);
    expect(fake.calls.filter((c) => c === 'mmapbatch')).toHaveLength(2);
    expect(() => { mem.read(mem.size - 2, new Uint8Array(4)); }).toThrow(RangeError);
    await hv.close();
    expect(fake.live()).toEqual([]);
  });
});

describe('Xen platform: failures leave nothing half set up', () => {
  async function attempt(o: FakeXenOptions): Promise<{ fake: FakeXen; error: unknown; liveAtError: string[] }> {
    const fake = new FakeXen(o);
    fakes.push(fake);
    let hv: XenHypervisor | undefined;
    let error: unknown;
    let liveAtError: string[] = [];
    try {
      hv = XenHypervisor.open(fake.domid, fake.libs());
      const server = new IoreqServer(hv, silentLogger());
      server.addRegion({ name: 'r', start: BASE, end: BASE + 0x1000, handle() { /* nothing */ } });
      server.start();
    } catch (e) {
      error = e;
      liveAtError = fake.live();
    }
    await hv?.close().catch(() => undefined);
    return { fake, error, liveAtError };
  }

  it('a failure at every single step k of setup is reported and everything created is torn down', async () => {
    const total = (await attempt({})).fake.stepCount;
    expect(total).toBeGreaterThan(10);
    for (let k = 1; k <= total; k++) {
      const { fake, error } = await attempt({ failAt: k });
      expect(error, `step ${k} (${fake.calls.at(-1) ?? ''})`).toBeInstanceOf(Error);
      expect(fake.live(), `after failing step ${k}: ${fake.calls.join(', ')}`).toEqual([]);
    }
  });

  it('a missing, PV or vanished domain is one clear error', async () => {
    expect((await attempt({ exists: false })).error).toEqual(new XenDomainError('domain 7 does not exist'));
    expect(String((await attempt({ type: 'pv' })).error)).toMatch(/domain 7 is a PV guest/);
    const gone = await attempt({ goneAt: 12 });
    expect(gone.error).toBeInstanceOf(XenDomainError);
    expect(String(gone.error)).toMatch(/domain 7 is gone \(.*ESRCH\)/);
    expect(gone.fake.live()).toEqual([]);
    expect(() => XenHypervisor.open(0x7ff0, new FakeXen().libs())).toThrow(/cannot be served/);
  });

  it('an evtchn bind failure and an ioreq page map failure undo the server', async () => {
    const probe = await attempt({});
    const bindStep = probe.fake.stepNames.findIndex((c) => c.startsWith('bind_interdomain')) + 1;
    const mapStep = probe.fake.stepNames.findIndex((c) => c.startsWith('map_resource')) + 1;
    expect(bindStep).toBeGreaterThan(0);
    expect(mapStep).toBeGreaterThan(0);
    for (const k of [bindStep, mapStep]) {
      const r = await attempt({ failAt: k });
      expect(String(r.error)).toMatch(/injected failure/);
      expect(r.fake.stepNames.at(-1)).toMatch(k === mapStep ? /^map_resource/ : /^bind_interdomain/);
      expect(r.fake.calls).toContain('destroy_ioreq_server 1');
      if (k === mapStep) expect(r.liveAtError.filter((x) => x.startsWith('server'))).toEqual([]); // undone at once, not at close()
      expect(r.fake.live()).toEqual([]);
    }
  });
});

describe('Xen platform: a host without Xen', () => {
  it('names the missing device or library in one line', () => {
    expect(() => { requireXenDevices(() => false); }).toThrow(/^not running on Xen/);
    expect(() => { requireXenDevices((p) => p !== '/dev/xen/privcmd'); }).toThrow('/dev/xen/privcmd missing: not a Xen dom0/driver domain');
    expect(() => { dlopenOrExplain('nope', 'libxen-does-not-exist.so.1', 'libxen-nope1'); }).toThrow(
      new XenUnavailableError('libxen-does-not-exist.so.1 not found: install libxen-dev or libxen-nope1'),
    );
  });
});
