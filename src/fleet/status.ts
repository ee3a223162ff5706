/** A campaign's per-cell state, read from the BullMQ jobs and the stored results. */
import { Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { CAMPAIGN_QUEUE, FleetError, PREFIX } from './redis.js';
import { readResults, type CellResult } from './results.js';
import { cellJobId } from './submit.js';
import type { CampaignJobData } from './worker.js';

export type CellState = 'waiting' | 'active' | 'retrying' | 'done' | 'dead' | 'missing';

export interface CellStatus {
  readonly id: string;
  readonly queue: string;
  readonly state: CellState;
  /** Attempts that ended in failure so far. */
  readonly failedAttempts: number;
  /** The last failure's message, if any. */
  readonly lastError: string | undefined;
  /** The host label that ran it, once it has a result. */
  readonly host: string | undefined;
}

export interface CampaignStatus {
  readonly campaign: CampaignJobData;
  readonly finished: boolean;
  readonly cells: readonly CellStatus[];
  readonly results: ReadonlyMap<string, CellResult>;
}

/** A stored result wins over the job state: a cell with a result is done, whatever its job says. */
function cellState(jobState: string | undefined, hasResult: boolean): CellState {
  if (hasResult) return 'done';
  switch (jobState) {
    case undefined: return 'missing';
    case 'active': return 'active';
    case 'delayed': return 'retrying';
    case 'failed': return 'dead';
    case 'completed': return 'done';
    default: return 'waiting';
  }
}

async function jobState(job: Job | undefined): Promise<string | undefined> {
  return job ? job.getState() : undefined;
}

export async function campaignStatus(redis: Redis, campaignId: string): Promise<CampaignStatus> {
  const queues = new Map<string, Queue>();
  const queue = (name: string): Queue => {
    let q = queues.get(name);
    if (!q) queues.set(name, (q = new Queue(name, { connection: redis, prefix: PREFIX })));
    return q;
  };
  try {
    const parent = await queue(CAMPAIGN_QUEUE).getJob(campaignId);
    if (!parent) throw new FleetError(`no campaign '${campaignId}' in this Redis`);
    const campaign = parent.data as CampaignJobData;
    const results = await readResults(redis, campaignId);
    const cells: CellStatus[] = [];
    for (const c of campaign.cells) {
      const job = await queue(c.queue).getJob(cellJobId(campaignId, c.id));
      const result = results.get(c.id);
      const state = await jobState(job);
      // BullMQ counts the successful attempt in attemptsMade too.
      const made = job?.attemptsMade ?? 0;
      cells.push({
        id: c.id,
        queue: c.queue,
        state: cellState(state, result !== undefined),
        failedAttempts: state === 'completed' ? made - 1 : made,
        lastError: job?.failedReason || undefined,
        host: result?.host,
      });
    }
    return { campaign, finished: (await parent.getState()) === 'completed', cells, results };
  } finally {
    await Promise.all([...queues.values()].map((q) => q.close()));
  }
}

export function formatStatus(s: CampaignStatus): string {
  const count = (st: CellState): number => s.cells.filter((c) => c.state === st).length;
  const states: CellState[] = ['done', 'active', 'waiting', 'retrying', 'dead', 'missing'];
  const lines = [
    `campaign ${s.campaign.campaignId} (${s.campaign.name}, from ${s.campaign.file}, submitted ${s.campaign.submitted}): ${s.finished ? 'finished' : 'running'}`,
    `cells: ${s.cells.length} (${states.filter((st) => count(st) > 0).map((st) => `${count(st)} ${st}`).join(', ')})`,
    '',
    'cell | state | host | failed attempts | last error',
    '---|---|---|---|---',
    ...s.cells.map((c) => `${c.id} | ${c.state} | ${c.host ?? '-'} | ${c.failedAttempts} | ${c.lastError ?? '-'}`),
  ];
  const dead = s.cells.filter((c) => c.state === 'dead');
  lines.push('', `dead letter (failed every attempt): ${dead.length === 0 ? 'none' : ''}`);
  for (const c of dead) lines.push(`  ${c.id} [${c.queue}] after ${c.failedAttempts} attempt(s): ${c.lastError ?? 'no reason recorded'}`);
  return `${lines.join('\n')}\n`;
}
