/**
 * The fleet end to end against a real redis-server: campaigns across worker processes, a worker
 * killed mid-cell, Redis killed and restarted mid-campaign, timeouts and the dead letter, draining.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { PLATFORMS, campaignFrom } from '../../src/fleet/campaign.js';
import { detectCapabilities } from '../../src/fleet/capabilities.js';
import { connectRedis, PREFIX, resultsKey } from '../../src/fleet/redis.js';
import { readResults, storeResult } from '../../src/fleet/results.js';
import { campaignStatus, type CampaignStatus } from '../../src/fleet/status.js';
import { cellJobId } from '../../src/fleet/submit.js';
import type { FleetReport } from '../../src/fleet/report.js';
import { RedisServer, campaignFile, cli, killEverything, removeCampaignFiles, startWorker, tinyWorkload, until, type WorkerProc } from './harness.js';

let redis: RedisServer;
let client: Redis;
const workers: WorkerProc[] = [];

async function worker(label: string, ...extra: string[]): Promise<WorkerProc> {
  const w = await startWorker(redis.url, label, ...extra);
  workers.push(w);
  return w;
}

async function submit(file: string): Promise<string> {
  const r = await cli('fleet', 'submit', file, '--redis', redis.url);
  expect(r.stderr).toMatch(/submitted \d+ cells/);
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

const status = (id: string): Promise<CampaignStatus> => campaignStatus(client, id);

async function finished(id: string, timeoutMs = 90_000): Promise<CampaignStatus> {
  return until(`campaign ${id} to finish`, async () => {
    const s = await status(id).catch(() => undefined); // Redis may be restarting
    return s?.finished ? s : undefined;
  }, timeoutMs);
}

/** A campaign of `n` tiny cells (one workload, one strategy, n repeats). */
function tinyCampaign(name: string, durationS: number, n: number, extra: Record<string, unknown> = {}): string {
  return campaignFile({
    name,
    matrix: { workloads: [tinyWorkload('tiny', durationS)], strategies: ['fault-retry-16'], vcpus: [1], repeats: n },
    retry: { attempts: 3, backoff_s: 0.2 },
    timeout_s: 60,
    ...extra,
  });
}

beforeAll(async () => {
  redis = await RedisServer.start();
  client = await connectRedis(redis.url, 'worker');
});

beforeEach(async () => {
  await client.flushall();
});

afterEach(async () => {
  for (const w of workers.splice(0)) {
    w.signal('SIGKILL');
    await w.exited;
  }
});

afterAll(async () => {
  client.disconnect();
  killEverything();
  await redis.destroy();
  removeCampaignFiles();
});

describe('xvgpu fleet against a real Redis', () => {
  it('stores a cell result once: a second store of the same cell is refused and the first one kept', async () => {
    const cell = campaignFrom({ name: 'c', matrix: { workloads: ['hotset-evict'], strategies: ['eager'], vcpus: [2] } }, 'c.yaml').cells[0];
    if (!cell) throw new Error('no cell');
    const first = { cell, host: 'a', worker: 'a-1', machine: 'm', attempt: 1, finished: 'then', exit_code: 0, summary: { accesses: 1 } };
    expect(await storeResult(client, 'c-1', first)).toBe(true);
    expect(await storeResult(client, 'c-1', { ...first, host: 'b', worker: 'b-2', attempt: 2 })).toBe(false);
    const stored = await readResults(client, 'c-1');
    expect(stored.size).toBe(1);
    expect(stored.get(cell.id)?.worker).toBe('a-1');
  });

  it('names an unknown campaign in one line, exit code 1', async () => {
    const r = await cli('fleet', 'status', 'no-such-campaign', '--redis', redis.url);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`xvgpu: no campaign 'no-such-campaign' in this Redis\n`);
  });

  it('runs the smoke campaign across two workers: every cell has exactly one result, both hosts report', async () => {
    await worker('hostA');
    await worker('hostB');
    const r = await cli('fleet', 'submit', 'bench/campaigns/smoke.yaml', '--redis', redis.url, '--wait');
    expect(r.stderr).not.toMatch(/warning: no live worker/);
    expect(r.code).toBe(0);
    const id = r.stdout.split('\n')[0] ?? '';
    const s = await status(id);
    expect(s.finished).toBe(true);
    expect(s.cells).toHaveLength(8);
    expect(s.cells.every((c) => c.state === 'done')).toBe(true);
    expect(await client.hlen(resultsKey(id))).toBe(8);
    const json = await cli('fleet', 'results', id, '--redis', redis.url, '--json');
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as FleetReport;
    expect(report.cells).toEqual({ total: 8, with_result: 8, dead: 0, pending: 0 });
    expect(report.hosts.map((h) => h.host)).toEqual(['hostA', 'hostB']);
    expect(report.hosts.flatMap((h) => h.scenarios).reduce((n, sc) => n + sc.runs, 0)).toBe(8);
    expect(r.stdout).toMatch(/## Across hosts: accesses\/s, median/);
  });

  it('sends cells aimed at a host label only to the worker with that label', async () => {
    const a = await worker('hostA');
    // hostB's cells come first in the campaign, so a worker that ignored labels would take them first.
    const id = await submit(campaignFile({
      name: 'labels',
      matrix: { workloads: [tinyWorkload('tiny', 0.2)], strategies: ['eager'], vcpus: [1], hosts: ['hostB', 'hostA'], repeats: 2 },
    }));
    const forA = (await status(id)).cells.filter((c) => c.id.includes('.hostA.')).map((c) => c.id);
    expect(forA).toHaveLength(2);
    await until("hostA's cells to finish", async () => ((await status(id)).cells.filter((c) => forA.includes(c.id)).every((c) => c.state === 'done') ? true : undefined));
    expect((await status(id)).cells.filter((c) => !forA.includes(c.id)).map((c) => c.state)).toEqual(['waiting', 'waiting']);
    expect(a.stderr).not.toMatch(/\.hostB\.r\d: started/);
    await worker('hostB');
    const s = await finished(id);
    expect(s.cells).toHaveLength(4);
    for (const c of s.cells) expect(c.host).toBe(c.id.includes('.hostA.') ? 'hostA' : 'hostB');
  });

  it('retries a cell whose worker is SIGKILLed mid-run on the other worker, and counts it once', async () => {
    const a = await worker('hostA');
    const id = await submit(tinyCampaign('killed', 4, 1));
    await until('hostA to run the cell', async () => ((await status(id)).cells[0]?.state === 'active' && a.stderr.includes(': started') ? true : undefined));
    const b = await worker('hostB');
    a.signal('SIGKILL');
    await a.exited;
    const s = await finished(id);
    expect(s.cells[0]?.state).toBe('done');
    expect(s.cells[0]?.host).toBe('hostB');
    expect(b.stderr).toMatch(/: started/);
    expect(await client.hlen(resultsKey(id))).toBe(1);
    expect(s.results.get(s.cells[0]?.id ?? '')?.worker).toBe(b.id);
  });

  it('loses no submitted cell when Redis is killed and restarted mid-campaign (AOF on)', async () => {
    await worker('hostA');
    await worker('hostB');
    const id = await submit(tinyCampaign('restart', 0.3, 5));
    await until('a first result', async () => ((await client.hlen(resultsKey(id))) > 0 ? true : undefined));
    expect(await client.hlen(resultsKey(id))).toBeLessThan(5); // mid-campaign
    await redis.crash();
    await redis.launch();
    const after = await status(id);
    expect(after.cells.filter((c) => c.state === 'missing')).toEqual([]);
    expect(after.cells).toHaveLength(5);
    const s = await finished(id);
    expect(s.cells).toHaveLength(5);
    expect(s.cells.map((c) => c.state)).toEqual(Array(5).fill('done'));
    expect(await client.hlen(resultsKey(id))).toBe(5);
  });

  it('kills a cell at its timeout, retries it with backoff, then puts it in the dead letter; the campaign still finishes', async () => {
    await worker('hostA');
    const file = campaignFile({
      name: 'timeouts',
      matrix: { workloads: [tinyWorkload('slow', 60)], strategies: ['eager'], vcpus: [1], repeats: 1 },
      retry: { attempts: 2, backoff_s: 0.2 },
      timeout_s: 1,
    });
    const r = await cli('fleet', 'submit', file, '--redis', redis.url, '--wait');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/## Dead letter[\s\S]*slow\.eager\.v1\.sim\.any\.r0: 2 attempt\(s\): timed out after 1 s/);
    const id = r.stdout.split('\n')[0] ?? '';
    const st = await cli('fleet', 'status', id, '--redis', redis.url);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/dead letter \(failed every attempt\): \n {2}slow\.eager\.v1\.sim\.any\.r0 \[cells\.sim\] after 2 attempt\(s\): timed out after 1 s/);
    expect(await client.hlen(resultsKey(id))).toBe(0);
  });

  it('drains on SIGTERM: the running cell finishes and is stored, then the worker exits 0', async () => {
    const a = await worker('hostA');
    const id = await submit(tinyCampaign('drain', 2, 2));
    await until('hostA to run a cell', () => (a.stderr.includes(': started') ? true : undefined));
    a.signal('SIGTERM');
    expect(await a.exited).toBe(0);
    const s = await status(id);
    // One cell ran to completion; the other was never started and waits, unclaimed.
    expect(s.cells.map((c) => c.state).sort()).toEqual(['done', 'waiting']);
    expect(s.cells.every((c) => c.failedAttempts === 0)).toBe(true);
    // ... and BullMQ recorded the finished one as completed: nothing is left active (claimed).
    const q = new Queue('cells.sim', { connection: client, prefix: PREFIX });
    expect(await q.getActiveCount()).toBe(0);
    expect(await q.getCompletedCount()).toBe(1);
    await q.close();
  });

  it('exits 1 rather than hang when Redis is gone at the end of a drain; the cell is run again once Redis is back', async () => {
    const a = await worker('hostA');
    const id = await submit(tinyCampaign('gone', 2, 1));
    await until('hostA to run the cell', () => (a.stderr.includes(': started') ? true : undefined));
    await redis.crash();
    a.signal('SIGTERM');
    expect(await a.exited).toBe(1);
    expect(a.stderr).toMatch(/Redis did not confirm the last cells/);
    await redis.launch();
    await worker('hostB');
    const s = await finished(id);
    expect(s.cells[0]?.host).toBe('hostB');
    expect(await client.hlen(resultsKey(id))).toBe(1);
  });

  it('on a second signal stops the running cell and hands it back unclaimed, without spending an attempt', async () => {
    const a = await worker('hostA');
    const id = await submit(tinyCampaign('stop', 30, 1));
    await until('hostA to run the cell', () => (a.stderr.includes(': started') ? true : undefined));
    a.signal('SIGTERM');
    await until('the drain to begin', () => (a.stderr.includes('draining') ? true : undefined));
    a.signal('SIGTERM');
    expect(await a.exited).toBe(0);
    const s = await status(id);
    expect(s.cells[0]?.state).toBe('waiting');
    expect(s.cells[0]?.failedAttempts).toBe(0);
    const q = new Queue('cells.sim', { connection: client, prefix: PREFIX });
    expect(await q.getActiveCount()).toBe(0);
    expect((await q.getJob(cellJobId(id, s.cells[0]?.id ?? '')))?.attemptsMade).toBe(0);
    await q.close();
  });

  it('advertises only the platforms its host can run, and submit warns about cells nobody serves', async () => {
    const a = await worker('hostA');
    const ad = JSON.parse((await client.get(`${PREFIX}:fleet:worker:${a.id}`)) ?? '{}') as { platforms: string[]; queues: string[] };
    const host = detectCapabilities().platforms;
    expect(ad.platforms).toEqual(host);
    expect(ad.queues).toEqual(host.flatMap((p) => [`cells.${p}`, `cells.${p}.hostA`]));
    // A platform this machine lacks (no kernel helper, not a Xen domain here): its cells have no taker.
    const missing = PLATFORMS.find((p) => !host.includes(p));
    expect(missing).toBeDefined();
    const r = await cli('fleet', 'submit', campaignFile({
      name: 'unserved', matrix: { workloads: [tinyWorkload('tiny', 0.2)], strategies: ['eager'], vcpus: [1], platforms: [missing] },
    }), '--redis', redis.url);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: no live worker serves cells\\.${missing ?? ''}; its cells wait`));
  });
});
