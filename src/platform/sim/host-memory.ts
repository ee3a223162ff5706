/**
 * Host physical memory of the simulation: 4 KiB frames in a SharedArrayBuffer, a first-fit frame
 * allocator, and a generation counter per frame, odd while the frame is free: allocating and freeing
 * a frame both bump it. A vCPU that reaches a frame through a stale translation can tell (that is a
 * stale access): the generation moved since the translation was made, or it was odd (free) then.
 * Main thread only; vCPUs read frames and generations through MachineViews.
 */
import { HUGE_PAGES, PAGE_SIZE, type MachineViews } from './machine.js';

const WORDS_PER_PAGE = PAGE_SIZE / 4;

export class HostMemory {
  private readonly used: Uint8Array;
  private freeFrames: number;
  private cursor = 0;

  constructor(private readonly views: MachineViews) {
    this.used = new Uint8Array(views.config.hostFrames);
    this.freeFrames = views.config.hostFrames;
    views.frameGen.fill(1); // every frame starts free; no vCPU runs yet
  }

  get free(): number {
    return this.freeFrames;
  }

  /**
   * Allocates `count` zeroed frames. Runs of 512 or more come 2 MiB-aligned and contiguous when
   * possible (as a GPU allocator prefers huge pages); otherwise contiguous, otherwise scattered.
   * Returns null when memory is exhausted (nothing is allocated then).
   */
  alloc(count: number): Int32Array | null {
    if (count > this.freeFrames) return null;
    let start = count >= HUGE_PAGES ? this.findRun(count, HUGE_PAGES) : -1;
    if (start < 0) start = this.findRun(count, 1);
    const frames = new Int32Array(count);
    if (start >= 0) {
      for (let i = 0; i < count; i++) frames[i] = start + i;
    } else {
      let f = 0;
      for (let i = 0; i < count; i++) {
        while (this.used[f] !== 0) f++;
        frames[i] = f++;
      }
    }
    for (const f of frames) {
      this.used[f] = 1;
      this.zero(f);
      Atomics.add(this.views.frameGen, f, 1); // odd → even: allocated
    }
    this.freeFrames -= count;
    return frames;
  }

  /** Returns frames to the pool and bumps their generation (their old owner is gone). */
  release(frames: Int32Array): void {
    for (const f of frames) {
      if (this.used[f] === 0) throw new Error(`host memory: double free of frame ${f}`);
      this.used[f] = 0;
      Atomics.add(this.views.frameGen, f, 1); // even → odd: free
    }
    this.freeFrames += frames.length;
  }

  /** Copies between `data` and frame memory at byte `off` of `frame` (within one frame). */
  access(frame: number, off: number, data: Uint8Array, write: boolean): void {
    const bytes = new Uint8Array(this.views.buffers.host, frame * PAGE_SIZE + off, data.byteLength);
    if (write) bytes.set(data);
    else data.set(bytes);
  }

  copyFrame(from: number, to: number): void {
    const h = this.views.host32;
    h.copyWithin(to * WORDS_PER_PAGE, from * WORDS_PER_PAGE, (from + 1) * WORDS_PER_PAGE);
  }

  private zero(frame: number): void {
    this.views.host32.fill(0, frame * WORDS_PER_PAGE, (frame + 1) * WORDS_PER_PAGE);
  }

  /** First fit of `count` free frames starting at a multiple of `align`, scanning from a cursor. */
  private findRun(count: number, align: number): number {
    const n = this.used.length;
    for (let pass = 0; pass < 2; pass++) {
      let s = pass === 0 ? Math.ceil(this.cursor / align) * align : 0;
      const limit = pass === 0 ? n : this.cursor + count;
      while (s + count <= Math.min(n, limit)) {
        let i = 0;
        while (i < count && this.used[s + i] === 0) i++;
        if (i === count) {
          this.cursor = (s + count) % n;
          return s;
        }
        s = Math.ceil((s + i + 1) / align) * align;
      }
    }
    return -1;
  }
}
