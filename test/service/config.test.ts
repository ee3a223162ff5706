/** The service config decoder: shapes, unknown keys, paths, CLI equivalence, and its properties. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigFileError, configToArgv, decodeConfig, semanticProblems, serviceConfigSchema, type ServiceConfig } from '../../src/service/config.js';
import { RUN_OPTIONS, parseRunArgs } from '../../src/cli/run.js';
import { parse } from '../../src/cli/args.js';
import { PATTERNS } from '../../src/guest/workload.js';

function problemsOf(text: string): { path: string; message: string }[] {
  try {
    decodeConfig(text);
  } catch (e) {
    if (e instanceof ConfigFileError) return [...e.problems];
    throw e;
  }
  return [];
}

const semantic = (c: ServiceConfig) => semanticProblems(c, (argv) => { parseRunArgs(argv); });

describe('service config', () => {
  it('has a key for every run option but --config and --help', () => {
    const keys = Object.keys(serviceConfigSchema.shape);
    const options = Object.keys(RUN_OPTIONS).filter((k) => k !== 'config' && k !== 'help');
    expect(keys.sort()).toEqual(options.sort());
  });

  it('reports every unknown key and every bad value at its own JSON path', () => {
    const p = problemsOf(JSON.stringify({ platform: 'kvm', vcpus: 0, 'fault-around': 3, 'bar-gfn': 'zz', colour: 'red', 'dom-id': 3 }));
    const byPath = new Map(p.map((x) => [x.path, x.message]));
    expect([...byPath.keys()].sort()).toEqual(['$.bar-gfn', '$.colour', '$.dom-id', '$.fault-around', '$.platform', '$.vcpus']);
    expect(byPath.get('$.colour')).toBe('unknown key');
    expect(byPath.get('$.fault-around')).toMatch(/power of two/);
  });

  it('reports text that is not JSON, and JSON that is not an object, at $', () => {
    expect(problemsOf('{"vcpus": 2,')[0]).toMatchObject({ path: '$', message: expect.stringMatching(/^not JSON/) as unknown });
    expect(problemsOf('[1,2]')[0]?.path).toBe('$');
  });

  it('reports a size that is not a page multiple, and the cascade IRQ, by the schema', () => {
    const p = problemsOf(JSON.stringify({ platform: 'xen', domid: 3, 'bar-gfn': '0x100000', 'bar-size': '4097', 'blob-size': '1K', 'mmio-base': 4096, irq: 2 }));
    expect(p.map((x) => x.path).sort()).toEqual(['$.bar-size', '$.blob-size', '$.irq']);
  });

  it('reports each relation the run parser checks at the key it names', () => {
    const overlap = decodeConfig(JSON.stringify({ platform: 'xen', domid: 3, 'bar-gfn': '0x100', 'bar-size': '64M', 'mmio-base': '0x100000', irq: 5, 'metrics-allow-remote': true }));
    // A relation between two keys that names neither is reported at $.
    expect(semantic(overlap)).toEqual([
      { path: '$.metrics-allow-remote', message: '--metrics-allow-remote needs --metrics ADDR:PORT' },
      { path: '$', message: expect.stringMatching(/virtio-mmio window .* overlaps the BAR/) as unknown },
    ]);
    expect(semantic(decodeConfig(JSON.stringify({ domid: 4, 'stock-xen': true })))).toEqual([
      { path: '$.domid', message: '--domid needs --platform xen' },
      { path: '$.stock-xen', message: '--stock-xen has no retry state: use --mode emulate' },
    ]);
    expect(semantic(decodeConfig(JSON.stringify({ platform: 'xen', domid: 3, 'bar-gfn': '0x100000', 'bar-size': '64M', 'mmio-base': '0xfe000000', irq: 5 })))).toEqual([]);
  });

  it('puts the file first and the command line over it', () => {
    const c = decodeConfig(JSON.stringify({ vcpus: 4, duration: 3, 'no-huge': true, metrics: '127.0.0.1:9464' }));
    const v = parse('run', [...configToArgv(c), '--vcpus', '2'], RUN_OPTIONS);
    expect(v).toMatchObject({ vcpus: '2', duration: '3', 'no-huge': true, metrics: '127.0.0.1:9464' });
  });
});

/** Valid values for each key (shapes only: relations between keys are the run parser's). */
const validConfig: fc.Arbitrary<ServiceConfig> = fc.record(
  {
    platform: fc.constantFrom('sim', 'linux', 'xen'),
    'drm-node': fc.string({ minLength: 1 }),
    vcpus: fc.integer({ min: 1, max: 128 }),
    duration: fc.double({ min: 0.1, max: 86400, noNaN: true }),
    workload: fc.constantFrom(...PATTERNS),
    'evict-rate': fc.double({ min: 0, max: 100_000, noNaN: true }),
    mode: fc.constantFrom('retry', 'emulate'),
    strategy: fc.constantFrom('fault', 'eager', 'emulate-all'),
    'fault-around': fc.integer({ min: 0, max: 9 }).map((e) => 2 ** e),
    'no-huge': fc.boolean(),
    blobs: fc.integer({ min: 1, max: 256 }),
    'blob-size': fc.oneof(fc.integer({ min: 1, max: 2 ** 30 }).map((n) => n * 4096), fc.tuple(fc.integer({ min: 1, max: 2 ** 20 }), fc.constantFrom('M', 'G', 'm')).map(([n, u]) => `${n}${u}`), fc.integer({ min: 1, max: 2 ** 20 }).map((n) => `${n * 4}K`)),
    seed: fc.integer({ min: 0, max: 2 ** 31 }),
    pin: fc.constantFrom('auto', 'none'),
    'stock-xen': fc.boolean(),
    json: fc.boolean(),
    'log-level': fc.constantFrom('trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'),
    domid: fc.integer({ min: 1, max: 0x7fef }),
    'bar-gfn': fc.oneof(fc.maxSafeNat(), fc.bigInt({ min: 0n, max: 2n ** 64n }).map((n) => `0x${n.toString(16)}`)),
    'bar-size': fc.integer({ min: 1, max: 2 ** 30 }).map((n) => String(n * 4096)),
    'mmio-base': fc.maxSafeNat(),
    irq: fc.integer({ min: 1, max: 15 }).filter((n) => n !== 2),
    metrics: fc.string({ minLength: 1 }),
    'metrics-allow-remote': fc.boolean(),
    'log-file': fc.string({ minLength: 1 }),
    'log-format': fc.constantFrom('json', 'pretty'),
    'shutdown-timeout': fc.double({ min: 0.001, max: 3600, noNaN: true }),
  },
  { requiredKeys: [] },
);

describe('service config decoder (properties)', () => {
  const cases = Number(process.env.XVGPU_FUZZ_CASES ?? 500);

  it('round-trips every valid config', () => {
    fc.assert(fc.property(validConfig, (c) => { expect(decodeConfig(JSON.stringify(c))).toEqual(c); }), { numRuns: cases });
  });

  it('throws nothing but a ConfigFileError, with at least one problem, on any text', () => {
    const text = fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)), validConfig.chain((c) => fc.jsonValue().map((junk) => JSON.stringify({ ...c, junk }))));
    fc.assert(
      fc.property(text, (t) => {
        try {
          decodeConfig(t);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigFileError);
          expect((e as ConfigFileError).problems.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: cases },
    );
  });

  it('reports a wrong-typed value of any key at that key', () => {
    const key = fc.constantFrom(...Object.keys(serviceConfigSchema.shape));
    fc.assert(
      fc.property(validConfig, key, fc.constantFrom(null, [], {}, -1.5), (c, k, bad) => {
        const p = problemsOf(JSON.stringify({ ...c, [k]: bad }));
        expect(p.map((x) => x.path)).toContain(`$.${k}`);
      }),
      { numRuns: cases },
    );
  });
});
