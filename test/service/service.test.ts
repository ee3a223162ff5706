/**
 * `xvgpu run --config FILE` on the simulated platform, as a service manager runs it: metrics that
 * move under load, JSON logs, SIGTERM under load that revokes every mapping and exits 0, a second
 * signal that exits at once, SIGHUP that reopens the log file, and `xvgpu config check`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { distFile } from '../../src/util/dist-path.js';
import { scrape, startService, tempDir, writeConfig, type LogLine } from '../support/service.js';

/** A run that keeps the guest faulting under host evictions until it is stopped. */
const LOADED = { platform: 'sim', duration: 120, vcpus: 2, blobs: 2, 'blob-size': '2M', 'evict-rate': 200, json: true, 'log-level': 'info' };

/** The sample of `name` whose labels include `labels` (domid labels every series). */
function value(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  for (const [key, v] of samples) {
    const m = /^([a-z_]+)\{(.*)\}$/.exec(key);
    if (m?.[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries({ domid: '1', ...labels }).every(([k, want]) => have.get(k) === want)) return v;
  }
  throw new Error(`no sample ${name} ${JSON.stringify(labels)}`);
}

const isMsg = (msg: string) => (l: LogLine) => l.msg === msg;

describe('xvgpu run as a service (simulated platform)', () => {
  it('serves metrics that move under load, logs JSON, and on SIGTERM revokes every mapping and exits 0', async () => {
    const dir = tempDir();
    const svc = startService(['--config', writeConfig(dir, { ...LOADED, metrics: '127.0.0.1:0' })]);
    const port = (await svc.waitFor(isMsg('metrics at /metrics'))).port as number;
    await svc.waitFor(isMsg('simulation running'));
    const first = await scrape(port);
    // Scrape until the guest's faults and the host's revocations have moved past the first scrape.
    let later = first;
    while (value(later, 'xvgpu_faults_total', { answer: 'retry' }) <= value(first, 'xvgpu_faults_total', { answer: 'retry' }) || value(later, 'xvgpu_revokes_total') <= value(first, 'xvgpu_revokes_total')) {
      await new Promise((r) => setTimeout(r, 200));
      later = await scrape(port);
    }
    expect(value(later, 'xvgpu_ioreqs_total', { type: 'copy' })).toBeGreaterThan(value(first, 'xvgpu_ioreqs_total', { type: 'copy' }));
    expect(value(later, 'xvgpu_ioreq_outcomes_total', { outcome: 'retry' })).toBeGreaterThan(0);
    expect(value(later, 'xvgpu_mapped_pages_total')).toBeGreaterThan(0);
    expect(value(later, 'xvgpu_map_runs_total')).toBeGreaterThan(0);
    expect(value(later, 'xvgpu_revoked_pages_total')).toBeGreaterThan(0);
    // The guest's driver creates the 2 workload blobs, its shmem blob and the probe blob.
    expect(value(later, 'xvgpu_virtio_gpu_commands_total', { type: 'resource_create_blob' })).toBe(4);
    expect(value(later, 'xvgpu_virtio_gpu_responses_total', { response: 'OK' })).toBeGreaterThanOrEqual(value(later, 'xvgpu_virtio_gpu_commands_total', { type: 'resource_map_blob' }));
    expect(value(later, 'xvgpu_bad_guest_inputs_total', { kind: 'ioreq_unclaimed' })).toBe(0);
    // Histograms: cumulative buckets ending at the count, and the count moved with the faults.
    const count = value(later, 'xvgpu_fault_service_seconds_count');
    expect(count).toBeGreaterThan(0);
    expect(value(later, 'xvgpu_fault_service_seconds_bucket', { le: '+Inf' })).toBe(count);
    expect(value(later, 'xvgpu_fault_service_seconds_bucket', { le: '0.001' })).toBeLessThanOrEqual(value(later, 'xvgpu_fault_service_seconds_bucket', { le: '1' }));
    expect(value(later, 'xvgpu_revoke_seconds_count')).toBeGreaterThan(0);

    svc.child.kill('SIGTERM'); // under load: the vCPUs are faulting and the host is evicting
    const { code } = await svc.exit;
    expect(code).toBe(0);
    const summary = JSON.parse(svc.stdout()) as { mapped_after_stop: number; revokes: number; faults: number };
    expect(summary.mapped_after_stop).toBe(0);
    expect(summary.faults).toBeGreaterThanOrEqual(value(later, 'xvgpu_faults_total', { answer: 'retry' }));
    expect(svc.lines.find(isMsg('back-end stopped'))).toMatchObject({ domid: 1, mappedAfterRevoke: 0 });
    expect(svc.lines.find(isMsg('exiting'))).toMatchObject({ exitCode: 0 });
    expect(svc.lines.every((l) => l.name === 'xvgpu' && typeof l.level === 'number')).toBe(true);
  });

  it('exits 130 with a log line when a second signal comes during the shutdown', async () => {
    const svc = startService(['--config', writeConfig(tempDir(), LOADED)]);
    await svc.waitFor(isMsg('simulation running'));
    svc.child.kill('SIGTERM');
    // Two pending SIGTERMs coalesce into one: send the second once the first is being handled
    // (the shutdown still has the guest's stop, its floor probes and the teardown ahead of it).
    await svc.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('stopping'));
    svc.child.kill('SIGTERM');
    const { code } = await svc.exit;
    expect(code).toBe(130);
    expect(svc.lines.find((l) => l.level === 50)?.msg).toMatch(/^second signal: exiting now/);
    expect(svc.stdout()).toBe(''); // no summary: the run did not finish
  });

  it('reopens --log-file on SIGHUP (logrotate moved the old one)', async () => {
    const dir = tempDir();
    const log = join(dir, 'xvgpu.log');
    const svc = startService(['--config', writeConfig(dir, { ...LOADED, 'log-file': log })]);
    const readLines = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((t) => JSON.parse(t) as LogLine);
    while (!(existsSync(log) && readLines(log).some(isMsg('simulation running')))) await new Promise((r) => setTimeout(r, 100));
    renameSync(log, `${log}.1`);
    svc.child.kill('SIGHUP');
    while (!existsSync(log)) await new Promise((r) => setTimeout(r, 50));
    svc.child.kill('SIGTERM');
    expect((await svc.exit).code).toBe(0);
    expect(svc.lines).toEqual([]); // nothing on stderr: the logs went to the file
    expect(readLines(`${log}.1`).some(isMsg('simulation running'))).toBe(true);
    const reopened = readLines(log);
    expect(reopened[0]?.msg).toBe('SIGHUP: log file reopened');
    expect(reopened.find(isMsg('exiting'))).toMatchObject({ exitCode: 0 });
  });
});

describe('xvgpu config check', () => {
  const check = (file: string) => spawnSync(process.execPath, [distFile('cli/main.js'), 'config', 'check', file], { encoding: 'utf8', timeout: 60_000 });

  it('says a valid file is valid', () => {
    const file = writeConfig(tempDir(), { platform: 'xen', domid: 7, 'bar-gfn': '0x100000', 'bar-size': '256M', 'mmio-base': '0xfe000000', irq: 5, metrics: '[::1]:9464' });
    const r = check(file);
    expect(r.stdout).toBe(`${file}: valid\n`);
    expect(r.status).toBe(0);
  });

  it('prints every problem with its JSON path and exits 1', () => {
    const file = writeConfig(tempDir(), { platform: 'xen', domid: 0, irq: 2, metrics: '192.0.2.1:9464', typo: 1 });
    const r = check(file);
    expect(r.status).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual([`${file}: $.domid: Too small: expected number to be >=1`, `${file}: $.irq: IRQ 2 is the PIC cascade`, `${file}: $.typo: unknown key`]);
    const remote = writeConfig(tempDir(), { metrics: '192.0.2.1:9464' });
    expect(check(remote).stdout).toMatch(/\$\.metrics: --metrics 192\.0\.2\.1:9464 is not a loopback address/);
  });

  it('makes run refuse a bad file with its problems in one line', () => {
    const file = writeConfig(tempDir(), { vcpus: 'two' });
    const r = spawnSync(process.execPath, [distFile('cli/main.js'), 'run', '--config', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^xvgpu: .*xvgpu\.json: \$\.vcpus: .*expected number/);
  });
});
