/**
 * The options that make `xvgpu run` a service: a config file, the metrics endpoint, the log file and
 * format, and the shutdown deadline. Checked here, one line and exit 2 on a bad value.
 */
import { isIP } from 'node:net';
import { UsageError, choiceOption, numberOption, type Options } from '../cli/args.js';

export const SERVICE_OPTIONS: Options = {
  config: { type: 'string' },
  metrics: { type: 'string' },
  'metrics-allow-remote': { type: 'boolean' },
  'log-file': { type: 'string' },
  'log-format': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
};

export const SERVICE_HELP = `
Service options (docs/operations.md, "Running as a service"):
  --config FILE           read options from a JSON file (keys are these option names); options
                          on the command line win; 'xvgpu config check FILE' validates one
  --metrics ADDR:PORT     serve Prometheus metrics at http://ADDR:PORT/metrics (port 0: any free
                          port, logged at info level); ADDR must be a
                          loopback address (127.0.0.0/8, ::1, localhost) unless
  --metrics-allow-remote  is given too
  --log-file PATH         append logs to PATH instead of stderr; SIGHUP reopens it (logrotate)
  --log-format json|pretty
                          default: pretty when logs go to a terminal, json otherwise
  --shutdown-timeout S    on SIGTERM/SIGINT, seconds to revoke everything and exit 0 before
                          exiting 1 anyway (default 15); a second signal exits 1 at once
`;

export interface MetricsListen {
  readonly host: string;
  readonly port: number;
}

export interface ServiceArgs {
  readonly metrics: MetricsListen | undefined;
  readonly logFile: string | undefined;
  readonly logFormat: 'json' | 'pretty' | undefined;
  readonly shutdownTimeoutS: number;
}

type Values = Record<string, string | boolean | undefined>;

export function parseServiceArgs(v: Values): ServiceArgs {
  const cmd = 'run';
  const allowRemote = v['metrics-allow-remote'] === true;
  if (allowRemote && v.metrics === undefined) throw new UsageError('--metrics-allow-remote needs --metrics ADDR:PORT', cmd);
  const logFile = v['log-file'];
  if (logFile === '') throw new UsageError('--log-file needs a path', cmd);
  const format = v['log-format'] === undefined ? undefined : choiceOption(cmd, 'log-format', v['log-format'], 'json', ['json', 'pretty'] as const);
  return {
    metrics: typeof v.metrics === 'string' ? parseListen(v.metrics, allowRemote) : undefined,
    logFile: typeof logFile === 'string' ? logFile : undefined,
    logFormat: format,
    shutdownTimeoutS: numberOption(cmd, 'shutdown-timeout', v['shutdown-timeout'], 15, 0.1, 3600),
  };
}

/** `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`; non-loopback only with `allowRemote`. */
export function parseListen(text: string, allowRemote: boolean): MetricsListen {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/i.exec(text);
  const port = m ? Number(m[3]) : NaN;
  const rawHost = m?.[1] ?? m?.[2];
  if (rawHost === undefined || !(port >= 0 && port <= 65535)) throw new UsageError(`--metrics must be ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464), got '${text}'`, 'run');
  const host = rawHost === 'localhost' ? '127.0.0.1' : rawHost;
  if (isIP(host) === 0) throw new UsageError(`--metrics: '${rawHost}' is not an IP address (or localhost)`, 'run');
  if (!allowRemote && !isLoopback(host)) throw new UsageError(`--metrics ${text} is not a loopback address: metrics reveal guest activity, so a non-loopback address needs --metrics-allow-remote`, 'run');
  return { host, port };
}

export function isLoopback(ip: string): boolean {
  if (isIP(ip) === 4) return ip.startsWith('127.');
  const v6 = ip.toLowerCase();
  if (v6 === '::1') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v6)?.[1];
  return mapped !== undefined && mapped.startsWith('127.');
}
