/**
 * The checks of the HVM scenario (xen-tier/scenarios/hvm-virtio-gpu.sh), shared by its stock-Xen
 * run (tier.test.ts, VRAM blobs, map-and-emulate) and its patched-Xen run hvm-retry
 * (retry.suite.ts, memfd blobs, map-then-retry): the guest's own Linux virtio_mmio and virtio-gpu
 * drivers are xvgpu's client, and data is checked in both directions.
 */
import { expect } from 'vitest';

/** What scenarios/hvm-virtio-gpu/compose.mjs writes (the fields asserted on). */
export interface HvmResult {
  ok: boolean;
  first_failure: string | null;
  missing: Record<string, string>;
  platform_crashes: string[];
  mode: string | null;
  p2m_backend: string | null;
  answered_retry: number | null;
  blobs_backed_by: { kind: string };
  bar: { faults: number; retries: number; emulated: number; forward_progress: number; not_offered: number } | null;
  helper: { installed_pages: number } | null;
  guest_driver_log: string[];
  virtio: { interrupts_raised: number; driver_features: string[]; commands_by_kind: Record<string, number> };
  guest: { params: Record<string, number>; capset: { wire_format: number; context_type: number } };
  dom0_check: { guest_words_checked: number; host_words_checked: number };
  guest_visible_errors: { guest_failed_steps: number; device_error_responses: number };
  xvgpu_exit: number;
  mapped_after_stop: number;
}

/** The guest's drivers probed xvgpu, negotiated blobs and contexts, read the capset, and data crossed both ways intact. */
export function expectHvmClientServed(r: HvmResult): void {
  // A first attempt whose guest was lost to the platform (xen-tier/dom0/lib.sh xt_platform_crash) ran again.
  if (r.platform_crashes.length > 0) console.log(`hvm: guest lost to the platform, the scenario ran again: ${r.platform_crashes.join('; ')}`);
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
  // The guest read the host's FILL through its mapping; dom0 read the guest's pattern in the blob's
  // frames (the VRAM BAR, or the memfd BO through /proc).
  expect(r.guest).toMatchObject({ host_pattern_mismatches: 0, guest_pattern_mismatch: 0, acked: true });
  expect(r.dom0_check).toMatchObject({ signatures_found: 1, guest_mismatches: 0, host_mismatches: 0, answer: 'ack' });
  expect(r.dom0_check.guest_words_checked).toBeGreaterThan(0);
  expect(r.dom0_check.host_words_checked).toBeGreaterThan(0);
  expect(r.guest_visible_errors).toEqual({ guest_failed_steps: 0, device_error_responses: 0 });
  expect(r.xvgpu_exit).toBe(0);
  expect(r.mapped_after_stop).toBe(0);
}
