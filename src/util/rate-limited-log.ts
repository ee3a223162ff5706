/**
 * Warnings a guest can trigger, rate-limited per kind (D11) so a hostile guest cannot flood the log:
 * a token bucket per key (`burst` lines at once, refilled at `perSecond`). What the bucket drops is
 * counted, and the count is logged later: with the key's next line, or by a one-shot timer one
 * refill period after the first drop, whichever comes first.
 */
import type { Logger } from 'pino';

export interface RateLimit {
  /** Lines a key may log at once. */
  readonly burst: number;
  /** Tokens a key regains per second. */
  readonly perSecond: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { burst: 5, perSecond: 1 };

interface Bucket {
  tokens: number;
  at: number;
  suppressed: number;
  /** The timer that reports `suppressed` if no line of this key does first. */
  timer: NodeJS.Timeout | undefined;
}

export class RateLimitedLog {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly log: Logger, private readonly limit: RateLimit = DEFAULT_RATE_LIMIT, private readonly now: () => number = Date.now) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const b = this.refill(key);
    if (b.tokens < 1) {
      b.suppressed++;
      b.timer ??= this.reportLater(key, b);
      return;
    }
    b.tokens -= 1;
    if (b.suppressed > 0) {
      this.log.warn({ ...fields, kind: key, suppressed: b.suppressed }, msg);
      this.clearSuppressed(b);
    } else this.log.warn({ ...fields, kind: key }, msg);
  }

  private refill(key: string): Bucket {
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.limit.burst, at: now, suppressed: 0, timer: undefined };
      this.buckets.set(key, b);
      return b;
    }
    b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond);
    b.at = now;
    return b;
  }

  private reportLater(key: string, b: Bucket): NodeJS.Timeout {
    const t = setTimeout(() => { b.timer = undefined; if (b.suppressed > 0) this.reportSuppressed(key, b); }, 1000 / this.limit.perSecond);
    t.unref(); // never keeps the process alive
    return t;
  }

  private reportSuppressed(key: string, b: Bucket): void {
    this.log.warn({ kind: key, suppressed: b.suppressed }, 'warnings suppressed (rate limit)');
    this.clearSuppressed(b);
  }

  private clearSuppressed(b: Bucket): void {
    b.suppressed = 0;
    if (b.timer) clearTimeout(b.timer);
    b.timer = undefined;
  }
}
