/**
 * `xvgpu run` and its platforms: --drm-node, the help's account of what is simulated where, and a
 * summary that prints unmeasurable figures as null with their reason and fails a run whose host
 * evictions failed.
 */
import { describe, expect, it } from 'vitest';
import { RUN_HELP, parseRunArgs } from '../../src/cli/run.js';
import { UsageError } from '../../src/cli/args.js';
import { SIMULATED } from '../../src/session/platforms.js';
import { formatSummary, runPassed, runSimulation } from '../../src/session/simulation.js';
import { createLogger } from '../../src/telemetry/log.js';

describe('run --drm-node', () => {
  it('selects DRM buffers on the linux platform, from any node', () => {
    expect(parseRunArgs(['--platform', 'linux', '--drm-node', '/dev/dri/card1'])).toMatchObject({ platform: 'linux', drmNode: '/dev/dri/card1' });
    expect(parseRunArgs(['--platform', 'linux'])).not.toHaveProperty('drmNode');
  });

  it('is a usage error without --platform linux or without a path', () => {
    expect(() => parseRunArgs(['--drm-node', '/dev/dri/card0'])).toThrow(UsageError);
    expect(() => parseRunArgs(['--platform', 'linux', '--drm-node', ''])).toThrow(/needs --platform linux or xen and a device path/);
  });
});

describe('what is simulated', () => {
  it('is in run --help for each platform', () => {
    const flat = RUN_HELP.replace(/\s+/g, ' ');
    for (const text of Object.values(SIMULATED)) expect(flat).toContain(text);
    expect(RUN_HELP).toMatch(/linux --drm-node:/);
  });
});

describe('the summary', () => {
  it('names the platform parts, prints a null figure with its reason, and fails on failed evictions', async () => {
    const r = await runSimulation(
      { vcpus: 1, durationS: 0.3, workload: 'random', evictRate: 50, mode: 'retry', faultAround: 1, hugePages: false, blobs: 1, blobSize: 64 * 1024, seed: 1, pin: 'none' },
      createLogger('silent'),
    );
    expect([r.host_buffers, r.simulated, r.moved_frames]).toEqual(['sim', SIMULATED.sim, null]);
    expect(r.null_reasons.moved_frames).toMatch(/sim/);
    expect(r.host_pressure_errors).toBe(0);
    expect(runPassed(r)).toBe(true);
    expect(formatSummary(r)).toMatch(/moved_frames null \(sim: .+\)/);

    const unmeasured = { ...r, stale_accesses: null, null_reasons: { ...r.null_reasons, stale_accesses: 'vgem keeps its frames' } };
    expect(runPassed(unmeasured)).toBe(true);
    expect(formatSummary(unmeasured)).toMatch(/stale_accesses null \(vgem keeps its frames\)/);
    expect(runPassed({ ...r, stale_accesses: 1 })).toBe(false);
    const failedEvictions = { ...r, host_pressure_errors: 3, host_pressure_error: 'madvise: EINVAL' };
    expect(runPassed(failedEvictions)).toBe(false);
    expect(formatSummary(failedEvictions)).toMatch(/3 failed evictions \(madvise: EINVAL\)/);
    expect(runPassed({ ...r, helper_fatal: 1 })).toBe(false);
  });
});
