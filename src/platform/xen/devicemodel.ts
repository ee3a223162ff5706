/**
 * libxendevicemodel (xendevicemodel.h, Xen 4.9+; set_irq_level 4.15): the ioreq server's control
 * plane. Every call is a DM op on the handle's own privcmd fd; after `restrict(domid)` that fd can
 * only ever issue DM ops against that one domain (IOCTL_PRIVCMD_RESTRICT).
 *
 * Not bound on purpose: get_ioreq_server_info. Without XEN_DMOP_no_gfns it makes Xen put the ioreq
 * pages into the guest's p2m (the legacy path); the page is mapped with map_resource instead.
 */
import { XenCallError, callHandle, callInt, cfn, type CFunction } from './ffi.js';

/** The subset of libxendevicemodel xvgpu uses, one handle; a fake implements it in tests. */
export interface DeviceModelLib {
  /** `handleBufioreq` 0 = HVM_IOREQSRV_BUFIOREQ_OFF (a BAR server gets no buffered ioreqs). */
  createIoreqServer(domid: number, handleBufioreq: number): number;
  /** `end` inclusive, as the DM op takes it. */
  mapIoRange(domid: number, id: number, mmio: boolean, start: number, end: number): void;
  unmapIoRange(domid: number, id: number, mmio: boolean, start: number, end: number): void;
  setIoreqServerState(domid: number, id: number, enabled: boolean): void;
  destroyIoreqServer(domid: number, id: number): void;
  /** x86: an ISA IRQ line (0-15) through the guest's PIC and IO-APIC. */
  setIsaIrqLevel(domid: number, irq: number, level: boolean): void;
  /** Arm: an SPI (XEN_DMOP_set_irq_level is Arm only). */
  setIrqLevel(domid: number, irq: number, level: boolean): void;
  restrict(domid: number): void;
  close(): void;
}

const LIB = 'devicemodel';
const H = ['xendevicemodel_handle *', 'pointer'] as const;
const DOM = ['domid_t', 'domid_t'] as const;
const ID = ['ioservid_t', 'ioservid_t'] as const;

export const DEVICEMODEL_FUNCTIONS = {
  open: cfn('xendevicemodel_open', 'xendevicemodel_handle *', 'pointer', [['struct xentoollog_logger *', 'NULL'], ['unsigned int', 'unsigned int']]),
  close: cfn('xendevicemodel_close', 'int', 'int', [H]),
  restrict: cfn('xendevicemodel_restrict', 'int', 'int', [H, DOM]),
  createIoreqServer: cfn('xendevicemodel_create_ioreq_server', 'int', 'int', [H, DOM, ['int', 'int'], ['ioservid_t *', 'out pointer']]),
  mapIoRange: cfn('xendevicemodel_map_io_range_to_ioreq_server', 'int', 'int', [H, DOM, ID, ['int', 'int'], ['uint64_t', 'uint64_t'], ['uint64_t', 'uint64_t']]),
  unmapIoRange: cfn('xendevicemodel_unmap_io_range_from_ioreq_server', 'int', 'int', [H, DOM, ID, ['int', 'int'], ['uint64_t', 'uint64_t'], ['uint64_t', 'uint64_t']]),
  setState: cfn('xendevicemodel_set_ioreq_server_state', 'int', 'int', [H, DOM, ID, ['int', 'int']]),
  destroy: cfn('xendevicemodel_destroy_ioreq_server', 'int', 'int', [H, DOM, ID]),
  setIsaIrqLevel: cfn('xendevicemodel_set_isa_irq_level', 'int', 'int', [H, DOM, ['uint8_t', 'uint8_t'], ['unsigned int', 'unsigned int']]),
  setIrqLevel: cfn('xendevicemodel_set_irq_level', 'int', 'int', [H, DOM, ['unsigned int', 'unsigned int'], ['unsigned int', 'unsigned int']]),
} satisfies Record<string, CFunction>;

const F = DEVICEMODEL_FUNCTIONS;

/** Opens a libxendevicemodel handle (its own privcmd fd). */
export function openDeviceModel(): DeviceModelLib {
  const h = callHandle(LIB, F.open, [0, 0]);
  let open = true;
  const call = (fn: CFunction, ...args: unknown[]): number => {
    if (!open) throw new XenCallError(fn.name, 0, 'handle already closed');
    return callInt(LIB, fn, [h, ...args]);
  };
  return {
    createIoreqServer(domid, handleBufioreq) {
      const id = Buffer.alloc(2);
      call(F.createIoreqServer, domid, handleBufioreq, id);
      return id.readUInt16LE(0);
    },
    mapIoRange(domid, id, mmio, start, end) { call(F.mapIoRange, domid, id, mmio ? 1 : 0, start, end); },
    unmapIoRange(domid, id, mmio, start, end) { call(F.unmapIoRange, domid, id, mmio ? 1 : 0, start, end); },
    setIoreqServerState(domid, id, enabled) { call(F.setState, domid, id, enabled ? 1 : 0); },
    destroyIoreqServer(domid, id) { call(F.destroy, domid, id); },
    setIsaIrqLevel(domid, irq, level) { call(F.setIsaIrqLevel, domid, irq, level ? 1 : 0); },
    setIrqLevel(domid, irq, level) { call(F.setIrqLevel, domid, irq, level ? 1 : 0); },
    restrict(domid) { call(F.restrict, domid); },
    close() {
      if (!open) return;
      open = false;
      callInt(LIB, F.close, [h]);
    },
  };
}
