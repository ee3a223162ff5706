/**
 * Prometheus metrics (prom-client registry and text format), collected on scrape: each metric reads
 * the back-end's own plain counters and HdrHistograms when /metrics is fetched, so the fault path
 * pays nothing for them (no prom-client call, no label lookup, no allocation per fault). The label
 * sets are fixed (outcomes, kinds) or bounded by the back-end's own tables, never by guest values.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, type MetricValue, type MetricValueWithName } from 'prom-client';
import type { Backend } from '../backend.js';
import type { Histogram } from '../telemetry/histogram.js';
import type { MetricsListen } from './options.js';

type Labels = Record<string, string | number>;
type Sample = MetricValue<string> | MetricValueWithName<string>;
type MetricType = 'counter' | 'gauge' | 'histogram';

/** What Registry.metrics() reads from a metric's get(). */
interface CollectedValues {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly aggregator: 'sum';
  readonly values: Sample[];
}

/** What the metrics read: the back-end serving now (undefined before it starts or after it stops). */
export type BackendSource = () => Backend | undefined;

/**
 * A metric whose samples are computed at scrape time. prom-client's Registry only needs `name`,
 * `help`, `type`, `aggregator` and `get()`; `reset()` is there for Registry.resetMetrics().
 */
class CollectedMetric {
  readonly aggregator = 'sum' as const;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    private readonly samples: (b: Backend) => Sample[],
    private readonly source: BackendSource,
  ) {}

  get(): Promise<CollectedValues> {
    const b = this.source();
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: b ? this.samples(b) : [] });
  }

  reset(): void {
    // The values belong to the back-end; there is nothing of ours to reset.
  }
}

const one = (value: number, labels: Labels = {}): Sample => ({ value, labels });

/** Seconds-valued bucket bounds from 1 us to 10 s (fault service is microseconds, revokes may be ms). */
export const LATENCY_BUCKETS_S = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** An HdrHistogram of ns as a Prometheus histogram in seconds: cumulative buckets, _sum, _count. */
export function histogramSamples(name: string, h: Histogram): Sample[] {
  const counts = new Array<number>(LATENCY_BUCKETS_S.length).fill(0);
  // A JsHistogram (telemetry/histogram.ts builds no WebAssembly ones) iterates its recorded values.
  const it = (h as unknown as { recordedValuesIterator: { reset(): void; hasNext(): boolean; next(): { valueIteratedTo: number; countAtValueIteratedTo: number } } }).recordedValuesIterator;
  it.reset();
  while (it.hasNext()) {
    const v = it.next();
    const s = v.valueIteratedTo / 1e9;
    const i = LATENCY_BUCKETS_S.findIndex((le) => s <= le);
    if (i >= 0) counts[i] = (counts[i] ?? 0) + v.countAtValueIteratedTo;
  }
  const out: Sample[] = [];
  let cumulative = 0;
  LATENCY_BUCKETS_S.forEach((le, i) => {
    cumulative += counts[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, value: cumulative, labels: { le } });
  });
  out.push({ metricName: `${name}_bucket`, value: h.totalCount, labels: { le: '+Inf' } });
  out.push({ metricName: `${name}_sum`, value: (h.totalCount * h.mean) / 1e9, labels: {} });
  out.push({ metricName: `${name}_count`, value: h.totalCount, labels: {} });
  return out;
}

/** ioreqs taken and not yet answered (the server counts every answer, refusals included). */
export function ioreqsInFlight(b: Backend): number {
  const c = b.server.counters;
  return c.requests - c.answeredReady - c.answeredRetry - c.slotLost;
}

function badInputs(b: Backend): Sample[] {
  const out: Sample[] = Object.entries(b.server.counters.badByReason).map(([k, n]) => one(n, { kind: `ioreq_${k}` }));
  out.push(one(b.server.counters.unclaimed, { kind: 'ioreq_unclaimed' }));
  out.push(one(b.server.counters.handlerErrors, { kind: 'ioreq_handler_error' }));
  out.push(one(b.bar.counters.rejected, { kind: 'bar_rejected' }));
  out.push(one(b.bar.counters.holes, { kind: 'bar_hole' }));
  const t = b.transport?.counters;
  if (t) out.push(one(t.badAccesses, { kind: 'virtio_mmio_bad_access' }), one(t.unknownRegisters, { kind: 'virtio_mmio_unknown_register' }));
  return out;
}

function virtioResponses(b: Backend): Sample[] {
  const c = b.gpuDevice?.counters;
  if (!c) return [];
  return [one(c.commands - c.errors, { response: 'OK' }), ...Object.entries(c.errorsByType).map(([k, n]) => one(n, { response: k }))];
}

/** The registry of every xvgpu metric; `domid` labels every series. */
export function createMetricsRegistry(source: BackendSource, domid: number): Registry {
  const reg = new Registry();
  reg.setDefaultLabels({ domid });
  const add = (name: string, help: string, type: MetricType, samples: (b: Backend) => Sample[]): void => {
    reg.registerMetric(new CollectedMetric(name, help, type, samples, source) as never);
  };
  const s = (b: Backend) => b.server.counters;
  const bar = (b: Backend) => b.bar.counters;
  add('xvgpu_ioreqs_total', 'ioreqs taken from the ioreq page, by type', 'counter', (b) => [
    one(s(b).requests - s(b).invalidates - s(b).timeoffsets, { type: 'copy' }),
    one(s(b).invalidates, { type: 'invalidate' }),
    one(s(b).timeoffsets, { type: 'timeoffset' }),
  ]);
  add('xvgpu_ioreq_outcomes_total', 'ioreqs by how they ended: answered ready or retry, refused (bad), unclaimed, handler error, slot lost', 'counter', (b) => [
    one(s(b).answeredReady, { outcome: 'ready' }),
    one(s(b).answeredRetry, { outcome: 'retry' }),
    one(s(b).bad, { outcome: 'refused' }),
    one(s(b).unclaimed, { outcome: 'unclaimed' }),
    one(s(b).handlerErrors, { outcome: 'handler_error' }),
    one(s(b).slotLost, { outcome: 'slot_lost' }),
  ]);
  add('xvgpu_ioreq_notifications_spurious_total', 'event-channel notifications with no ioreq posted', 'counter', (b) => [one(s(b).spurious)]);
  add('xvgpu_ioreqs_in_flight', 'ioreqs taken and not yet answered', 'gauge', (b) => [one(ioreqsInFlight(b))]);
  add('xvgpu_faults_total', 'BAR faults served, by answer: retry, emulate (forward_progress: emulations forced after repeated retries)', 'counter', (b) => [
    one(bar(b).retries, { answer: 'retry' }),
    one(bar(b).emulated - bar(b).forwardProgress, { answer: 'emulate' }),
    one(bar(b).forwardProgress, { answer: 'forward_progress' }),
  ]);
  add('xvgpu_string_copies_total', 'string ioreqs (rep movs/stos) emulated, and copies redone after a race', 'counter', (b) => [one(bar(b).strings, { kind: 'copy' }), one(bar(b).stringRedos, { kind: 'redo' })]);
  add('xvgpu_map_runs_total', 'map calls that installed pages into the guest p2m', 'counter', (b) => [one(bar(b).mapRuns)]);
  add('xvgpu_mapped_pages_total', 'pages installed into the guest p2m', 'counter', (b) => [one(bar(b).installedPages)]);
  add('xvgpu_huge_maps_total', '2 MiB superpages installed', 'counter', (b) => [one(bar(b).hugeMaps)]);
  add('xvgpu_map_collisions_total', 'map requests that found the entry already there', 'counter', (b) => [one(bar(b).collisions)]);
  add('xvgpu_revokes_total', 'revocations (runs of p2m entries removed after a host invalidation)', 'counter', (b) => [one(bar(b).revokes)]);
  add('xvgpu_revoked_pages_total', 'p2m entries removed by revocations', 'counter', (b) => [one(bar(b).revokedPages)]);
  add('xvgpu_invalidations_total', 'host invalidations (MMU notifier events) the helper reported', 'counter', (b) => [one(bar(b).invalidations)]);
  add('xvgpu_mapped_pages', 'BAR pages mapped in the guest p2m now', 'gauge', (b) => [one(bar(b).residentPages)]);
  add('xvgpu_helper_events_lost_total', 'helper events its ring dropped (residency resynced)', 'counter', (b) => [one(bar(b).eventsLost)]);
  add('xvgpu_helper_fatal_total', 'fatal helper events (a p2m removal failed, the binding failed closed)', 'counter', (b) => [one(bar(b).helperFatal)]);
  add('xvgpu_bad_guest_inputs_total', 'guest inputs refused or ignored, by kind', 'counter', badInputs);
  add('xvgpu_virtio_gpu_commands_total', 'virtio-gpu control commands that decoded, by type', 'counter', (b) =>
    Object.entries(b.gpuDevice?.counters.byKind ?? {}).map(([k, n]) => one(n, { type: k })));
  add('xvgpu_virtio_gpu_responses_total', 'virtio-gpu responses, by response type (OK: any success)', 'counter', virtioResponses);
  add('xvgpu_fault_service_seconds', 'BAR ioreqs (faults): slot taken to answer published', 'histogram', (b) => histogramSamples('xvgpu_fault_service_seconds', b.bar.serviceNs));
  add('xvgpu_revoke_seconds', 'revocations: invalidation start to p2m entries gone and flush acknowledged', 'histogram', (b) => histogramSamples('xvgpu_revoke_seconds', b.bar.revokeNs));
  add('xvgpu_ioreq_service_seconds', 'every ioreq: slot taken to answer published', 'histogram', (b) => histogramSamples('xvgpu_ioreq_service_seconds', b.server.serviceNs));
  return reg;
}

/** GET /metrics on `listen`; anything else is 404. Resolves once listening. */
export async function serveMetrics(reg: Registry, listen: MetricsListen): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    reg.metrics().then(
      (text) => { res.writeHead(200, { 'content-type': reg.contentType }).end(text); },
      (e: unknown) => { res.writeHead(500).end(String(e)); },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => { server.off('error', reject); resolve(); });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); }),
  };
}
