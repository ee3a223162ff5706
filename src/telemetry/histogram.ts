/** Latency histograms (HdrHistogram) in nanoseconds, and the summaries every report prints. */
import hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** 1 ns .. 100 s at 3 significant digits. */
export function latencyHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 100e9, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Records a non-negative ns value, clamping into the trackable range rather than throwing. */
export function record(h: Histogram, ns: number): void {
  h.recordValue(Math.min(Math.max(1, Math.round(ns)), 100e9));
}

/**
 * The percentiles of what was recorded, or null when nothing was: an empty histogram has no
 * latency, and zeros would read as a measurement. Callers say why it is null (see NullReasons).
 */
export function summarize(h: Histogram): LatencySummary | null {
  if (h.totalCount === 0) return null;
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
  };
}

/** Why each null figure of a report is null, keyed by the figure's field name. */
export type NullReasons = Record<string, string>;

/** Compressed form for crossing a thread boundary. */
export function encode(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function addEncoded(into: Histogram, encoded: string): void {
  into.add(hdr.decodeFromCompressedBase64(encoded, 32, false));
}

export function formatNs(ns: number): string {
  if (ns < 1e3) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} us`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}
