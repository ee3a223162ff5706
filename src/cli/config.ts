/** `xvgpu config check FILE`: every problem of a service config file, each with its JSON path. */
import { ConfigFileError, decodeConfig, semanticProblems, type ConfigProblem } from '../service/config.js';
import { readFileSync } from 'node:fs';
import { UsageError } from './args.js';
import { parseRunArgs } from './run.js';

export const CONFIG_HELP = `Usage: xvgpu config check FILE

Validates a service config file (JSON; keys are the long option names of 'xvgpu run', e.g.
{"platform": "xen", "domid": 5, "bar-gfn": "0xe0000", "metrics": "127.0.0.1:9464"}). Prints each
problem as FILE: PATH: MESSAGE (PATH is a JSON path such as $.bar-size); unknown keys are problems.

Exit status: 0 when the file is valid, 1 when it has problems, 2 on bad usage.
`;

/** The problems of the file at `file` (empty: valid). */
export function checkConfigFile(file: string): ConfigProblem[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return [{ path: '$', message: `cannot read: ${(e as Error).message}` }];
  }
  try {
    const c = decodeConfig(text, file);
    return semanticProblems(c, (argv) => { parseRunArgs(argv); });
  } catch (e) {
    if (e instanceof ConfigFileError) return [...e.problems];
    throw e;
  }
}

export function configCommand(argv: string[]): number {
  const [sub, file, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === undefined) {
    process.stdout.write(CONFIG_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'check') throw new UsageError(`unknown config command '${sub}'`, 'config');
  if (file === undefined || rest.length > 0) throw new UsageError('config check takes one FILE', 'config');
  const problems = checkConfigFile(file);
  for (const p of problems) process.stdout.write(`${file}: ${p.path}: ${p.message}\n`);
  if (problems.length === 0) process.stdout.write(`${file}: valid\n`);
  return problems.length === 0 ? 0 : 1;
}
