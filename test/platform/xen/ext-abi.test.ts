/**
 * The constants and layouts xvgpu uses for its hypervisor extension (privcmd.ts, abi/ioreq.ts),
 * checked by compiled C against Xen 4.17.7's public headers with hypervisor/patches applied (the
 * upstream tarball is unpacked and the series' header hunks applied with git apply). Without the
 * tarball or gcc this fails; it never skips.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STATE_IORESP_RETRY } from '../../../src/xen/abi/ioreq.js';
import {
  PRIVCMD_SIZEOF, XEN_DMOP_DM_EXT_IORESP_RETRY, XEN_DMOP_DM_EXT_LEND_PAGES, XEN_DMOP_DM_EXT_VERSION, XEN_DMOP_GET_DM_EXT_INFO,
  XEN_DMOP_IOREQ_SERVER_RETRY,
} from '../../../src/platform/xen/privcmd.js';
import { runC } from '../../support/c-layout.js';
import { patchedPublicHeaders } from '../../support/xen-ext.js';

const PROGRAM = `
#define __XEN_TOOLS__ 1
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include "xen.h"
#include "hvm/dm_op.h"
#include "hvm/ioreq.h"
int main(void) {
  ioreq_t r = {0};
  r.retry = 1;
  printf("{\\"op\\": [%d,%d,%u,%u,%u,%u],", XEN_DMOP_get_dm_ext_info, XEN_DMOP_DM_EXT_VERSION, XEN_DMOP_DM_EXT_LEND_PAGES,
    XEN_DMOP_DM_EXT_IORESP_RETRY, XEN_DMOP_IOREQ_SERVER_RETRY, STATE_IORESP_RETRY);
  printf("\\"info\\": [%zu,%zu,%zu,%zu,%zu],", sizeof(struct xen_dm_op), offsetof(struct xen_dm_op, u.get_dm_ext_info),
    sizeof(struct xen_dm_op_get_dm_ext_info), offsetof(struct xen_dm_op_get_dm_ext_info, version), offsetof(struct xen_dm_op_get_dm_ext_info, features));
  printf("\\"create\\": [%zu,%zu],", offsetof(struct xen_dm_op, u.create_ioreq_server.flags), offsetof(struct xen_dm_op, u.create_ioreq_server.id));
  printf("\\"lend\\": [%d,%d,%zu,%zu,%zu,%zu,%zu,%zu],", XEN_DMOP_lend_pages, XEN_DMOP_revoke_pages, sizeof(struct xen_dm_op_lend_pages),
    offsetof(struct xen_dm_op_lend_pages, src_gfn), offsetof(struct xen_dm_op_lend_pages, dst_gfn), offsetof(struct xen_dm_op_lend_pages, nr),
    offsetof(struct xen_dm_op_lend_pages, flags), offsetof(struct xen_dm_op_lend_pages, pad));
  printf("\\"ioreq\\": [%zu,%u]}\\n", sizeof(ioreq_t), ((const uint8_t *)&r)[offsetof(ioreq_t, type) - 1]);
  return 0;
}
`;

interface ExtLayout {
  op: number[];
  info: number[];
  create: number[];
  lend: number[];
  ioreq: number[];
}

describe('hypervisor extension ABI against the patched public headers', () => {
  it('the feature query, its bits, the RETRY flag and state, and the lend op match hypervisor/patches', () => {
    const pub = patchedPublicHeaders();
    const l = runC(PROGRAM, join(pub, 'hvm', 'dm_op.h'), 'the Xen tarball', ['-iquote', pub]) as ExtLayout;
    expect(l.op).toEqual([XEN_DMOP_GET_DM_EXT_INFO, XEN_DMOP_DM_EXT_VERSION, XEN_DMOP_DM_EXT_LEND_PAGES, XEN_DMOP_DM_EXT_IORESP_RETRY, XEN_DMOP_IOREQ_SERVER_RETRY, STATE_IORESP_RETRY]);
    // privcmd.ts reads version at 8 and features at 12 of the 32-byte xen_dm_op, writes flags at 9.
    expect(l.info).toEqual([PRIVCMD_SIZEOF.xenDmOp, 8, 8, 0, 4]);
    expect(l.create).toEqual([9, 12]);
    // xen_ext_test.c and kernel-helper/p2m_xen_dmop.c restate this struct (24 bytes).
    expect(l.lend).toEqual([22, 23, 24, 0, 8, 16, 20, 22]);
    // The retry bit is the top bit of the byte before 'type' (it was _pad1).
    expect(l.ioreq).toEqual([32, 0x80]);
  });
});
