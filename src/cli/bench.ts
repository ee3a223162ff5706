/** `xvgpu bench`: the benchmark suite and report; `xvgpu bench floor`: the transport floor alone. */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { formatFloor, measureFloor } from '../bench/floor.js';
import { markdown, writeReport } from '../bench/report.js';
import { runSuite } from '../bench/suite.js';
import { xenMarkdown, xenSection, type XenBenchSection } from '../bench/xen.js';
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
  --xen           also run the Xen tier (xen-tier/run.sh: Xen 4.17 under QEMU TCG, scenarios
                  pvh and baseline; about 15 minutes) and add its 'xen' section
  --xen-results DIR
                  add the 'xen' section from an earlier tier run's output directory instead
  -h, --help      show this help

See 'xvgpu bench floor --help' for the floor alone, 'xvgpu bench xen --help' for the Xen section alone.
`;

export const XEN_HELP = `Usage: xvgpu bench xen [options]

Fault service time, guest-visible fault latency and revoke time on real Xen (the Xen tier: Debian's
Xen 4.17 under QEMU TCG, a PVH guest served by xvgpu on the ivshmem VRAM stand-in), each beside a
baseline measured in the same tier run (register ioreqs of the same xvgpu; the same xvgpu and
kernel helper on the soft p2m in the same dom0). Prints the section as Markdown.

Options:
  --results DIR   read an earlier tier run's output (pvh.json, baseline.json) instead of running it
  --out DIR       where the tier run writes its output (default: a new directory under /tmp)
  --hypervisor H  the tier's --hypervisor (default debian)
  --json FILE     also write the section as JSON to FILE ('-' for stdout, Markdown then on stderr)
  -h, --help      show this help

Needs what the tier needs (qemu-system-x86, debootstrap, the Debian kernel; .ci/run installs them).
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
  xen: { type: 'boolean' },
  'xen-results': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const XEN_OPTIONS: Options = {
  results: { type: 'string' },
  out: { type: 'string' },
  hypervisor: { type: 'string' },
  json: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** Scenarios the section reads: pvh (runs a and b) and baseline (the soft p2m in the same dom0). */
const XEN_SCENARIOS = 'pvh,baseline';

/**
 * Runs the Xen tier into `out`, its progress lines to stderr; rejects with the tier's last lines
 * when it fails (a failed tier yields no section: its figures would be partial).
 */
function runXenTier(out: string, hypervisor: string): Promise<void> {
  const script = fileURLToPath(new URL('../../xen-tier/run.sh', import.meta.url));
  process.stderr.write(`running the Xen tier (${XEN_SCENARIOS}) into ${out}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, '--hypervisor', hypervisor, '--scenarios', XEN_SCENARIOS, '--out', out, '--timeout', '1500'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onData = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (line.includes('XVGPU-TIER') || line.startsWith('xen-tier')) process.stderr.write(`  ${line.slice(0, 200)}\n`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`the Xen tier failed (exit ${code ?? 'signal'}); its last lines:\n${tail.join('\n')}`));
    });
  });
}

async function xenSectionFrom(results: string | undefined, out: string | undefined, hypervisor: string): Promise<XenBenchSection> {
  if (results !== undefined) return xenSection(results);
  const dir = out ?? mkdtempSync(join(tmpdir(), 'xvgpu-bench-xen-'));
  await runXenTier(dir, hypervisor);
  return xenSection(dir);
}

async function xenCommand(argv: string[]): Promise<number> {
  const v = parse('bench xen', argv, XEN_OPTIONS);
  if (v.help === true) {
    process.stdout.write(XEN_HELP);
    return 0;
  }
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? v[k] : undefined);
  const section = await xenSectionFrom(str('results'), str('out'), str('hypervisor') ?? 'debian');
  const json = str('json');
  if (json === '-') {
    process.stderr.write(xenMarkdown(section));
    process.stdout.write(`${JSON.stringify(section)}\n`);
  } else {
    process.stdout.write(xenMarkdown(section));
    if (json !== undefined) {
      mkdirSync(dirname(json), { recursive: true });
      writeFileSync(json, `${JSON.stringify(section, null, 2)}\n`);
    }
  }
  return 0;
}

export async function benchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub.startsWith('-')) return suiteCommand(argv);
  if (sub === 'xen') return xenCommand(rest);
  if (sub !== 'floor') throw new UsageError(`unknown benchmark '${sub}' (available: the suite, floor, or xen)`, 'bench');
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
  const xenResults = typeof v['xen-results'] === 'string' ? v['xen-results'] : undefined;
  if (v.xen === true && xenResults !== undefined) throw new UsageError('--xen runs the Xen tier, --xen-results reads an earlier run: give one', 'bench');
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
  if (v.xen === true || xenResults !== undefined) report.xen = await xenSectionFrom(xenResults, undefined, 'debian');
  if (json !== undefined) {
    mkdirSync(dirname(json), { recursive: true });
    writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  }
  if (dir !== undefined) for (const f of writeReport(report, dir)) process.stderr.write(`wrote ${f}\n`);
  process.stdout.write(markdown(report));
  const c = report.correctness;
  return c.stale_accesses === 0 && c.integrity_errors === 0 && c.guest_crashes === 0 ? 0 : 1;
}
