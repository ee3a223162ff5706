/**
 * The fleet suite's world: a real redis-server on a loopback port with its own temp dir (AOF on,
 * fsync on every write, noeviction), fleet workers as real `xvgpu fleet worker` processes, and a
 * clean-up that kills every process the suite started, including the `xvgpu run` children of a
 * worker that was SIGKILLed (found by a marker in their environment).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { distFile } from '../../src/util/dist-path.js';

export const CLI = distFile('cli/main.js');
/** Every process the suite starts carries this in its environment, and so do their children. */
const MARKER = `XVGPU_FLEET_TEST=${randomUUID()}`;
const TEST_ENV = { ...process.env, XVGPU_FLEET_TEST: MARKER.split('=')[1] };

/** Throws (fails the suite) if redis-server is not installed: this suite never mocks Redis. */
export function requireRedisServer(): void {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`the fleet suite needs a real redis-server and none is installed here (${r.error?.message ?? r.stderr}); Debian: apt-get install redis-server`);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => { resolve(typeof addr === 'object' && addr ? addr.port : 0); });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 100 ms until it returns a value other than undefined, or `what` times out. */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.on('error', () => { resolve(false); });
    s.on('connect', () => { s.write('PING\r\n'); });
    s.on('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
  });
}

export class RedisServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'xvgpu-fleet-redis-'));
  private proc: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RedisServer> {
    requireRedisServer();
    const r = new RedisServer(await freePort());
    await r.launch();
    return r;
  }

  /** (Re)starts redis-server on the same port and dir: an AOF left there is replayed. */
  async launch(): Promise<void> {
    this.proc = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '',
      '--maxmemory-policy', 'noeviction', '--logfile', join(this.dir, 'redis.log'),
    ], { stdio: 'ignore', env: TEST_ENV });
    await until('redis-server to answer PING', async () => ((await pingOnce(this.port)) ? true : undefined), 20_000);
  }

  /** SIGKILL: no shutdown save; only what the AOF already holds survives. */
  async crash(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  async client(): Promise<Redis> {
    const c = new Redis(this.url, { maxRetriesPerRequest: null });
    await c.ping();
    return c;
  }

  async destroy(): Promise<void> {
    await this.crash();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class WorkerProc {
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(readonly label: string, readonly proc: ChildProcess) {
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    this.exited = new Promise((r) => proc.once('exit', (code) => { r(code); }));
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get id(): string {
    return `${this.label}-${this.pid}`;
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }
}

/** Starts `xvgpu fleet worker` and waits until it serves its queues. */
export async function startWorker(url: string, label: string, ...extra: string[]): Promise<WorkerProc> {
  const proc = spawn(process.execPath, [CLI, 'fleet', 'worker', '--redis', url, '--host-label', label, '--lock-ms', '2000', ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: TEST_ENV,
  });
  const w = new WorkerProc(label, proc);
  await until(`worker ${label} to be ready`, () => (w.stderr.includes('ready: serving') ? true : proc.exitCode !== null ? (() => { throw new Error(`worker ${label} exited: ${w.stderr}`); })() : undefined));
  return w;
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI to completion (asynchronously, so workers keep being serviced meanwhile). */
export function cli(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: TEST_ENV });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    p.on('close', (code) => { resolve({ code, stdout, stderr }); });
  });
}

const tempDirs: string[] = [];

/** Removes the temp dirs campaignFile() made. */
export function removeCampaignFiles(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Writes a campaign object as JSON into a fresh temp dir and returns its path. */
export function campaignFile(campaign: unknown, name = 'campaign.json'): string {
  const dir = mkdtempSync(join(tmpdir(), 'xvgpu-fleet-campaign-'));
  tempDirs.push(dir);
  const path = join(dir, name);
  writeFileSync(path, typeof campaign === 'string' ? campaign : JSON.stringify(campaign));
  return path;
}

/** A tiny inline workload for test campaigns. */
export function tinyWorkload(name: string, durationS: number): Record<string, unknown> {
  return { name, pattern: 'random', blobs: 1, blob_size: 1048576, evict_rate: 100, duration_s: durationS };
}

/** SIGKILLs every process started by this suite (workers, cells, redis), wherever it was reparented. */
export function killEverything(): void {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (env.split('\0').includes(MARKER) && Number(pid) !== process.pid) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
}
