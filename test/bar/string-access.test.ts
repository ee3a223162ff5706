/**
 * String requests on the BAR (rep MOVS with data_is_ptr, rep STOS) in emulate mode: the copy between
 * guest RAM and the buffer, df, the sequence check that redoes a copy raced by an invalidation, and
 * the test-only faults the synthetic guest's memcpy checks must catch.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend } from '../../src/backend.js';
import { DEFAULT_POLICY, type BarPolicy } from '../../src/bar/manager.js';
import { StringAccess, type StringFault } from '../../src/bar/string-access.js';
import { BadIoreq, validateIoreq } from '../../src/ioreq/validate.js';
import { createSimPlatform } from '../../src/platform/sim/index.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { IOREQ_READ, IOREQ_WRITE, STATE_IORESP_READY, type Ioreq } from '../../src/xen/abi/ioreq.js';
import { BAR_BASE, exchange, machine, request, type Fixture } from '../support/sim.js';

const P = 4096;
let f: Fixture | undefined;
afterEach(async () => { f?.backend.stop(); await f?.platform.hv.close(); f = undefined; });

function setup(policy: Partial<BarPolicy>, fault?: StringFault): Fixture {
  const m = machine();
  const platform = createSimPlatform({ machine: m, xen: { retry: true } });
  const backend = new Backend(platform, { barBase: m.barBase, barPages: m.barPages, policy: { ...DEFAULT_POLICY, faultAround: 1, hugePages: false, ...policy }, ...(fault ? { injectStringFault: fault } : {}) }, silentLogger());
  backend.start();
  f = { platform, backend };
  return f;
}

const ram = (fx: Fixture): Uint8Array => new Uint8Array(fx.platform.xen.buffers.ram);
const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + (i >> 8)) & 0xff);
const ptr = (gpa: number): Partial<Ioreq> => ({ dataIsPtr: true, dataLo: gpa });

function boBytes(fx: Fixture, bo: number, offset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  fx.platform.gpu.readBo(bo, offset, out);
  return out;
}

/** A blob of 4 pages at BAR page 0. */
function blobAt0(fx: Fixture): { id: number; bo: number } {
  const blob = fx.backend.createBlob(4 * P);
  fx.backend.mapBlob(blob.id, 0);
  return blob;
}

describe.each(['fault', 'eager', 'emulate-all'] as const)('string requests, emulate mode, strategy %s', (strategy) => {
  it('rep movsq RAM -> BAR copies a whole page and maps it (unless emulate-all)', async () => {
    const fx = setup({ mode: 'emulate', strategy });
    const { bo } = blobAt0(fx);
    ram(fx).set(pattern(P, 1), 0x4000);
    const r = await exchange(fx.platform, 0, { addr: BAR_BASE + 2 * P, size: 8, count: 512, dir: IOREQ_WRITE, ...ptr(0x4000) });
    expect(r.state).toBe(STATE_IORESP_READY);
    expect(boBytes(fx, bo, 2 * P, P)).toEqual(pattern(P, 1));
    expect(fx.backend.bar.counters).toMatchObject({ strings: 1, stringRedos: 0, emulated: 1 });
    expect(fx.platform.helper.query(BAR_BASE / P + 2, 1).length).toBe(strategy === 'emulate-all' ? 0 : 1);
  });

  it('rep movsd BAR -> RAM backwards (df): the request names the highest element on both sides', async () => {
    const fx = setup({ mode: 'emulate', strategy });
    const { bo } = blobAt0(fx);
    fx.platform.gpu.writeBo(bo, P, pattern(P, 2));
    // 16 dwords ending at BAR offset 0x40+4 and RAM 0x6040+4: blocks [0x04, 0x44) and [0x6004, 0x6044).
    const r = await exchange(fx.platform, 1, { addr: BAR_BASE + P + 0x40, size: 4, count: 16, df: true, dir: IOREQ_READ, ...ptr(0x6040) });
    // The bytes went to guest RAM; the slot keeps the pointer (Xen does not consume data here).
    expect([r.state, r.dataLo]).toEqual([STATE_IORESP_READY, 0x6040]);
    expect(ram(fx).subarray(0x6004, 0x6044)).toEqual(pattern(P, 2).subarray(0x04, 0x44));
    expect(ram(fx)[0x6003]).toBe(0); // nothing outside the block
    expect(ram(fx)[0x6044]).toBe(0);
  });
});

describe('string requests, emulate mode', () => {
  it('rep stosd stores the low 4 bytes of data count times', async () => {
    const fx = setup({ mode: 'emulate' });
    const { bo } = blobAt0(fx);
    await exchange(fx.platform, 0, { addr: BAR_BASE + 0x100, size: 4, count: 8, dir: IOREQ_WRITE, dataLo: 0xa1b2c3d4, dataHi: 0x55 });
    const got = new DataView(boBytes(fx, bo, 0xfc, 40).buffer);
    expect(got.getUint32(0, true)).toBe(0);
    for (let i = 0; i < 8; i++) expect(got.getUint32(4 + 4 * i, true)).toBe(0xa1b2c3d4);
    expect(got.getUint32(36, true)).toBe(0);
  });

  it('a copy raced by an invalidation is redone against the settled range (sequence check)', async () => {
    const fx = setup({ mode: 'emulate' });
    const { bo } = blobAt0(fx);
    const gpu = fx.platform.simGpu;
    const write = gpu.writeBo.bind(gpu);
    let evictions = 0;
    // The host moves the page while the back-end copies into it: the range's sequence moves.
    gpu.writeBo = (h, off, data) => {
      if (evictions++ === 0) void gpu.evict(bo, 0, 4);
      write(h, off, data);
    };
    ram(fx).set(pattern(P, 3), 0x8000);
    const r = await exchange(fx.platform, 0, { addr: BAR_BASE, size: 8, count: 512, dir: IOREQ_WRITE, ...ptr(0x8000) });
    expect(r.state).toBe(STATE_IORESP_READY);
    expect(fx.backend.bar.counters).toMatchObject({ strings: 1, stringRedos: 1 });
    expect(boBytes(fx, bo, 0, P)).toEqual(pattern(P, 3));
    // The redo's MAP put the page back: the guest's mapping points at the new frame.
    expect(Atomics.load(fx.platform.xen.views.p2m, 0) - 1).toBe(gpu.frameOf(bo, 0));
  });

  it('retry mode: a vCPU retried retryLimit times on the page gets its string request emulated (forward progress)', async () => {
    const fx = setup({ mode: 'retry', retryLimit: 1 });
    const { id, bo } = blobAt0(fx);
    ram(fx).set(pattern(P, 5), 0x3000);
    const req = { addr: BAR_BASE + 3 * P, size: 8, count: 512, dir: IOREQ_WRITE, ...ptr(0x3000) } as const;
    expect((await exchange(fx.platform, 0, req)).state).not.toBe(STATE_IORESP_READY); // mapped, retry
    fx.backend.unmapBlob(id); // a revoke storm: the page is gone again
    fx.backend.mapBlob(id, 0);
    expect((await exchange(fx.platform, 0, req)).state).toBe(STATE_IORESP_READY);
    expect(fx.backend.bar.counters).toMatchObject({ retries: 1, forwardProgress: 1, strings: 1 });
    expect(boBytes(fx, bo, 3 * P, P)).toEqual(pattern(P, 5));
  });

  it('refuses a string request whose RAM side leaves guest RAM, touching nothing', async () => {
    const fx = setup({ mode: 'emulate' });
    const { bo } = blobAt0(fx);
    const r = await exchange(fx.platform, 0, { addr: BAR_BASE, size: 8, count: 512, dir: IOREQ_READ, ...ptr((1 << 16) - 8) });
    expect(r.state).toBe(STATE_IORESP_READY);
    expect(fx.backend.server.counters.badByReason).toEqual({ ptr_outside_ram: 1 });
    expect(fx.backend.bar.counters.faults).toBe(0);
    expect(boBytes(fx, bo, 0, 8)).toEqual(new Uint8Array(8));
  });

  // Each test-only fault breaks one rule; the copy must then differ from what the guest asked for.
  it.each(['ignore-count', 'ignore-df', 'drop-ptr'] as const)('fault injection %s corrupts the copy', async (fault) => {
    const fx = setup({ mode: 'emulate' }, fault);
    const { bo } = blobAt0(fx);
    ram(fx).set(pattern(256, 4), 0x2000);
    await exchange(fx.platform, 0, { addr: BAR_BASE + P + 0xf8, size: 8, count: 32, df: true, dir: IOREQ_WRITE, ...ptr(0x20f8) });
    expect(boBytes(fx, bo, P, 256)).not.toEqual(pattern(256, 4));
  });
});

describe('StringAccess on hostile requests', () => {
  it('whatever the validator accepts is performed inside guest RAM and inside the page (property)', () => {
    const RAM = 1 << 16;
    const guestRam = new Uint8Array(RAM);
    const bounded = {
      size: RAM,
      read: (gpa: number, into: Uint8Array) => { expect(gpa >= 0 && gpa + into.byteLength <= RAM).toBe(true); into.set(guestRam.subarray(gpa, gpa + into.byteLength)); },
      write: (gpa: number, from: Uint8Array) => { expect(gpa >= 0 && gpa + from.byteLength <= RAM).toBe(true); guestRam.set(from, gpa); },
      load16: () => 0,
      store16: () => undefined,
    };
    const s = new StringAccess({ ram: bounded, boAccess: (_r, off, data) => { expect(off >= 0 && off + data.byteLength <= P).toBe(true); } }, 1);
    fc.assert(
      fc.property(
        fc.record({ page: fc.integer({ min: 0, max: 4095 }), size: fc.constantFrom(1, 2, 4, 8), count: fc.integer({ min: 1, max: 4096 }), df: fc.boolean(), write: fc.boolean(), gpa: fc.integer({ min: 0, max: RAM + 64 }), isPtr: fc.boolean() }),
        (a) => {
          const req = request({ addr: BAR_BASE + a.page, size: a.size, count: a.count, df: a.df, dir: a.write ? IOREQ_WRITE : IOREQ_READ, ...(a.isPtr ? ptr(a.gpa) : {}) });
          if (validateIoreq(req, RAM) !== BadIoreq.None) return;
          const first = a.df ? a.page - (a.count - 1) * a.size : a.page;
          s.perform(req, 0, 1, first);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
