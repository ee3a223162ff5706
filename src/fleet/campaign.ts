/**
 * Campaign files: a matrix of workloads x strategies x vCPU counts x platforms x host labels x
 * repeats, validated with a schema (every error names its path in the file), expanded into run
 * cells (`xvgpu run`); and optional bench cells, each a whole `xvgpu bench` suite on one host.
 * Workload and strategy names are the benchmark's own (src/bench/suite.ts); `all` takes every one
 * the benchmark knows, so the standard matrix stays in step with the suite.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PATTERNS } from '../guest/workload.js';
import { SCALING_VCPUS, STRATEGIES, workloads, type StrategySpec, type WorkloadSpec } from '../bench/suite.js';

/** A bad campaign file: one line naming the file and the path of each problem in it. */
export class CampaignError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CampaignError';
  }
}

export const PLATFORMS = ['sim', 'linux', 'xen'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** A host label, or `any` for "whichever worker comes first". No ':' or '.', which name queues and jobs. */
const LABEL = /^[A-Za-z0-9_-]{1,64}$/;
export const ANY_HOST = 'any';

const inlineWorkload = z.strictObject({
  name: z.string().regex(LABEL, 'letters, digits, _ and - only'),
  pattern: z.enum(PATTERNS),
  blobs: z.int().min(1).max(256),
  blob_size: z.int().min(4096).max(1024 ** 3).refine((n) => n % 4096 === 0, 'must be a multiple of 4096'),
  evict_rate: z.number().min(0).max(100_000),
  duration_s: z.number().min(0.1).max(86_400),
});

/** One `xvgpu bench` suite per host and repeat; quick and repeat are `xvgpu bench`'s own options. */
const benchItem = z.strictObject({
  quick: z.boolean().default(false),
  /** `xvgpu bench --repeat`: runs per scenario inside the suite (its own default when absent). */
  repeat: z.int().min(1).max(20).optional(),
  hosts: z.array(z.string().regex(LABEL, 'letters, digits, _ and - only')).min(1).default([ANY_HOST]),
  /** Suites run as many times on each host. */
  repeats: z.int().min(1).max(100).default(1),
  /** A full suite takes far longer than one run cell; defaults to the campaign's timeout_s. */
  timeout_s: z.number().min(1).max(7 * 86_400).optional(),
});

const allOr = <T extends z.ZodType>(item: T) => z.union([z.literal('all'), z.array(item).min(1)]);

const schema = z.strictObject({
  name: z.string().regex(LABEL, 'letters, digits, _ and - only'),
  description: z.string().optional(),
  matrix: z.strictObject({
    workloads: allOr(z.union([z.string(), inlineWorkload])),
    strategies: allOr(z.string()),
    vcpus: allOr(z.int().min(1).max(128)),
    platforms: z.array(z.enum(PLATFORMS)).min(1).default(['sim']),
    hosts: z.array(z.string().regex(LABEL, 'letters, digits, _ and - only')).min(1).default([ANY_HOST]),
    repeats: z.int().min(1).max(100).default(1),
  }),
  /** `xvgpu bench` suites to run besides the matrix: one set of options, or a list of them. */
  bench: z.union([benchItem, z.array(benchItem).min(1)]).optional(),
  /** Overrides every workload's duration (a smoke campaign's short runs). */
  duration_s: z.number().min(0.1).max(86_400).optional(),
  retry: z.strictObject({
    attempts: z.int().min(1).max(20).default(3),
    backoff_s: z.number().min(0).max(3600).default(5),
  }).default({ attempts: 3, backoff_s: 5 }),
  /** A cell still running after this is killed and counts as a failed attempt. */
  timeout_s: z.number().min(1).max(7 * 86_400).default(900),
});

export type CampaignFile = z.infer<typeof schema>;

export interface RunCell {
  readonly kind: 'run';
  /** Unique within the campaign; also the suffix of the cell's job id. */
  readonly id: string;
  readonly workload: WorkloadSpec;
  readonly strategy: StrategySpec;
  readonly vcpus: number;
  readonly platform: Platform;
  readonly host: string;
  readonly repeat: number;
}

/** A whole `xvgpu bench` suite; the suite runs on the simulated platform. */
export interface BenchCell {
  readonly kind: 'bench';
  readonly id: string;
  readonly quick: boolean;
  readonly repeat: number | undefined;
  readonly platform: 'sim';
  readonly host: string;
  readonly repeatIndex: number;
  /** Overrides the campaign's timeout for this cell. */
  readonly timeoutS: number | undefined;
}

export type Cell = RunCell | BenchCell;

export interface Campaign {
  readonly name: string;
  readonly retry: { readonly attempts: number; readonly backoffS: number };
  readonly timeoutS: number;
  readonly cells: readonly Cell[];
}

/** Every workload the benchmark knows (its full and quick sizes), by name. */
function knownWorkloads(): Map<string, WorkloadSpec> {
  return new Map([...workloads(false), ...workloads(true)].map((w) => [w.name, w]));
}

/** The vCPU counts the benchmark runs: its workloads' own and the scaling sweep's. */
export function benchVcpus(): number[] {
  return [...new Set([...workloads(false).map((w) => w.vcpus), ...SCALING_VCPUS])].sort((a, b) => a - b);
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s === '' ? String(k) : `${s}.${String(k)}`), '') || '(top level)';
}

/**
 * One line per problem. A union ('all' or a list; a name or an inline workload) reports the branch
 * that got furthest into the value, else what each branch expected.
 */
function describeIssue(issue: z.core.$ZodIssue, base: readonly PropertyKey[]): string[] {
  const path = [...base, ...issue.path];
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return [`${formatPath(path)}: ${issue.message}`];
  const depth = (branch: z.core.$ZodIssue[]): number => Math.max(0, ...branch.map((i) => i.path.length));
  const best = issue.errors.reduce((a, b) => (depth(b) > depth(a) ? b : a));
  if (depth(best) > 0) return best.flatMap((i) => describeIssue(i, path));
  return [`${formatPath(path)}: ${issue.errors.map((b) => b[0]?.message ?? 'invalid').join(', or ')}`];
}

function decode(text: string, file: string): unknown {
  try {
    return extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new CampaignError(`${file}: not valid ${extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0] ?? ''}`);
  }
}

function resolveWorkloads(f: CampaignFile, problems: string[]): WorkloadSpec[] {
  const known = knownWorkloads();
  if (f.matrix.workloads === 'all') return workloads(false);
  return f.matrix.workloads.flatMap((w, i) => {
    if (typeof w !== 'string') {
      return [{ name: w.name, pattern: w.pattern, blobs: w.blobs, blobSize: w.blob_size, vcpus: 2, evictRate: w.evict_rate, durationS: w.duration_s }];
    }
    const hit = known.get(w);
    if (!hit) problems.push(`matrix.workloads[${i}]: unknown workload '${w}' (known: ${[...known.keys()].join(', ')}; or give one inline)`);
    return hit ? [hit] : [];
  });
}

function resolveStrategies(f: CampaignFile, problems: string[]): StrategySpec[] {
  if (f.matrix.strategies === 'all') return [...STRATEGIES];
  return f.matrix.strategies.flatMap((s, i) => {
    const hit = STRATEGIES.find((x) => x.name === s);
    if (!hit) problems.push(`matrix.strategies[${i}]: unknown strategy '${s}' (known: ${STRATEGIES.map((x) => x.name).join(', ')})`);
    return hit ? [hit] : [];
  });
}

function duplicates<T>(values: readonly T[], key: (v: T) => string, path: string, problems: string[]): void {
  const seen = new Set<string>();
  for (const v of values) {
    const k = key(v);
    if (seen.has(k)) problems.push(`${path}: '${k}' is listed twice`);
    seen.add(k);
  }
}

/** The bench cells of a campaign; identical bench entries give identical ids (reported as listed twice). */
function benchCells(f: CampaignFile): BenchCell[] {
  const items = f.bench === undefined ? [] : Array.isArray(f.bench) ? f.bench : [f.bench];
  return items.flatMap((b) => b.hosts.flatMap((host) => Array.from({ length: b.repeats }, (_, r): BenchCell => ({
    kind: 'bench',
    id: `bench-${b.quick ? 'quick' : 'full'}${b.repeat === undefined ? '' : `-x${b.repeat}`}.sim.${host}.r${r}`,
    quick: b.quick, repeat: b.repeat, platform: 'sim', host, repeatIndex: r, timeoutS: b.timeout_s,
  }))));
}

/** Validates a decoded campaign and expands its matrix; `file` only labels the errors. */
export function campaignFrom(data: unknown, file: string): Campaign {
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw new CampaignError(`${file}: ${parsed.error.issues.flatMap((i) => describeIssue(i, [])).join('; ')}`);
  }
  const f = parsed.data;
  const problems: string[] = [];
  const ws = resolveWorkloads(f, problems).map((w) => (f.duration_s === undefined ? w : { ...w, durationS: f.duration_s }));
  const ss = resolveStrategies(f, problems);
  const vcpus = f.matrix.vcpus === 'all' ? benchVcpus() : f.matrix.vcpus;
  duplicates(ws, (w) => w.name, 'matrix.workloads', problems);
  duplicates(ss, (s) => s.name, 'matrix.strategies', problems);
  duplicates(vcpus, String, 'matrix.vcpus', problems);
  duplicates(f.matrix.platforms, String, 'matrix.platforms', problems);
  duplicates(f.matrix.hosts, String, 'matrix.hosts', problems);
  if (problems.length > 0) throw new CampaignError(`${file}: ${problems.join('; ')}`);
  const cells: Cell[] = [];
  for (const workload of ws) for (const strategy of ss) for (const v of vcpus) for (const platform of f.matrix.platforms) for (const host of f.matrix.hosts) {
    for (let repeat = 0; repeat < f.matrix.repeats; repeat++) {
      const id = `${workload.name}.${strategy.name}.v${v}.${platform}.${host}.r${repeat}`;
      cells.push({ kind: 'run', id, workload, strategy, vcpus: v, platform, host, repeat });
    }
  }
  cells.push(...benchCells(f));
  duplicates(cells, (c) => c.id, 'bench', problems);
  if (problems.length > 0) throw new CampaignError(`${file}: ${problems.join('; ')}`);
  return { name: f.name, retry: { attempts: f.retry.attempts, backoffS: f.retry.backoff_s }, timeoutS: f.timeout_s, cells };
}

/** Reads and validates a campaign file (.json, or YAML for any other extension). */
export function loadCampaign(file: string): Campaign {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CampaignError(`cannot read campaign ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return campaignFrom(decode(text, file), file);
}

/** A cell's timeout: a bench entry's own timeout_s, else the campaign's. */
export function cellTimeoutS(c: Campaign, cell: Cell): number {
  return (cell.kind === 'bench' ? cell.timeoutS : undefined) ?? c.timeoutS;
}

/** The `xvgpu bench` arguments of a bench cell; the report JSON goes to `jsonFile`. */
export function benchArgs(c: BenchCell, jsonFile: string): string[] {
  return ['bench', '--json', jsonFile, ...(c.quick ? ['--quick'] : []), ...(c.repeat === undefined ? [] : ['--repeat', String(c.repeat)])];
}

/** The `xvgpu run` arguments of a cell: each repeat gets its own seed, as in the suite. */
export function runArgs(c: RunCell): string[] {
  const w = c.workload;
  const s = c.strategy;
  return [
    'run', '--json', '--log-level', 'error',
    '--platform', c.platform,
    '--vcpus', String(c.vcpus),
    '--duration', String(w.durationS),
    '--workload', w.pattern,
    '--evict-rate', String(w.evictRate),
    '--blobs', String(w.blobs),
    '--blob-size', String(w.blobSize),
    '--strategy', s.strategy,
    '--mode', s.mode,
    '--fault-around', String(s.faultAround),
    ...(s.hugePages ? [] : ['--no-huge']),
    '--seed', String(1 + c.repeat),
  ];
}
