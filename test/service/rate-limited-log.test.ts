/** Guest-triggered warnings: a token bucket per kind, and the count of what it dropped, logged later. */
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RateLimitedLog } from '../../src/util/rate-limited-log.js';

function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
  return { log: pino({ level: 'warn' }, sink), lines };
}

const flushStream = () => new Promise((r) => { setImmediate(r); });

describe('RateLimitedLog', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('lets a burst through per kind, drops the rest, and logs the dropped count with the next line', async () => {
    let now = 0;
    const { log, lines } = capture();
    const r = new RateLimitedLog(log, { burst: 3, perSecond: 2 }, () => now);
    for (let i = 0; i < 1000; i++) r.warn('bad:size', { i }, 'bad ioreq refused');
    r.warn('unclaimed', {}, 'ioreq outside every region'); // another kind has its own bucket
    await flushStream();
    expect(lines.filter((l) => l.kind === 'bad:size')).toHaveLength(3);
    expect(lines.filter((l) => l.kind === 'unclaimed')).toHaveLength(1);
    now += 500; // one token back at 2 per second
    r.warn('bad:size', { i: 1000 }, 'bad ioreq refused');
    await flushStream();
    expect(lines.at(-1)).toMatchObject({ kind: 'bad:size', i: 1000, suppressed: 997 });
    r.warn('bad:size', { i: 1001 }, 'bad ioreq refused');
    await flushStream();
    expect(lines).toHaveLength(5); // no token left: dropped again
  });

  it('logs the dropped count on its own when the kind goes quiet', async () => {
    vi.useFakeTimers();
    const { log, lines } = capture();
    const r = new RateLimitedLog(log, { burst: 1, perSecond: 1 }, () => 0);
    for (let i = 0; i < 50; i++) r.warn('gpu-err:ERR_INVALID_RESOURCE_ID', {}, 'virtio-gpu: command refused');
    vi.advanceTimersByTime(1000);
    vi.useRealTimers();
    await flushStream();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ kind: 'gpu-err:ERR_INVALID_RESOURCE_ID', suppressed: 49, msg: 'warnings suppressed (rate limit)' });
  });
});
