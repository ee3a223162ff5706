/** `xvgpu fleet` as a user meets it: help, bad usage, bad campaign files, an unreachable Redis. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { campaignFile, cli, freePort, removeCampaignFiles } from './harness.js';

let deadUrl: string;

beforeAll(async () => {
  deadUrl = `redis://127.0.0.1:${await freePort()}`; // nothing listens there
});

afterAll(removeCampaignFiles);

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  return lines[0] ?? '';
}

describe('xvgpu fleet CLI', () => {
  it('prints help for fleet and each of its commands, and lists fleet in the top-level help', async () => {
    const subs = ['worker', 'submit', 'status', 'results'];
    const [top, fleet, ...each] = await Promise.all([cli('--help'), cli('fleet', '--help'), ...subs.map((s) => cli('fleet', s, '--help'))]);
    expect(top.stdout).toMatch(/fleet {5}benchmark campaigns across many hosts/);
    expect(fleet.code).toBe(0);
    expect(fleet.stdout).toMatch(/^Usage: xvgpu fleet <command>/);
    subs.forEach((s, i) => {
      expect(each[i]?.code).toBe(0);
      expect(each[i]?.stdout).toMatch(new RegExp(`^Usage: xvgpu fleet ${s} `));
    });
  });

  it.each([
    [['fleet', 'launch'], /unknown fleet command 'launch'/],
    [['fleet', 'worker'], /--redis URL is required \(see 'xvgpu fleet worker --help'\)/],
    [['fleet', 'submit', '--redis', 'redis://x'], /missing CAMPAIGN file/],
    [['fleet', 'submit', 'a.yaml', 'b.yaml', '--redis', 'redis://x'], /unexpected argument 'b\.yaml'/],
    [['fleet', 'submit', 'a.yaml', '--redis', 'redis://x', '--report', 'out'], /--report needs --wait/],
    [['fleet', 'status', '--redis', 'redis://x'], /missing CAMPAIGN_ID/],
    [['fleet', 'results', 'c1', '--redis', 'redis://x', '--bogus'], /Unknown option '--bogus'/],
    [['fleet', 'worker', '--redis', 'redis://x', '--concurrency', '0'], /--concurrency must be an integer from 1 to 64/],
    [['fleet', 'worker', '--redis', 'redis://x', '--host-label', 'any'], /--host-label must be .*not 'any'/],
  ])('rejects %j with one line and exit code 2', async (args, msg) => {
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(msg);
  });

  it('rejects a bad campaign file with exit code 2 and the path of the problem, before touching Redis', async () => {
    const file = campaignFile({ name: 'bad', matrix: { workloads: 'all', strategies: ['fault-retry-17'], vcpus: [2] } });
    const r = await cli('fleet', 'submit', file, '--redis', deadUrl);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/^xvgpu: .*campaign\.json: matrix\.strategies\[0\]: unknown strategy 'fault-retry-17'/);
  });

  it.each([
    [['submit', 'bench/campaigns/smoke.yaml']],
    [['worker']],
  ])('fleet %j with an unreachable Redis: one line naming it, exit code 1', async (args) => {
    const r = await cli('fleet', ...args, '--redis', deadUrl);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^xvgpu: cannot reach Redis at ${deadUrl.replace(/\./g, '\\.')}: .*ECONNREFUSED`));
  });

  it('hides a password in the Redis URL it reports (status, results)', async () => {
    const url = deadUrl.replace('//', '//user:secret@');
    for (const r of await Promise.all([cli('fleet', 'status', 'c1', '--redis', url), cli('fleet', 'results', 'c1', '--redis', url)])) {
      expect(r.code).toBe(1);
      expect(oneLine(r.stderr)).toMatch(/^xvgpu: cannot reach Redis at redis:\/\/\*\*\*@127\.0\.0\.1:\d+: .*ECONNREFUSED/);
      expect(r.stderr).not.toMatch(/secret/);
    }
  });
});
