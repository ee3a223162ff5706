/**
 * Submitting a campaign: one parent job with one child per cell, added in a single atomic step
 * (FlowProducer), so a campaign is either wholly in Redis or not at all. The parent waits for its
 * children; a cell that fails every attempt is kept in the parent's failed dependencies
 * (ignoreDependencyOnFailure), so the campaign still finishes and the cell shows as dead.
 */
import { randomBytes } from 'node:crypto';
import { FlowProducer, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { cellTimeoutS, type Campaign } from './campaign.js';
import { CAMPAIGN_QUEUE, FleetError, PREFIX, WORKER_KEY_PATTERN, cellQueue } from './redis.js';
import type { Advertisement, CampaignJobData, CellJobData } from './worker.js';

export function newCampaignId(name: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  return `${name}-${stamp}-${randomBytes(3).toString('hex')}`;
}

/** A cell's job id: BullMQ ids may not contain ':', and campaign and cell ids never do. */
export const cellJobId = (campaignId: string, cellId: string): string => `${campaignId}.${cellId}`;

export async function submitCampaign(redis: Redis, c: Campaign, file: string, campaignId = newCampaignId(c.name)): Promise<string> {
  const cells = c.cells.map((cell) => ({ id: cell.id, queue: cellQueue(cell.platform, cell.host) }));
  const data: CampaignJobData = { campaignId, name: c.name, file, submitted: new Date().toISOString(), cells };
  const flow = new FlowProducer({ connection: redis, prefix: PREFIX });
  try {
    await flow.add({
      name: 'campaign',
      queueName: CAMPAIGN_QUEUE,
      data,
      opts: { jobId: campaignId },
      children: c.cells.map((cell, i) => ({
        name: 'cell',
        queueName: cells[i]?.queue ?? '',
        data: { campaignId, cell, timeoutS: cellTimeoutS(c, cell) } satisfies CellJobData,
        opts: {
          jobId: cellJobId(campaignId, cell.id),
          attempts: c.retry.attempts,
          backoff: { type: 'exponential', delay: Math.round(c.retry.backoffS * 1000) },
          ignoreDependencyOnFailure: true,
        },
      })),
    });
  } finally {
    await flow.close();
  }
  return campaignId;
}

/** Live workers, from their advertisements. */
export async function liveWorkers(redis: Redis): Promise<Advertisement[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', WORKER_KEY_PATTERN, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const values = keys.length > 0 ? await redis.mget(keys) : [];
  return values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as Advertisement]));
}

/** Queues of a campaign that no live worker serves: their cells wait until one comes. */
export async function unservedQueues(redis: Redis, c: Campaign): Promise<string[]> {
  const served = new Set((await liveWorkers(redis)).flatMap((w) => w.queues));
  return [...new Set(c.cells.map((cell) => cellQueue(cell.platform, cell.host)))].filter((q) => !served.has(q));
}

export interface CampaignProgress {
  readonly cells: number;
  /** Cells with a result. */
  readonly done: number;
  /** Cells that failed every attempt. */
  readonly dead: number;
  /** The parent job finished: every cell is done or dead. */
  readonly finished: boolean;
}

export async function campaignProgress(redis: Redis, campaignId: string): Promise<CampaignProgress> {
  const queue = new Queue(CAMPAIGN_QUEUE, { connection: redis, prefix: PREFIX });
  try {
    const job = await queue.getJob(campaignId);
    if (!job) throw new FleetError(`no campaign '${campaignId}' in this Redis`);
    const counts = await job.getDependenciesCount({ processed: true, ignored: true });
    const state = await job.getState();
    return { cells: (job.data as CampaignJobData).cells.length, done: counts.processed ?? 0, dead: counts.ignored ?? 0, finished: state === 'completed' };
  } finally {
    await queue.close();
  }
}

/**
 * Polls until the campaign finishes. Polling (rather than a Redis event stream) rides through a
 * Redis restart: a poll that fails is retried until Redis has been unreachable for `outageS`.
 */
export async function waitForCampaign(redis: Redis, campaignId: string, onProgress: (p: CampaignProgress) => void, outageS = 60): Promise<CampaignProgress> {
  let failingSince: number | undefined;
  for (;;) {
    try {
      const p = await campaignProgress(redis, campaignId);
      failingSince = undefined;
      onProgress(p);
      if (p.finished) return p;
    } catch (e) {
      if (e instanceof FleetError) throw e;
      failingSince ??= performance.now();
      if (performance.now() - failingSince > outageS * 1000) throw new FleetError(`lost Redis for ${outageS} s while waiting: ${(e as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
