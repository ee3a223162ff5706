/**
 * libxenevtchn (xenevtchn.h; restrict 4.10, fdopen 4.15) for binding, and the event-channel fd
 * itself for the per-ioreq path. The fd is opened here, non-blocking, and handed to
 * xenevtchn_fdopen, so the library and the hot path share one fd:
 *
 *  - pending: read(2) of u32 ports (libxenevtchn's xenevtchn_pending reads exactly one; reading
 *    the whole batch is the same driver call). A fired port stays masked until unmask;
 *  - unmask: write(2) of the u32 port;
 *  - notify: IOCTL_EVTCHN_NOTIFY (include/uapi/xen/evtchn.h), through the native addon.
 *
 * That is what tools/libs/evtchn/linux.c does, minus ~1.5 µs of ffi-rs per call.
 */
import { readSync, writeSync } from 'node:fs';
import { native, O_NONBLOCK, O_RDWR, isSyscallError } from '../../native/index.js';
import { ioc } from '../linux/drm-abi.js';
import { EVTCHN_DEVICE, callHandle, callInt, cfn, type CFunction } from './ffi.js';

/** The subset of libxenevtchn xvgpu uses, on one handle; the tests put an eventfd-backed fake behind it. */
export interface EvtchnLib {
  /** Pollable and non-blocking: readable while a port is pending. */
  readonly fd: number;
  bindInterdomain(domid: number, remotePort: number): number;
  unbind(localPort: number): void;
  restrict(domid: number): void;
  /** Reads pending local ports into `out`; returns how many (0 when none). */
  pending(out: Uint32Array): number;
  unmask(localPort: number): void;
  notify(localPort: number): void;
  close(): void;
}

const IOC_NONE = 0;
/** _IOC(_IOC_NONE, 'E', 4, sizeof(struct ioctl_evtchn_notify)) */
export const IOCTL_EVTCHN_NOTIFY = ioc(IOC_NONE, 'E'.charCodeAt(0), 4, 4);
export const O_CLOEXEC = 0o2000000;

const LIB = 'evtchn';
const H = ['xenevtchn_handle *', 'pointer'] as const;

export const EVTCHN_FUNCTIONS = {
  fdopen: cfn('xenevtchn_fdopen', 'xenevtchn_handle *', 'pointer', [['struct xentoollog_logger *', 'NULL'], ['int', 'int'], ['unsigned int', 'unsigned int']]),
  close: cfn('xenevtchn_close', 'int', 'int', [H]),
  bindInterdomain: cfn('xenevtchn_bind_interdomain', 'xenevtchn_port_or_error_t', 'xenevtchn_port_or_error_t', [H, ['uint32_t', 'uint32_t'], ['evtchn_port_t', 'evtchn_port_t']]),
  unbind: cfn('xenevtchn_unbind', 'int', 'int', [H, ['evtchn_port_t', 'evtchn_port_t']]),
  restrict: cfn('xenevtchn_restrict', 'int', 'int', [H, ['domid_t', 'domid_t']]),
} satisfies Record<string, CFunction>;

const F = EVTCHN_FUNCTIONS;

/** Opens /dev/xen/evtchn non-blocking and wraps it in a libxenevtchn handle (which then owns the fd). */
export function openEvtchn(): EvtchnLib {
  const fd = native.open(EVTCHN_DEVICE, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  let xce: unknown;
  try {
    xce = callHandle(LIB, F.fdopen, [0, fd, 0]);
  } catch (e) {
    native.close(fd);
    throw e;
  }
  const word = new Uint32Array(1);
  let open = true;
  return {
    fd,
    bindInterdomain: (domid, remotePort) => callInt(LIB, F.bindInterdomain, [xce, domid, remotePort]),
    unbind: (port) => { callInt(LIB, F.unbind, [xce, port]); },
    restrict: (domid) => { callInt(LIB, F.restrict, [xce, domid]); },
    pending: (out) => readPorts(fd, out),
    unmask: (port) => {
      word[0] = port;
      writeSync(fd, word);
    },
    notify: (port) => {
      word[0] = port;
      native.ioctl(fd, IOCTL_EVTCHN_NOTIFY, word);
    },
    close: () => {
      if (!open) return;
      open = false;
      callInt(LIB, F.close, [xce]); // closes fd
    },
  };
}

/** One read(2) of up to out.length ports; EAGAIN (nothing pending) is 0, not an error. */
export function readPorts(fd: number, out: Uint32Array): number {
  try {
    return readSync(fd, out) >>> 2;
  } catch (e) {
    if (isSyscallError(e, 'EAGAIN') || (e as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
    throw e;
  }
}
