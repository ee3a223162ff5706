/**
 * Host pressure on the linux platform runs syscalls (madvise, fallocate, the helper's EVICT) from a
 * timer: a failure there must be counted and reported in the run's summary, never thrown out of
 * the timer as an uncaught exception.
 */
export class PressureErrors {
  count = 0;
  /** The first failure's message (later ones are usually the same). */
  first: string | undefined;

  /** Runs one eviction: its result as a promise, a throw as a counted rejection. */
  settle(evict: () => boolean): Promise<boolean> {
    try {
      return Promise.resolve(evict());
    } catch (e) {
      this.count++;
      this.first ??= e instanceof Error ? e.message : String(e);
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
