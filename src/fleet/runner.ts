/**
 * Runs one cell as an `xvgpu run` or `xvgpu bench` child process: the worker process itself never runs the
 * back-end, so a crash, a hang or a native fault in a cell costs that child only. Each child gets
 * its own process group, so a Ctrl-C or a SIGTERM aimed at the worker's group does not cut a
 * measurement short; the worker decides what happens to its cells (drain, or stop them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { distFile } from '../util/dist-path.js';
import { benchArgs, runArgs, type Cell } from './campaign.js';

/** A cell attempt that failed and may succeed on a retry (crash, timeout, unreadable output). */
export class CellFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CellFailure';
  }
}

/** `xvgpu run` or `xvgpu bench` rejected its arguments (exit 2): retrying cannot help. */
export class CellRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CellRejected';
  }
}

/** The worker stopped the cell (a forced shutdown): not the cell's fault, not an attempt. */
export class CellStopped extends Error {
  constructor() {
    super('stopped by the worker');
    this.name = 'CellStopped';
  }
}

export interface CellRunOptions {
  readonly timeoutS: number;
  /** Called about once a second with the seconds since the child started. */
  readonly onTick: (elapsedS: number) => void;
  /** Aborting stops the child at once (CellStopped). */
  readonly signal: AbortSignal;
}

export interface CellRun {
  /** 0: a clean run; 1: the run finished but a check failed (its summary says which). */
  readonly exitCode: number;
  /** A run cell's JSON summary, or a bench cell's whole report (schema xvgpu-bench/2). */
  readonly summary: Record<string, unknown>;
}

/** How to run one cell: the `xvgpu` arguments, where its result comes from, what to clean up. */
export interface CellCommand {
  readonly argv: readonly string[];
  /** Reads the result of a child that exited 0 or 1; a CellFailure when there is none. */
  readonly result: (stdout: string) => Record<string, unknown>;
  readonly cleanup: () => void;
}

const BENCH_SCHEMA = 'xvgpu-bench/2';

/** A run cell prints its summary on stdout; a bench cell writes its report to a private temporary file. */
export function cellCommand(cell: Cell): CellCommand {
  if (cell.kind === 'run') return { argv: runArgs(cell), result: parseSummary, cleanup: () => undefined };
  const dir = mkdtempSync(join(tmpdir(), 'xvgpu-fleet-bench-'));
  const file = join(dir, 'report.json');
  return { argv: benchArgs(cell, file), result: () => readBenchReport(file), cleanup: () => { rmSync(dir, { recursive: true, force: true }); } };
}


const live = new Set<ChildProcess>();
let idleWaiters: (() => void)[] = [];

/** Resolves once no cell child process is running. */
export function cellsIdle(): Promise<void> {
  return live.size === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
}

function forget(child: ChildProcess): void {
  live.delete(child);
  if (live.size > 0) return;
  for (const w of idleWaiters) w();
  idleWaiters = [];
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // already gone
  }
}

/** Kills every cell still running (the worker is exiting without draining). */
export function killAllCells(): void {
  for (const c of live) killGroup(c, 'SIGKILL');
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '';
}

/** The last line of a child's stderr, short enough for a one-line error. */
const reason = (stderr: string): string => lastLine(stderr).slice(0, 300);

function parseSummary(stdout: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(lastLine(stdout));
  } catch {
    v = undefined;
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  throw new CellFailure(`xvgpu run printed no JSON summary (stdout: '${lastLine(stdout).slice(0, 80)}')`);
}

function readBenchReport(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CellFailure(`xvgpu bench wrote no readable report: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const schema = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>).schema : undefined;
  if (schema !== BENCH_SCHEMA) throw new CellFailure(`xvgpu bench wrote a report of schema '${String(schema)}', not ${BENCH_SCHEMA}`);
  return v as Record<string, unknown>;
}

/** Runs `xvgpu <argv>` and returns its result, or throws one of the errors above; cleans up either way. */
export async function runCell(cmd: CellCommand, o: CellRunOptions): Promise<CellRun> {
  try {
    return await runChild(cmd, o);
  } finally {
    cmd.cleanup();
  }
}

async function runChild(cmd: CellCommand, o: CellRunOptions): Promise<CellRun> {
  const what = `xvgpu ${cmd.argv[0] ?? ''}`;
  const child = spawn(process.execPath, [distFile('cli/main.js'), ...cmd.argv], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-8192); });
  let ended: 'timeout' | 'stopped' | undefined;
  const t0 = performance.now();
  const tick = setInterval(() => { o.onTick((performance.now() - t0) / 1000); }, 1000);
  const timer = setTimeout(() => { ended = 'timeout'; killGroup(child, 'SIGKILL'); }, o.timeoutS * 1000);
  const onAbort = (): void => { ended ??= 'stopped'; killGroup(child, 'SIGKILL'); };
  o.signal.addEventListener('abort', onAbort);
  if (o.signal.aborted) onAbort();
  try {
    const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => { resolve([c, s]); });
    });
    if (ended === 'stopped') throw new CellStopped();
    if (ended === 'timeout') throw new CellFailure(`timed out after ${o.timeoutS} s`);
    if (code === 2) throw new CellRejected(`${what} rejected the cell: ${reason(stderr)}`);
    if (code === 0 || code === 1) return { exitCode: code, summary: cmd.result(stdout) };
    throw new CellFailure(`${what} ${sig !== null ? `was killed by ${sig}` : `exited with status ${String(code)}`}: ${reason(stderr)}`);
  } finally {
    clearInterval(tick);
    clearTimeout(timer);
    o.signal.removeEventListener('abort', onAbort);
    forget(child);
  }
}
