/**
 * virtio-gpu control-queue wire format (device-types/gpu, include/uapi/linux/virtio_gpu.h): the
 * 24-byte header, the commands this device implements, and the responses. decodeCommand() reads
 * exactly the struct the header's type names; a truncated or unknown command is a DecodeError
 * carrying the response type to send (the spec's ERR_*), never an exception from a bounds check.
 */

export const CMD = {
  GET_DISPLAY_INFO: 0x0100,
  RESOURCE_UNREF: 0x0102,
  GET_CAPSET_INFO: 0x0108,
  GET_CAPSET: 0x0109,
  RESOURCE_CREATE_BLOB: 0x010c,
  CTX_CREATE: 0x0200,
  CTX_DESTROY: 0x0201,
  CTX_ATTACH_RESOURCE: 0x0202,
  CTX_DETACH_RESOURCE: 0x0203,
  SUBMIT_3D: 0x0207,
  RESOURCE_MAP_BLOB: 0x0208,
  RESOURCE_UNMAP_BLOB: 0x0209,
  UPDATE_CURSOR: 0x0300,
  MOVE_CURSOR: 0x0301,
} as const;

export const RESP = {
  OK_NODATA: 0x1100,
  OK_DISPLAY_INFO: 0x1101,
  OK_CAPSET_INFO: 0x1102,
  OK_CAPSET: 0x1103,
  OK_MAP_INFO: 0x1106,
  ERR_UNSPEC: 0x1200,
  ERR_OUT_OF_MEMORY: 0x1201,
  ERR_INVALID_SCANOUT_ID: 0x1202,
  ERR_INVALID_RESOURCE_ID: 0x1203,
  ERR_INVALID_CONTEXT_ID: 0x1204,
  ERR_INVALID_PARAMETER: 0x1205,
} as const;

export const FLAG_FENCE = 1;
export const FLAG_INFO_RING_IDX = 2;

export const BLOB_MEM_GUEST = 1;
export const BLOB_MEM_HOST3D = 2;
export const BLOB_MEM_HOST3D_GUEST = 3;
export const BLOB_FLAG_USE_MAPPABLE = 1;
export const BLOB_FLAG_USE_SHAREABLE = 2;
export const BLOB_FLAG_USE_CROSS_DEVICE = 4;

export const MAP_CACHE_CACHED = 1;
export const MAP_CACHE_WC = 3;

export const CAPSET_DRM = 6;
export const CONTEXT_INIT_CAPSET_ID_MASK = 0xff;
export const MAX_SCANOUTS = 16;
export const HDR_SIZE = 24;

export interface CtrlHdr {
  type: number;
  flags: number;
  fenceId: bigint;
  ctxId: number;
  ringIdx: number;
}

export type Command =
  | { kind: 'get_display_info'; hdr: CtrlHdr }
  | { kind: 'get_capset_info'; hdr: CtrlHdr; index: number }
  | { kind: 'get_capset'; hdr: CtrlHdr; capsetId: number; version: number }
  | { kind: 'ctx_create'; hdr: CtrlHdr; contextInit: number; name: string }
  | { kind: 'ctx_destroy'; hdr: CtrlHdr }
  | { kind: 'ctx_attach_resource' | 'ctx_detach_resource' | 'resource_unref' | 'resource_unmap_blob'; hdr: CtrlHdr; resourceId: number }
  | { kind: 'resource_create_blob'; hdr: CtrlHdr; resourceId: number; blobMem: number; blobFlags: number; nrEntries: number; blobId: bigint; size: bigint }
  | { kind: 'resource_map_blob'; hdr: CtrlHdr; resourceId: number; offset: bigint }
  | { kind: 'submit_3d'; hdr: CtrlHdr; payload: Uint8Array }
  | { kind: 'cursor'; hdr: CtrlHdr };

export class DecodeError extends Error {
  constructor(readonly resp: number, message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

export function decodeHdr(b: Uint8Array): CtrlHdr {
  if (b.byteLength < HDR_SIZE) throw new DecodeError(RESP.ERR_INVALID_PARAMETER, `command of ${b.byteLength} bytes is shorter than the header`);
  const v = view(b);
  return { type: v.getUint32(0, true), flags: v.getUint32(4, true), fenceId: v.getBigUint64(8, true), ctxId: v.getUint32(16, true), ringIdx: v.getUint8(20) };
}

const SIZES: Record<number, number> = {
  [CMD.GET_DISPLAY_INFO]: 24,
  [CMD.RESOURCE_UNREF]: 32,
  [CMD.GET_CAPSET_INFO]: 32,
  [CMD.GET_CAPSET]: 32,
  [CMD.RESOURCE_CREATE_BLOB]: 56,
  [CMD.CTX_CREATE]: 96,
  [CMD.CTX_DESTROY]: 24,
  [CMD.CTX_ATTACH_RESOURCE]: 32,
  [CMD.CTX_DETACH_RESOURCE]: 32,
  [CMD.SUBMIT_3D]: 32,
  [CMD.RESOURCE_MAP_BLOB]: 40,
  [CMD.RESOURCE_UNMAP_BLOB]: 32,
  [CMD.UPDATE_CURSOR]: 56,
  [CMD.MOVE_CURSOR]: 56,
};

export function decodeCommand(b: Uint8Array): Command {
  const hdr = decodeHdr(b);
  const need = SIZES[hdr.type];
  if (need === undefined) throw new DecodeError(RESP.ERR_UNSPEC, `unsupported command 0x${hdr.type.toString(16)}`);
  if (b.byteLength < need) throw new DecodeError(RESP.ERR_INVALID_PARAMETER, `command 0x${hdr.type.toString(16)} truncated to ${b.byteLength} of ${need} bytes`);
  const v = view(b);
  const u32 = (o: number): number => v.getUint32(o, true);
  switch (hdr.type) {
    case CMD.GET_DISPLAY_INFO: return { kind: 'get_display_info', hdr };
    case CMD.GET_CAPSET_INFO: return { kind: 'get_capset_info', hdr, index: u32(24) };
    case CMD.GET_CAPSET: return { kind: 'get_capset', hdr, capsetId: u32(24), version: u32(28) };
    case CMD.CTX_CREATE: {
      const nlen = Math.min(u32(24), 64);
      return { kind: 'ctx_create', hdr, contextInit: u32(28), name: new TextDecoder('utf-8', { fatal: false }).decode(b.subarray(32, 32 + nlen)) };
    }
    case CMD.CTX_DESTROY: return { kind: 'ctx_destroy', hdr };
    case CMD.CTX_ATTACH_RESOURCE: return { kind: 'ctx_attach_resource', hdr, resourceId: u32(24) };
    case CMD.CTX_DETACH_RESOURCE: return { kind: 'ctx_detach_resource', hdr, resourceId: u32(24) };
    case CMD.RESOURCE_UNREF: return { kind: 'resource_unref', hdr, resourceId: u32(24) };
    case CMD.RESOURCE_UNMAP_BLOB: return { kind: 'resource_unmap_blob', hdr, resourceId: u32(24) };
    case CMD.RESOURCE_CREATE_BLOB:
      return { kind: 'resource_create_blob', hdr, resourceId: u32(24), blobMem: u32(28), blobFlags: u32(32), nrEntries: u32(36), blobId: v.getBigUint64(40, true), size: v.getBigUint64(48, true) };
    case CMD.RESOURCE_MAP_BLOB: return { kind: 'resource_map_blob', hdr, resourceId: u32(24), offset: v.getBigUint64(32, true) };
    case CMD.SUBMIT_3D: {
      const size = u32(24);
      if (size > b.byteLength - 32) throw new DecodeError(RESP.ERR_INVALID_PARAMETER, `SUBMIT_3D of ${size} bytes carries only ${b.byteLength - 32}`);
      return { kind: 'submit_3d', hdr, payload: b.subarray(32, 32 + size) };
    }
    default: return { kind: 'cursor', hdr };
  }
}

/** A response header, echoing the fence (and ring index) of the request when it asked for one. */
export function encodeHdr(type: number, req: CtrlHdr | undefined, extra = 0): Uint8Array {
  const b = new Uint8Array(HDR_SIZE + extra);
  const v = view(b);
  v.setUint32(0, type, true);
  if (req && (req.flags & FLAG_FENCE) !== 0) {
    v.setUint32(4, req.flags & (FLAG_FENCE | FLAG_INFO_RING_IDX), true);
    v.setBigUint64(8, req.fenceId, true);
    v.setUint32(16, req.ctxId, true);
    if ((req.flags & FLAG_INFO_RING_IDX) !== 0) v.setUint8(20, req.ringIdx);
  }
  return b;
}

/** RESP_OK_DISPLAY_INFO: 16 pmodes, none enabled (no scanouts are driven). */
export function encodeDisplayInfo(req: CtrlHdr): Uint8Array {
  return encodeHdr(RESP.OK_DISPLAY_INFO, req, MAX_SCANOUTS * 24);
}

export function encodeCapsetInfo(req: CtrlHdr, capsetId: number, maxVersion: number, maxSize: number): Uint8Array {
  const b = encodeHdr(RESP.OK_CAPSET_INFO, req, 16);
  const v = view(b);
  v.setUint32(24, capsetId, true);
  v.setUint32(28, maxVersion, true);
  v.setUint32(32, maxSize, true);
  return b;
}

export function encodeCapset(req: CtrlHdr, data: Uint8Array): Uint8Array {
  const b = encodeHdr(RESP.OK_CAPSET, req, data.byteLength);
  b.set(data, HDR_SIZE);
  return b;
}

export function encodeMapInfo(req: CtrlHdr, mapInfo: number): Uint8Array {
  const b = encodeHdr(RESP.OK_MAP_INFO, req, 8);
  view(b).setUint32(24, mapInfo, true);
  return b;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
