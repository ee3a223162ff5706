/**
 * The control plane's only door to the Xen libraries: ffi-rs, loaded lazily and only on the main
 * thread (it crashes the process when a worker that loaded it exits, and its library table is not
 * thread-safe: docs/reference node-ecosystem §1.4). ffi-rs costs ~1.5 µs per call, so only setup
 * and teardown go through here; the per-ioreq path uses the native addon (evtchn.ts, foreignmemory.ts).
 *
 * Each binding is declared once as a C prototype (`CFunction`): the ffi-rs types are derived from
 * the C types, and test/platform/xen/abi.test.ts compiles the same prototypes against Debian's
 * libxen-dev headers, so a binding that disagrees with the header fails a test.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import { ConfigError } from '../../backend.js';

/** Xen, or one of its pieces, is not there: one line naming what is missing and how to get it. */
export class XenUnavailableError extends ConfigError {
  override readonly name = 'XenUnavailableError';
}

/** A library call failed; `errno` is the C errno (ESRCH: the domain is gone, EINVAL, EPERM...). */
export class XenCallError extends Error {
  override readonly name = 'XenCallError';
  constructor(readonly fn: string, readonly errno: number, detail: string) {
    super(`${fn}: ${detail}`);
  }
}

export const ENOENT = 2;
export const ESRCH = 3;
export const EINVAL = 22;
export const EOPNOTSUPP = 95;
export const EAGAIN = 11;

/** The C types the bindings use; each maps to one ffi-rs type (pointer-sized values as externals). */
export type CType =
  | 'int' | 'unsigned int' | 'uint8_t' | 'uint16_t' | 'uint32_t' | 'uint64_t' | 'domid_t' | 'ioservid_t' | 'evtchn_port_t'
  | 'xenevtchn_port_or_error_t' | 'pointer' | 'out pointer' | 'NULL';

/** One C function: the library's prototype, with each parameter's C type as the header spells it. */
export interface CFunction {
  readonly name: string;
  readonly ret: CType;
  /** `pointer`: an opaque handle (ffi-rs External); `out pointer`: a Buffer the callee fills; `NULL`: always 0. */
  readonly params: readonly CType[];
  /** The header's parameter types, for the compiled prototype check (e.g. 'ioservid_t *'). */
  readonly cParams: readonly string[];
  readonly cRet: string;
}

/** The shared objects, their Debian packages and the header each is checked against. */
export const XEN_LIBRARIES = {
  devicemodel: { soname: 'libxendevicemodel.so.1', pkg: 'libxendevicemodel1', header: 'xendevicemodel.h' },
  evtchn: { soname: 'libxenevtchn.so.1', pkg: 'libxenevtchn1', header: 'xenevtchn.h' },
  ctrl: { soname: 'libxenctrl.so.4.17', pkg: 'libxenctrl4.17', header: 'xenctrl.h' },
  toolcore: { soname: 'libxentoolcore.so.1', pkg: 'libxentoolcore1', header: 'xentoolcore.h' },
} as const;
export type XenLibraryName = keyof typeof XEN_LIBRARIES;

/** Device nodes a Xen domain with the privcmd and evtchn drivers has. */
export const PRIVCMD_DEVICE = '/dev/xen/privcmd';
export const EVTCHN_DEVICE = '/dev/xen/evtchn';

/** Throws the one-line reason this is not a usable Xen domain, checking the cheapest thing first. */
export function requireXenDevices(exists: (path: string) => boolean = existsSync): void {
  if (!exists('/sys/hypervisor/type') && !exists('/proc/xen')) {
    throw new XenUnavailableError('not running on Xen (no /sys/hypervisor/type, no /proc/xen): xvgpu --platform xen runs in a Xen dom0 or driver domain');
  }
  for (const dev of [PRIVCMD_DEVICE, EVTCHN_DEVICE]) {
    if (!exists(dev)) throw new XenUnavailableError(`${dev} missing: not a Xen dom0/driver domain, or the xen-privcmd/xen-evtchn drivers are not loaded`);
  }
}

// ffi-rs, typed to the small subset used here.
interface Ffi {
  open(p: { library: string; path: string }): void;
  load(p: { library: string; funcName: string; retType: unknown; paramsType: unknown[]; paramsValue: unknown[]; errno: true }): { value: unknown; errnoCode: number; errnoMessage: string };
  isNullPointer(p: unknown): boolean;
  DataType: Record<string, number>;
}

let ffi: Ffi | undefined;
const opened = new Set<string>();

function loadFfi(): Ffi {
  if (!isMainThread) throw new Error('ffi-rs may only be used on the main thread (it crashes when a worker that loaded it exits)');
  if (!ffi) {
    try {
      ffi = createRequire(import.meta.url)('ffi-rs') as Ffi;
    } catch (e) {
      throw new XenUnavailableError(`the ffi-rs package is not installed (npm install): ${(e as Error).message.split('\n')[0] ?? ''}`);
    }
  }
  return ffi;
}

/** dlopens one Xen library once; a missing one is one clear line naming the Debian package. */
export function openXenLibrary(name: XenLibraryName): void {
  if (opened.has(name)) return;
  const lib = XEN_LIBRARIES[name];
  dlopenOrExplain(name, lib.soname, lib.pkg);
  opened.add(name);
}

/** ffi-rs open() under `key`; a failure names the shared object and the package that has it. */
export function dlopenOrExplain(key: string, soname: string, pkg: string): void {
  try {
    loadFfi().open({ library: key, path: soname });
  } catch {
    throw new XenUnavailableError(`${soname} not found: install libxen-dev or ${pkg}`);
  }
}

function ffiType(f: Ffi, t: CType): number {
  const D = f.DataType;
  const pick = (k: string): number => {
    const v = D[k];
    if (v === undefined) throw new Error(`ffi-rs has no DataType.${k}`);
    return v;
  };
  switch (t) {
    case 'pointer': return pick('External');
    // Always passed as 0 (the libraries' optional logger): a pointer-sized integer.
    case 'NULL': return pick('I64');
    case 'out pointer': return pick('U8Array');
    case 'uint8_t': return pick('U8');
    // 16-bit ids travel as I16: every domid / ioservid / value here is below 0x8000.
    case 'uint16_t': case 'domid_t': case 'ioservid_t': return pick('I16');
    case 'uint64_t': return pick('U64');
    case 'int': case 'xenevtchn_port_or_error_t': return pick('I32');
    case 'unsigned int': case 'uint32_t': case 'evtchn_port_t': return pick('U32');
  }
}

/** Calls one bound function; returns the raw result and the errno read right after it. */
export function callRaw(lib: XenLibraryName, fn: CFunction, args: readonly unknown[]): { value: unknown; errno: number; message: string } {
  const f = loadFfi();
  openXenLibrary(lib);
  const r = f.load({
    library: lib,
    funcName: fn.name,
    retType: ffiType(f, fn.ret),
    paramsType: fn.params.map((t) => ffiType(f, t)),
    paramsValue: [...args],
    errno: true,
  });
  return { value: r.value, errno: r.errnoCode, message: r.errnoMessage };
}

/** A call returning an int status: 0 (or any non-negative) is success, -1 sets errno. */
export function callInt(lib: XenLibraryName, fn: CFunction, args: readonly unknown[]): number {
  const r = callRaw(lib, fn, args);
  const v = r.value as number;
  if (v < 0) throw new XenCallError(fn.name, r.errno, r.message);
  return v;
}

/** A call returning a handle: NULL sets errno. */
export function callHandle(lib: XenLibraryName, fn: CFunction, args: readonly unknown[]): unknown {
  const r = callRaw(lib, fn, args);
  if (loadFfi().isNullPointer(r.value)) throw new XenCallError(fn.name, r.errno, r.message);
  return r.value;
}

/** Shorthand for a prototype. */
export function cfn(name: string, cRet: string, ret: CType, params: ReadonlyArray<readonly [string, CType]>): CFunction {
  return { name, cRet, ret, cParams: params.map((p) => p[0]), params: params.map((p) => p[1]) };
}
