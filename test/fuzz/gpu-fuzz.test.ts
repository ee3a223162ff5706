/**
 * Mutation fuzzer for the virtio-gpu device: random command sequences built from a grammar of valid
 * commands, then mutated (fields replaced with hostile values, bytes flipped, commands truncated).
 * After every command the device must have answered with OK_* or ERR_*; after every sequence the
 * p2m may only hold pages of blobs that are currently mapped, at their placement; a reset must leave
 * nothing mapped. Bounded in `npm test`; `npm run fuzz` runs a long campaign
 * (XVGPU_FUZZ_CASES, XVGPU_FUZZ_SEED).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { BLOB_FLAG_USE_MAPPABLE, BLOB_MEM_HOST3D, CMD, RESP } from '../../src/gpu/protocol.js';
import { CCMD } from '../../src/gpu/native-context.js';
import { REG } from '../../src/virtio/constants.js';
import { MMIO, cmd, gpuRig } from '../support/gpu.js';
import { BAR_BASE } from '../support/sim.js';

const CASES = Number(process.env.XVGPU_FUZZ_CASES ?? 300);
const SEED = process.env.XVGPU_FUZZ_SEED !== undefined ? Number(process.env.XVGPU_FUZZ_SEED) : undefined;
const PAGE = 4096;
const OK = new Set<number>([RESP.OK_NODATA, RESP.OK_DISPLAY_INFO, RESP.OK_CAPSET_INFO, RESP.OK_CAPSET, RESP.OK_MAP_INFO]);
const ERR = new Set<number>([RESP.ERR_UNSPEC, RESP.ERR_OUT_OF_MEMORY, RESP.ERR_INVALID_RESOURCE_ID, RESP.ERR_INVALID_CONTEXT_ID, RESP.ERR_INVALID_PARAMETER]);

const small = fc.oneof(fc.nat({ max: 4 }), fc.constant(1), fc.constant(2));
const size = fc.oneof(fc.constantFrom(PAGE, 2 * PAGE, 16 * PAGE), fc.nat({ max: 1 << 20 }), fc.constant(0));
const offset = fc.oneof(fc.nat({ max: 64 }).map((p) => p * PAGE), fc.nat(), fc.constant(2 ** 40));

type Op = { bytes: Uint8Array };
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ ctx: small, res: small, blob: small, size }).map(({ ctx, res, blob, size: s }) => {
    // GEM_NEW + CREATE_BLOB as one SUBMIT_3D then the create; here: just the create (GEM_NEW below).
    const c = cmd(CMD.RESOURCE_CREATE_BLOB, ctx, 32);
    c.v.setUint32(24, res, true);
    c.v.setUint32(28, BLOB_MEM_HOST3D, true);
    c.v.setUint32(32, BLOB_FLAG_USE_MAPPABLE, true);
    c.v.setBigUint64(40, BigInt(blob), true);
    c.v.setBigUint64(48, BigInt(s), true);
    return { bytes: c.bytes };
  }),
  fc.record({ ctx: small, blob: small, size }).map(({ ctx, blob, size: s }) => {
    const c = cmd(CMD.SUBMIT_3D, ctx, 8 + 32);
    c.v.setUint32(24, 32, true);
    c.v.setUint32(32, CCMD.GEM_NEW, true);
    c.v.setUint32(36, 32, true);
    c.v.setBigUint64(48, BigInt(s), true);
    c.v.setUint32(56, blob, true);
    return { bytes: c.bytes };
  }),
  fc.record({ res: small, off: offset }).map(({ res, off }) => {
    const c = cmd(CMD.RESOURCE_MAP_BLOB, 0, 16);
    c.v.setUint32(24, res, true);
    c.v.setBigUint64(32, BigInt(off), true);
    return { bytes: c.bytes };
  }),
  fc.record({ type: fc.constantFrom(CMD.RESOURCE_UNMAP_BLOB, CMD.RESOURCE_UNREF, CMD.CTX_ATTACH_RESOURCE), res: small, ctx: small }).map(({ type, res, ctx }) => {
    const c = cmd(type, ctx, 8);
    c.v.setUint32(24, res, true);
    return { bytes: c.bytes };
  }),
  fc.record({ ctx: small, init: fc.constantFrom(6, 4, 0, 0x106) }).map(({ ctx, init }) => {
    const c = cmd(CMD.CTX_CREATE, ctx, 72);
    c.v.setUint32(28, init, true);
    return { bytes: c.bytes };
  }),
  small.map((ctx) => ({ bytes: cmd(CMD.CTX_DESTROY, ctx, 0).bytes })),
  fc.uint8Array({ minLength: 0, maxLength: 96 }).map((bytes) => ({ bytes })),
);

/** Byte-level mutation on top of the grammar: flip bytes, or truncate. */
const mutated = fc.tuple(op, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 3 }), fc.option(fc.nat())).map(([o, flips, cut]) => {
  const b = Uint8Array.from(o.bytes);
  for (const [i, v] of flips) if (b.length > 0) b[i % b.length] = v;
  return cut !== null && b.length > 0 ? b.subarray(0, cut % b.length) : b;
});

describe(`virtio-gpu mutation fuzzer (${CASES} sequences)`, () => {
  const rig = gpuRig();
  rig.guest.probe();
  afterAll(async () => { await rig.close(); });
  const seen: Record<string, number> = {};

  it('always answers with OK_* or ERR_*, maps only live placements, and resets to nothing mapped', () => {
    fc.assert(
      fc.property(fc.array(mutated, { minLength: 1, maxLength: 25 }), (seq) => {
        // Every case starts from a freshly reset device with a context, three blobs and a mapping,
        // so that mutations reach the deep states (mapped, unmapped, freed) and not just refusals.
        rig.cpu.store32(MMIO + REG.Status, 0);
        rig.guest.probe();
        rig.guest.createContext(1);
        for (let i = 1; i <= 3; i++) rig.guest.createBlob(1, i, i, i * PAGE);
        rig.guest.mapBlob(1, 0);
        for (const bytes of seq) {
          const t = rig.raw(bytes, 512);
          expect(OK.has(t) || ERR.has(t)).toBe(true);
          seen[t.toString(16)] = (seen[t.toString(16)] ?? 0) + 1;
        }
        // Touch a few BAR pages: whatever is mapped must be a blob's current frame.
        for (let p = 0; p < 64; p += 7) rig.cpu.load32(BAR_BASE + p * PAGE);
        const placements = rig.backend.bar.placementsForTest();
        for (const run of rig.platform.helper.query(BAR_BASE / PAGE, 4096)) {
          const pl = placements.find((x) => x.range === run.range);
          expect(pl, 'a mapped page belongs to a placed blob').toBeDefined();
          if (!pl) continue;
          expect(run.gfn - BAR_BASE / PAGE).toBeGreaterThanOrEqual(pl.firstPage);
          expect(run.gfn - BAR_BASE / PAGE + run.pages).toBeLessThanOrEqual(pl.firstPage + pl.pages);
        }
        // Reset the device (status 0): nothing may stay mapped or allocated.
        rig.cpu.store32(MMIO + REG.Status, 0);
        expect(rig.platform.helper.stats().residentPages).toBe(0);
        expect(rig.device.resourceCount()).toBe(0);
      }),
      { numRuns: CASES, ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
    // The grammar reaches both success and every refusal path.
    expect(Object.keys(seen).length).toBeGreaterThan(3);
    process.stdout.write(`# gpu fuzz: ${CASES} sequences, responses ${JSON.stringify(seen)}\n`);
  });
});
