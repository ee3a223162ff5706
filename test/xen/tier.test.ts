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

// pvh (issue 11 scenario 1) is not in this list: it has not passed on real Xen yet
// (xen-tier/README.md says where it stands). It joins it once green.
const SCENARIOS = ['smoke', 'helper-xen', 'hvm-virtio-gpu'];
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

  it('hvm-virtio-gpu: an HVM guest\'s own virtio_mmio and virtio-gpu drivers use xvgpu: blob + context features, the DRM capset, a mapped host blob, data checked both ways', () => {
    const r = load('hvm-virtio-gpu') as HvmResult;
    const ctx = JSON.stringify({ first_failure: r.first_failure, missing: r.missing });
    expect(r.ok, ctx).toBe(true);
    // The drivers probed the ACPI device and interrupts reached them (each completion is a new rise).
    expect(r.guest_driver_log.some((l) => /Initialized virtio_gpu .* for LNRO0005:00/.test(l)), r.guest_driver_log.join('\n')).toBe(true);
    expect(r.virtio.interrupts_raised).toBeGreaterThan(1);
    expect(r.virtio.driver_features).toEqual(expect.arrayContaining(['RESOURCE_BLOB', 'CONTEXT_INIT', 'VERSION_1']));
    expect(r.guest.params).toEqual({ '3d_features': 1, resource_blob: 1, host_visible: 1, context_init: 1 });
    // The DRM capset was read (capset info at probe, the capset itself for GET_CAPS): xvgpu's context type.
    expect(r.virtio.commands_by_kind).toMatchObject({ get_capset_info: 1, get_capset: 1 });
    expect(r.guest.capset).toEqual({ wire_format: 1, context_type: 0x7876 });
    expect(r.virtio.commands_by_kind.ctx_create).toBeGreaterThan(0);
    expect(r.virtio.commands_by_kind.resource_create_blob).toBeGreaterThanOrEqual(2);
    expect(r.virtio.commands_by_kind.resource_map_blob).toBeGreaterThanOrEqual(2);
    // The guest read the host's FILL through its mapping; dom0 read the guest's pattern in VRAM.
    expect(r.guest).toMatchObject({ host_pattern_mismatches: 0, guest_pattern_mismatch: 0, acked: true });
    expect(r.dom0_check).toMatchObject({ signatures_found: 1, guest_mismatches: 0, host_mismatches: 0, answer: 'ack' });
    expect(r.dom0_check.guest_words_checked).toBeGreaterThan(0);
    expect(r.dom0_check.host_words_checked).toBeGreaterThan(0);
    expect(r.guest_visible_errors).toEqual({ guest_failed_steps: 0, device_error_responses: 0 });
    expect(r.xvgpu_exit).toBe(0);
    expect(r.mapped_after_stop).toBe(0);
  });
});

/** What scenarios/hvm-virtio-gpu/compose.mjs writes (the fields asserted on). */
interface HvmResult {
  ok: boolean;
  first_failure: string | null;
  missing: Record<string, string>;
  guest_driver_log: string[];
  virtio: { interrupts_raised: number; driver_features: string[]; commands_by_kind: Record<string, number> };
  guest: { params: Record<string, number>; capset: { wire_format: number; context_type: number } };
  dom0_check: { guest_words_checked: number; host_words_checked: number };
  guest_visible_errors: { guest_failed_steps: number; device_error_responses: number };
  xvgpu_exit: number;
  mapped_after_stop: number;
}
