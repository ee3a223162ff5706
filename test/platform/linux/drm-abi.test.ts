/** Our DRM struct codecs and ioctl numbers against the kernel UAPI headers (as shipped by libdrm-dev). */
import { describe, expect, it } from 'vitest';
import * as drm from '../../../src/platform/linux/drm-abi.js';
import { DrmDevice } from '../../../src/platform/linux/drm.js';
import { native } from '../../../src/native/index.js';
import { runC } from '../../support/c-layout.js';

const HEADER = '/usr/include/libdrm/drm.h';

const C = `
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <fcntl.h>
#include <drm.h>
#include <drm_mode.h>
static void dump(const char *k, const void *p, size_t n) {
  const unsigned char *b = p; printf("\\"%s\\": [", k);
  for (size_t i = 0; i < n; i++) printf("%s%u", i ? "," : "", b[i]);
  printf("],\\n");
}
int main(void) {
  printf("{\\n\\"sizes\\": [%zu,%zu,%zu,%zu,%zu,%zu,%zu],\\n", sizeof(struct drm_version), sizeof(struct drm_get_cap),
    sizeof(struct drm_gem_close), sizeof(struct drm_prime_handle), sizeof(struct drm_mode_create_dumb),
    sizeof(struct drm_mode_map_dumb), sizeof(struct drm_mode_destroy_dumb));
  printf("\\"ioctls\\": [%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu],\\n", (unsigned long)DRM_IOCTL_VERSION, (unsigned long)DRM_IOCTL_GEM_CLOSE,
    (unsigned long)DRM_IOCTL_GET_CAP, (unsigned long)DRM_IOCTL_PRIME_HANDLE_TO_FD, (unsigned long)DRM_IOCTL_PRIME_FD_TO_HANDLE,
    (unsigned long)DRM_IOCTL_MODE_CREATE_DUMB, (unsigned long)DRM_IOCTL_MODE_MAP_DUMB, (unsigned long)DRM_IOCTL_MODE_DESTROY_DUMB);
  printf("\\"version_off\\": [%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu],\\n", offsetof(struct drm_version, version_major),
    offsetof(struct drm_version, version_minor), offsetof(struct drm_version, version_patchlevel), offsetof(struct drm_version, name_len),
    offsetof(struct drm_version, name), offsetof(struct drm_version, date_len), offsetof(struct drm_version, date),
    offsetof(struct drm_version, desc_len), offsetof(struct drm_version, desc));
  printf("\\"consts\\": [%d,%d,%d,%d,%d],\\n", DRM_CAP_DUMB_BUFFER, DRM_CAP_PRIME, DRM_PRIME_CAP_IMPORT, DRM_PRIME_CAP_EXPORT, DRM_CLOEXEC);
  struct drm_get_cap gc = { .capability = 0x0000010203040506ULL, .value = 0 }; dump("get_cap", &gc, sizeof gc);
  struct drm_mode_create_dumb cd; memset(&cd, 0, sizeof cd); cd.width = 640; cd.height = 480; cd.bpp = 32; cd.flags = 7; dump("create_dumb", &cd, sizeof cd);
  memset(&cd, 0, sizeof cd); cd.handle = 0x11; cd.pitch = 0x22; cd.size = 0x3344556677ULL; dump("create_dumb_out", &cd, sizeof cd);
  struct drm_mode_map_dumb md; memset(&md, 0, sizeof md); md.handle = 9; md.offset = 0x1000200030ULL; dump("map_dumb", &md, sizeof md);
  struct drm_prime_handle ph = { .handle = 5, .flags = DRM_CLOEXEC | DRM_RDWR, .fd = -1 }; dump("prime", &ph, sizeof ph);
  printf("\\"end\\": 0\\n}\\n");
  return 0;
}`;

interface Layout {
  sizes: number[];
  ioctls: number[];
  version_off: number[];
  consts: number[];
  get_cap: number[];
  create_dumb: number[];
  create_dumb_out: number[];
  map_dumb: number[];
  prime: number[];
}

describe('DRM UAPI layouts match the kernel headers', () => {
  const c = runC(C.replace('#include <drm.h>', `#include "${HEADER}"`).replace('#include <drm_mode.h>', '#include "/usr/include/libdrm/drm_mode.h"'), HEADER, 'libdrm-dev') as Layout;

  it('has the same struct sizes, ioctl numbers and constants', () => {
    const s = drm.SIZEOF;
    expect(c.sizes).toEqual([s.version, s.getCap, s.gemClose, s.primeHandle, s.createDumb, s.mapDumb, s.destroyDumb]);
    const i = drm.DRM_IOCTL;
    expect(c.ioctls).toEqual([i.VERSION, i.GEM_CLOSE, i.GET_CAP, i.PRIME_HANDLE_TO_FD, i.PRIME_FD_TO_HANDLE, i.MODE_CREATE_DUMB, i.MODE_MAP_DUMB, i.MODE_DESTROY_DUMB]);
    const o = drm.VERSION_OFF;
    expect(c.version_off).toEqual([o.major, o.minor, o.patch, o.nameLen, o.name, o.dateLen, o.date, o.descLen, o.desc]);
    expect(c.consts).toEqual([drm.DRM_CAP_DUMB_BUFFER, drm.DRM_CAP_PRIME, drm.DRM_PRIME_CAP_IMPORT, drm.DRM_PRIME_CAP_EXPORT, drm.DRM_CLOEXEC]);
  });

  it('encodes and decodes every struct as the C compiler lays it out', () => {
    expect(Array.from(drm.encodeGetCap(0x010203040506))).toEqual(c.get_cap);
    expect(Array.from(drm.encodeCreateDumb(640, 480, 32, 7))).toEqual(c.create_dumb);
    expect(drm.decodeCreateDumb(Uint8Array.from(c.create_dumb_out))).toEqual({ handle: 0x11, pitch: 0x22, size: 0x3344556677n });
    expect(drm.decodeMapDumbOffset(Uint8Array.from(c.map_dumb))).toBe(0x1000200030n);
    expect(Array.from(drm.encodePrimeHandle(5, drm.DRM_CLOEXEC | drm.DRM_RDWR, -1))).toEqual(c.prime);
    expect(drm.decodePrimeHandle(Uint8Array.from(c.prime))).toEqual({ handle: 5, flags: drm.DRM_CLOEXEC | drm.DRM_RDWR, fd: -1 });
    expect(() => drm.decodeCreateDumb(new Uint8Array(8))).toThrow(RangeError);
  });
});

describe('DrmDevice error paths (the vgem path runs in the VM tier)', () => {
  it('fails to open a missing node with ENOENT', () => {
    expect(() => DrmDevice.open('/dev/dri/no-such-card')).toThrow(/ENOENT/);
  });

  it('reports ENOTTY when the fd is not a DRM device', () => {
    const fd = native.memfdCreate('not-drm');
    const dev = DrmDevice.fromFd(fd, 'memfd');
    expect(() => dev.version()).toThrow(/ioctl: ENOTTY/);
    expect(() => dev.createDumb(64, 64)).toThrow(/ENOTTY/);
    dev.close();
  });

  it('refuses pointer fixups outside the ioctl argument', () => {
    const fd = native.memfdCreate('fixup');
    expect(() => native.ioctl(fd, drm.DRM_IOCTL.VERSION, new Uint8Array(64), [{ offset: 60, buffer: new Uint8Array(4) }])).toThrow(RangeError);
    expect(() => native.ioctl(fd, drm.DRM_IOCTL.VERSION, new Uint8Array(64), [{ offset: 8, buffer: 3 as unknown as Uint8Array }])).toThrow(TypeError);
    native.close(fd);
  });
});
