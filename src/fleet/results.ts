/** Cell results in Redis: written once per cell, so a retried or duplicated run never counts twice. */
import type { Redis } from 'ioredis';
import type { Cell } from './campaign.js';
import { resultsKey } from './redis.js';

export interface CellResult {
  readonly cell: Cell;
  /** The host label of the worker that ran it. */
  readonly host: string;
  readonly worker: string;
  /** The hostname of the machine that ran it. */
  readonly machine: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly finished: string;
  /** The child's exit status: 0 clean, 1 a check failed (stale access, integrity error, crash). */
  readonly exit_code: number;
  /** A run cell's JSON summary as printed by `xvgpu run --json`, or a bench cell's report (xvgpu-bench/2). */
  readonly summary: Record<string, unknown>;
}

/** Stores a cell's result unless one is already there; returns whether this one was stored. */
export async function storeResult(redis: Redis, campaignId: string, r: CellResult): Promise<boolean> {
  return (await redis.hsetnx(resultsKey(campaignId), r.cell.id, JSON.stringify(r))) === 1;
}

/** Every stored result of a campaign, by cell id. */
export async function readResults(redis: Redis, campaignId: string): Promise<Map<string, CellResult>> {
  const raw = await redis.hgetall(resultsKey(campaignId));
  return new Map(Object.entries(raw).map(([id, json]) => [id, JSON.parse(json) as CellResult]));
}
