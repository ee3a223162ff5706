/**
 * `xvgpu run --platform xen` picks mode, p2m back-end and buffers by what Xen reports, and says
 * which in its --json summary; an explicit --mode retry on stock Xen is one clear error that leaves
 * nothing open. Fake Xen libraries (test/platform/xen/fake-xen.ts) and a recording kernel helper.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/backend.js';
import { runXen, type XenRunArgs, type XenRunDeps } from '../../src/cli/run-xen.js';
import type { GpuPort, KernelHelperPort } from '../../src/platform/ports.js';
import { XenHypervisor } from '../../src/platform/xen/hypervisor.js';
import { chooseXenServing } from '../../src/platform/xen/serving.js';
import { openXenPlatform, type XenRunPlatform } from '../../src/session/platforms.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { FakeXen, type FakeXenOptions } from '../platform/xen/fake-xen.js';

const fakes: FakeXen[] = [];
afterEach(() => { for (const f of fakes.splice(0)) f.dispose(); });

function args(mode: XenRunArgs['mode']): XenRunArgs {
  return {
    platform: 'xen', domid: 7, barGfn: 0x100000, barSize: 1 << 20, mmioBase: 0xfe000000, irq: undefined, runAs: undefined,
    drmNode: undefined, vram: undefined, strategy: 'fault', mode, faultAround: 1, hugePages: false, json: true, logLevel: 'silent',
  };
}

function fakeHelper(): KernelHelperPort {
  const unused = (): never => { throw new Error('not reached in these tests'); };
  return {
    bind: () => undefined, registerRange: unused, unregisterRange: unused, map: unused, unmap: unused, query: () => [],
    stats: () => ({ maps: 0, mapCollisions: 0, installedPages: 0, hugeMaps: 0, invalidations: 0, revokedPages: 0, residentPages: 0 }),
    onEvent: () => undefined, close: () => undefined,
  };
}

/** Serves zero time on a fake Xen; the platform's serving is chosen as openXenPlatform chooses it. */
async function summary(o: FakeXenOptions, mode: XenRunArgs['mode']): Promise<Record<string, unknown>> {
  const fake = new FakeXen({ vcpus: 1, ...o });
  fakes.push(fake);
  const deps: XenRunDeps = {
    openPlatform: (po): XenRunPlatform => {
      const hv = XenHypervisor.open(po.domid, fake.libs());
      const helper = fakeHelper();
      return { hv, ports: { hv, helper, gpu: {} as GpuPort }, serving: chooseXenServing(hv.extension, hv.caps.retry, po), helperFd: 3, close: () => hv.close() };
    },
    dropPrivileges: () => undefined,
    auditHandles: () => undefined,
  };
  const abort = new AbortController();
  abort.abort();
  let printed = '';
  const out = process.stdout.write.bind(process.stdout);
  process.stdout.write = (s: string | Uint8Array) => { printed += String(s); return true; };
  try {
    expect(await runXen(args(mode), silentLogger(), abort.signal, undefined, deps)).toBe(0);
  } finally {
    process.stdout.write = out;
  }
  return JSON.parse(printed) as Record<string, unknown>;
}

describe('run --platform xen: serving by capability, reported in --json', () => {
  it('the patched Xen: retry, xen-dmop, memfd, and the extension it reported', async () => {
    expect(await summary({ retry: true, dmExt: { version: 1, features: 3 } }, undefined)).toMatchObject({ mode: 'retry', p2m_backend: 'xen-dmop', buffers: 'memfd', extension: { version: 1, features: 3 } });
  });

  it('stock Xen: emulate, the xen back-end, the DRM node, no extension', async () => {
    expect(await summary({}, undefined)).toMatchObject({ mode: 'emulate', p2m_backend: 'xen', buffers: 'drm:/dev/dri/card0', extension: null });
  });

  it('the summary carries the retry and latency figures the Xen tier reads', async () => {
    const s = await summary({ retry: true, dmExt: { version: 1, features: 3 } }, 'emulate');
    expect(s).toMatchObject({ mode: 'emulate', answered_retry: 0, bar: { retries: 0, not_offered: 0, forward_progress: 0 }, latency: { bar_service_ns: null, revoke_ns: null } });
  });

  it('an explicit --mode retry on stock Xen is one clear error, before the helper opens, and leaves nothing open', () => {
    const fake = new FakeXen({});
    fakes.push(fake);
    expect(() => openXenPlatform({ domid: fake.domid, mode: 'retry', libs: fake.libs() })).toThrow(ConfigError);
    expect(() => openXenPlatform({ domid: fake.domid, mode: 'retry', libs: fake.libs() })).toThrow(/^--mode retry needs Xen's IORESP_RETRY extension/);
    expect(fake.live()).toEqual([]);
  });
});
