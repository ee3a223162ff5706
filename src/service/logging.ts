/**
 * The service's logs: pino, JSON lines by default, pino-pretty when they go to a terminal (or with
 * --log-format pretty). To stderr, or appended to --log-file, which `reopen()` (SIGHUP) opens again
 * so logrotate can move the old file away. Writes are synchronous: a line is on disk before a crash.
 */
import { pino, type Logger } from 'pino';
import { createRequire } from 'node:module';

export interface LogOptions {
  readonly level: string;
  readonly file: string | undefined;
  readonly format: 'json' | 'pretty' | undefined;
}

export interface ServiceLog {
  readonly log: Logger;
  /** Opens --log-file again (after logrotate moved it); a no-op on stderr. */
  reopen(): void;
  /** Writes out what is buffered. */
  flush(): void;
}

/** pretty only for a terminal unless asked: JSON is what a collector parses. */
export function logFormat(o: LogOptions, stderrIsTTY: boolean): 'json' | 'pretty' {
  return o.format ?? (o.file === undefined && stderrIsTTY ? 'pretty' : 'json');
}

export function createServiceLog(o: LogOptions, stderrIsTTY = process.stderr.isTTY): ServiceLog {
  const dest: ReturnType<typeof pino.destination> = o.file === undefined ? pino.destination({ dest: 2, sync: true }) : pino.destination({ dest: o.file, append: true, sync: true, mkdir: true });
  const stream = logFormat(o, stderrIsTTY) === 'pretty' ? loadPretty()({ destination: dest, colorize: o.file === undefined && stderrIsTTY, sync: true }) : dest;
  const log = pino({ name: 'xvgpu', level: o.level }, stream);
  return {
    log,
    reopen: () => { if (o.file !== undefined) dest.reopen(); },
    flush: () => { dest.flushSync(); },
  };
}

/** pino-pretty, loaded only for a terminal (it is a large module tree). */
function loadPretty(): typeof import('pino-pretty') {
  return createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
}

/** The logger of one guest's back-end: every line carries its domid. */
export function guestLogger(log: Logger, domid: number): Logger {
  return log.child({ domid });
}
