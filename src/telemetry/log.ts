/** Structured logging (pino). Logs go to stderr so stdout stays free for --json output. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.XVGPU_LOG ?? 'warn'): Logger {
  return pino({ name: 'xvgpu', level }, pino.destination(2));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
