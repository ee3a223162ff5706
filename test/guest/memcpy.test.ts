/**
 * The memcpy pattern's instructions and its integrity detector, against an in-memory "machine"
 * whose rep MOVS and vector moves can be broken one rule at a time: a correct machine gives no
 * integrity error, each broken one must give some.
 */
import { describe, expect, it } from 'vitest';
import { COPY_OPS, MEMCPY_RAM_BASE, MemcpyWorkload, copyPage, type MemcpyCpu } from '../../src/guest/memcpy.js';
import type { WorkloadSpec } from '../../src/guest/workload.js';

const P = 4096;
const BAR = 0x1_0000_0000;
const PAGES = 8;

type Break = 'none' | 'ignore-df' | 'drop-last-element' | 'lose-page' | 'vector-half';

/** Guest RAM and a BAR of PAGES pages as plain memory; `broken` changes one rule. */
class FakeMachine implements MemcpyCpu {
  readonly ram = new Uint8Array(4 << 20);
  readonly bar = new Uint8Array((PAGES + 1) * P); // a guard page past the blob
  calls: string[] = [];
  private writes = 0;
  constructor(private readonly broken: Break = 'none') {}

  private at(gpa: number): [Uint8Array, number] {
    return gpa >= BAR ? [this.bar, gpa - BAR] : [this.ram, gpa];
  }

  repMovs(dst: number, src: number, size: 4 | 8, reps: number, df: boolean): void {
    this.calls.push(`movs ${size} ${reps} ${df ? 'df' : ''} ${(dst % P).toString(16)}`);
    const n = this.broken === 'drop-last-element' ? reps - 1 : reps;
    const back = df && this.broken !== 'ignore-df' ? (reps - 1) * size : 0;
    const [d, doff] = this.at(dst - back);
    const [s, soff] = this.at(src - back);
    d.set(s.subarray(soff, soff + n * size), doff);
    if (dst >= BAR && this.broken === 'lose-page' && ++this.writes % 7 === 0) this.bar.fill(0, doff, doff + n * size);
  }

  vectorStore(gpa: number, from: Uint8Array): void {
    const [d, off] = this.at(gpa);
    d.set(this.broken === 'vector-half' ? from.subarray(0, 8) : from, off);
  }

  vectorLoad(gpa: number, into: Uint8Array): void {
    const [s, off] = this.at(gpa);
    into.set(s.subarray(off, off + into.byteLength));
  }
}

const spec: WorkloadSpec = { pattern: 'memcpy', blobs: [{ id: 10, gpa: BAR, pages: PAGES }], seed: 5 };

function run(broken: Break, steps = 60): MemcpyWorkload['counters'] {
  const m = new FakeMachine(broken);
  const w = new MemcpyWorkload(spec, 0, 1, m.ram);
  for (let i = 0; i < steps; i++) w.step(m);
  return w.counters;
}

describe('memcpy pattern', () => {
  it('copies a page with each instruction form; backwards forms name the last element', () => {
    const m = new FakeMachine();
    for (const op of COPY_OPS) copyPage(m, m.ram, op, BAR + P, MEMCPY_RAM_BASE, true);
    expect(m.calls).toEqual(['movs 8 512  0', 'movs 4 1024  0', 'movs 8 512 df ff8', 'movs 4 1024 df ffc']);
  });

  it('a correct machine: every read-back matches, no integrity error', () => {
    const c = run('none');
    expect(c.writes).toBe(60);
    expect(c.reads).toBeGreaterThan(60);
    expect(c.integrityErrors).toBe(0);
  });

  it.each(['ignore-df', 'drop-last-element', 'lose-page', 'vector-half'] as const)('a machine that breaks %s is caught', (broken) => {
    const c = run(broken);
    expect(c.integrityErrors).toBeGreaterThan(0);
    expect(c.samples[0]).toMatch(/memcpy blob 10 page \d+ gen \d+: \d+ bytes differ/);
  });

  it('refuses a vCPU whose buffers would not fit guest RAM', () => {
    expect(() => new MemcpyWorkload(spec, 200, 256, new Uint8Array(4 << 20))).toThrow(/no room/);
  });
});
