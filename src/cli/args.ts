/** Argument parsing helpers: every bad value becomes a UsageError (one line, exit code 2). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(message: string, readonly command: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(command: string, argv: string[], options: Options): Record<string, string | boolean | undefined> {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0] ?? ''}'`, command);
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    // node's messages are long and mention internals; keep the first sentence.
    const msg = (e as Error).message.split('\n')[0]?.replace(/\. To specify.*$/, '') ?? 'bad arguments';
    throw new UsageError(msg, command);
  }
}

export function intOption(command: string, name: string, raw: string | boolean | undefined, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${String(raw)}'`, command);
  return n;
}

export function numberOption(command: string, name: string, raw: string | boolean | undefined, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}, got '${String(raw)}'`, command);
  return n;
}

export function choiceOption<T extends string>(command: string, name: string, raw: string | boolean | undefined, dflt: T, choices: readonly T[]): T {
  if (raw === undefined) return dflt;
  const hit = choices.find((c) => c === raw);
  if (hit === undefined) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${String(raw)}'`, command);
  return hit;
}

/** Sizes like 4096, 64K, 4M, 1G (binary units). */
export function sizeOption(command: string, name: string, raw: string | boolean | undefined, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  const m = typeof raw === 'string' ? /^(\d+)([KMG]?)$/i.exec(raw) : null;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m?.[2] ?? '').toUpperCase()] ?? NaN;
  const n = m ? Number(m[1]) * unit : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a size from ${min} to ${max} bytes (K/M/G suffixes allowed), got '${String(raw)}'`, command);
  return n;
}

/** Addresses and frame numbers: decimal or 0x-prefixed hex, a safe integer in [min, max]. */
export function addressOption(command: string, name: string, raw: string | boolean | undefined, min: number, max: number): number {
  if (raw === undefined) throw new UsageError(`--${name} is required`, command);
  const n = typeof raw === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer (decimal or 0x hex) from ${min} to 0x${max.toString(16)}, got '${String(raw)}'`, command);
  return n;
}
