/** `xvgpu run`: the back-end against a platform, with the synthetic guest on the simulated one. */
import { PATTERNS } from '../guest/workload.js';
import { SIMULATED } from '../session/platforms.js';
import { formatSummary, runPassed, runSimulation, simMachine, type Progress, type SimRunOptions } from '../session/simulation.js';
import { PAGE_SIZE, validateMachineConfig } from '../platform/sim/machine.js';
import { formatNs } from '../telemetry/histogram.js';
import { configToArgv, loadConfig } from '../service/config.js';
import { startService } from '../service/lifecycle.js';
import { SERVICE_HELP, SERVICE_OPTIONS, parseServiceArgs, type ServiceArgs } from '../service/options.js';
import { UsageError, choiceOption, intOption, numberOption, parse, sizeOption, type Options } from './args.js';
import { XEN_RUN_HELP, XEN_RUN_OPTIONS, parseXenRunArgs, runXen, type XenRunArgs } from './run-xen.js';

/** Wraps `text` to lines of at most `width` characters, each indented by `indent` spaces. */
function wrap(text: string, indent: number, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.map((l) => `${' '.repeat(indent)}${l}`).join('\n');
}

export const RUN_HELP = `Usage: xvgpu run [options]

Runs the xvgpu back-end: an ioreq server and BAR manager that map host GPU buffer pages into the
guest p2m on fault and revoke them when the host invalidates them. On the simulated platform (the
default) a synthetic guest touches blob pages while host pressure evicts the buffers.

Options:
  --platform sim|linux|xen
                          sim: the embedded simulated platform (default); linux: the real
                          kernel helper (/dev/xvgpu_helper, soft p2m, needs root and the
                          module) with memfd buffers, or DRM buffers with --drm-node;
                          xen: serve a real Xen guest (options below)
  --drm-node PATH         linux: BOs are dumb buffers of this DRM device, e.g. /dev/dri/card0
                          of vgem (stale accesses are then not measurable); xen: the DRM
                          device whose buffers back blobs (default /dev/dri/card0)
  --vcpus N               guest vCPUs, 1-128 (default 2)
  --duration S            seconds to run (default 10)
  --workload NAME         access pattern: ${PATTERNS.join(', ')} (default random)
  --evict-rate HZ         host evictions per second, 0 for none (default 100)
  --mode retry|emulate    answer to a fault: map then retry, or map then emulate (default retry)
  --strategy NAME         fault (xvgpu, default), or a baseline: eager (map whole blobs,
                          revoke whole blobs), emulate-all (no mapping, every access exits)
  --fault-around PAGES    pages mapped per fault, a power of two 1-512 (default 16)
  --no-huge               never map 2 MiB superpages
  --blobs N               blobs placed in the BAR (default 8)
  --blob-size SIZE        bytes per blob, e.g. 4M (default 4M)
  --seed N                workload and eviction seed (default 1)
  --pin auto|none         auto: server thread and its waiter on one CPU (vCPUs float);
                          none: leave placement to the scheduler (default auto)
  --stock-xen             model stock Xen (no retry state; --mode emulate required)
  --json                  print one JSON summary object on stdout
  --log-level LEVEL       pino level for stderr logs (default warn)
  -h, --help              show this help

${XEN_RUN_HELP.trimStart()}${SERVICE_HELP}
What is real and what is simulated:
  sim:
${wrap(SIMULATED.sim, 4)}
  linux (memfd buffers):
${wrap(SIMULATED.memfd, 4)}
  linux --drm-node:
${wrap(SIMULATED.drm, 4)}
A figure a platform cannot measure is printed as null, with the reason in null_reasons.

Exit status: 0 on a clean run, 1 when a check failed (stale access, integrity error, guest crash,
failed host eviction, a page left mapped after the teardown) or the shutdown deadline passed, 2 on
bad usage (or a bad config file), 130 when a second signal cut the shutdown short.
`;

export const RUN_OPTIONS: Options = {
  platform: { type: 'string' },
  'drm-node': { type: 'string' },
  vcpus: { type: 'string' },
  duration: { type: 'string' },
  workload: { type: 'string' },
  'evict-rate': { type: 'string' },
  mode: { type: 'string' },
  strategy: { type: 'string' },
  'fault-around': { type: 'string' },
  'no-huge': { type: 'boolean' },
  blobs: { type: 'string' },
  'blob-size': { type: 'string' },
  seed: { type: 'string' },
  pin: { type: 'string' },
  'stock-xen': { type: 'boolean' },
  json: { type: 'boolean' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  ...XEN_RUN_OPTIONS,
  ...SERVICE_OPTIONS,
};

type SimRunArgs = SimRunOptions & { json: boolean; logLevel: string };
export type RunArgs = (SimRunArgs | XenRunArgs) & { readonly service: ServiceArgs };

/** The options of --config FILE (if given) first, then the command line's, which win. */
function withConfigFile(argv: string[]): Record<string, string | boolean | undefined> {
  const v = parse('run', argv, RUN_OPTIONS);
  if (typeof v.config !== 'string') return v;
  const fromFile = configToArgv(loadConfig(v.config));
  return parse('run', [...fromFile, ...argv], RUN_OPTIONS);
}

export function parseRunArgs(argv: string[]): RunArgs | 'help' {
  const cmd = 'run';
  const v = withConfigFile(argv);
  if (v.help === true) return 'help';
  const service = parseServiceArgs(v);
  const platform = choiceOption(cmd, 'platform', v.platform, 'sim', ['sim', 'linux', 'xen'] as const);
  const drmNode = v['drm-node'];
  if (typeof drmNode === 'string' && (platform === 'sim' || drmNode === '')) throw new UsageError('--drm-node PATH needs --platform linux or xen and a device path', cmd);
  const faultAround = intOption(cmd, 'fault-around', v['fault-around'], 16, 1, 512);
  if ((faultAround & (faultAround - 1)) !== 0) throw new UsageError(`--fault-around must be a power of two, got ${faultAround}`, cmd);
  const hugePages = v['no-huge'] !== true;
  const json = v.json === true;
  const logLevel = choiceOption(cmd, 'log-level', v['log-level'], 'warn', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const);
  if (platform === 'xen') return { ...parseXenRunArgs(v, { faultAround, hugePages, json, logLevel }), service };
  const xenOnly = Object.keys(XEN_RUN_OPTIONS).find((k) => v[k] !== undefined);
  if (xenOnly !== undefined) throw new UsageError(`--${xenOnly} needs --platform xen`, cmd);
  const blobSize = sizeOption(cmd, 'blob-size', v['blob-size'], 4 * 1024 * 1024, 4096, 1024 ** 3);
  if (blobSize % 4096 !== 0) throw new UsageError('--blob-size must be a multiple of 4096', cmd);
  const blobs = intOption(cmd, 'blobs', v.blobs, 8, 1, 256);
  if (blobs * blobSize > 4 * 1024 ** 3) throw new UsageError('--blobs x --blob-size must stay within 4 GiB', cmd);
  const vcpus = intOption(cmd, 'vcpus', v.vcpus, 2, 1, 128);
  checkSimulatorHolds(cmd, vcpus, blobs, blobSize, String(v['blob-size'] ?? blobSize));
  const mode = choiceOption(cmd, 'mode', v.mode, 'retry', ['retry', 'emulate'] as const);
  const stockXen = v['stock-xen'] === true;
  if (stockXen && mode === 'retry') throw new UsageError('--stock-xen has no retry state: use --mode emulate', cmd);
  return {
    platform,
    ...(typeof drmNode === 'string' ? { drmNode } : {}),
    vcpus,
    durationS: numberOption(cmd, 'duration', v.duration, 10, 0.1, 86400),
    workload: choiceOption(cmd, 'workload', v.workload, 'random', PATTERNS),
    evictRate: numberOption(cmd, 'evict-rate', v['evict-rate'], 100, 0, 100_000),
    mode,
    strategy: choiceOption(cmd, 'strategy', v.strategy, 'fault', ['fault', 'eager', 'emulate-all'] as const),
    faultAround,
    hugePages,
    blobs,
    blobSize,
    seed: intOption(cmd, 'seed', v.seed, 1, 0, 2 ** 31),
    pin: choiceOption(cmd, 'pin', v.pin, 'auto', ['auto', 'none'] as const),
    stockXen,
    json,
    logLevel,
    service,
  };
}

/** The simulated machine (host memory, BAR) has fixed limits: say so in one line, before allocating. */
function checkSimulatorHolds(cmd: string, vcpus: number, blobs: number, blobSize: number, sizeText: string): void {
  const m = simMachine({ vcpus, blobs, blobSize });
  try {
    validateMachineConfig(m);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    const mib = (frames: number): number => Math.ceil((frames * PAGE_SIZE) / 2 ** 20);
    throw new UsageError(`--blobs ${blobs} x --blob-size ${sizeText} needs ${mib(m.hostFrames)} MiB of simulated host memory and a ${mib(m.barPages)} MiB BAR; the simulator holds up to 4096 MiB of each (${e.message})`, cmd);
  }
}

export async function runCommand(argv: string[]): Promise<number> {
  const opts = parseRunArgs(argv);
  if (opts === 'help') {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const svc = await startService(opts.service, opts.logLevel, opts.platform === 'xen' ? opts.domid : SIM_DOMID);
  const live = process.stderr.isTTY && !opts.json && opts.service.logFile === undefined ? statusLine : undefined;
  let code = 70;
  try {
    if (opts.platform === 'xen') {
      code = await runXen(opts, svc.log, svc.signal, svc.onBackend);
      return code;
    }
    const summary = await runSimulation({ ...opts, onBackend: svc.onBackend }, svc.log, live, svc.signal);
    if (live) process.stderr.write('\r\x1b[K');
    process.stdout.write(opts.json ? `${JSON.stringify(summary)}\n` : `${formatSummary(summary)}\n`);
    code = runPassed(summary) ? 0 : 1;
    return code;
  } finally {
    await svc.finish(code);
  }
}

/** The simulated guest's domain id (SimXen's). */
const SIM_DOMID = 1;

function statusLine(p: Progress): void {
  process.stderr.write(
    `\r\x1b[K[${p.elapsedS.toFixed(1)} s] faults ${p.faults}  revokes ${p.revokes}  evictions ${p.evictions}  resident ${p.residentPages} pages  service p50 ${formatNs(p.faultP50)}`,
  );
}
