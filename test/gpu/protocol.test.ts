import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CMD, DecodeError, FLAG_FENCE, FLAG_INFO_RING_IDX, RESP, decodeCommand, encodeHdr } from '../../src/gpu/protocol.js';

describe('virtio-gpu protocol codec', () => {
  it('decodes the fields of RESOURCE_CREATE_BLOB and MAP_BLOB at their spec offsets', () => {
    const b = new Uint8Array(56);
    const v = new DataView(b.buffer);
    v.setUint32(0, CMD.RESOURCE_CREATE_BLOB, true);
    v.setUint32(16, 7, true);
    v.setUint32(24, 3, true);
    v.setUint32(28, 2, true);
    v.setUint32(32, 1, true);
    v.setBigUint64(40, 99n, true);
    v.setBigUint64(48, 8192n, true);
    expect(decodeCommand(b)).toMatchObject({ kind: 'resource_create_blob', resourceId: 3, blobMem: 2, blobFlags: 1, nrEntries: 0, blobId: 99n, size: 8192n, hdr: { ctxId: 7 } });
    const m = new Uint8Array(40);
    new DataView(m.buffer).setUint32(0, CMD.RESOURCE_MAP_BLOB, true);
    new DataView(m.buffer).setBigUint64(32, 0x20_0000n, true);
    expect(decodeCommand(m)).toMatchObject({ kind: 'resource_map_blob', offset: 0x20_0000n });
  });

  it('echoes the fence and ring index of a fenced request', () => {
    const hdr = { type: CMD.SUBMIT_3D, flags: FLAG_FENCE | FLAG_INFO_RING_IDX, fenceId: 0x1234n, ctxId: 5, ringIdx: 3 };
    const r = new DataView(encodeHdr(RESP.OK_NODATA, hdr).buffer);
    expect([r.getUint32(0, true), r.getUint32(4, true), r.getBigUint64(8, true), r.getUint32(16, true), r.getUint8(20)]).toEqual([RESP.OK_NODATA, 3, 0x1234n, 5, 3]);
    expect(new DataView(encodeHdr(RESP.OK_NODATA, { ...hdr, flags: 0 }).buffer).getUint32(4, true)).toBe(0);
  });

  it('decodes or refuses any bytes with a spec error, never anything else (property)', () => {
    const known = Object.values(CMD);
    const arb = fc.tuple(fc.oneof(fc.constantFrom(...known), fc.nat({ max: 0xffff })), fc.uint8Array({ minLength: 0, maxLength: 200 }));
    fc.assert(
      fc.property(arb, ([type, body]) => {
        const b = new Uint8Array(body.length + 4);
        b.set(body, 4);
        new DataView(b.buffer).setUint32(0, type, true);
        try {
          const c = decodeCommand(b);
          expect(c.hdr.type).toBe(type);
          if (c.kind === 'submit_3d') expect(c.payload.byteLength).toBeLessThanOrEqual(b.byteLength - 32);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
          expect([RESP.ERR_UNSPEC, RESP.ERR_INVALID_PARAMETER]).toContain((e as DecodeError).resp);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
