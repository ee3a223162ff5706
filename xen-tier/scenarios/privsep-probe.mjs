// privsep-probe.mjs DOM_A DOM_B: run as root in dom0 by privsep.sh. Sets the Xen handles up exactly
// as xvgpu does for domain A (libxendevicemodel restricted, the addon's privcmd restricted,
// xentoolcore_restrict_all, libxenevtchn restricted), drops to nobody with the real --run-as code,
// audits the handles with the real audit (a raw hypercall on every privcmd fd, a second restriction
// on the evtchn fd), then tries to touch domain B through each handle; the same calls for A must
// still work. Prints one JSON line: each attempt's outcome, "ok" or its errno name.
const [domA, domB] = process.argv.slice(2).map(Number);
const X = '/xvgpu/dist/platform';
const { openDeviceModel } = await import(`${X}/xen/devicemodel.js`);
const { openPrivcmd, XENMEM_RESOURCE_IOREQ_SERVER, ioreqServerFrameIoreq, HVM_IOREQSRV_BUFIOREQ_OFF } = await import(`${X}/xen/privcmd.js`);
const { openEvtchn } = await import(`${X}/xen/evtchn.js`);
const { restrictAllXenHandles, auditXenHandles } = await import(`${X}/xen/confine.js`);
const { dropPrivileges } = await import(`${X}/linux/privileges.js`);
const os = await import('node:os');

const errnoName = (n) => Object.entries(os.constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
function outcome(fn) {
  try {
    const v = fn();
    return { ok: true, value: v };
  } catch (e) {
    return { ok: false, error: typeof e.errno === 'number' ? errnoName(Math.abs(e.errno)) : e.code ?? String(e.message) };
  }
}
const show = (r) => (r.ok ? 'ok' : r.error);

const dm = openDeviceModel();
dm.restrict(domA);
const pc = openPrivcmd();
pc.restrict(domA);
restrictAllXenHandles(domA);
const ev = openEvtchn();
ev.restrict(domA);
dropPrivileges({ spec: 'nobody', uid: 65534, gid: 65534 });
const audit = outcome(() => auditXenHandles(domA, new Set()));

const result = { uid: process.getuid(), audit: show(audit) };
// Another domain, through every handle.
result.b_create_ioreq_server = show(outcome(() => dm.createIoreqServer(domB, HVM_IOREQSRV_BUFIOREQ_OFF)));
result.b_create_ioreq_server_raw = show(outcome(() => pc.createIoreqServerFlagged(domB, HVM_IOREQSRV_BUFIOREQ_OFF, 0)));
result.b_map_guest_frame = show(outcome(() => pc.mapGuestFrames(domB, [0x100])));
result.b_map_ioreq_page = show(outcome(() => pc.mapResource(domB, XENMEM_RESOURCE_IOREQ_SERVER, 0, ioreqServerFrameIoreq(0), 1)));
// Not an IRQ DM op: Xen 4.17 corrupts a PVH domain on XEN_DMOP_set_isa_irq_level, should the
// restriction ever let one through. Destroying a server B does not have is harmless either way.
result.b_destroy_ioreq_server = show(outcome(() => dm.destroyIoreqServer(domB, 0)));
result.b_bind_evtchn = show(outcome(() => ev.bindInterdomain(domB, 1)));
// Its own domain still works (so the refusals above are the restriction, not a broken handle).
const server = outcome(() => dm.createIoreqServer(domA, HVM_IOREQSRV_BUFIOREQ_OFF));
result.a_create_ioreq_server = show(server);
if (server.ok) {
  const page = outcome(() => pc.mapResource(domA, XENMEM_RESOURCE_IOREQ_SERVER, server.value, ioreqServerFrameIoreq(0), 1));
  result.a_map_ioreq_page = show(page);
  if (page.ok) pc.unmap(page.value);
  result.a_destroy_ioreq_server = show(outcome(() => dm.destroyIoreqServer(domA, server.value)));
}
const frame = outcome(() => pc.mapGuestFrames(domA, [0x100]));
result.a_map_guest_frame = show(frame);
if (frame.ok) pc.unmap(frame.value);
ev.close();
pc.close();
dm.close();
console.log(JSON.stringify(result));
