/** The `xvgpu` command as a user runs it: help, bad usage (one line, exit 2), JSON, signals. */
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { distFile } from '../../src/util/dist-path.js';

const CLI = distFile('cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });

describe('xvgpu CLI', () => {
  it('prints help for the tool and for run', () => {
    const top = run('--help');
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(/Usage: xvgpu <command>/);
    const sub = run('run', '--help');
    expect(sub.status).toBe(0);
    expect(sub.stdout).toMatch(/--evict-rate HZ/);
    expect(run('help', 'run').stdout).toBe(sub.stdout);
  });

  it.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['run', '--vcpus', '0'], /--vcpus must be an integer from 1 to 128/],
    [['run', '--vcpus', 'two'], /--vcpus must be an integer/],
    [['run', '--mode', 'fast'], /--mode must be one of retry, emulate/],
    [['run', '--fault-around', '3'], /power of two/],
    [['run', '--blob-size', '4097'], /multiple of 4096/],
    [['run', '--bogus'], /Unknown option '--bogus'/],
    [['run', 'extra'], /unexpected argument 'extra'/],
    [['run', '--stock-xen'], /--mode emulate/],
    [['run', '--platform', 'kvm'], /--platform must be one of sim, linux, xen/],
    [['run', '--blobs', '3', '--blob-size', '1G'], /--blobs 3 x --blob-size 1G needs 4104 MiB of simulated host memory .* up to 4096 MiB/],
    [['run', '--blobs', '256', '--blob-size', '16M', '--platform', 'linux'], /needs 4.* MiB of simulated host memory/],
    [['run', '--pin', 'cpu3'], /--pin must be one of auto, none/],
    [['run', '--platform', 'linux', '--duration', '1'], /--platform linux needs the kernel helper .*ENOENT/],
    [['bench', 'warp'], /unknown benchmark 'warp'/],
    [['bench', 'floor', '--rounds', '5'], /--rounds must be an integer from 100/],
  ])('rejects %j with one line and exit code 2', (args, msg) => {
    const r = run(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\s+at /); // no stack trace
  });

  it('prints one JSON summary with the documented fields', () => {
    const r = run('run', '--json', '--duration', '1', '--vcpus', '2', '--evict-rate', '200', '--mode', 'emulate');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    for (const k of ['platform', 'mode', 'vcpus', 'duration_s', 'faults', 'retries', 'emulated', 'revokes', 'mapped_pages', 'stale_accesses', 'integrity_errors', 'bad_ioreqs', 'fault_ns', 'revoke_ns']) {
      expect(s, k).toHaveProperty(k);
    }
    expect(s).toMatchObject({ platform: 'sim', mode: 'emulate', vcpus: 2, stale_accesses: 0, integrity_errors: 0 });
    expect(s.virtio).toMatchObject({ errors: 0 });
    expect((s.virtio as { blobs_mapped: number }).blobs_mapped).toBeGreaterThan(0);
    expect(Object.keys(s.fault_ns as object)).toEqual(expect.arrayContaining(['p50', 'p99', 'p999', 'max']));
    // The same-run floor sits next to the fault latency.
    expect((s.floor_ns as { p50: number }).p50).toBeGreaterThan(0);
    expect(s.fault_over_floor_p50).toBeGreaterThan(0);
  });

  it('measures the transport floor and writes it as JSON', () => {
    const r = run('bench', 'floor', '--rounds', '200', '--json', '-');
    expect(r.status).toBe(0);
    const rep = JSON.parse(r.stdout) as { rounds: number; cases: { name: string; placement: string; p50: number }[] };
    expect(rep.rounds).toBe(200);
    const names = new Set(rep.cases.map((c) => c.name));
    expect([...names]).toEqual(['native futex', 'native eventfd', 'native epoll', 'waiter tsfn→js→futex', 'js atomics main↔worker']);
    expect(rep.cases.every((c) => c.p50 > 0)).toBe(true);
    expect(r.stderr).toMatch(/p50 us/); // the table goes to stderr when JSON takes stdout
  });

  it('stops cleanly on SIGINT and still prints its summary', async () => {
    const child = spawn(process.execPath, [CLI, 'run', '--duration', '60', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const s = JSON.parse(out) as { duration_s: number; stale_accesses: number };
    expect(s.duration_s).toBeLessThan(30);
    expect(s.stale_accesses).toBe(0);
  });
});
