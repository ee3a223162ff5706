/**
 * `xvgpu run --platform xen --run-as USER`, sequenced on fakes: every handle is opened and
 * restricted, the helper bound and the ioreq server started before the privilege drop, the handle
 * audit runs after it, and nothing is served when either fails: one line, and everything opened is
 * torn down. The fake Xen libraries are test/platform/xen/fake-xen.ts; the kernel helper and the
 * drop are recording fakes writing into the same call log.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { GpuPort, HelperBinding, KernelHelperPort } from '../../src/platform/ports.js';
import { XenHypervisor } from '../../src/platform/xen/hypervisor.js';
import { PrivilegeDropError, type RunAs } from '../../src/platform/linux/privileges.js';
import { runXen, type XenRunArgs, type XenRunDeps } from '../../src/cli/run-xen.js';
import { parseRunArgs } from '../../src/cli/run.js';
import { UsageError } from '../../src/cli/args.js';
import type { XenRunPlatform } from '../../src/session/platforms.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { FakeXen } from '../platform/xen/fake-xen.js';
import { chooseXenServing } from '../../src/platform/xen/serving.js';

const HELPER_FD = 21;
const NOBODY: RunAs = { spec: 'nobody', uid: 65534, gid: 65534 };
const fakes: FakeXen[] = [];
afterEach(() => { for (const f of fakes.splice(0)) f.dispose(); });

function args(runAs: RunAs | undefined): XenRunArgs {
  return {
    platform: 'xen', domid: 7, barGfn: 0x100000, barSize: 1 << 20, mmioBase: 0xfe000000, irq: undefined, runAs,
    drmNode: undefined, vram: undefined, strategy: 'fault', mode: 'emulate', faultAround: 1, hugePages: false, json: true, logLevel: 'silent',
  };
}

/** A kernel helper that records bind and close and reports empty stats and residency while open (nothing else is reached). */
function fakeHelper(calls: string[]): KernelHelperPort & { open: boolean } {
  const unused = (): never => { throw new Error('not reached in these tests'); };
  const h = {
    open: true,
    bind: (b: HelperBinding) => { calls.push(`helper bind ${b.domid} ${b.firstGfn.toString(16)}+${b.pages}`); },
    registerRange: unused, unregisterRange: unused, map: unused, unmap: unused,
    query: () => [], // the back-end's stop() asks what is still mapped: nothing was
    // Like the real fd: once closed, no figures (EBADF). The summary is built after stop() closed it.
    stats: () => {
      if (!h.open) throw new Error('ioctl: EBADF (Bad file descriptor)');
      return { maps: 0, mapCollisions: 0, installedPages: 0, hugeMaps: 0, invalidations: 0, revokedPages: 0, residentPages: 0 };
    },
    onEvent: () => undefined,
    close: () => { calls.push('helper close'); h.open = false; },
  };
  return h;
}

interface Run {
  fake: FakeXen;
  helper: { open: boolean };
  error: unknown;
  status: number | undefined;
}

async function run(runAs: RunAs | undefined, fail: { drop?: boolean; audit?: boolean } = {}): Promise<Run> {
  const fake = new FakeXen({ vcpus: 2 });
  fakes.push(fake);
  const helper = fakeHelper(fake.calls);
  const deps: XenRunDeps = {
    openPlatform: (o): XenRunPlatform => {
      const hv = XenHypervisor.open(o.domid, fake.libs());
      return {
        hv,
        ports: { hv, helper, gpu: {} as GpuPort },
        serving: chooseXenServing(hv.extension, hv.caps.retry, o),
        helperFd: HELPER_FD,
        close: async () => { helper.close(); await hv.close(); },
      };
    },
    dropPrivileges: (t) => {
      fake.calls.push(`drop to ${t.spec}`);
      if (fail.drop === true) throw new PrivilegeDropError('dropping privileges: setuid(65534) failed: EPERM');
    },
    auditHandles: (domid, fds) => {
      fake.calls.push(`audit ${domid} [${[...fds].join(',')}]`);
      if (fail.audit === true) throw new PrivilegeDropError('handles not confined to domain 7: fd 18 (/dev/xen/privcmd) still issues raw hypercalls');
    },
  };
  const abort = new AbortController();
  abort.abort(); // serve zero time: start, (drop), then stop at once
  const out = process.stdout.write.bind(process.stdout);
  process.stdout.write = () => true; // the run's summary line
  let error: unknown;
  let status: number | undefined;
  try {
    status = await runXen(args(runAs), silentLogger(), abort.signal, undefined, deps);
  } catch (e) {
    error = e;
  } finally {
    process.stdout.write = out;
  }
  return { fake, helper, error, status };
}

const idx = (calls: string[], prefix: string): number => calls.findIndex((c) => c.startsWith(prefix));

describe('run --platform xen --run-as: open → restrict → bind/start → drop → audit → serve', () => {
  it('drops only after every handle is open, restricted and started, and audits after the drop', async () => {
    const { fake, status, error } = await run(NOBODY);
    expect(error).toBeUndefined();
    expect(status).toBe(0);
    const c = fake.calls;
    const drop = idx(c, 'drop to nobody');
    for (const before of ['devicemodel restrict 7', 'privcmd restrict 7', 'toolcore restrict_all 7', 'helper bind 7 100000+256', 'map_resource', 'evtchn restrict 7', 'bind_interdomain', 'set_ioreq_server_state 1']) {
      expect(idx(c, before), `${before} in ${c.join(', ')}`).toBeGreaterThan(-1);
      expect(idx(c, before), `${before} before the drop`).toBeLessThan(drop);
    }
    expect(idx(c, 'audit 7 [21]')).toBe(drop + 1);
    // Nothing is opened after the drop: only the teardown follows the audit.
    const after = c.slice(drop + 2);
    expect(after.filter((x) => / open$|restrict|create_ioreq_server|bind_interdomain|map_resource/.test(x)), after.join(', ')).toEqual([]);
    expect(fake.live()).toEqual([]);
  });

  it('without --run-as nothing is dropped or audited', async () => {
    const { fake, status } = await run(undefined);
    expect(status).toBe(0);
    expect(fake.calls.filter((c) => c.startsWith('drop') || c.startsWith('audit'))).toEqual([]);
  });

  it.each<[string, { drop?: boolean; audit?: boolean }, RegExp]>([
    ['the drop', { drop: true }, /^dropping privileges: setuid\(65534\) failed: EPERM$/],
    ['the audit', { audit: true }, /^handles not confined to domain 7: fd 18/],
  ])('a failing %s serves nothing, says one line, and tears everything down', async (_what, fail, msg) => {
    const { fake, helper, error, status } = await run(NOBODY, fail);
    expect(status).toBeUndefined();
    expect(error).toBeInstanceOf(PrivilegeDropError);
    expect((error as Error).message).toMatch(msg);
    expect(fake.live()).toEqual([]);
    expect(helper.open).toBe(false);
    expect(fake.calls).toContain('destroy_ioreq_server 1');
    if (fail.drop === true) expect(idx(fake.calls, 'audit')).toBe(-1);
  });
});

describe('--run-as on the command line', () => {
  const XEN = ['--platform', 'xen', '--domid', '5', '--bar-gfn', '0x100000', '--bar-size', '64M', '--mmio-base', '0xfe000000', '--irq', '5'];

  it('resolves the account before anything is opened', () => {
    const o = parseRunArgs([...XEN, '--run-as', 'nobody']);
    expect(o !== 'help' && o.platform === 'xen' ? o.runAs : undefined).toMatchObject({ spec: 'nobody', uid: 65534 });
  });

  it.each([
    [['--run-as', 'root'], /--run-as root is root/],
    [['--run-as', 'no-such-user-xvgpu'], /no user 'no-such-user-xvgpu'/],
  ])('refuses %j as a usage error', (extra, msg) => {
    expect(() => parseRunArgs([...XEN, ...extra])).toThrow(UsageError);
    expect(() => parseRunArgs([...XEN, ...extra])).toThrow(msg);
  });

  it('is a xen option only', () => {
    expect(() => parseRunArgs(['--run-as', 'nobody'])).toThrow(/--run-as needs --platform xen/);
  });
});
