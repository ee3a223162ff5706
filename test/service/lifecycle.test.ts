/** The service's signal handling in-process (exit injected), and the metrics address rules. */
import { describe, expect, it } from 'vitest';
import { EXIT_DEADLINE, startService } from '../../src/service/lifecycle.js';
import { isLoopback, parseListen } from '../../src/service/options.js';
import { histogramSamples } from '../../src/service/metrics.js';
import { logFormat } from '../../src/service/logging.js';
import { latencyHistogram, record } from '../../src/telemetry/histogram.js';

describe('service lifecycle', () => {
  it('aborts on SIGTERM and exits 1 with a log line when the shutdown outlives its deadline', async () => {
    const exits: number[] = [];
    const svc = await startService({ metrics: undefined, logFile: undefined, logFormat: 'json', shutdownTimeoutS: 0.05 }, 'silent', 3, { exit: (c) => { exits.push(c); }, stderrIsTTY: false });
    const aborted = new Promise((r) => { svc.signal.addEventListener('abort', r); });
    process.kill(process.pid, 'SIGTERM');
    await aborted;
    expect(exits).toEqual([]);
    while (exits.length === 0) await new Promise((r) => setTimeout(r, 10)); // the shutdown never finishes here
    expect(exits).toEqual([EXIT_DEADLINE]);
    await svc.finish(1);
  });

  it('disarms the deadline and its handlers when the shutdown finishes in time', async () => {
    const exits: number[] = [];
    const svc = await startService({ metrics: undefined, logFile: undefined, logFormat: 'json', shutdownTimeoutS: 0.05 }, 'silent', 3, { exit: (c) => { exits.push(c); }, stderrIsTTY: false });
    const before = process.listenerCount('SIGTERM');
    const aborted = new Promise((r) => { svc.signal.addEventListener('abort', r); });
    process.kill(process.pid, 'SIGINT');
    await aborted;
    await svc.finish(0);
    expect(process.listenerCount('SIGTERM')).toBe(before - 1);
    await new Promise((r) => setTimeout(r, 100)); // past the deadline it would have had
    expect(exits).toEqual([]);
  });
});

describe('metrics address', () => {
  it.each(['127.0.0.1:9464', '127.3.2.1:1', '[::1]:9464', 'localhost:0', '[::ffff:127.0.0.1]:80'])('accepts loopback %s', (a) => {
    expect(isLoopback(parseListen(a, false).host)).toBe(true);
  });

  it.each(['0.0.0.0:9464', '192.0.2.1:9464', '[::]:9464', '[::ffff:10.0.0.1]:9464'])('refuses non-loopback %s unless allowed', (a) => {
    expect(() => parseListen(a, false)).toThrow(/not a loopback address/);
    expect(parseListen(a, true).port).toBe(9464);
  });

  it.each(['127.0.0.1', '127.0.0.1:65536', 'example.org:80', ':9464', '127.0.0.1:-1'])('rejects malformed %s', (a) => {
    expect(() => parseListen(a, true)).toThrow(/--metrics/);
  });
});

describe('histogram samples', () => {
  it('turns ns into cumulative second buckets that end at the count', () => {
    const h = latencyHistogram();
    for (const ns of [500, 3_000, 3_000, 2e6, 30e9]) record(h, ns);
    const s = histogramSamples('x', h);
    const bucket = (le: number | string) => s.find((v) => 'metricName' in v && v.metricName === 'x_bucket' && v.labels.le === le)?.value;
    expect(bucket(1e-6)).toBe(1);
    expect(bucket(5e-6)).toBe(3);
    expect(bucket(2.5e-3)).toBe(4);
    expect(bucket(10)).toBe(4); // 30 s is past the last finite bucket
    expect(bucket('+Inf')).toBe(5);
    const sum = s.find((v) => 'metricName' in v && v.metricName === 'x_sum')?.value ?? 0;
    expect(sum).toBeCloseTo(30, 1); // HdrHistogram keeps 3 significant digits
  });
});

describe('log format', () => {
  it('is pretty only on a terminal with no log file, unless asked', () => {
    expect(logFormat({ level: 'info', file: undefined, format: undefined }, true)).toBe('pretty');
    expect(logFormat({ level: 'info', file: undefined, format: undefined }, false)).toBe('json');
    expect(logFormat({ level: 'info', file: '/var/log/x.log', format: undefined }, true)).toBe('json');
    expect(logFormat({ level: 'info', file: undefined, format: 'json' }, true)).toBe('json');
  });
});
