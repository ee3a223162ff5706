/**
 * Our DRM binding (there is no usable npm package): a DRM device node opened through the addon,
 * with the handful of ioctls xvgpu needs to use dumb buffers as GPU buffer objects: VERSION,
 * GET_CAP, MODE_CREATE_DUMB / MAP_DUMB / DESTROY_DUMB + mmap, GEM_CLOSE and PRIME import/export.
 * Dumb buffers need the primary (card) node; render nodes refuse them.
 */
import { O_RDWR, native } from '../../native/index.js';
import {
  DRM_CLOEXEC,
  DRM_IOCTL,
  DRM_RDWR,
  SIZEOF,
  VERSION_OFF,
  decodeCreateDumb,
  decodeGetCapValue,
  decodeMapDumbOffset,
  decodePrimeHandle,
  encodeCreateDumb,
  encodeGetCap,
  encodeHandle,
  encodeMapDumb,
  encodePrimeHandle,
} from './drm-abi.js';

export interface DrmVersion {
  major: number;
  minor: number;
  patch: number;
  name: string;
  date: string;
  desc: string;
}

export interface DumbBuffer {
  handle: number;
  pitch: number;
  size: number;
}

export class DrmDevice {
  private closed = false;

  private constructor(readonly fd: number, readonly path: string) {}

  static open(path: string): DrmDevice {
    return new DrmDevice(native.open(path, O_RDWR), path);
  }

  /** Wraps an fd opened elsewhere (e.g. received from the privileged helper over SCM_RIGHTS). */
  static fromFd(fd: number, label = `fd ${fd}`): DrmDevice {
    return new DrmDevice(fd, label);
  }

  /** DRM_IOCTL_VERSION, twice: once for the string lengths, once with buffers of that size. */
  version(): DrmVersion {
    const lenAt = [VERSION_OFF.nameLen, VERSION_OFF.dateLen, VERSION_OFF.descLen];
    const ptrAt = [VERSION_OFF.name, VERSION_OFF.date, VERSION_OFF.desc];
    const arg = new Uint8Array(SIZEOF.version);
    const v = new DataView(arg.buffer);
    native.ioctl(this.fd, DRM_IOCTL.VERSION, arg);
    const bufs = lenAt.map((o) => new Uint8Array(Math.max(1, Math.min(Number(v.getBigUint64(o, true)), 4096))));
    lenAt.forEach((o, i) => { v.setBigUint64(o, BigInt(bufs[i]?.length ?? 0), true); });
    native.ioctl(this.fd, DRM_IOCTL.VERSION, arg, bufs.map((buffer, i) => ({ offset: ptrAt[i] ?? 0, buffer })));
    const str = (i: number): string => Buffer.from(bufs[i] ?? []).subarray(0, Number(v.getBigUint64(lenAt[i] ?? 0, true))).toString('utf8');
    return {
      major: v.getInt32(VERSION_OFF.major, true),
      minor: v.getInt32(VERSION_OFF.minor, true),
      patch: v.getInt32(VERSION_OFF.patch, true),
      name: str(0),
      date: str(1),
      desc: str(2),
    };
  }

  getCap(cap: number): bigint {
    const arg = encodeGetCap(cap);
    native.ioctl(this.fd, DRM_IOCTL.GET_CAP, arg);
    return decodeGetCapValue(arg);
  }

  createDumb(width: number, height: number, bpp = 32): DumbBuffer {
    const arg = encodeCreateDumb(width, height, bpp);
    native.ioctl(this.fd, DRM_IOCTL.MODE_CREATE_DUMB, arg);
    const r = decodeCreateDumb(arg);
    return { handle: r.handle, pitch: r.pitch, size: Number(r.size) };
  }

  /** The fake offset to mmap the buffer at on this fd. */
  mapDumbOffset(handle: number): number {
    const arg = encodeMapDumb(handle);
    native.ioctl(this.fd, DRM_IOCTL.MODE_MAP_DUMB, arg);
    return Number(decodeMapDumbOffset(arg));
  }

  /** A shared CPU mapping of a dumb buffer; revoke it with native.munmap(). */
  mmapDumb(buf: DumbBuffer): ArrayBuffer {
    const { PROT_READ, PROT_WRITE, MAP_SHARED } = native.mmapConstants;
    return native.mmap(this.fd, buf.size, PROT_READ | PROT_WRITE, MAP_SHARED, this.mapDumbOffset(buf.handle));
  }

  destroyDumb(handle: number): void {
    native.ioctl(this.fd, DRM_IOCTL.MODE_DESTROY_DUMB, encodeHandle(handle, SIZEOF.destroyDumb));
  }

  gemClose(handle: number): void {
    native.ioctl(this.fd, DRM_IOCTL.GEM_CLOSE, encodeHandle(handle, SIZEOF.gemClose));
  }

  /** PRIME export: a dma-buf fd for the handle (close-on-exec, read-write). */
  primeHandleToFd(handle: number): number {
    const arg = encodePrimeHandle(handle, DRM_CLOEXEC | DRM_RDWR, -1);
    native.ioctl(this.fd, DRM_IOCTL.PRIME_HANDLE_TO_FD, arg);
    return decodePrimeHandle(arg).fd;
  }

  primeFdToHandle(dmabuf: number): number {
    const arg = encodePrimeHandle(0, 0, dmabuf);
    native.ioctl(this.fd, DRM_IOCTL.PRIME_FD_TO_HANDLE, arg);
    return decodePrimeHandle(arg).handle;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.close(this.fd);
  }
}
