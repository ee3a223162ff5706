/** Drives `xvgpu run --config FILE` as a child process: its JSON log lines, its metrics, its exit. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { distFile } from '../../src/util/dist-path.js';

export type LogLine = Record<string, unknown> & { msg?: string };

export interface ServiceChild {
  readonly child: ChildProcessWithoutNullStreams;
  /** Every stderr line so far, parsed (a line that is not JSON throws in the reader). */
  readonly lines: LogLine[];
  stdout(): string;
  /** Resolves with the first log line `match` accepts, waiting for more lines as they come. */
  waitFor(match: (l: LogLine) => boolean): Promise<LogLine>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'xvgpu-service-'));
}

export function writeConfig(dir: string, config: Record<string, unknown>): string {
  const file = join(dir, 'xvgpu.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

export function startService(args: string[]): ServiceChild {
  const child = spawn(process.execPath, [distFile('cli/main.js'), 'run', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let out = '';
  let partial = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const text of parts) {
      const line = JSON.parse(text) as LogLine;
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => { resolve({ code, signal }); });
  });
  return {
    child,
    lines,
    stdout: () => out,
    exit,
    waitFor: (match) => {
      const hit = lines.find(match);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        waiters.push({ match, resolve });
        void exit.then(({ code }) => { reject(new Error(`xvgpu exited (${String(code)}) before the log line came; stderr: ${JSON.stringify(lines)}`)); });
      });
    },
  };
}

/** Prometheus text → sample value by `name{labels}` exactly as printed. */
export async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}
