/**
 * `xvgpu xen-info`'s extension report on fake Xen libraries: the RETRY-flag probe and
 * XEN_DMOP_get_dm_ext_info (probeDmExtension), on a patched and on a stock hypervisor.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeXen } from './fake-xen.js';
import { probeDmExtension } from '../../../src/platform/xen/dm-ext.js';
import { formatXenInfo, gatherXenInfo } from '../../../src/platform/xen/info.js';
import { XEN_DMOP_DM_EXT_IORESP_RETRY, XEN_DMOP_DM_EXT_LEND_PAGES, XEN_DMOP_DM_EXT_VERSION } from '../../../src/platform/xen/privcmd.js';

const PATCHED = { version: XEN_DMOP_DM_EXT_VERSION, features: XEN_DMOP_DM_EXT_LEND_PAGES | XEN_DMOP_DM_EXT_IORESP_RETRY };
let fakes: FakeXen[] = [];
const fake = (o: ConstructorParameters<typeof FakeXen>[0]): FakeXen => {
  const f = new FakeXen(o);
  fakes.push(f);
  return f;
};
afterEach(() => {
  for (const f of fakes) f.dispose();
  fakes = [];
});

describe('xen-info: the hypervisor extension', () => {
  it('on the patched hypervisor reports version, features and both bits, and leaves nothing open', () => {
    const x = fake({ retry: true, dmExt: PATCHED });
    const info = gatherXenInfo(x.domid, x.libs());
    expect(info.extension).toEqual({
      retry: { value: true },
      mapDmop: { value: true },
      ioreqRetry: { value: true },
      dmExtInfo: { value: { version: 1, features: 3 } },
    });
    expect(x.calls).toContain('get_dm_ext_info');
    expect(x.live()).toEqual([]);
    expect(formatXenInfo(info)).toMatch(/extension query: +version 1, features 0x3 \(lend pages yes, ioreq retry yes\)/);
    expect(formatXenInfo(info)).toMatch(/extension map DM op: +present/);
  });

  it('reads each bit on its own', () => {
    const lendOnly = gatherXenInfo(7, fake({ retry: false, dmExt: { version: 1, features: XEN_DMOP_DM_EXT_LEND_PAGES } }).libs());
    expect([lendOnly.extension.mapDmop.value, lendOnly.extension.ioreqRetry.value]).toEqual([true, false]);
    const retryOnly = gatherXenInfo(7, fake({ retry: true, dmExt: { version: 1, features: XEN_DMOP_DM_EXT_IORESP_RETRY } }).libs());
    expect([retryOnly.extension.mapDmop.value, retryOnly.extension.ioreqRetry.value]).toEqual([false, true]);
  });

  it('on stock Xen (EOPNOTSUPP, flag refused) reports both absent, the query null with the reason', () => {
    const x = fake({ retry: false });
    const info = gatherXenInfo(x.domid, x.libs());
    expect(info.extension.retry).toEqual({ value: false });
    expect(info.extension.mapDmop).toEqual({ value: false });
    expect(info.extension.ioreqRetry).toEqual({ value: false });
    expect(info.extension.dmExtInfo.value).toBeNull();
    expect(info.extension.dmExtInfo.reason).toMatch(/EOPNOTSUPP \(stock Xen\)/);
    expect(x.live()).toEqual([]);
  });

  it('without --domid, or with a PV domain, every figure is null with a reason and nothing is probed', () => {
    const x = fake({ retry: true, dmExt: PATCHED });
    const none = gatherXenInfo(undefined, x.libs());
    for (const k of Object.values(none.extension)) expect(k).toEqual({ value: null, reason: expect.stringMatching(/--domid/) as string });
    const pv = gatherXenInfo(x.domid, fake({ type: 'pv', dmExt: PATCHED }).libs());
    expect(pv.extension.mapDmop.reason).toMatch(/PV/);
    expect(x.calls).not.toContain('get_dm_ext_info');
  });

  it('probeDmExtension: errors other than EOPNOTSUPP are not taken for stock Xen', () => {
    const x = fake({ dmExt: PATCHED });
    const libs = x.libs();
    const privcmd = libs.privcmd();
    expect(() => probeDmExtension(privcmd, x.domid + 1)).toThrow(/ESRCH|No such process/);
    expect(probeDmExtension(privcmd, x.domid)).toEqual({ version: 1, features: 3, lendPages: true, ioreqRetry: true });
    privcmd.close();
  });
});
