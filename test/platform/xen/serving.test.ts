/**
 * How `run --platform xen` serves on each hypervisor (src/platform/xen/serving.ts), the extension's
 * discovery through XenHypervisor.open on fake libraries, and the --json summary naming the choice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/backend.js';
import type { DmExtension } from '../../../src/platform/xen/dm-ext.js';
import { XEN_DMOP_DM_EXT_IORESP_RETRY, XEN_DMOP_DM_EXT_LEND_PAGES } from '../../../src/platform/xen/privcmd.js';
import { XenHypervisor } from '../../../src/platform/xen/hypervisor.js';
import { chooseXenServing } from '../../../src/platform/xen/serving.js';
import { FakeXen, type FakeXenOptions } from './fake-xen.js';

const ext = (features: number): DmExtension => ({
  version: 1, features, lendPages: (features & XEN_DMOP_DM_EXT_LEND_PAGES) !== 0, ioreqRetry: (features & XEN_DMOP_DM_EXT_IORESP_RETRY) !== 0,
});
const PATCHED = ext(XEN_DMOP_DM_EXT_LEND_PAGES | XEN_DMOP_DM_EXT_IORESP_RETRY);

describe('chooseXenServing', () => {
  it('on the patched Xen defaults to map-then-retry on memfd RAM through the xen-dmop back-end', () => {
    expect(chooseXenServing(PATCHED, true, {})).toEqual({ mode: 'retry', backend: 'xen-dmop', buffers: { kind: 'memfd' } });
  });

  it('on the patched Xen lends a named DRM node\'s buffers (vgem) and honours --mode emulate', () => {
    expect(chooseXenServing(PATCHED, true, { drmNode: '/dev/dri/card1' })).toEqual({ mode: 'retry', backend: 'xen-dmop', buffers: { kind: 'drm', node: '/dev/dri/card1' } });
    expect(chooseXenServing(PATCHED, true, { mode: 'emulate' })).toEqual({ mode: 'emulate', backend: 'xen-dmop', buffers: { kind: 'memfd' } });
  });

  it('maps a VRAM BAR with the xen back-end on any Xen (MMIO frames cannot be lent), retrying where Xen can', () => {
    expect(chooseXenServing(PATCHED, true, { vram: '/sys/x/resource2' })).toEqual({ mode: 'retry', backend: 'xen', buffers: { kind: 'vram', path: '/sys/x/resource2' } });
    expect(chooseXenServing(null, false, { vram: '/sys/x/resource2' })).toEqual({ mode: 'emulate', backend: 'xen', buffers: { kind: 'vram', path: '/sys/x/resource2' } });
  });

  it('changes nothing on stock Xen: map-and-emulate, the xen back-end, /dev/dri/card0 unless named', () => {
    expect(chooseXenServing(null, false, {})).toEqual({ mode: 'emulate', backend: 'xen', buffers: { kind: 'drm', node: '/dev/dri/card0' } });
    expect(chooseXenServing(null, false, { drmNode: '/dev/dri/card1' })).toEqual({ mode: 'emulate', backend: 'xen', buffers: { kind: 'drm', node: '/dev/dri/card1' } });
  });

  it('refuses --mode retry without the extension, with the reason', () => {
    expect(() => chooseXenServing(null, false, { mode: 'retry' })).toThrow(ConfigError);
    expect(() => chooseXenServing(null, false, { mode: 'retry' })).toThrow(/--mode retry needs Xen's IORESP_RETRY extension.*has no extension \(XEN_DMOP_get_dm_ext_info: EOPNOTSUPP; the retry flag is refused\)/);
    expect(() => chooseXenServing(ext(XEN_DMOP_DM_EXT_LEND_PAGES), true, { mode: 'retry' })).toThrow(/features 0x1, without IORESP_RETRY/);
    expect(() => chooseXenServing(PATCHED, false, { mode: 'retry' })).toThrow(/refused an ioreq server with the retry flag/);
  });

  it('needs both the report and the accepted flag to default to retry; lending alone still lends', () => {
    expect(chooseXenServing(ext(XEN_DMOP_DM_EXT_LEND_PAGES), false, {})).toEqual({ mode: 'emulate', backend: 'xen-dmop', buffers: { kind: 'memfd' } });
    expect(chooseXenServing(PATCHED, false, {}).mode).toBe('emulate');
    expect(chooseXenServing(null, true, {}).mode).toBe('emulate');
  });
});

describe('XenHypervisor.open: the extension\'s discovery', () => {
  const fakes: FakeXen[] = [];
  const hvs: XenHypervisor[] = [];
  afterEach(async () => {
    for (const h of hvs.splice(0)) await h.close();
    for (const f of fakes.splice(0)) f.dispose();
  });
  const open = (o: FakeXenOptions): { fake: FakeXen; hv: XenHypervisor } => {
    const fake = new FakeXen(o);
    fakes.push(fake);
    const hv = XenHypervisor.open(fake.domid, fake.libs());
    hvs.push(hv);
    return { fake, hv };
  };

  it('reads version and features on the patched Xen; requests then carry the retry offer', () => {
    const { fake, hv } = open({ retry: true, dmExt: { version: 1, features: 3 } });
    expect(fake.calls).toContain('get_dm_ext_info');
    expect(hv.extension).toEqual(PATCHED);
    expect(hv.caps).toEqual({ retry: true, retryOffer: true });
  });

  it('takes EOPNOTSUPP as stock Xen', () => {
    const { hv } = open({});
    expect(hv.extension).toBeNull();
    expect(hv.caps).toEqual({ retry: false, retryOffer: false });
  });

  it('fails the open on any other error of the query, leaving nothing open', () => {
    const probe = new FakeXen({ retry: true, dmExt: { version: 1, features: 3 } });
    fakes.push(probe);
    hvs.push(XenHypervisor.open(probe.domid, probe.libs()));
    const step = probe.stepNames.indexOf('get_dm_ext_info') + 1;
    expect(step).toBeGreaterThan(0);
    const fake = new FakeXen({ retry: true, dmExt: { version: 1, features: 3 }, failAt: step });
    fakes.push(fake);
    expect(() => XenHypervisor.open(fake.domid, fake.libs())).toThrow(/get_dm_ext_info|EIO|I\/O/);
    expect(fake.live()).toEqual([]);
  });
});
