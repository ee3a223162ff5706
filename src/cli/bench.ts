/** `xvgpu bench`: the benchmark suite and report; `xvgpu bench floor`: the transport floor alone. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { formatFloor, measureFloor } from '../bench/floor.js';
import { markdown, writeReport } from '../bench/report.js';
import { runSuite } from '../bench/suite.js';
import { createLogger } from '../telemetry/log.js';
import { UsageError, intOption, parse, type Options } from './args.js';

export const SUITE_HELP = `Usage: xvgpu bench [options]

Runs every strategy (emulate-all, eager, and xvgpu's fault path in retry and emulate modes with
fault-around 1, 16 and 512) on the same workloads: a copy sweep (every byte of one blob written and
read back, 8 MiB; 1 MiB with --quick), a touch sweep (one write per page of a 64 MiB blob), random
touches over 1 GiB of blobs (256 MiB with --quick), a hot set under host eviction, and vCPU scaling
1-8. Every run measures its own floor (the same exit and wakes to a handler that does nothing); the
transport floors of 'xvgpu bench floor' are measured in the same process as context.

Options:
  --quick         a short run (about a minute): one run per scenario, smaller workloads
  --repeat N      runs per scenario (default 3, 1 with --quick)
  --json FILE     write the report JSON to FILE
  --report DIR    write report.json, summary.md, index.html and the plots (SVG + PNG) to DIR
  -h, --help      show this help

See 'xvgpu bench floor --help' for the floor alone.
`;

export const BENCH_HELP = `Usage: xvgpu bench floor [options]

Measures the cost of each wake path with no work attached (native futex / eventfd / epoll round
trips, the waiter's ThreadSafeFunction path to JavaScript and back, Atomics between the main thread
and a worker), each on one CPU, across two CPUs and unpinned.

Options:
  --rounds N      round trips per case (default 20000)
  --json FILE     also write the results as JSON to FILE ('-' for stdout, table then on stderr)
  -h, --help      show this help
`;

const OPTIONS: Options = { rounds: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' } };

const SUITE_OPTIONS: Options = {
  quick: { type: 'boolean' },
  repeat: { type: 'string' },
  json: { type: 'string' },
  report: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export async function benchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub.startsWith('-')) return suiteCommand(argv);
  if (sub !== 'floor') throw new UsageError(`unknown benchmark '${sub}' (available: the suite, or floor)`, 'bench');
  const v = parse('bench', rest, OPTIONS);
  if (v.help === true) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  const rounds = intOption('bench floor', 'rounds', v.rounds, 20_000, 100, 10_000_000);
  const json = typeof v.json === 'string' ? v.json : undefined;
  const addon = createRequire(import.meta.url).resolve('../../build/Release/xvgpu_native.node');
  const report = await measureFloor(rounds, addon, (c) => {
    process.stderr.write(`  measured ${c.name} (${c.placement}): p50 ${(c.p50 / 1000).toFixed(2)} us\n`);
  });
  const table = `${formatFloor(report)}\n`;
  if (json === '-') {
    process.stderr.write(table);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    process.stdout.write(table);
    if (json !== undefined) {
    mkdirSync(dirname(json), { recursive: true });
    writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  }
  }
  return 0;
}

async function suiteCommand(argv: string[]): Promise<number> {
  const v = parse('bench', argv, SUITE_OPTIONS);
  if (v.help === true) {
    process.stdout.write(SUITE_HELP);
    return 0;
  }
  const quick = v.quick === true;
  const repeats = intOption('bench', 'repeat', v.repeat, quick ? 1 : 3, 1, 20);
  const json = typeof v.json === 'string' ? v.json : undefined;
  const dir = typeof v.report === 'string' ? v.report : undefined;
  const tty = process.stderr.isTTY;
  const report = await runSuite(
    {
      quick,
      repeats,
      floorRounds: quick ? 5000 : 20_000,
      command: `xvgpu bench ${argv.join(' ')}`.trim(),
      onProgress: (line) => { process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`); },
    },
    createLogger('error'),
  );
  if (tty) process.stderr.write('\r\x1b[K');
  if (json !== undefined) {
    mkdirSync(dirname(json), { recursive: true });
    writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  }
  if (dir !== undefined) for (const f of writeReport(report, dir)) process.stderr.write(`wrote ${f}\n`);
  process.stdout.write(markdown(report));
  const c = report.correctness;
  return c.stale_accesses === 0 && c.integrity_errors === 0 && c.guest_crashes === 0 ? 0 : 1;
}
