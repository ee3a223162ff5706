// privsep-check.mjs: run by the VM's /init as root, against the real module. A back-end binds the
// helper to domain A's window (as root: BIND needs CAP_SYS_ADMIN), drops to nobody with the real
// --run-as code (dist/platform/linux/privileges.js, which checks every thread's ids and capabilities),
// then tries what a compromised back-end would: MAP outside its window, BIND again to domain B,
// open /dev/xvgpu_helper again. Each must fail with its errno while its own window still serves
// (REGISTER of a new buffer, MAP with an emulated read and write). Prints one line:
//   xvgpu-vm: privsep {json}
// with each attempt's outcome ("ok" or the error code); test/vm/kernel-helper.test.ts judges it.
import { openSync } from 'node:fs';

const { native, O_RDWR } = await import('/xvgpu/dist/native/index.js');
const { LinuxKernelHelper } = await import('/xvgpu/dist/platform/linux/kernel-helper.js');
const { P2M_SOFT, HELPER_DEVICE } = await import('/xvgpu/dist/platform/linux/helper-abi.js');
const { dropPrivileges } = await import('/xvgpu/dist/platform/linux/privileges.js');

const PAGE = 4096;
const DOMAIN_A = 1;
const DOMAIN_B = 2;
const G0 = 0x100000;
const WINDOW = 16;

/** "ok", or the error code of what `fn` threw. */
function outcome(fn) {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return e.code ?? String(e.message);
  }
}

/** A page-aligned buffer of `pages` pages of our own memory, filled with its page index + 0x1000. */
function buffer(pages) {
  const fd = native.memfdCreate('privsep');
  native.fallocate(fd, 0, 0, pages * PAGE);
  const buf = native.mmap(fd, pages * PAGE, native.mmapConstants.PROT_READ | native.mmapConstants.PROT_WRITE, native.mmapConstants.MAP_SHARED, 0);
  native.close(fd);
  const words = new Uint32Array(buf);
  for (let p = 0; p < pages; p++) words[(p * PAGE) / 4] = 0x1000 + p;
  return buf;
}

const read4 = (gfn) => ({ gfn, byteInPage: 0, size: 4, write: false, dataLo: 0, dataHi: 0 });
const helper = LinuxKernelHelper.open(P2M_SOFT);
helper.bind({ domid: DOMAIN_A, firstGfn: G0, pages: WINDOW });
const first = buffer(4);
const range = helper.registerRange(native.addressOf(first), 4 * PAGE);
dropPrivileges({ spec: '65534:65534', uid: 65534, gid: 65534 });

const result = {
  uid: process.getuid(),
  map_outside_window: outcome(() => helper.map({ range, gfn: G0 + WINDOW, pageInRange: 0, pages: 1, tryHuge: false })),
  map_across_window_end: outcome(() => helper.map({ range, gfn: G0 + WINDOW - 1, pageInRange: 0, pages: 2, tryHuge: false })),
  map_below_window: outcome(() => helper.map({ range, gfn: G0 - 1, pageInRange: 0, pages: 1, tryHuge: false })),
  rebind_domain_b: outcome(() => { helper.bind({ domid: DOMAIN_B, firstGfn: G0, pages: WINDOW }); }),
  reopen_device: outcome(() => openSync(HELPER_DEVICE, 'r+')),
  reopen_device_native: outcome(() => native.open(HELPER_DEVICE, O_RDWR)),
};
// Its own window still serves: a read through the mapping of page 2, a new buffer registered and
// written through its mapping, and the write seen in our memory.
result.own_read = helper.map({ range, gfn: G0 + 2, pageInRange: 2, pages: 1, tryHuge: false, access: read4(G0 + 2) }).dataLo;
const second = buffer(1);
const range2 = helper.registerRange(native.addressOf(second), PAGE);
helper.map({ range: range2, gfn: G0 + 8, pageInRange: 0, pages: 1, tryHuge: false, access: { ...read4(G0 + 8), write: true, dataLo: 0xfeed } });
result.own_write = new Uint32Array(second)[0];
result.rebind_after_serving = outcome(() => { helper.bind({ domid: DOMAIN_A, firstGfn: G0, pages: WINDOW }); });
helper.close();
console.log(`xvgpu-vm: privsep ${JSON.stringify(result)}`);
