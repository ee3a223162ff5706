/**
 * The virtio-gpu device (device id 16): control queue commands for blob resources and a DRM native
 * context, with the BAR as shared-memory region 1 (host-visible). RESOURCE_MAP_BLOB places a blob
 * in the BAR through the back-end (nothing is mapped until the guest touches it); UNMAP_BLOB and
 * UNREF revoke every mapped page before the response is written. Every refusal is the spec's ERR_*
 * response and a counter; nothing a guest sends can stop the device serving other requests.
 */
import type { Backend, HostBlob } from '../backend.js';
import type { Logger } from '../telemetry/log.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { PlacementError } from '../bar/window.js';
import { F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, bit } from '../virtio/constants.js';
import type { DeviceContext, ShmRegion, VirtioDevice } from '../virtio/device.js';
import { readChain, writeChain, type DescChain } from '../virtio/queue.js';
import { NativeContext, NativeContextError, drmCapset, type ContextBo } from './native-context.js';
import {
  BLOB_FLAG_USE_MAPPABLE,
  BLOB_FLAG_USE_SHAREABLE,
  BLOB_MEM_HOST3D,
  CAPSET_DRM,
  CONTEXT_INIT_CAPSET_ID_MASK,
  DecodeError,
  MAP_CACHE_CACHED,
  RESP,
  decodeCommand,
  decodeHdr,
  encodeCapset,
  encodeCapsetInfo,
  encodeDisplayInfo,
  encodeHdr,
  encodeMapInfo,
  type Command,
  type CtrlHdr,
} from './protocol.js';

export const VIRTIO_ID_GPU = 16;
export const F_VIRGL = 0n;
export const F_RESOURCE_BLOB = 3n;
export const F_CONTEXT_INIT = 4n;
export const SHM_HOST_VISIBLE = 1;
const CURSORQ = 1;
/** The longest command we read: SUBMIT_3D batches beyond this are refused. */
const MAX_COMMAND = 1024 * 1024 + 32;
const PAGE = 4096;

export interface GpuCounters {
  commands: number;
  errors: number;
  blobsCreated: number;
  blobsMapped: number;
  blobsUnmapped: number;
  fences: number;
  errorsByType: Record<string, number>;
  /** Commands that decoded, by kind (a fixed set: a guest cannot add keys). */
  byKind: Record<Command['kind'], number>;
}

const COMMAND_KINDS: readonly Command['kind'][] = [
  'get_display_info', 'get_capset_info', 'get_capset', 'ctx_create', 'ctx_destroy', 'ctx_attach_resource', 'ctx_detach_resource',
  'resource_unref', 'resource_unmap_blob', 'resource_create_blob', 'resource_map_blob', 'submit_3d', 'cursor',
];

interface Resource {
  readonly id: number;
  readonly ctxId: number;
  readonly flags: number;
  readonly blob: HostBlob;
  mapped: boolean;
}

class CommandError extends Error {
  constructor(readonly resp: number, message: string) {
    super(message);
  }
}

export class VirtioGpuDevice implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_GPU;
  readonly features = bit(F_VERSION_1) | bit(F_EVENT_IDX) | bit(F_INDIRECT_DESC) | bit(F_VIRGL) | bit(F_RESOURCE_BLOB) | bit(F_CONTEXT_INIT);
  readonly queueMaxSizes = [256, 16];
  readonly counters: GpuCounters = { commands: 0, errors: 0, blobsCreated: 0, blobsMapped: 0, blobsUnmapped: 0, fences: 0, errorsByType: {},
    byKind: Object.fromEntries(COMMAND_KINDS.map((k) => [k, 0])) as Record<Command['kind'], number> };
  private ctx: DeviceContext | undefined;
  private readonly resources = new Map<number, Resource>();
  private readonly contexts = new Map<number, NativeContext>();
  private readonly rlog: RateLimitedLog;
  private readonly capset = drmCapset();

  constructor(private readonly backend: Backend, private readonly bar: ShmRegion, log: Logger) {
    this.rlog = new RateLimitedLog(log);
  }

  // --- VirtioDevice --------------------------------------------------------------------------------

  /** virtio_gpu_config: events_read, events_clear, num_scanouts (1, never enabled), num_capsets (1). */
  readConfig(offset: number, size: number): number {
    const words = [0, 0, 1, 1];
    if (size !== 4 || offset % 4 !== 0) return 0;
    return words[offset / 4] ?? 0;
  }

  writeConfig(): void {
    // events_clear: no events are ever raised; everything else is read-only.
  }

  shmRegion(id: number): ShmRegion | undefined {
    return id === SHM_HOST_VISIBLE ? this.bar : undefined;
  }

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }

  notify(queue: number): void {
    const ctx = this.ctx;
    const q = ctx?.queues[queue];
    if (!ctx || !q) return;
    for (let chain = q.pop(ctx.mem); chain; chain = q.pop(ctx.mem)) {
      const resp = queue === CURSORQ ? encodeHdr(RESP.OK_NODATA, undefined) : this.execute(ctx, chain);
      this.reply(ctx, queue, chain, resp);
    }
    ctx.signalUsed(queue);
  }

  /** Device reset: every resource is unmapped (revoked) and freed, every context destroyed. */
  reset(): void {
    for (const r of [...this.resources.values()]) this.dropResource(r);
    for (const c of this.contexts.values()) c.destroy();
    this.contexts.clear();
    this.ctx = undefined;
  }

  /** Blob placements the device made, for tests and the run summary. */
  resourceCount(): number {
    return this.resources.size;
  }

  // --- commands ------------------------------------------------------------------------------------

  private execute(ctx: DeviceContext, chain: DescChain): Uint8Array {
    this.counters.commands++;
    let hdr: CtrlHdr | undefined;
    try {
      if (chain.readBytes > MAX_COMMAND) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `command of ${chain.readBytes} bytes`);
      const bytes = readChain(ctx.mem, chain, MAX_COMMAND);
      hdr = decodeHdr(bytes);
      const resp = this.run(decodeCommand(bytes));
      if (hdr.flags & 1) this.counters.fences++;
      return resp;
    } catch (e) {
      const code = e instanceof CommandError || e instanceof DecodeError ? e.resp : RESP.ERR_UNSPEC;
      if (!(e instanceof CommandError || e instanceof DecodeError)) this.rlog.warn('gpu-internal', { err: String(e) }, 'virtio-gpu: command failed unexpectedly');
      return this.error(code, hdr, e instanceof Error ? e.message : String(e));
    }
  }

  private error(code: number, hdr: CtrlHdr | undefined, why: string): Uint8Array {
    this.counters.errors++;
    const name = Object.entries(RESP).find(([, v]) => v === code)?.[0] ?? String(code);
    this.counters.errorsByType[name] = (this.counters.errorsByType[name] ?? 0) + 1;
    this.rlog.warn(`gpu-err:${name}`, { err: why, type: hdr?.type }, 'virtio-gpu: command refused');
    return encodeHdr(code, hdr);
  }

  private run(c: Command): Uint8Array {
    this.counters.byKind[c.kind]++;
    switch (c.kind) {
      case 'get_display_info': return encodeDisplayInfo(c.hdr);
      case 'get_capset_info':
        if (c.index !== 0) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `capset index ${c.index}`);
        return encodeCapsetInfo(c.hdr, CAPSET_DRM, 0, this.capset.byteLength);
      case 'get_capset':
        if (c.capsetId !== CAPSET_DRM || c.version !== 0) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `capset ${c.capsetId} v${c.version}`);
        return encodeCapset(c.hdr, this.capset);
      case 'ctx_create': return this.ctxCreate(c.hdr, c.contextInit);
      case 'ctx_destroy': return this.ctxDestroy(c.hdr);
      case 'ctx_attach_resource':
      case 'ctx_detach_resource':
        this.context(c.hdr);
        this.resource(c.resourceId);
        return encodeHdr(RESP.OK_NODATA, c.hdr);
      case 'resource_create_blob': return this.createBlob(c);
      case 'resource_map_blob': return this.mapBlob(c.hdr, c.resourceId, c.offset);
      case 'resource_unmap_blob': return this.unmapBlob(c.hdr, c.resourceId);
      case 'resource_unref':
        this.dropResource(this.resource(c.resourceId));
        return encodeHdr(RESP.OK_NODATA, c.hdr);
      case 'submit_3d': {
        const nc = this.context(c.hdr);
        // A refused packet is reported through the context's async_error, as vdrm specifies.
        nc.submit(c.payload);
        return encodeHdr(RESP.OK_NODATA, c.hdr);
      }
      case 'cursor': return encodeHdr(RESP.OK_NODATA, c.hdr);
    }
  }

  private ctxCreate(hdr: CtrlHdr, contextInit: number): Uint8Array {
    if (hdr.ctxId === 0 || this.contexts.has(hdr.ctxId)) throw new CommandError(RESP.ERR_INVALID_CONTEXT_ID, `context ${hdr.ctxId} exists or is 0`);
    if ((contextInit & ~CONTEXT_INIT_CAPSET_ID_MASK) !== 0 || (contextInit & CONTEXT_INIT_CAPSET_ID_MASK) !== CAPSET_DRM) {
      throw new CommandError(RESP.ERR_INVALID_PARAMETER, `context_init 0x${contextInit.toString(16)}: only the DRM capset (6) is served`);
    }
    const resourceBo = (resId: number): ContextBo | undefined => {
      const r = this.resources.get(resId);
      return r ? { handle: r.blob.bo, size: r.blob.size } : undefined;
    };
    this.contexts.set(hdr.ctxId, new NativeContext(hdr.ctxId, this.backend.gpu, resourceBo, (why) => {
      this.rlog.warn('vdrm', { ctx: hdr.ctxId, why }, 'native context: packet refused');
    }));
    return encodeHdr(RESP.OK_NODATA, hdr);
  }

  private ctxDestroy(hdr: CtrlHdr): Uint8Array {
    this.context(hdr).destroy();
    this.contexts.delete(hdr.ctxId);
    return encodeHdr(RESP.OK_NODATA, hdr);
  }

  private createBlob(c: Extract<Command, { kind: 'resource_create_blob' }>): Uint8Array {
    const nc = this.context(c.hdr);
    if (c.resourceId === 0 || this.resources.has(c.resourceId)) throw new CommandError(RESP.ERR_INVALID_RESOURCE_ID, `resource ${c.resourceId} exists or is 0`);
    if (c.blobMem !== BLOB_MEM_HOST3D) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `blob_mem ${c.blobMem}: only HOST3D is served`);
    if ((c.blobFlags & ~(BLOB_FLAG_USE_MAPPABLE | BLOB_FLAG_USE_SHAREABLE)) !== 0) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `blob_flags 0x${c.blobFlags.toString(16)}`);
    if (c.nrEntries !== 0) throw new CommandError(RESP.ERR_INVALID_PARAMETER, 'HOST3D blobs have no guest pages');
    if (c.size === 0n || c.size % BigInt(PAGE) !== 0n || c.size > 2n ** 32n) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `size ${c.size}`);
    if (c.blobId > 0xffff_ffffn) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `blob_id ${c.blobId}`);
    const size = Number(c.size);
    const bo = this.blobBo(nc, Number(c.blobId), size, c.blobFlags);
    let blob: HostBlob;
    try {
      blob = this.backend.adoptBo(bo.handle, bo.size);
    } catch (e) {
      this.backend.gpu.destroyBo(bo.handle);
      throw new CommandError(RESP.ERR_OUT_OF_MEMORY, `cannot map the blob: ${String(e)}`);
    }
    this.resources.set(c.resourceId, { id: c.resourceId, ctxId: c.hdr.ctxId, flags: c.blobFlags, blob, mapped: false });
    this.counters.blobsCreated++;
    return encodeHdr(RESP.OK_NODATA, c.hdr);
  }

  /** blob_id 0 is the context's shmem page; any other names an object made by GEM_NEW. */
  private blobBo(nc: NativeContext, blobId: number, size: number, flags: number): ContextBo {
    if (blobId === 0) {
      if (flags !== BLOB_FLAG_USE_MAPPABLE) throw new CommandError(RESP.ERR_INVALID_PARAMETER, 'the shmem blob must be exactly MAPPABLE');
      try {
        return nc.createShmem(size);
      } catch (e) {
        throw new CommandError(RESP.ERR_INVALID_PARAMETER, e instanceof NativeContextError ? e.message : String(e));
      }
    }
    const bo = nc.blobTable.get(blobId);
    if (!bo) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `no object with blob_id ${blobId} in context ${nc.id}`);
    if (bo.size !== size) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `blob_id ${blobId} is ${bo.size} bytes, not ${size}`);
    return nc.takeBlob(blobId) ?? bo;
  }

  private mapBlob(hdr: CtrlHdr, resourceId: number, offset: bigint): Uint8Array {
    const r = this.resource(resourceId);
    if ((r.flags & BLOB_FLAG_USE_MAPPABLE) === 0) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `resource ${resourceId} is not MAPPABLE`);
    if (r.mapped) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `resource ${resourceId} is already mapped`);
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new CommandError(RESP.ERR_INVALID_PARAMETER, 'offset beyond the BAR');
    try {
      this.backend.mapBlob(r.blob.id, Number(offset));
    } catch (e) {
      if (e instanceof PlacementError) throw new CommandError(RESP.ERR_INVALID_PARAMETER, e.message);
      throw e;
    }
    r.mapped = true;
    this.counters.blobsMapped++;
    return encodeMapInfo(hdr, MAP_CACHE_CACHED);
  }

  private unmapBlob(hdr: CtrlHdr, resourceId: number): Uint8Array {
    const r = this.resource(resourceId);
    if (!r.mapped) throw new CommandError(RESP.ERR_INVALID_PARAMETER, `resource ${resourceId} is not mapped`);
    this.backend.unmapBlob(r.blob.id); // every mapped page is revoked before this returns
    r.mapped = false;
    this.counters.blobsUnmapped++;
    return encodeHdr(RESP.OK_NODATA, hdr);
  }

  private dropResource(r: Resource): void {
    if (r.mapped) {
      this.backend.unmapBlob(r.blob.id);
      this.counters.blobsUnmapped++;
    }
    this.backend.destroyBlob(r.blob.id);
    this.resources.delete(r.id);
  }

  private context(hdr: CtrlHdr): NativeContext {
    const nc = this.contexts.get(hdr.ctxId);
    if (!nc) throw new CommandError(RESP.ERR_INVALID_CONTEXT_ID, `no context ${hdr.ctxId}`);
    return nc;
  }

  private resource(id: number): Resource {
    const r = this.resources.get(id);
    if (!r) throw new CommandError(RESP.ERR_INVALID_RESOURCE_ID, `no resource ${id}`);
    return r;
  }

  private reply(ctx: DeviceContext, queue: number, chain: DescChain, resp: Uint8Array): void {
    const q = ctx.queues[queue];
    if (!q) return;
    let written = 0;
    if (chain.writeBytes >= resp.byteLength) written = writeChain(ctx.mem, chain, resp);
    else this.error(RESP.ERR_UNSPEC, undefined, `response of ${resp.byteLength} bytes does not fit ${chain.writeBytes}`);
    q.pushUsed(ctx.mem, chain.head, written);
  }
}
