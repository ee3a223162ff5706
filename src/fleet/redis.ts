/**
 * The Redis side of the fleet: connections, queue names and the keys the fleet owns beside
 * BullMQ's. Every BullMQ key lives under the `xvgpu` prefix; the fleet's own under `xvgpu:fleet:`.
 */
import { Redis } from 'ioredis';
import { ANY_HOST, type Platform } from './campaign.js';

/** An operational failure (Redis unreachable, unknown campaign): one line, exit status 1. */
export class FleetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FleetError';
  }
}

export const PREFIX = 'xvgpu';
/** Holds one parent job per campaign; it completes when every cell has a result or is dead. */
export const CAMPAIGN_QUEUE = 'campaigns';

/** Cells for any host of a platform go to `cells.<platform>`; cells for a label to `cells.<platform>.<label>`. */
export function cellQueue(platform: Platform, host: string): string {
  return host === ANY_HOST ? `cells.${platform}` : `cells.${platform}.${host}`;
}

/** Results, one field per cell id, written once (HSETNX): a retried cell never counts twice. */
export const resultsKey = (campaignId: string): string => `${PREFIX}:fleet:results:${campaignId}`;
/** Each live worker's advertisement (JSON), refreshed while it runs, expiring when it dies. */
export const workerKey = (workerId: string): string => `${PREFIX}:fleet:worker:${workerId}`;
export const WORKER_KEY_PATTERN = `${PREFIX}:fleet:worker:*`;

/** Hides a password in a redis://user:pass@host URL before it appears in a message. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^/@]*)@/, '//***@');
}

export type Role = 'worker' | 'client';

/**
 * Connects, or throws a FleetError naming the URL. The first connection is not retried, so an
 * unreachable Redis is reported at once; once connected, a lost connection is retried for ever
 * (a restarting Redis). Workers queue commands while disconnected (BullMQ requires
 * maxRetriesPerRequest: null for them); clients fail fast instead.
 */
export async function connectRedis(url: string, role: Role): Promise<Redis> {
  let connected = false;
  let client: Redis;
  try {
    client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: 5000,
      maxRetriesPerRequest: role === 'worker' ? null : 2,
      retryStrategy: (times) => (connected ? Math.min(100 * times, 2000) : null),
    });
  } catch (e) {
    throw new FleetError(`bad --redis URL '${redactUrl(url)}': ${(e as Error).message}`);
  }
  let lastError = '';
  client.on('error', (e: Error) => { lastError = e.message; });
  try {
    await client.connect();
    connected = true;
  } catch (e) {
    client.disconnect();
    throw new FleetError(`cannot reach Redis at ${redactUrl(url)}: ${lastError || (e as Error).message}`);
  }
  return client;
}
