/**
 * The service's life: logs, the metrics endpoint, and the signals.
 *
 *  - SIGTERM / SIGINT: abort the run (the caller stops taking ioreqs, answers those in flight,
 *    revokes every mapping and destroys the ioreq server) and arm the deadline; a second signal,
 *    or the deadline passing, exits at once with a log line: 130 and 1 respectively.
 *  - SIGHUP: reopen the log file.
 *
 * Nothing survives the process: a restart builds every piece of state again, and a crash or kill
 * leaves the guest's p2m to the kernel helper, whose release() revokes what the process had mapped.
 */
import type { Logger } from 'pino';
import type { Backend } from '../backend.js';
import { createServiceLog, guestLogger, type ServiceLog } from './logging.js';
import type { ServiceArgs } from './options.js';

/** Exit status when a second signal cuts the shutdown short (128 + SIGINT, as the CLI did before). */
export const EXIT_SECOND_SIGNAL = 130;
/** Exit status when the shutdown did not finish within --shutdown-timeout. */
export const EXIT_DEADLINE = 1;

export interface ServiceRun {
  /** The guest's logger (every line has its domid). */
  readonly log: Logger;
  /** Aborted by the first SIGTERM/SIGINT. */
  readonly signal: AbortSignal;
  /** Where the run hands its back-end, for the metrics. */
  readonly onBackend: (b: Backend) => void;
  /** The metrics port actually bound (undefined without --metrics). */
  readonly metricsPort: number | undefined;
  /** Closes the endpoint, removes the handlers, disarms the deadline; logs the exit status. */
  finish(exitCode: number, fields?: Record<string, unknown>): Promise<void>;
}

export interface ServiceHooks {
  /** Exits the process (tests replace it). */
  readonly exit: (code: number) => void;
  readonly stderrIsTTY: boolean;
}

const PROCESS_HOOKS: ServiceHooks = { exit: (code) => process.exit(code), stderrIsTTY: process.stderr.isTTY };

export async function startService(s: ServiceArgs, level: string, domid: number, hooks: ServiceHooks = PROCESS_HOOKS): Promise<ServiceRun> {
  const logs = createServiceLog({ level, file: s.logFile, format: s.logFormat }, hooks.stderrIsTTY);
  const log = guestLogger(logs.log, domid);
  let backend: Backend | undefined;
  // prom-client loads only when metrics are asked for: it is most of the start-up time otherwise.
  const m = s.metrics === undefined ? undefined : await import('./metrics.js');
  const metrics = m && s.metrics ? await m.serveMetrics(m.createMetricsRegistry(() => backend, domid), s.metrics) : undefined;
  if (metrics) log.info({ address: s.metrics?.host, port: metrics.port }, 'metrics at /metrics');
  const signals = installSignals(log, logs, s.shutdownTimeoutS, hooks.exit);
  return {
    log,
    signal: signals.abort.signal,
    onBackend: (b) => { backend = b; },
    metricsPort: metrics?.port,
    finish: async (exitCode, fields = {}) => {
      signals.remove();
      await metrics?.close();
      log.info({ ...fields, exitCode }, 'exiting');
      logs.flush();
    },
  };
}

function installSignals(log: Logger, logs: ServiceLog, timeoutS: number, exit: (code: number) => void): { abort: AbortController; remove(): void } {
  const abort = new AbortController();
  let deadline: NodeJS.Timeout | undefined;
  const forceExit = (code: number, fields: Record<string, unknown>, msg: string): void => {
    log.error(fields, msg);
    logs.flush();
    exit(code);
  };
  const onStop = (sig: NodeJS.Signals): void => {
    if (abort.signal.aborted) {
      forceExit(EXIT_SECOND_SIGNAL, { signal: sig }, 'second signal: exiting now, before the shutdown finished (the kernel helper release revokes what is left)');
      return;
    }
    log.info({ signal: sig, timeoutS }, 'stopping: no new ioreqs, answering those in flight, revoking every mapping');
    abort.abort();
    deadline = setTimeout(() => {
      forceExit(EXIT_DEADLINE, { timeoutS }, 'shutdown deadline passed: exiting now (the kernel helper release revokes what is left)');
    }, timeoutS * 1000);
  };
  const onHup = (): void => {
    logs.reopen();
    log.info('SIGHUP: log file reopened');
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onHup);
  return {
    abort,
    remove: () => {
      if (deadline) clearTimeout(deadline);
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      process.off('SIGHUP', onHup);
    },
  };
}
