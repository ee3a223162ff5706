/**
 * The transport floors: the cost of each wake path with no work attached, measured on this machine
 * in the same process that measures xvgpu. These are context (`xvgpu bench floor`); the floor a
 * fault is quoted against is the null region below, measured inside each run.
 *
 *  - native↔native round trips by futex, eventfd, epoll+eventfd (C++ threads);
 *  - waiter path: native thread → ThreadSafeFunction → JS → futex wake back (what the server's
 *    native waiter costs);
 *  - JS main ↔ worker with Atomics.wait / Atomics.notify (V8's own waiter lists).
 *
 * Each is measured with both threads on one CPU, on two CPUs, and unpinned, because on these VMs a
 * wake that crosses CPUs costs an order of magnitude more than one that does not.
 */
import { Worker } from 'node:worker_threads';
import type { IoRegion } from '../ioreq/server.js';
import { native } from '../native/index.js';
import { latencyHistogram, record, summarize, type LatencySummary } from '../telemetry/histogram.js';

export type Placement = 'same-cpu' | 'cross-cpu' | 'unpinned';

export interface FloorCase extends LatencySummary {
  readonly name: string;
  readonly placement: Placement;
}

export interface FloorReport {
  readonly rounds: number;
  readonly cpus: number[];
  readonly cases: FloorCase[];
}

function summarizeNs(samples: ArrayLike<number>): LatencySummary {
  const h = latencyHistogram();
  for (let i = 0; i < samples.length; i++) record(h, samples[i] ?? 0);
  const s = summarize(h);
  if (!s) throw new Error('transport floor: a case returned no samples');
  return s;
}

function summarizeSamples(name: string, placement: Placement, samples: ArrayLike<number>): FloorCase {
  return { name, placement, ...summarizeNs(samples) };
}

function placements(cpus: number[]): { placement: Placement; a: number; b: number }[] {
  const [c0, c1] = cpus;
  const out: { placement: Placement; a: number; b: number }[] = [];
  if (c0 !== undefined) out.push({ placement: 'same-cpu', a: c0, b: c0 });
  if (c0 !== undefined && c1 !== undefined) out.push({ placement: 'cross-cpu', a: c0, b: c1 });
  out.push({ placement: 'unpinned', a: -1, b: -1 });
  return out;
}

/** Runs `fn` with the JS thread pinned to `cpu` (-1: unpinned), restoring the affinity after. */
async function withJsThreadOn<T>(cpu: number, fn: () => Promise<T>): Promise<T> {
  const saved = native.getAffinity();
  if (cpu >= 0) native.pinThread([cpu]);
  try {
    return await fn();
  } finally {
    native.pinThread(saved);
  }
}

const ATOMICS_WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const native = require(workerData.addon);
if (workerData.cpu >= 0) native.pinThread([workerData.cpu]);
const w = workerData.words;
parentPort.postMessage('ready');
for (let i = 0; i < workerData.total; i++) {
  while (Atomics.load(w, 0) === 0) Atomics.wait(w, 0, 0);
  Atomics.store(w, 0, 0);
  Atomics.store(w, 1, 1);
  Atomics.notify(w, 1);
}`;

async function atomicsRoundTrips(rounds: number, jsCpu: number, workerCpu: number, addon: string): Promise<Float64Array> {
  const words = new Int32Array(new SharedArrayBuffer(8));
  const warm = 500;
  const worker = new Worker(ATOMICS_WORKER, { eval: true, workerData: { words, total: rounds + warm, cpu: workerCpu, addon } });
  await new Promise((r) => worker.once('message', r));
  const out = new Float64Array(rounds);
  await withJsThreadOn(jsCpu, () => {
    for (let i = 0; i < rounds + warm; i++) {
      const t0 = performance.now();
      Atomics.store(words, 0, 1);
      Atomics.notify(words, 0);
      // Re-check after every wake: a notify the other side sent late for the previous round can
      // wake this wait while the word is still 0 (then this side ran a round ahead and the last
      // round waited forever; seen under load).
      while (Atomics.load(words, 1) === 0) Atomics.wait(words, 1, 0);
      Atomics.store(words, 1, 0);
      if (i >= warm) out[i - warm] = (performance.now() - t0) * 1e6;
    }
    return Promise.resolve();
  });
  await new Promise((r) => worker.once('exit', r));
  return out;
}

export async function measureFloor(rounds: number, addonPath: string, onCase?: (c: FloorCase) => void): Promise<FloorReport> {
  const cpus = native.getAffinity();
  const cases: FloorCase[] = [];
  const add = (c: FloorCase): void => {
    cases.push(c);
    onCase?.(c);
  };
  for (const { placement, a, b } of placements(cpus)) {
    for (const kind of ['futex', 'eventfd', 'epoll'] as const) {
      add(summarizeSamples(`native ${kind}`, placement, native.floorThreads(kind, rounds, a, b)));
    }
    const tsfn = await withJsThreadOn(a, () => native.floorTsfn(rounds, b, () => undefined));
    add(summarizeSamples('waiter tsfn→js→futex', placement, tsfn));
    add(summarizeSamples('js atomics main↔worker', placement, await atomicsRoundTrips(rounds, a, b, addonPath)));
  }
  return { rounds, cpus, cases };
}

/** Where the simulated guest finds the null region: outside its RAM, the BAR and the virtio-mmio window. */
export const FLOOR_PROBE_GPA = 0x3000_0000;

/**
 * The floor of the fault path, measured in every run (session/simulation.ts): a one-page ioreq
 * region whose handler answers at once (reads 0, writes dropped), so a load from it takes the same
 * exit, event channel (doorbell futex → native waiter → TSFN → JS), server dispatch, answer and
 * vCPU wake as a BAR fault, with no work. Measured on the same threads, placed as for the faults.
 */
export function nullRegion(start: number): IoRegion {
  return { name: 'floor-probe', start, end: start + 4096, handle: () => undefined };
}

export function formatFloor(r: FloorReport): string {
  const us = (ns: number): string => (ns / 1000).toFixed(2).padStart(9);
  const lines = [
    `transport floor: ${r.rounds} round trips per case, CPUs ${r.cpus.join(',')}`,
    `${'path'.padEnd(26)}${'placement'.padEnd(11)}${'p50 us'.padStart(9)}${'p90 us'.padStart(9)}${'p99 us'.padStart(9)}${'max us'.padStart(9)}`,
  ];
  for (const c of r.cases) lines.push(`${c.name.padEnd(26)}${c.placement.padEnd(11)}${us(c.p50)}${us(c.p90)}${us(c.p99)}${us(c.max)}`);
  return lines.join('\n');
}
