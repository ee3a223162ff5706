/**
 * One xen-tier/run.sh boot shared by the suites that read its scenarios (test/xen/*.suite.ts, all
 * imported by test/xen/tier.test.ts so that no two Xen boots share the machine's cores). A boot is
 * run once per (hypervisor, scenarios) and its results read per scenario: a scenario that failed
 * fails its own suite, not its neighbours'.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TierBoot {
  readonly out: string;
  /** run.sh's exit status (0: every scenario ok). */
  readonly status: number | null;
  /** run.sh's stdout and stderr: the consoles and logs of whatever failed. */
  readonly log: string;
  /** tier.json's status of one scenario: 'ok', 'timeout', 'fail rc=N', 'not run'. */
  scenarioStatus(name: string): string;
  /** OUT/NAME.json (written only for a scenario that passed), parsed; the caller types it. */
  load(name: string): unknown;
}

const boots = new Map<string, TierBoot>();

/** Bound of one boot: run.sh's own (180 s + scenarios x (timeout + 30 s)) plus a minute. */
export const bootBoundS = (scenarios: readonly string[], timeoutS: number): number => 240 + scenarios.length * (timeoutS + 30);

/** Boots `hypervisor` ('debian' or a xen binary) once and runs `scenarios`, each bounded by `timeoutS`. */
export function tierBoot(hypervisor: string, scenarios: readonly string[], timeoutS: number): TierBoot {
  const key = `${hypervisor}\0${scenarios.join(',')}`;
  const cached = boots.get(key);
  if (cached) return cached;
  const out = mkdtempSync(join(tmpdir(), 'xen-tier-'));
  const r = spawnSync('bash', ['xen-tier/run.sh', '--hypervisor', hypervisor, '--scenarios', scenarios.join(','), '--out', out, '--timeout', String(timeoutS)], {
    encoding: 'utf8',
    timeout: bootBoundS(scenarios, timeoutS) * 1000,
    maxBuffer: 256 * 1024 * 1024,
  });
  // run.sh's per-scenario summary lines (the issue's figures), for the CI log.
  for (const line of r.stdout.split('\n')) if (line.startsWith('XVGPU-TIER summary ')) console.log(line);
  let tier: { scenarios?: Record<string, { status: string }> } = {};
  try {
    tier = JSON.parse(readFileSync(join(out, 'tier.json'), 'utf8')) as typeof tier;
  } catch {
    // no tier.json: run.sh failed before QEMU ran; every scenario reads 'not run'
  }
  const boot: TierBoot = {
    out,
    status: r.status,
    log: `${r.stdout}\n${r.stderr}${r.error ? `\n${r.error.message}` : ''}`,
    scenarioStatus: (name) => tier.scenarios?.[name]?.status ?? 'not run',
    load: (name) => JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8')) as unknown,
  };
  boots.set(key, boot);
  return boot;
}
