/**
 * DRM UAPI struct codecs and ioctl numbers (include/uapi/drm/drm.h and drm_mode.h), for our own
 * DRM binding. Checked byte for byte against the headers by test/platform/linux/drm-abi.test.ts.
 * All structs are little-endian x86-64/arm64 layouts (pointers and size_t are 8 bytes).
 */

const IOC_WRITE = 1;
const IOC_READ = 2;

/** _IOC(dir, type, nr, size) from include/uapi/asm-generic/ioctl.h. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
const DRM = 'd'.charCodeAt(0);
const iowr = (nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, DRM, nr, size);
const iow = (nr: number, size: number): number => ioc(IOC_WRITE, DRM, nr, size);

export const SIZEOF = {
  version: 64,
  getCap: 16,
  gemClose: 8,
  primeHandle: 12,
  createDumb: 32,
  mapDumb: 16,
  destroyDumb: 4,
} as const;

export const DRM_IOCTL = {
  VERSION: iowr(0x00, SIZEOF.version),
  GEM_CLOSE: iow(0x09, SIZEOF.gemClose),
  GET_CAP: iowr(0x0c, SIZEOF.getCap),
  PRIME_HANDLE_TO_FD: iowr(0x2d, SIZEOF.primeHandle),
  PRIME_FD_TO_HANDLE: iowr(0x2e, SIZEOF.primeHandle),
  MODE_CREATE_DUMB: iowr(0xb2, SIZEOF.createDumb),
  MODE_MAP_DUMB: iowr(0xb3, SIZEOF.mapDumb),
  MODE_DESTROY_DUMB: iowr(0xb4, SIZEOF.destroyDumb),
} as const;

export const DRM_CAP_DUMB_BUFFER = 0x1;
export const DRM_CAP_PRIME = 0x5;
export const DRM_PRIME_CAP_IMPORT = 0x1;
export const DRM_PRIME_CAP_EXPORT = 0x2;
export const DRM_CLOEXEC = 0o2000000; // O_CLOEXEC
export const DRM_RDWR = 0o2; // O_RDWR

/** struct drm_version: three ints, then (len, pointer) pairs for name, date and desc. */
export const VERSION_OFF = { major: 0, minor: 4, patch: 8, nameLen: 16, name: 24, dateLen: 32, date: 40, descLen: 48, desc: 56 } as const;

export function encodeGetCap(cap: number): Uint8Array {
  const b = new Uint8Array(SIZEOF.getCap);
  new DataView(b.buffer).setBigUint64(0, BigInt(cap), true);
  return b;
}

export function decodeGetCapValue(b: Uint8Array): bigint {
  return view(b, SIZEOF.getCap).getBigUint64(8, true);
}

export function encodeCreateDumb(width: number, height: number, bpp: number, flags = 0): Uint8Array {
  const b = new Uint8Array(SIZEOF.createDumb);
  const v = new DataView(b.buffer);
  v.setUint32(0, height, true);
  v.setUint32(4, width, true);
  v.setUint32(8, bpp, true);
  v.setUint32(12, flags, true);
  return b;
}

export function decodeCreateDumb(b: Uint8Array): { handle: number; pitch: number; size: bigint } {
  const v = view(b, SIZEOF.createDumb);
  return { handle: v.getUint32(16, true), pitch: v.getUint32(20, true), size: v.getBigUint64(24, true) };
}

export function encodeMapDumb(handle: number): Uint8Array {
  const b = new Uint8Array(SIZEOF.mapDumb);
  new DataView(b.buffer).setUint32(0, handle, true);
  return b;
}

export function decodeMapDumbOffset(b: Uint8Array): bigint {
  return view(b, SIZEOF.mapDumb).getBigUint64(8, true);
}

export function encodeHandle(handle: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setUint32(0, handle, true);
  return b;
}

export function encodePrimeHandle(handle: number, flags: number, fd: number): Uint8Array {
  const b = new Uint8Array(SIZEOF.primeHandle);
  const v = new DataView(b.buffer);
  v.setUint32(0, handle, true);
  v.setUint32(4, flags, true);
  v.setInt32(8, fd, true);
  return b;
}

export function decodePrimeHandle(b: Uint8Array): { handle: number; flags: number; fd: number } {
  const v = view(b, SIZEOF.primeHandle);
  return { handle: v.getUint32(0, true), flags: v.getUint32(4, true), fd: v.getInt32(8, true) };
}

function view(b: Uint8Array, size: number): DataView {
  if (b.byteLength !== size) throw new RangeError(`DRM struct: ${b.byteLength} bytes, want ${size}`);
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
