/**
 * Checks the TypeScript ioreq codec against Debian's libxen-dev header byte for byte: a small C
 * program fills `struct ioreq` through its real field names (bit-fields included) and prints the
 * bytes, sizes, offsets and constants; the codec must produce the same. Needs gcc and libxen-dev
 * (.ci/run installs them); without them this test fails, it does not skip.
 */
import { describe, expect, it } from 'vitest';
import * as abi from '../../../src/xen/abi/ioreq.js';
import { runC } from '../../support/c-layout.js';

const HEADER = '/usr/include/xen/hvm/ioreq.h';

const C_PROGRAM = `
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xen/hvm/ioreq.h>

static void dump(const char *name, const ioreq_t *r) {
  const unsigned char *b = (const unsigned char *)r;
  printf("\\"%s\\": [", name);
  for (size_t i = 0; i < sizeof(*r); i++) printf("%s%u", i ? "," : "", b[i]);
  printf("],\\n");
}

int main(void) {
  ioreq_t r;
  printf("{\\n\\"sizeof\\": %zu,\\n", sizeof(ioreq_t));
  printf("\\"off_addr\\": %zu, \\"off_data\\": %zu, \\"off_count\\": %zu, \\"off_size\\": %zu, \\"off_vp_eport\\": %zu, \\"off_type\\": %zu,\\n",
    offsetof(ioreq_t, addr), offsetof(ioreq_t, data), offsetof(ioreq_t, count), offsetof(ioreq_t, size),
    offsetof(ioreq_t, vp_eport), offsetof(ioreq_t, type));
  printf("\\"consts\\": [%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d],\\n", IOREQ_READ, IOREQ_WRITE,
    STATE_IOREQ_NONE, STATE_IOREQ_READY, STATE_IOREQ_INPROCESS, STATE_IORESP_READY,
    IOREQ_TYPE_PIO, IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG, IOREQ_TYPE_TIMEOFFSET, IOREQ_TYPE_INVALIDATE);
  printf("\\"slots_per_page\\": %zu,\\n", 4096 / sizeof(ioreq_t));
  memset(&r, 0, sizeof r);
  r.addr = 0x123456789abcdef0ULL; r.data = 0x0fedcba987654321ULL; r.count = 0x11223344; r.size = 8;
  r.vp_eport = 0x55667788; r.state = STATE_IORESP_READY; r.data_is_ptr = 1; r.dir = IOREQ_READ; r.df = 1; r.type = IOREQ_TYPE_INVALIDATE;
  dump("all", &r);
  memset(&r, 0, sizeof r); r.state = 0xf; dump("state", &r);
  memset(&r, 0, sizeof r); r.data_is_ptr = 1; dump("data_is_ptr", &r);
  memset(&r, 0, sizeof r); r.dir = 1; dump("dir", &r);
  memset(&r, 0, sizeof r); r.df = 1; dump("df", &r);
  memset(&r, 0, sizeof r); r.type = 0xff; dump("type", &r);
  printf("\\"end\\": 0\\n}\\n");
  return 0;
}
`;

interface Layout {
  sizeof: number;
  off_addr: number;
  off_data: number;
  off_count: number;
  off_size: number;
  off_vp_eport: number;
  off_type: number;
  consts: number[];
  slots_per_page: number;
  [dump: string]: number | number[];
}

const empty = (): abi.Ioreq => abi.decodeIoreq(new Uint8Array(32));

describe('struct ioreq matches xen/hvm/ioreq.h from libxen-dev', () => {
  const c = runC(C_PROGRAM, HEADER, 'libxen-dev') as Layout;

  it('has the same size, offsets and slots per page', () => {
    expect(c.sizeof).toBe(abi.IOREQ_SIZE);
    expect([c.off_addr, c.off_data, c.off_count, c.off_size, c.off_vp_eport, c.off_type]).toEqual([
      abi.OFF_ADDR, abi.OFF_DATA, abi.OFF_COUNT, abi.OFF_SIZE, abi.OFF_VP_EPORT, abi.OFF_CONTROL + 3,
    ]);
    expect(c.slots_per_page).toBe(abi.IOREQ_SLOTS_PER_PAGE);
  });

  it('has the same constants', () => {
    expect(c.consts).toEqual([
      abi.IOREQ_READ, abi.IOREQ_WRITE, abi.STATE_IOREQ_NONE, abi.STATE_IOREQ_READY, abi.STATE_IOREQ_INPROCESS,
      abi.STATE_IORESP_READY, abi.IOREQ_TYPE_PIO, abi.IOREQ_TYPE_COPY, abi.IOREQ_TYPE_PCI_CONFIG,
      abi.IOREQ_TYPE_TIMEOFFSET, abi.IOREQ_TYPE_INVALIDATE,
    ]);
    // The retry extension must not collide with a state stock Xen knows.
    expect(abi.STATE_IORESP_RETRY).toBeGreaterThan(abi.STATE_IORESP_READY);
    expect(abi.STATE_IORESP_RETRY).toBeLessThan(16);
  });

  it('encodes every field and bit-field exactly as the C compiler lays it out', () => {
    const all = abi.encodeIoreq({
      addr: 0, dataLo: 0x87654321, dataHi: 0x0fedcba9,
      count: 0x11223344, size: 8, vpEport: 0x55667788, state: abi.STATE_IORESP_READY, dataIsPtr: true,
      dir: abi.IOREQ_READ, df: true, type: abi.IOREQ_TYPE_INVALIDATE,
    });
    // addr 0x123456789abcdef0 exceeds 2^53, so compare it through the raw bytes instead.
    const want = c.all as number[];
    expect(Array.from(all.subarray(8))).toEqual(want.slice(8));
    const page = new abi.IoreqPage(new Uint8Array(want).buffer, 0, 1);
    const r = page.read(0, empty());
    expect([r.dataLo, r.dataHi, r.count, r.size, r.vpEport, r.state, r.dataIsPtr, r.dir, r.df, r.type]).toEqual([
      0x87654321, 0x0fedcba9, 0x11223344, 8, 0x55667788, 3, true, 1, true, 8,
    ]);
    expect(r.addr).toBe(0x12345678 * 2 ** 32 + 0x9abcdef0);
    const bits: [string, Partial<abi.Ioreq>][] = [
      ['state', { state: 0xf }], ['data_is_ptr', { dataIsPtr: true }], ['dir', { dir: 1 }], ['df', { df: true }], ['type', { type: 0xff }],
    ];
    for (const [name, fields] of bits) {
      expect(Array.from(abi.encodeIoreq({ ...empty(), ...fields })), name).toEqual(c[name]);
    }
  });
});
