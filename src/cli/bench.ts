/** `xvgpu bench floor`: the transport floor of this machine (the benchmark suite builds on it). */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { formatFloor, measureFloor } from '../bench/floor.js';
import { UsageError, intOption, parse, type Options } from './args.js';

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

export async function benchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  if (sub !== 'floor') throw new UsageError(`unknown benchmark '${sub}' (available: floor)`, 'bench');
  const v = parse('bench', rest, OPTIONS);
  if (v.help === true) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  const rounds = intOption('bench', 'rounds', v.rounds, 20_000, 100, 10_000_000);
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
    if (json !== undefined) writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  }
  return 0;
}
