/** One log line per key at most every `intervalMs`, with the count of what was suppressed (D11). */
import type { Logger } from 'pino';

export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly log: Logger, private readonly intervalMs = 1000) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const s = this.last.get(key);
    if (s && now - s.at < this.intervalMs) {
      s.suppressed++;
      return;
    }
    this.log.warn({ ...fields, ...(s && s.suppressed > 0 ? { suppressed: s.suppressed } : {}) }, msg);
    this.last.set(key, { at: now, suppressed: 0 });
  }
}
