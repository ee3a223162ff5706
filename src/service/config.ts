/**
 * The service config file: one JSON object whose keys are the long option names of `xvgpu run`
 * (`"bar-gfn": "0xe0000"` is `--bar-gfn 0xe0000`), validated by a zod schema. Unknown keys are
 * errors. `xvgpu run --config FILE` turns the file into options placed before the command line's,
 * so the command line wins. Booleans are flags: `true` sets one, `false` leaves it unset.
 *
 * The schema checks each value's shape and range; relations between values (a BAR that overlaps the
 * virtio window, a xen option on the sim platform) are the `run` parser's own checks, applied to
 * the file by `configProblems` with the offending key as the path.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PATTERNS } from '../guest/workload.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const nonNegInt = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** Sizes as in the CLI: a byte count, or a string with a K/M/G suffix. */
const size = z.union([nonNegInt, z.string().regex(/^\d+[KMG]?$/i, 'a size: digits with an optional K, M or G suffix')]);
/** Addresses and frame numbers: a number, or a decimal or 0x-hex string (JSON numbers lose precision past 2^53). */
const address = z.union([nonNegInt, z.string().regex(/^(0x[0-9a-f]+|\d+)$/i, 'decimal digits or 0x-prefixed hex')]);
const seconds = z.number().positive();

/** The byte count of a valid `size`. */
function sizeBytes(v: number | string): number {
  if (typeof v === 'number') return v;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[v.replace(/^\d+/, '').toUpperCase()] ?? NaN;
  return Number.parseInt(v, 10) * unit;
}
const pageMultiple = size.refine((v) => { const n = sizeBytes(v); return n > 0 && n % 4096 === 0; }, 'a non-zero multiple of 4096 bytes');
const path = z.string().min(1);

/** Every `xvgpu run` option but --config and --help, by its long name. */
export const serviceConfigSchema = z.strictObject({
  platform: z.enum(['sim', 'linux', 'xen']).optional(),
  'drm-node': path.optional(),
  vcpus: z.number().int().min(1).max(128).optional(),
  duration: z.number().min(0.1).max(86400).optional(),
  workload: z.enum(PATTERNS).optional(),
  'evict-rate': z.number().min(0).max(100_000).optional(),
  mode: z.enum(['retry', 'emulate']).optional(),
  strategy: z.enum(['fault', 'eager', 'emulate-all']).optional(),
  'fault-around': z.number().int().min(1).max(512).refine((n) => (n & (n - 1)) === 0, 'a power of two').optional(),
  'no-huge': z.boolean().optional(),
  blobs: z.number().int().min(1).max(256).optional(),
  'blob-size': pageMultiple.optional(),
  seed: z.number().int().min(0).max(2 ** 31).optional(),
  pin: z.enum(['auto', 'none']).optional(),
  'stock-xen': z.boolean().optional(),
  json: z.boolean().optional(),
  'log-level': z.enum(LOG_LEVELS).optional(),
  // --platform xen
  domid: z.number().int().min(1).max(0x7fef).optional(),
  'bar-gfn': address.optional(),
  'bar-size': pageMultiple.optional(),
  'mmio-base': address.optional(),
  irq: z.number().int().min(1).max(15).refine((n) => n !== 2, 'IRQ 2 is the PIC cascade').optional(),
  vram: path.optional(),
  'run-as': z.string().min(1).optional(),
  // the service options (src/service/options.ts)
  metrics: z.string().min(1).optional(),
  'metrics-allow-remote': z.boolean().optional(),
  'log-file': path.optional(),
  'log-format': z.enum(['json', 'pretty']).optional(),
  'shutdown-timeout': seconds.max(3600).optional(),
});

export type ServiceConfig = z.infer<typeof serviceConfigSchema>;

/** One problem of a config file: where (a JSON path such as `$.bar-size`) and what. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

/** The only error the decoder throws: every problem found, each with its path. */
export class ConfigFileError extends Error {
  constructor(readonly file: string, readonly problems: readonly ConfigProblem[]) {
    super(`${file}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
    this.name = 'ConfigFileError';
  }
}

function jsonPath(segments: readonly PropertyKey[]): string {
  return segments.reduce<string>((p, s) => (typeof s === 'number' ? `${p}[${s}]` : `${p}.${String(s)}`), '$');
}

function zodProblems(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const i of issues) {
    // An unknown key is reported at its own path, one problem per key.
    if (i.code === 'unrecognized_keys') for (const k of i.keys) out.push({ path: jsonPath([...i.path, k]), message: 'unknown key' });
    else out.push({ path: jsonPath(i.path), message: i.message });
  }
  return out;
}

/** Decodes a config file's text. Throws ConfigFileError (never anything else) when it is not valid. */
export function decodeConfig(text: string, file = 'config'): ServiceConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text) as unknown;
  } catch (e) {
    throw new ConfigFileError(file, [{ path: '$', message: `not JSON: ${(e as Error).message}` }]);
  }
  const r = serviceConfigSchema.safeParse(raw);
  if (!r.success) throw new ConfigFileError(file, zodProblems(r.error.issues));
  return r.data;
}

/** Reads and decodes a config file (an unreadable file is a ConfigFileError at `$`). */
export function loadConfig(file: string): ServiceConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigFileError(file, [{ path: '$', message: `cannot read: ${(e as Error).message}` }]);
  }
  return decodeConfig(text, file);
}

/** The config as command-line tokens (`--key value`, `--flag` for a true boolean), in key order. */
export function configToArgv(c: Record<string, string | number | boolean | undefined>): string[] {
  const argv: string[] = [];
  for (const [k, v] of Object.entries(c)) {
    if (v === undefined || v === false) continue;
    if (v === true) argv.push(`--${k}`);
    else argv.push(`--${k}`, String(v));
  }
  return argv;
}

/**
 * The problems of a decoded config that only the `run` parser knows (relations between options):
 * `check(argv)` parses, throwing a message naming the option (`--bar-size ...`). Each problem's key
 * is dropped and the rest parsed again, so every such problem is reported, not just the first.
 */
export function semanticProblems(c: ServiceConfig, check: (argv: string[]) => void): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const rest = new Map<string, string | number | boolean | undefined>(Object.entries(c));
  const reported = new Set<string>();
  for (;;) {
    let message: string;
    try {
      check(configToArgv(Object.fromEntries(rest)));
      return problems;
    } catch (e) {
      message = (e as Error).message;
    }
    const key = /--([a-z][a-z-]*)/.exec(message)?.[1];
    // A message about a key already dropped is a consequence (it is now missing): stop there.
    if (key !== undefined && reported.has(key)) return problems;
    if (key === undefined) {
      problems.push({ path: '$', message });
      return problems;
    }
    reported.add(key);
    problems.push({ path: jsonPath([key]), message });
    rest.delete(key);
  }
}
