/**
 * Every prototype, struct and constant the Xen platform uses, checked against Debian's headers by
 * compiled C: libxen-dev (xendevicemodel.h, xenevtchn.h, xenctrl.h, public dm_op/memory/domctl) and
 * its copies of the Linux driver UAPI (<xen/sys/privcmd.h>, <xen/sys/evtchn.h>, which the Xen
 * libraries are built against; linux-libc-dev's <xen/privcmd.h> includes <xen/interface/xen.h>,
 * which no package installs, so it does not compile in user space). The C prototypes are
 * generated from the same tables the ffi-rs calls are built from, so a binding that disagrees with
 * its header does not compile. Without gcc or the headers this fails; it never skips.
 */
import { describe, expect, it } from 'vitest';
import { CTRL_FUNCTIONS, DOMAININFO, XENVER_EXTRAVERSION, XENVER_VERSION, XEN_EXTRAVERSION_LEN } from '../../../src/platform/xen/ctrl.js';
import { DEVICEMODEL_FUNCTIONS } from '../../../src/platform/xen/devicemodel.js';
import { EVTCHN_FUNCTIONS, IOCTL_EVTCHN_NOTIFY, O_CLOEXEC } from '../../../src/platform/xen/evtchn.js';
import type { CFunction } from '../../../src/platform/xen/ffi.js';
import { DOMID_FIRST_RESERVED } from '../../../src/platform/xen/hypervisor.js';
import { LIBRARY_DOMCTL_INTERFACE_VERSION } from '../../../src/platform/xen/info.js';
import {
  HVM_IOREQSRV_BUFIOREQ_OFF, IOCTL_PRIVCMD, PRIVCMD_SIZEOF, XENMEM_RESOURCE_IOREQ_SERVER, XEN_DMOP_CREATE_IOREQ_SERVER, ioreqServerFrameIoreq,
} from '../../../src/platform/xen/privcmd.js';
import { runC } from '../../support/c-layout.js';

const ALL_FUNCTIONS: CFunction[] = [...Object.values(DEVICEMODEL_FUNCTIONS), ...Object.values(EVTCHN_FUNCTIONS), ...Object.values(CTRL_FUNCTIONS)];

/** One _Static_assert per binding: the header's function has exactly the prototype the table declares. */
export function prototypeChecks(fns: readonly CFunction[]): string {
  return fns
    .map((f) => `_Static_assert(__builtin_types_compatible_p(__typeof__(&${f.name}), ${f.cRet} (*)(${f.cParams.join(', ')})), "${f.name}: prototype differs from the header");`)
    .join('\n');
}

/** The ffi-rs type of each parameter must fit the C type's width and signedness (or be a pointer). */
const FFI_FOR_C: Record<string, readonly string[]> = {
  'int': ['int'], 'unsigned int': ['unsigned int'], 'uint32_t': ['uint32_t'], 'uint64_t': ['uint64_t'], 'uint8_t': ['uint8_t'],
  'domid_t': ['domid_t'], 'ioservid_t': ['ioservid_t'], 'evtchn_port_t': ['evtchn_port_t'],
};

const HEADERS = `
#define __XEN_TOOLS__ 1
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/memory.h>
#include <xen/domctl.h>
#include <xen/version.h>
`;

function layoutProgram(): string {
  // The ioctl ABI gets a program of its own below.
  return `${HEADERS}
${prototypeChecks(ALL_FUNCTIONS)}
int main(void) {
  printf("{\\"dominfo\\": [%zu,%zu,%zu,%zu,%zu,%zu,%zu],", sizeof(xc_domaininfo_t), offsetof(xc_domaininfo_t, domain), offsetof(xc_domaininfo_t, flags),
    offsetof(xc_domaininfo_t, max_vcpu_id), offsetof(xc_domaininfo_t, arch_config.emulation_flags), offsetof(xc_domaininfo_t, handle),
    sizeof(((xc_domaininfo_t *)0)->handle));
  printf("\\"dominf\\": [%u,%u,%u,%u],", XEN_DOMINF_dying, XEN_DOMINF_hvm_guest, XEN_X86_EMU_PIC, XEN_INVALID_MAX_VCPU_ID);
  printf("\\"xenver\\": [%d,%d,%zu],", XENVER_version, XENVER_extraversion, sizeof(xen_extraversion_t));
  printf("\\"dmop\\": [%zu,%zu,%zu,%zu,%zu,%d],", sizeof(struct xen_dm_op), offsetof(struct xen_dm_op, u),
    offsetof(struct xen_dm_op, u.create_ioreq_server.handle_bufioreq), offsetof(struct xen_dm_op, u.create_ioreq_server.pad),
    offsetof(struct xen_dm_op, u.create_ioreq_server.id), XEN_DMOP_create_ioreq_server);
  printf("\\"resource\\": [%d,%d,%d],", XENMEM_resource_ioreq_server, XENMEM_resource_ioreq_server_frame_ioreq(0), HVM_IOREQSRV_BUFIOREQ_OFF);
  printf("\\"domctl\\": %d, \\"domid_first_reserved\\": %d, \\"o_cloexec\\": %d}\\n", XEN_DOMCTL_INTERFACE_VERSION, DOMID_FIRST_RESERVED, O_CLOEXEC);
  return 0;
}
`;
}

const IOCTL_PROGRAM = `
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/types.h>
#include <xen/xen.h>
#include <xen/sys/privcmd.h>
#include <xen/sys/evtchn.h>
int main(void) {
  printf("{\\"ioctl\\": [%lu,%lu,%lu,%lu,%lu],", (unsigned long)IOCTL_PRIVCMD_MMAPBATCH_V2, (unsigned long)IOCTL_PRIVCMD_DM_OP,
    (unsigned long)IOCTL_PRIVCMD_RESTRICT, (unsigned long)IOCTL_PRIVCMD_MMAP_RESOURCE, (unsigned long)IOCTL_EVTCHN_NOTIFY);
  printf("\\"mmapbatch\\": [%zu,%zu,%zu,%zu,%zu,%zu],", sizeof(struct privcmd_mmapbatch_v2), offsetof(struct privcmd_mmapbatch_v2, num),
    offsetof(struct privcmd_mmapbatch_v2, dom), offsetof(struct privcmd_mmapbatch_v2, addr), offsetof(struct privcmd_mmapbatch_v2, arr),
    offsetof(struct privcmd_mmapbatch_v2, err));
  printf("\\"dmop\\": [%zu,%zu,%zu,%zu,%zu,%zu,%zu],", sizeof(struct privcmd_dm_op), offsetof(struct privcmd_dm_op, dom), offsetof(struct privcmd_dm_op, num),
    offsetof(struct privcmd_dm_op, ubufs), sizeof(struct privcmd_dm_op_buf), offsetof(struct privcmd_dm_op_buf, uptr), offsetof(struct privcmd_dm_op_buf, size));
  printf("\\"resource\\": [%zu,%zu,%zu,%zu,%zu,%zu,%zu]}\\n", sizeof(struct privcmd_mmap_resource), offsetof(struct privcmd_mmap_resource, dom),
    offsetof(struct privcmd_mmap_resource, type), offsetof(struct privcmd_mmap_resource, id), offsetof(struct privcmd_mmap_resource, idx),
    offsetof(struct privcmd_mmap_resource, num), offsetof(struct privcmd_mmap_resource, addr));
  return 0;
}
`;

interface Layout {
  dominfo: number[];
  dominf: number[];
  xenver: number[];
  dmop: number[];
  resource: number[];
  domctl: number;
  domid_first_reserved: number;
  o_cloexec: number;
}

interface IoctlLayout {
  ioctl: number[];
  mmapbatch: number[];
  dmop: number[];
  resource: number[];
}

describe('Xen platform ABI against Debian headers', () => {
  it('every bound function has the prototype its table declares, and the structs and constants match libxen-dev', () => {
    const l = runC(layoutProgram(), '/usr/include/xendevicemodel.h', 'libxen-dev') as Layout;
    expect(l.dominfo).toEqual([DOMAININFO.sizeof, DOMAININFO.offDomain, DOMAININFO.offFlags, DOMAININFO.offMaxVcpuId, DOMAININFO.offEmulationFlags, DOMAININFO.offHandle, DOMAININFO.handleBytes]);
    expect(l.dominf).toEqual([DOMAININFO.DYING, DOMAININFO.HVM_GUEST, DOMAININFO.EMU_PIC, DOMAININFO.INVALID_MAX_VCPU_ID]);
    expect(l.xenver).toEqual([XENVER_VERSION, XENVER_EXTRAVERSION, XEN_EXTRAVERSION_LEN]);
    // struct xen_dm_op: op, pad, union at 8; create_ioreq_server: handle_bufioreq, pad[0] (the proposed flags byte), id.
    expect(l.dmop).toEqual([PRIVCMD_SIZEOF.xenDmOp, 8, 8, 9, 12, XEN_DMOP_CREATE_IOREQ_SERVER]);
    expect(l.resource).toEqual([XENMEM_RESOURCE_IOREQ_SERVER, ioreqServerFrameIoreq(0), HVM_IOREQSRV_BUFIOREQ_OFF]);
    expect(ioreqServerFrameIoreq(0)).toBe(1);
    expect(l.domctl).toBe(LIBRARY_DOMCTL_INTERFACE_VERSION);
    expect(l.domid_first_reserved).toBe(DOMID_FIRST_RESERVED);
    expect(l.o_cloexec).toBe(O_CLOEXEC);
  });

  it('the privcmd and evtchn ioctls and their argument structs match the kernel UAPI', () => {
    const l = runC(IOCTL_PROGRAM, '/usr/include/xen/sys/privcmd.h', 'libxen-dev') as IoctlLayout;
    expect(l.ioctl).toEqual([IOCTL_PRIVCMD.MMAPBATCH_V2, IOCTL_PRIVCMD.DM_OP, IOCTL_PRIVCMD.RESTRICT, IOCTL_PRIVCMD.MMAP_RESOURCE, IOCTL_EVTCHN_NOTIFY]);
    expect(l.mmapbatch).toEqual([PRIVCMD_SIZEOF.mmapbatchV2, 0, 4, 8, 16, 24]);
    expect(l.dmop).toEqual([PRIVCMD_SIZEOF.dmOp, 0, 2, 8, PRIVCMD_SIZEOF.dmOpBuf, 0, 8]);
    expect(l.resource).toEqual([PRIVCMD_SIZEOF.mmapResource, 0, 4, 8, 12, 16, 24]);
  });

  it('each ffi-rs parameter type is the C type the header declares (or a pointer)', () => {
    for (const f of ALL_FUNCTIONS) {
      f.params.forEach((t, i) => {
        const c = f.cParams[i] ?? '';
        if (t === 'pointer' || t === 'out pointer' || t === 'NULL') expect(c, `${f.name} param ${i}`).toMatch(/\*$/);
        else expect(FFI_FOR_C[c] ?? [], `${f.name} param ${i}: ${c} bound as ${t}`).toContain(t);
      });
    }
  });

  it('a prototype that disagrees with its header does not compile (the check can fail)', () => {
    const wrong: CFunction = { ...DEVICEMODEL_FUNCTIONS.createIoreqServer, cParams: ['xendevicemodel_handle *', 'domid_t', 'int', 'uint32_t *'] };
    const src = `${HEADERS}\n${prototypeChecks([wrong])}\nint main(void) { printf("{}\\n"); return 0; }\n`;
    expect(() => runC(src, '/usr/include/xendevicemodel.h', 'libxen-dev')).toThrow();
  });
});
