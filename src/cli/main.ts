#!/usr/bin/env node
/** The `xvgpu` command: dispatches to sub-commands; bad usage is one line on stderr and exit 2. */
import { UsageError } from './args.js';
import { SUITE_HELP, benchCommand } from './bench.js';
import { CONFIG_HELP, configCommand } from './config.js';
import { ConfigFileError } from '../service/config.js';
import { FLEET_HELP, fleetCommand } from './fleet.js';
import { RUN_HELP, runCommand } from './run.js';
import { XEN_INFO_HELP, xenInfoCommand } from './xen-info.js';
import { ConfigError } from '../backend.js';

const HELP = `Usage: xvgpu <command> [options]

Commands:
  run       run the back-end (simulated platform by default) with a synthetic guest
  bench     the benchmark suite and report ('xvgpu bench floor': the transport floor alone)
  xen-info  what this Xen host offers xvgpu (version, domctl interface, extension, kernel helper)
  fleet     benchmark campaigns across many hosts, queued in Redis (worker, submit, status, results)
  config    'xvgpu config check FILE': validate a service config file (run --config FILE)
  help      show this help, or 'xvgpu help <command>'

Run 'xvgpu <command> --help' for a command's options.
`;

const HELPS: Record<string, string> = { run: RUN_HELP, bench: SUITE_HELP, 'xen-info': XEN_INFO_HELP, fleet: FLEET_HELP, config: CONFIG_HELP };

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h': {
      const topic = rest[0];
      process.stdout.write(topic !== undefined && HELPS[topic] !== undefined ? HELPS[topic] : HELP);
      return 0;
    }
    case 'run':
      return runCommand(rest);
    case 'bench':
      return benchCommand(rest);
    case 'xen-info':
      return xenInfoCommand(rest);
    case 'fleet':
      return fleetCommand(rest);
    case 'config':
      return configCommand(rest);
    default:
      throw new UsageError(`unknown command '${cmd}'`, '');
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    if (e instanceof UsageError || e instanceof ConfigError || e instanceof ConfigFileError) {
      const hint = e instanceof UsageError ? ` (see 'xvgpu ${e.command ? `${e.command} ` : ''}--help')` : '';
      process.stderr.write(`xvgpu: ${e.message}${hint}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`xvgpu: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 70;
  },
);
