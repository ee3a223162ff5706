/**
 * Host memory pressure for the simulation: evicts BOs at a target rate (whole BOs mostly, page
 * ranges sometimes), the way TTM moves buffers between VRAM and system memory. Every eviction goes
 * through the GPU port, so it reaches the back-end only as MMU-notifier invalidations.
 */
import { unitOf, xorshift32 } from '../../util/xorshift.js';
/** What host pressure needs from a GPU: move pages of a BO, and know its size. */
export interface EvictTarget {
  evict(handle: number, firstPage?: number, pages?: number): Promise<boolean>;
  pagesOf(handle: number): number;
}

export class HostPressure {
  evictions = 0;
  skipped = 0;
  private timer: NodeJS.Timeout | undefined;
  private rng: number;
  private due = 0;
  private last = 0;

  constructor(
    private readonly gpu: EvictTarget,
    private readonly handles: () => number[],
    private readonly rateHz: number,
    seed = 1,
    private readonly partialFraction = 0.3,
  ) {
    this.rng = seed >>> 0 || 1;
  }

  start(): void {
    if (this.rateHz <= 0) return;
    this.last = performance.now();
    // A timer tick at most every millisecond; evictions due since the last tick are all issued.
    this.timer = setInterval(() => { this.tick(); }, Math.max(1, Math.min(50, 1000 / this.rateHz)));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = performance.now();
    this.due += ((now - this.last) * this.rateHz) / 1000;
    this.last = now;
    const hs = this.handles();
    while (this.due >= 1 && hs.length > 0) {
      this.due -= 1;
      this.evictOne(hs);
    }
  }

  private evictOne(hs: number[]): void {
    const h = hs[Math.floor(this.random() * hs.length)] ?? 0;
    const pages = this.gpu.pagesOf(h);
    let first = 0;
    let n = pages;
    if (this.random() < this.partialFraction && pages > 1) {
      first = Math.floor(this.random() * pages);
      n = 1 + Math.floor(this.random() * Math.min(64, pages - first));
    }
    this.gpu.evict(h, first, n).then(
      (moved) => {
        if (moved) this.evictions++;
        else this.skipped++;
      },
      () => { this.skipped++; },
    );
  }

  private random(): number {
    this.rng = xorshift32(this.rng);
    return unitOf(this.rng);
  }
}
