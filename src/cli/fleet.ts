/** `xvgpu fleet`: benchmark campaigns across driver-domain hosts, queued in Redis with BullMQ. */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { CampaignError, loadCampaign } from '../fleet/campaign.js';
import { detectCapabilities } from '../fleet/capabilities.js';
import { FleetError, connectRedis } from '../fleet/redis.js';
import { buildReport, fleetMarkdown, writeFleetReport } from '../fleet/report.js';
import { killAllCells } from '../fleet/runner.js';
import { campaignStatus, formatStatus } from '../fleet/status.js';
import { liveWorkers, submitCampaign, unservedQueues, waitForCampaign, type CampaignProgress } from '../fleet/submit.js';
import { FleetWorker } from '../fleet/worker.js';
import { UsageError, intOption, type Options } from './args.js';

export const FLEET_HELP = `Usage: xvgpu fleet <command> [options]

Benchmark campaigns across many driver-domain hosts: a campaign (a matrix of workloads x
strategies x vCPUs x platforms x host labels x repeats) is queued in Redis; a worker on each host
runs the cells its host can serve and stores their results; the results aggregate into one report.

Commands:
  worker     take and run cells on this host (run one per host)
  submit     queue a campaign file (bench/campaigns/*.yaml), optionally wait for it
  status     per-cell state of a campaign, and its dead letter
  results    the aggregated report of a campaign

Run 'xvgpu fleet <command> --help' for a command's options. Set-up: docs/fleet.md.
`;

export const WORKER_HELP = `Usage: xvgpu fleet worker --redis URL [options]

Takes campaign cells from Redis and runs each as an 'xvgpu run' or 'xvgpu bench' child process
(a bench cell's report JSON is its result). It serves the
platforms this host has: sim always; linux when /dev/xvgpu_helper exists; xen when
/proc/xen/capabilities or /dev/xen/privcmd exists. It takes the cells for any host and the cells
for its host label.

SIGTERM or SIGINT: drain (take no more cells, finish the running ones, then exit 0); a second
signal stops the running cells and hands them back to the queue. Either way no cell is left
claimed. If Redis cannot confirm the last cells within --lock-ms after they end, the worker exits
1 and those cells are retried elsewhere. A worker that is killed outright loses its claims after
--lock-ms and its cells go to another worker.

Options:
  --redis URL          Redis to take cells from, e.g. redis://queue-host:6379 (required)
  --host-label L       the label campaigns use to target this host (default: the hostname)
  --concurrency N      cells run at once, 1-64 (default 1: benchmark cells should not share a host)
  --lock-ms MS         how long a claim lasts without renewal (default 30000); a dead worker's
                       cells are retried after about twice this
  -h, --help           show this help
`;

export const SUBMIT_HELP = `Usage: xvgpu fleet submit CAMPAIGN.yaml|CAMPAIGN.json --redis URL [options]

Validates the campaign file, queues one job per cell under one parent job (atomically), and
prints the campaign id. Warns about cells that no live worker can serve yet (they wait).

Options:
  --redis URL     Redis to queue the campaign in (required)
  --wait          show a progress bar until every cell has a result or failed every attempt;
                  exit status 1 if any cell is dead or a run failed a check
  --report DIR    with --wait: write the aggregated report (report.json, summary.md) to DIR
  -h, --help      show this help
`;

export const STATUS_HELP = `Usage: xvgpu fleet status CAMPAIGN_ID --redis URL

Prints each cell's state (waiting, active, retrying, done, dead), the host that ran it, its failed
attempts and last error; then the dead letter (cells that failed every attempt) and the live
workers.

Options:
  --redis URL     Redis the campaign is in (required)
  -h, --help      show this help
`;

export const RESULTS_HELP = `Usage: xvgpu fleet results CAMPAIGN_ID --redis URL [--report DIR]

Prints the aggregated report of a campaign (also while it runs: what has finished so far): per
host label, the benchmark's scenario tables (median and min-max over repeats), and a table
comparing hosts; for bench cells, a table of each suite's headline ratios across hosts and each
suite's own report.

Options:
  --redis URL     Redis the campaign is in (required)
  --report DIR    also write report.json and summary.md to DIR
  --json          print the report JSON instead of the Markdown summary
  -h, --help      show this help
`;

const HELPS: Record<string, string> = { worker: WORKER_HELP, submit: SUBMIT_HELP, status: STATUS_HELP, results: RESULTS_HELP };

type Values = Record<string, string | boolean | undefined>;

const REDIS: Options = { redis: { type: 'string' }, help: { type: 'boolean', short: 'h' } };

/** Parses options plus at most `operands` positional arguments; returns undefined for --help. */
function parseFleet(cmd: string, argv: string[], options: Options, operand?: string): { v: Values; operand: string } | undefined {
  let r: { values: Values; positionals: string[] };
  try {
    r = parseArgs({ args: argv, options, strict: true, allowPositionals: true }) as { values: Values; positionals: string[] };
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]?.replace(/\. To specify.*$/, '') ?? 'bad arguments', cmd);
  }
  if (r.values.help === true) return undefined;
  const expected = operand === undefined ? 0 : 1;
  if (r.positionals.length > expected) throw new UsageError(`unexpected argument '${r.positionals[expected] ?? ''}'`, cmd);
  if (operand !== undefined && r.positionals.length === 0) throw new UsageError(`missing ${operand}`, cmd);
  if (typeof r.values.redis !== 'string' || r.values.redis === '') throw new UsageError('--redis URL is required', cmd);
  return { v: r.values, operand: r.positionals[0] ?? '' };
}

async function withRedis<T>(url: string, f: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = await connectRedis(url, 'client');
  try {
    return await f(redis);
  } finally {
    redis.disconnect();
  }
}

const stamp = (): string => new Date().toISOString();

async function workerCommand(argv: string[]): Promise<number> {
  const cmd = 'fleet worker';
  const p = parseFleet(cmd, argv, { ...REDIS, 'host-label': { type: 'string' }, concurrency: { type: 'string' }, 'lock-ms': { type: 'string' } });
  if (!p) return help('worker');
  const hostLabel = typeof p.v['host-label'] === 'string' ? p.v['host-label'] : hostname().split('.')[0] ?? 'host';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(hostLabel) || hostLabel === 'any') throw new UsageError(`--host-label must be 1-64 letters, digits, _ or - (and not 'any'), got '${hostLabel}'`, cmd);
  const log = (line: string): void => { process.stderr.write(`${stamp()} fleet worker ${hostLabel}-${process.pid}: ${line}\n`); };
  const capabilities = detectCapabilities();
  process.on('exit', killAllCells);
  const worker = await FleetWorker.start({
    redisUrl: p.v.redis as string,
    hostLabel,
    concurrency: intOption(cmd, 'concurrency', p.v.concurrency, 1, 1, 64),
    lockMs: intOption(cmd, 'lock-ms', p.v['lock-ms'], 30_000, 500, 3_600_000),
    capabilities,
    log,
  });
  for (const note of capabilities.notes) log(note);
  log(`ready: serving ${worker.queues().join(', ')}`);
  const confirmed = await new Promise<boolean>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (++signals === 1) {
        log(`${sig}: draining (finishing running cells; a second signal stops them and hands them back)`);
        void worker.drain().then(resolve);
      } else {
        log(`${sig}: stopping running cells and handing them back`);
        void worker.stop().then(resolve);
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  log(confirmed ? 'drained, exiting' : 'exiting without Redis');
  // BullMQ's connections may still be retrying an unreachable Redis: leave now rather than hang.
  process.exit(confirmed ? 0 : 1);
}

function progressLine(p: CampaignProgress): string {
  const settled = p.done + p.dead;
  const filled = p.cells === 0 ? 30 : Math.round((30 * settled) / p.cells);
  return `[${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${settled}/${p.cells} cells${p.dead > 0 ? ` (${p.dead} dead)` : ''}`;
}

async function submitCommand(argv: string[]): Promise<number> {
  const cmd = 'fleet submit';
  const p = parseFleet(cmd, argv, { ...REDIS, wait: { type: 'boolean' }, report: { type: 'string' } }, 'CAMPAIGN file');
  if (!p) return help('submit');
  const report = typeof p.v.report === 'string' ? p.v.report : undefined;
  if (report !== undefined && p.v.wait !== true) throw new UsageError('--report needs --wait (or use xvgpu fleet results --report)', cmd);
  const campaign = loadCampaign(p.operand);
  return withRedis(p.v.redis as string, async (redis) => {
    const id = await submitCampaign(redis, campaign, p.operand);
    process.stdout.write(`${id}\n`);
    process.stderr.write(`submitted ${campaign.cells.length} cells as campaign ${id}\n`);
    for (const q of await unservedQueues(redis, campaign)) process.stderr.write(`warning: no live worker serves ${q}; its cells wait until one does\n`);
    if (p.v.wait !== true) return 0;
    const tty = process.stderr.isTTY;
    let last = '';
    const done = await waitForCampaign(redis, id, (pr) => {
      const line = progressLine(pr);
      if (line !== last) process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      last = line;
    });
    if (tty) process.stderr.write('\n');
    const r = buildReport(await campaignStatus(redis, id));
    if (report !== undefined) for (const f of writeFleetReport(r, report)) process.stderr.write(`wrote ${f}\n`);
    process.stdout.write(fleetMarkdown(r));
    return done.dead === 0 && r.hosts.every((h) => h.correctness.failed_checks === 0) && r.bench.every((b) => b.exit_code === 0) ? 0 : 1;
  });
}

async function statusCommand(argv: string[]): Promise<number> {
  const p = parseFleet('fleet status', argv, REDIS, 'CAMPAIGN_ID');
  if (!p) return help('status');
  return withRedis(p.v.redis as string, async (redis) => {
    process.stdout.write(formatStatus(await campaignStatus(redis, p.operand)));
    const workers = await liveWorkers(redis);
    process.stdout.write(`\nlive workers: ${workers.length === 0 ? 'none' : ''}\n`);
    for (const w of workers) process.stdout.write(`  ${w.id} on ${w.machine}: platforms ${w.platforms.join(',')}, running ${w.running.join(', ') || 'nothing'}\n`);
    return 0;
  });
}

async function resultsCommand(argv: string[]): Promise<number> {
  const p = parseFleet('fleet results', argv, { ...REDIS, report: { type: 'string' }, json: { type: 'boolean' } }, 'CAMPAIGN_ID');
  if (!p) return help('results');
  return withRedis(p.v.redis as string, async (redis) => {
    const r = buildReport(await campaignStatus(redis, p.operand));
    if (typeof p.v.report === 'string') for (const f of writeFleetReport(r, p.v.report)) process.stderr.write(`wrote ${f}\n`);
    process.stdout.write(p.v.json === true ? `${JSON.stringify(r, null, 2)}\n` : fleetMarkdown(r));
    return 0;
  });
}

function help(topic: string): number {
  process.stdout.write(HELPS[topic] ?? FLEET_HELP);
  return 0;
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = { worker: workerCommand, submit: submitCommand, status: statusCommand, results: resultsCommand };

/** Bad usage is thrown (exit 2 from main); a bad campaign file is exit 2, an operational failure exit 1. */
export async function fleetCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') return help(rest[0] ?? '');
  const run = COMMANDS[sub];
  if (!run) throw new UsageError(`unknown fleet command '${sub}' (worker, submit, status, results)`, 'fleet');
  try {
    return await run(rest);
  } catch (e) {
    if (!(e instanceof CampaignError || e instanceof FleetError)) throw e;
    process.stderr.write(`xvgpu: ${e.message}\n`);
    return e instanceof CampaignError ? 2 : 1;
  }
}
