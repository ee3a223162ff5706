/**
 * Confining the Xen handles: xentoolcore_restrict_all runs after the devicemodel and privcmd
 * restrictions and before the evtchn handle exists; the audit after the privilege drop refuses
 * every handle that is not confined to the guest (a privcmd fd that still issues hypercalls, an evtchn
 * fd that was never restricted, a Xen device that cannot be restricted, a second helper fd); the
 * ioctl numbers and the prototype are checked against Debian's headers by compiled C.
 */
import { describe, expect, it } from 'vitest';
import {
  HYPERVISOR_XEN_VERSION, IOCTL_EVTCHN_RESTRICT_DOMID, IOCTL_PRIVCMD_HYPERCALL, PRIVCMD_HYPERCALL_SIZE, TOOLCORE_FUNCTIONS, auditXenHandles,
  type FdProbe, type OpenFd,
} from '../../../src/platform/xen/confine.js';
import { XENVER_VERSION } from '../../../src/platform/xen/ctrl.js';
import { XenHypervisor } from '../../../src/platform/xen/hypervisor.js';
import { PrivilegeDropError } from '../../../src/platform/linux/privileges.js';
import { runC } from '../../support/c-layout.js';
import { FakeXen } from './fake-xen.js';

const EPERM = 1;
const EACCES = 13;
const DOMID = 7;

/** The fds of a confined back-end: answers as a restricted kernel would unless `answers` says otherwise. */
function probe(fds: OpenFd[], answers: Record<number, number> = {}): FdProbe & { asked: { fd: number; request: number; arg: number[] }[] } {
  const asked: { fd: number; request: number; arg: number[] }[] = [];
  return {
    asked,
    openFds: () => fds,
    ioctlErrno(fd, request, arg) {
      asked.push({ fd, request, arg: [...arg] });
      const target = fds.find((f) => f.fd === fd)?.target;
      return answers[fd] ?? (target === '/dev/xen/privcmd' ? EPERM : EACCES);
    },
  };
}

const CONFINED: OpenFd[] = [
  { fd: 0, target: '/dev/null' },
  { fd: 17, target: '/dev/xen/privcmd' }, // the addon's
  { fd: 18, target: '/dev/xen/privcmd' }, // libxendevicemodel's DM-op fd
  { fd: 19, target: '/dev/null' }, // its xencall fds, dup2'ed over by xentoolcore_restrict_all
  { fd: 21, target: '/dev/xvgpu_helper' },
  { fd: 22, target: '/dev/dri/card0' },
  { fd: 23, target: '/dev/xen/evtchn' },
  { fd: 24, target: 'anon_inode:[eventpoll]' },
];

function auditError(fds: OpenFd[], answers: Record<number, number> = {}): Error | undefined {
  try {
    auditXenHandles(DOMID, new Set([21]), probe(fds, answers));
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

describe('auditXenHandles', () => {
  it('accepts restricted privcmd and evtchn fds and the bound helper fd, asking each Xen fd itself', () => {
    const p = probe(CONFINED);
    auditXenHandles(DOMID, new Set([21]), p);
    expect(p.asked.map((a) => [a.fd, a.request])).toEqual([[17, IOCTL_PRIVCMD_HYPERCALL], [18, IOCTL_PRIVCMD_HYPERCALL], [23, IOCTL_EVTCHN_RESTRICT_DOMID]]);
    // The probe hypercall is xen_version(XENVER_version): harmless if an unrestricted fd runs it.
    const call = new DataView(Uint8Array.from(p.asked[0]?.arg ?? []).buffer);
    expect(call.byteLength).toBe(PRIVCMD_HYPERCALL_SIZE);
    expect([call.getBigUint64(0, true), call.getBigUint64(8, true)]).toEqual([BigInt(HYPERVISOR_XEN_VERSION), BigInt(XENVER_VERSION)]);
    expect(p.asked[2]?.arg).toEqual([DOMID, 0]);
  });

  it.each([
    ['a privcmd fd that still issues hypercalls', CONFINED, { 18: 0 }, /fd 18 \(\/dev\/xen\/privcmd\) still issues raw hypercalls/],
    ['a privcmd fd answering something else than EPERM', CONFINED, { 17: 25 }, /fd 17 .*gave errno 25, not EPERM/],
    ['an evtchn fd that was not restricted', CONFINED, { 23: 0 }, /fd 23 \(\/dev\/xen\/evtchn\) was not restricted/],
    ['an evtchn fd answering something else than EACCES', CONFINED, { 23: 22 }, /fd 23 .*gave errno 22, not EACCES/],
    ['xencall\'s hypercall buffer device left open', [...CONFINED, { fd: 20, target: '/dev/xen/hypercall' }], {}, /fd 20 \(\/dev\/xen\/hypercall\) cannot be restricted/],
    ['a xenbus fd', [...CONFINED, { fd: 25, target: '/dev/xen/xenbus' }], {}, /fd 25 \(\/dev\/xen\/xenbus\) cannot be restricted/],
    ['a grant device', [...CONFINED, { fd: 26, target: '/dev/xen/gntdev' }], {}, /fd 26 .*cannot be restricted/],
    ['the legacy /proc/xen/privcmd', [...CONFINED, { fd: 27, target: '/proc/xen/privcmd' }], {}, /fd 27 .*cannot be restricted/],
    ['a second, unbound helper fd', [...CONFINED, { fd: 28, target: '/dev/xvgpu_helper' }], {}, /fd 28 \(\/dev\/xvgpu_helper\) is not the helper fd bound/],
  ])('refuses %s, in one line', (_what, fds, answers, msg) => {
    const e = auditError(fds, answers);
    expect(e).toBeInstanceOf(PrivilegeDropError);
    expect(e?.message).toMatch(/^handles not confined to domain 7: /);
    expect(e?.message).toMatch(msg);
    expect(e?.message).not.toContain('\n');
  });

  it('names every offending fd, not just the first', () => {
    expect(auditError(CONFINED, { 17: 0, 23: 0 })?.message).toMatch(/fd 17 .*; fd 23 /);
  });
});

describe('xentoolcore_restrict_all in the open sequence', () => {
  it('runs after the devicemodel and privcmd restrictions, before the evtchn handle is opened', async () => {
    const fake = new FakeXen();
    const hv = XenHypervisor.open(fake.domid, fake.libs());
    try {
      hv.openEventChannels();
      const at = (name: string): number => fake.calls.indexOf(name);
      expect(at('toolcore restrict_all 7')).toBeGreaterThan(at('devicemodel restrict 7'));
      expect(at('toolcore restrict_all 7')).toBeGreaterThan(at('privcmd restrict 7'));
      expect(at('toolcore restrict_all 7')).toBeLessThan(at('evtchn open'));
      expect(at('devicemodel restrict 7')).toBeGreaterThan(-1);
    } finally {
      await hv.close();
      fake.dispose();
    }
  });

  it('a failing restrict_all closes what was opened and serves nothing', () => {
    const probeRun = new FakeXen();
    XenHypervisor.open(probeRun.domid, probeRun.libs()).close().catch(() => undefined);
    const k = probeRun.stepNames.indexOf('toolcore restrict_all 7') + 1;
    expect(k).toBeGreaterThan(0);
    const fake = new FakeXen({ failAt: k });
    expect(() => XenHypervisor.open(fake.domid, fake.libs())).toThrow(/toolcore restrict_all 7: injected failure/);
    expect(fake.live()).toEqual([]);
    probeRun.dispose();
    fake.dispose();
  });
});

describe('confinement ABI against Debian headers', () => {
  it('IOCTL_PRIVCMD_HYPERCALL, IOCTL_EVTCHN_RESTRICT_DOMID, __HYPERVISOR_xen_version and xentoolcore_restrict_all match', () => {
    const f = TOOLCORE_FUNCTIONS.restrictAll;
    const src = `
#include <stdio.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/types.h>
#include <xentoolcore.h>
#include <xen/sys/privcmd.h>
#include <xen/sys/evtchn.h>
_Static_assert(__builtin_types_compatible_p(__typeof__(&${f.name}), ${f.cRet} (*)(${f.cParams.join(', ')})), "${f.name}: prototype differs");
int main(void) {
  printf("[%lu,%zu,%lu,%d]\\n", (unsigned long)IOCTL_PRIVCMD_HYPERCALL, sizeof(struct privcmd_hypercall),
    (unsigned long)IOCTL_EVTCHN_RESTRICT_DOMID, __HYPERVISOR_xen_version);
  return 0;
}`;
    expect(runC(src, '/usr/include/xentoolcore.h', 'libxen-dev')).toEqual([IOCTL_PRIVCMD_HYPERCALL, PRIVCMD_HYPERCALL_SIZE, IOCTL_EVTCHN_RESTRICT_DOMID, HYPERVISOR_XEN_VERSION]);
  });
});
