/**
 * The Xen tier (xen-tier/run.sh): Debian's Xen 4.17 under QEMU TCG, a PV dom0 with the Xen daemons,
 * the kernel helper (`xen` back-end) and xvgpu, and the scenarios run in dom0. Each scenario's JSON
 * summary lands in OUT/NAME.json. Needs qemu-system-x86, debootstrap, the Debian kernel and apt
 * (.ci/run installs them); without them run.sh fails with one line naming what is missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

// pvh (issue 11 scenario 1) and hvm-virtio-gpu (scenario 2) are not in this list: neither has
// passed on real Xen yet (xen-tier/README.md says where each stands). They join it once green.
const SCENARIOS = ['smoke', 'helper-xen'];
const TIMEOUT_S = 1500;

describe('Xen tier: stock Xen 4.17 under QEMU', () => {
  const out = mkdtempSync(join(tmpdir(), 'xen-tier-'));
  let log = '';
  let status: number | null = null;
  beforeAll(() => {
    const r = spawnSync('bash', ['xen-tier/run.sh', '--hypervisor', 'debian', '--scenarios', SCENARIOS.join(','), '--out', out, '--timeout', String(TIMEOUT_S)], {
      encoding: 'utf8',
      timeout: (300 + SCENARIOS.length * (TIMEOUT_S + 60)) * 1000,
    });
    log = `${r.stdout}\n${r.stderr}`;
    status = r.status;
  }, (360 + SCENARIOS.length * (TIMEOUT_S + 60)) * 1000);

  const load = (name: string): unknown => JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8'));

  it('boots dom0 with the Xen tools, loads the helper and runs a PVH guest', () => {
    expect(status, log).toBe(0);
    expect((load('smoke') as { xen_version: string }).xen_version).toMatch(/^4\.17\./);
  });

  it('runs the kernel helper\'s xen back-end selftest in dom0 against real domains: all cases pass, every Xen mapping removed', () => {
    const h = load('helper-xen') as { selftest_rc: number; passed: number; failed: number; xen_memory_map_adds: number; xen_memory_map_unremoved: number };
    expect(h, log).toMatchObject({ selftest_rc: 0, failed: 0, xen_memory_map_unremoved: 0 });
    expect(h.passed).toBe(8);
    expect(h.xen_memory_map_adds).toBeGreaterThan(0);
  });
});
