/**
 * A fleet worker: takes the cells its host can serve, runs each as an `xvgpu run` or `xvgpu bench`
 * child process,
 * streams progress, stores the result once, and finalises campaigns whose cells are all done.
 *
 * Shutdown never leaves a cell half-claimed: drain() stops taking cells, hands the ones still
 * waiting for a slot back to their queue, and waits for the running ones to finish; stop() also
 * kills the running children and hands their cells back (not counted as an attempt). A worker
 * that dies without either (SIGKILL, power loss) stops renewing its locks; after about lockMs
 * BullMQ's stalled-job check puts its cells back in the queue for another worker.
 */
import { hostname } from 'node:os';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Cell } from './campaign.js';
import type { Capabilities } from './capabilities.js';
import { CAMPAIGN_QUEUE, PREFIX, cellQueue, connectRedis, workerKey } from './redis.js';
import { storeResult } from './results.js';
import { CellRejected, CellStopped, cellCommand, cellsIdle, runCell } from './runner.js';

export interface CellJobData {
  readonly campaignId: string;
  readonly cell: Cell;
  readonly timeoutS: number;
}

export interface CellJobResult {
  readonly host: string;
  readonly exit_code: number;
  /** False when an earlier attempt of this cell had already stored its result. */
  readonly stored: boolean;
}

export interface CampaignJobData {
  readonly campaignId: string;
  readonly name: string;
  readonly file: string;
  readonly submitted: string;
  /** Cell ids and the queue each went to. */
  readonly cells: readonly { readonly id: string; readonly queue: string }[];
}

export interface WorkerOptions {
  readonly redisUrl: string;
  readonly hostLabel: string;
  /** Cells run at once by this worker, over all its queues. */
  readonly concurrency: number;
  /** How long a claim on a cell lasts without renewal, and how often stalled cells are looked for. */
  readonly lockMs: number;
  readonly capabilities: Capabilities;
  readonly log: (line: string) => void;
}

/** What a worker publishes about itself (key xvgpu:fleet:worker:<id>, refreshed while it lives). */
export interface Advertisement {
  readonly id: string;
  readonly host: string;
  readonly machine: string;
  readonly pid: number;
  readonly platforms: readonly string[];
  readonly queues: readonly string[];
  readonly concurrency: number;
  readonly started: string;
  readonly notes: readonly string[];
  readonly running: readonly string[];
}

const ADVERT_REFRESH_MS = 5000;
const ADVERT_TTL_S = 15;
/** A cell may stall (lose its worker) this many times before it is failed for good. */
const MAX_STALLED = 3;

/** Run slots shared by all of a worker's queues; once closed, waiters are turned away. */
class Slots {
  private waiters: ((granted: boolean) => void)[] = [];
  private closed = false;

  constructor(private free: number) {}

  acquire(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next(true);
    else this.free++;
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(false);
  }
}

export class FleetWorker {
  readonly id: string;
  private readonly slots: Slots;
  private readonly stopCells = new AbortController();
  private readonly running = new Set<string>();
  private readonly workers: Worker[] = [];
  private readonly started = new Date().toISOString();
  private advertTimer: NodeJS.Timeout | undefined;
  private draining: Promise<boolean> | undefined;

  private constructor(private readonly o: WorkerOptions, private readonly redis: Redis) {
    this.id = `${o.hostLabel}-${process.pid}`;
    this.slots = new Slots(o.concurrency);
  }

  /** Connects (a FleetError if Redis is unreachable), advertises, and starts taking cells. */
  static async start(o: WorkerOptions): Promise<FleetWorker> {
    const redis = await connectRedis(o.redisUrl, 'worker');
    const w = new FleetWorker(o, redis);
    await w.advertise();
    w.advertTimer = setInterval(() => { void w.advertise(); }, ADVERT_REFRESH_MS);
    for (const q of w.queues()) w.listen(q, (job, token) => w.processCell(job as Job<CellJobData>, token));
    w.listen(CAMPAIGN_QUEUE, (job) => FleetWorker.finishCampaign(job as Job<CampaignJobData>));
    return w;
  }

  /** The queues this host serves: per platform, cells for any host and cells for its label. */
  queues(): string[] {
    return this.o.capabilities.platforms.flatMap((p) => [cellQueue(p, 'any'), cellQueue(p, this.o.hostLabel)]);
  }

  private listen(queue: string, processor: (job: Job, token?: string) => Promise<unknown>): void {
    const worker = new Worker(queue, processor, {
      connection: this.redis,
      prefix: PREFIX,
      concurrency: this.o.concurrency,
      lockDuration: this.o.lockMs,
      stalledInterval: this.o.lockMs,
      maxStalledCount: MAX_STALLED,
    });
    worker.on('error', (e) => { this.o.log(`queue ${queue}: ${e.message}`); });
    worker.on('failed', (job, e) => {
      if (job) this.o.log(`cell ${job.id ?? '?'}: attempt ${job.attemptsMade} failed: ${e.message}`);
    });
    this.workers.push(worker);
  }

  private advertisement(): Advertisement {
    return {
      id: this.id,
      host: this.o.hostLabel,
      machine: hostname(),
      pid: process.pid,
      platforms: this.o.capabilities.platforms,
      queues: this.queues(),
      concurrency: this.o.concurrency,
      started: this.started,
      notes: this.o.capabilities.notes,
      running: [...this.running],
    };
  }

  private async advertise(): Promise<void> {
    try {
      await this.redis.set(workerKey(this.id), JSON.stringify(this.advertisement()), 'EX', ADVERT_TTL_S);
    } catch (e) {
      this.o.log(`advertisement not refreshed: ${(e as Error).message}`);
    }
  }

  /** Gives an active cell back to its queue without spending an attempt, and tells BullMQ so. */
  private static async handBack(job: Job, token: string | undefined): Promise<never> {
    await job.moveToWait(token);
    throw new WaitingError();
  }

  private async processCell(job: Job<CellJobData>, token: string | undefined): Promise<CellJobResult> {
    if (!(await this.slots.acquire())) return FleetWorker.handBack(job, token);
    const { campaignId, cell, timeoutS } = job.data;
    const attempt = job.attemptsMade + 1;
    this.running.add(cell.id);
    void this.advertise();
    this.o.log(`cell ${job.id ?? cell.id}: started (attempt ${attempt})`);
    try {
      const run = await runCell(cellCommand(cell), {
        timeoutS,
        signal: this.stopCells.signal,
        onTick: (s) => {
          job.updateProgress({ worker: this.id, host: this.o.hostLabel, elapsed_s: Math.round(s), duration_s: cell.kind === 'run' ? cell.workload.durationS : null }).catch(() => undefined);
        },
      });
      const stored = await storeResult(this.redis, campaignId, {
        cell, host: this.o.hostLabel, worker: this.id, machine: hostname(), attempt, finished: new Date().toISOString(), exit_code: run.exitCode, summary: run.summary,
      });
      this.o.log(`cell ${job.id ?? cell.id}: done, exit ${run.exitCode}${stored ? '' : ' (an earlier attempt already stored its result; this one is not counted)'}`);
      return { host: this.o.hostLabel, exit_code: run.exitCode, stored };
    } catch (e) {
      if (e instanceof CellStopped) return await FleetWorker.handBack(job, token);
      if (e instanceof CellRejected) throw new UnrecoverableError(e.message);
      throw e;
    } finally {
      this.running.delete(cell.id);
      this.slots.release();
      void this.advertise();
    }
  }

  /** Runs once every cell of a campaign has a result or is dead: records the totals. */
  private static async finishCampaign(job: Job<CampaignJobData>): Promise<{ cells: number; completed: number; dead: number }> {
    const counts = await job.getDependenciesCount({ processed: true, ignored: true });
    return { cells: job.data.cells.length, completed: counts.processed ?? 0, dead: counts.ignored ?? 0 };
  }

  /**
   * Stops taking cells, hands back those not started, waits for the running ones and for Redis to
   * record them. Resolves true when Redis confirmed everything; false when it still had not,
   * lockMs after the last cell ended (Redis unreachable): those cells' claims then lapse and
   * another worker retries them. Idempotent.
   */
  drain(): Promise<boolean> {
    this.draining ??= (async () => {
      this.slots.close();
      const closed = Promise.all(this.workers.map((w) => w.close())).then(() => true);
      await cellsIdle();
      const grace = new Promise<false>((resolve) => { setTimeout(resolve, this.o.lockMs, false).unref(); });
      const confirmed = await Promise.race([closed, grace]);
      clearInterval(this.advertTimer);
      if (confirmed) {
        await this.redis.del(workerKey(this.id)).catch(() => undefined);
        await this.redis.quit().catch(() => undefined);
      } else {
        this.o.log(`Redis did not confirm the last cells within ${this.o.lockMs} ms; leaving them to be retried elsewhere`);
        this.redis.disconnect();
      }
      return confirmed;
    })();
    return this.draining;
  }

  /** As drain(), but kills the running cells and hands them back too. */
  stop(): Promise<boolean> {
    this.stopCells.abort();
    return this.drain();
  }
}
