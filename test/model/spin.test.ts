/**
 * The fault / revoke protocol model (model/fault-revoke.pml), checked by spin: every configuration
 * of the protocol as implemented must pass exhaustively, and every documented mutation must make
 * spin report a counterexample of the property it breaks (model/README.md). Needs `spin` and `gcc`
 * (Debian packages spin and build-essential); fails, never skips, when either is missing.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePan, type PanResult } from './pan-output.js';

const MODEL = resolve(import.meta.dirname, '../../model/fault-revoke.pml');
/** Depth limit of pan's DFS stack: a search that reaches it would be incomplete (checked below). */
const MAX_DEPTH = 200_000;
const SLOW = 300_000;

type Kind = 'safety' | 'liveness';

const dirs: string[] = [];

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (install the Debian packages spin and build-essential)`);
  return `${r.stdout}${r.stderr}`;
}

/** Generates, compiles and runs the verifier for one configuration; returns pan's figures. */
function check(kind: Kind, defines: string[], optimize = true): PanResult {
  const dir = mkdtempSync(join(tmpdir(), 'xvgpu-spin-'));
  dirs.push(dir);
  const safety = kind === 'safety';
  // pan writes its trail next to the model's name in the working directory: work on a copy.
  copyFileSync(MODEL, join(dir, 'model.pml'));
  const gen = run('spin', ['-a', ...(safety ? ['-DNOCLAIM'] : []), ...defines, 'model.pml'], dir);
  if (/error/i.test(gen)) throw new Error(`spin -a failed:\n${gen}`);
  const cc = spawnSync('gcc', [optimize ? '-O2' : '-O0', '-w', ...(safety ? ['-DNOCLAIM', '-DSAFETY'] : ['-DNFAIR=3']), '-o', 'pan', 'pan.c'], { cwd: dir, encoding: 'utf8' });
  if (cc.error || cc.status !== 0) throw new Error(`gcc pan.c failed: ${cc.error?.message ?? cc.stderr}`);
  const out = run('./pan', [`-m${MAX_DEPTH}`, ...(safety ? [] : ['-a', '-f', '-N', 'live'])], dir);
  const res = parsePan(out);
  if (res.errors > 0) res.trail = run('spin', ['-t', ...defines, '-p', '-g', 'model.pml'], dir);
  console.log(`spin ${kind} ${defines.join(' ')}: errors ${res.errors}, ${res.stored} states stored, depth ${res.depth}, state vector ${res.stateVector} B, ${res.memoryMiB} MiB, ${res.elapsedS} s`);
  return res;
}

function expectExhaustivePass(r: PanResult): void {
  expect(r.errors, r.output).toBe(0);
  expect(r.complete, 'the search must cover the whole state space').toBe(true);
  expect(r.depth).toBeLessThan(MAX_DEPTH);
  // A model that deadlocked or lost its processes early would store only a few states.
  expect(r.stored).toBeGreaterThan(100_000);
  expect(r.stateVector).toBeGreaterThan(100);
}

beforeAll(() => {
  expect(run('spin', ['-V'], tmpdir())).toMatch(/Spin Version 6/);
  expect(run('gcc', ['--version'], tmpdir())).toMatch(/gcc/);
});

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the fault / revoke model passes, exhaustively', () => {
  it.each([
    ['safety', 'retry', ['-DMODE=RETRY']],
    ['safety', 'emulate', ['-DMODE=EMULATE']],
    ['safety', 'emulate, the back-end may die', ['-DMODE=EMULATE', '-DDEATH']],
    ['liveness', 'emulate', ['-DMODE=EMULATE']],
    ['liveness', 'retry, one invalidation', ['-DMODE=RETRY', '-DNI=1']],
  ] as [Kind, string, string[]][])('%s: %s', (kind, _name, defines) => {
    expectExhaustivePass(check(kind, defines));
  }, SLOW);
});

describe('each mutation of the protocol yields a counterexample', () => {
  const stale = /assertion violated \(\(?(p2m|tlb|lk)\[.*\]==1\)/;
  it.each([
    ['MAP installs without the read_retry check', 'safety', ['-DMODE=RETRY', '-DMUT_NO_RETRY_CHECK'], stale],
    ['MAP without read_retry, emulate mode', 'safety', ['-DMODE=EMULATE', '-DMUT_NO_RETRY_CHECK'], stale],
    ['entries revoked after the callback returned', 'safety', ['-DMODE=RETRY', '-DMUT_REVOKE_LATE'], stale],
    ['the flush does not wait for every vCPU acknowledgement', 'safety', ['-DMODE=EMULATE', '-DMUT_NO_ACK_WAIT'], stale],
    ['a retry answer for the second ioreq of one instruction', 'safety', ['-DMODE=RETRY', '-DMUT_RETRY_CONT'], /assertion violated .*req_part\[0\]==0/],
    ['no emulation fallback after K retries', 'safety', ['-DMODE=RETRY', '-DMUT_NO_FALLBACK'], /assertion violated \(retries<=2\)/],
    ['release does not wait for the MAP in flight', 'safety', ['-DMODE=EMULATE', '-DDEATH', '-DMUT_RELEASE_NO_WAIT'], /assertion violated {2}!\(released\)/],
    ['a vCPU coming online does not acknowledge the flush epoch', 'liveness', ['-DMODE=EMULATE', '-DMUT_ONLINE_NO_ACK'], /acceptance cycle/],
  ] as [string, Kind, string[], RegExp][])('%s', (_name, kind, defines, violation) => {
    // Counterexamples come within seconds: an unoptimized pan compiles several times faster.
    const r = check(kind, defines, false);
    expect(r.errors, r.output).toBe(1);
    expect(r.output).toMatch(violation);
    expect(r.trail, 'spin replays the counterexample').toMatch(kind === 'safety' ? /assertion violated/ : /START OF CYCLE/);
  }, SLOW);
});
