/** The contract between the virtio-mmio transport and a device (Firecracker's VirtioDevice shape). */
import type { GuestMemoryAccess } from './guest-memory.js';
import type { SplitQueue } from './queue.js';

export interface ShmRegion {
  readonly base: number;
  readonly length: number;
}

/** What an activated device may use: its queues, guest memory, and a way to signal used buffers. */
export interface DeviceContext {
  readonly queues: readonly SplitQueue[];
  readonly mem: GuestMemoryAccess;
  /** Raises the used-buffer interrupt if the driver wants one for queue `q`. */
  signalUsed(q: number): void;
  /** The device found the driver's data structures corrupt: DEVICE_NEEDS_RESET. */
  fail(reason: string): void;
}

export interface VirtioDevice {
  readonly deviceId: number;
  /** Offered features; the transport never lets the driver acknowledge more (avail & acked = acked). */
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  /** Little-endian device config space; out-of-range reads return 0, writes are ignored. */
  readConfig(offset: number, size: number): number;
  writeConfig(offset: number, size: number, value: number): void;
  shmRegion(id: number): ShmRegion | undefined;
  /** DRIVER_OK: queues are set up, `acked` are the negotiated features. */
  activate(ctx: DeviceContext, acked: bigint): void;
  notify(queue: number): void;
  /** Status 0 (or activation failure): drop every resource the driver created. */
  reset(): void;
}
