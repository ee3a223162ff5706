/** Campaign files: the schema's errors (with paths), the matrix expansion, and the cells' `xvgpu run` arguments. */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { STRATEGIES, workloads } from '../../src/bench/suite.js';
import { parseRunArgs } from '../../src/cli/run.js';
import { CampaignError, benchVcpus, campaignFrom, loadCampaign, runArgs, type Campaign, type RunCell } from '../../src/fleet/campaign.js';
import { campaignFile, removeCampaignFiles } from './harness.js';
import { OK_CAMPAIGN, campaignError } from './campaign-errors.js';

afterAll(removeCampaignFiles);

const ok = OK_CAMPAIGN;

const error = campaignError;

const runCells = (c: Campaign): RunCell[] => c.cells.flatMap((x) => (x.kind === 'run' ? [x] : []));

const withMatrix = (m: Record<string, unknown>): unknown => ({ ...ok, matrix: { ...ok.matrix, ...m } });

describe('campaign files', () => {
  it('the smoke campaign is small and simulated', () => {
    const c = loadCampaign('bench/campaigns/smoke.yaml');
    expect(c.cells).toHaveLength(8);
    expect(new Set(c.cells.map((x) => x.id)).size).toBe(8);
    expect(runCells(c).every((x) => x.platform === 'sim' && x.workload.durationS <= 1)).toBe(true);
  });

  it('the standard matrix is every strategy x workload x vCPU count the benchmark knows, 3 repeats', () => {
    const c = loadCampaign('bench/campaigns/standard.yaml');
    const full = workloads(false);
    const runs = runCells(c);
    expect(benchVcpus()).toEqual([1, 2, 4, 8]);
    expect(runs).toHaveLength(STRATEGIES.length * full.length * 4 * 3);
    expect(new Set(runs.map((x) => x.strategy.name))).toEqual(new Set(STRATEGIES.map((s) => s.name)));
    expect(new Set(runs.map((x) => x.workload.name))).toEqual(new Set(full.map((w) => w.name)));
    expect(new Set(runs.map((x) => x.vcpus))).toEqual(new Set([1, 2, 4, 8]));
    expect(new Set(c.cells.map((x) => x.id)).size).toBe(c.cells.length);
    expect(c.cells.filter((x) => x.kind === 'bench')).toEqual([
      { kind: 'bench', id: 'bench-full.sim.any.r0', quick: false, repeat: undefined, platform: 'sim', host: 'any', repeatIndex: 0, timeoutS: 7200 },
    ]);
  });

  it("every cell's arguments are accepted by `xvgpu run` and mean that cell", () => {
    for (const file of ['bench/campaigns/smoke.yaml', 'bench/campaigns/standard.yaml']) {
      for (const cell of runCells(loadCampaign(file))) {
        const o = parseRunArgs(runArgs(cell).slice(1));
        if (o === 'help') throw new Error('help');
        expect(o).toMatchObject({
          platform: cell.platform, vcpus: cell.vcpus, durationS: cell.workload.durationS, workload: cell.workload.pattern,
          evictRate: cell.workload.evictRate, blobs: cell.workload.blobs, blobSize: cell.workload.blobSize,
          strategy: cell.strategy.strategy, mode: cell.strategy.mode, faultAround: cell.strategy.faultAround,
          hugePages: cell.strategy.hugePages, seed: 1 + cell.repeat, json: true,
        });
      }
    }
  });

  it('a campaign-wide duration overrides every workload', () => {
    const c = campaignFrom({ ...ok, duration_s: 0.5, matrix: { ...ok.matrix, workloads: 'all' } }, 'c.yaml');
    expect(runCells(c).map((x) => x.workload.durationS)).toEqual(c.cells.map(() => 0.5));
  });

  it.each([
    [withMatrix({ workloads: ['nope'] }), /^c\.yaml: matrix\.workloads\[0\]: unknown workload 'nope' \(known: sweep-copy-8MiB, sweep-touch-64MiB/],
    [withMatrix({ strategies: ['eager', 'bogus'] }), /matrix\.strategies\[1\]: unknown strategy 'bogus' \(known: emulate-all, eager/],
    [withMatrix({ strategies: ['eager', 'eager'] }), /matrix\.strategies: 'eager' is listed twice/],
    [withMatrix({ vcpus: [0] }), /matrix\.vcpus\[0\]: Too small/],
    [withMatrix({ vcpus: [2, '4'] }), /matrix\.vcpus\[1\]: Invalid input: expected number, received string/],
    [withMatrix({ vcpus: 'some' }), /matrix\.vcpus: Invalid input: expected "all", or Invalid input: expected array/],
    [withMatrix({ hosts: ['rack:1'] }), /matrix\.hosts\[0\]: letters, digits, _ and - only/],
    [withMatrix({ platforms: ['kvm'] }), /matrix\.platforms\[0\]: Invalid option: expected one of "sim"\|"linux"\|"xen"/],
    [withMatrix({ workloads: [{ name: 'w', pattern: 'random', blobs: 1, blob_size: 5000, evict_rate: 0, duration_s: 1 }] }), /matrix\.workloads\[0\]\.blob_size: must be a multiple of 4096/],
    [withMatrix({ repeats: 1.5 }), /matrix\.repeats: Invalid input: expected int/],
    [{ ...ok, retry: { attempts: 0 } }, /retry\.attempts: Too small/],
    [{ ...ok, matrx: {} }, /\(top level\): Unrecognized key: "matrx"/],
    [{ name: 'c' }, /matrix: Invalid input: expected object, received undefined/],
    ['just a string', /^c\.yaml: \(top level\): Invalid input: expected object, received string$/],
  ])('rejects bad campaign %# with a one-line error naming the path', (data, msg) => {
    const m = error(data);
    expect(m).toMatch(msg);
    expect(m).not.toContain('\n');
  });

  it('reports unreadable, non-YAML and non-JSON files by name', () => {
    expect(() => loadCampaign('/nonexistent/c.yaml')).toThrow(/^cannot read campaign \/nonexistent\/c\.yaml: ENOENT$/);
    expect(() => loadCampaign(campaignFile('name: [unclosed\n  x: 1', 'c.yaml'))).toThrow(/c\.yaml: not valid YAML: .*line/);
    expect(() => loadCampaign(campaignFile('{"name": ', 'c.json'))).toThrow(/c\.json: not valid JSON: /);
  });

  it('never throws anything but a one-line CampaignError on arbitrary input', () => {
    const nearlyValid = fc.record({
      name: fc.oneof(fc.constant('c'), fc.string()),
      matrix: fc.record({
        workloads: fc.oneof(fc.constant('all'), fc.array(fc.oneof(fc.constantFrom('hotset-evict', 'x'), fc.jsonValue()))),
        strategies: fc.oneof(fc.constant('all'), fc.array(fc.constantFrom(...STRATEGIES.map((s) => s.name), 'bogus'))),
        vcpus: fc.oneof(fc.constant('all'), fc.array(fc.oneof(fc.integer(), fc.jsonValue()))),
        repeats: fc.oneof(fc.integer(), fc.jsonValue()),
      }, { requiredKeys: [] }),
      retry: fc.jsonValue(),
    }, { requiredKeys: [] });
    fc.assert(fc.property(fc.oneof(fc.jsonValue(), nearlyValid), (data) => {
      try {
        campaignFrom(data, 'c.yaml');
      } catch (e) {
        if (!(e instanceof CampaignError) || e.message.includes('\n')) throw e;
      }
    }), { numRuns: 500 });
  });
});
