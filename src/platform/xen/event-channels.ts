/**
 * The EventChannels port on Xen: interdomain binds to each vCPU's vp_eport, and the event-channel
 * fd on the native waiter (epoll, edge-triggered). On a wake the JS side drains every pending port
 * in one read and hands each to the server, which unmasks it and serves the vCPU's slot.
 */
import { native, type Waiter } from '../../native/index.js';
import type { EventChannels } from '../ports.js';
import type { EvtchnLib } from './evtchn.js';

/** More than the ports one server can have pending (128 vCPUs, each masked until unmasked). */
const PENDING_BATCH = 256;

export class XenEventChannels implements EventChannels {
  private readonly bound = new Set<number>();
  private readonly batch = new Uint32Array(PENDING_BATCH);
  private waiter: Waiter | undefined;
  private closed = false;

  constructor(private readonly lib: EvtchnLib, private readonly domid: number, private readonly onClose: () => void = () => undefined) {}

  bindInterdomain(remotePort: number): number {
    const port = this.lib.bindInterdomain(this.domid, remotePort);
    this.bound.add(port);
    return port;
  }

  onPending(handler: (localPort: number) => void): void {
    if (this.waiter) throw new Error('evtchn: onPending already set');
    const waiter = new native.Waiter(() => { this.drain(handler); });
    this.waiter = waiter;
    waiter.addFd(this.lib.fd, 0);
    waiter.start();
    // Ports may have fired between the binds and the waiter's first epoll_wait: the edge is gone.
    this.drain(handler);
  }

  unmask(localPort: number): void {
    this.lib.unmask(localPort);
  }

  notify(localPort: number): void {
    this.lib.notify(localPort);
  }

  /** Stops the waiter, unbinds every port (all are tried) and closes the handle. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiter?.close();
    const failures: string[] = [];
    for (const port of this.bound) {
      try {
        this.lib.unbind(port);
      } catch (e) {
        failures.push(`unbind ${port}: ${(e as Error).message}`);
      }
    }
    this.bound.clear();
    this.lib.close();
    this.onClose();
    if (failures.length > 0) throw new Error(`evtchn close: ${failures.join('; ')}`);
  }

  /** Edge-triggered: read until a read comes back short (the ring was empty at that moment). */
  private drain(handler: (localPort: number) => void): void {
    for (;;) {
      if (this.closed) return;
      const n = this.lib.pending(this.batch);
      for (let i = 0; i < n; i++) handler(this.batch[i] ?? 0);
      if (n < this.batch.length) return;
    }
  }
}
