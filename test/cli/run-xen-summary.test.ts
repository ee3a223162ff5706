import { afterEach, describe, expect, it } from 'vitest';
import { NO_NOTIFIER_REVOKE, featureNames, latencySummary, virtioSummary } from '../../src/cli/run-xen.js';
import { latencyHistogram, record } from '../../src/telemetry/histogram.js';
import { STATUS } from '../../src/virtio/constants.js';
import { gpuRig, type GpuRig } from '../support/gpu.js';

let rig: GpuRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('xvgpu run --platform xen: the virtio section of the exit summary', () => {
  it('reports what the device did for a driver: commands, refusals, blobs, notifies, interrupts, status', () => {
    rig = gpuRig();
    rig.guest.probe();
    rig.guest.checkCapset();
    rig.guest.createContext(1);
    rig.guest.createBlob(1, 1, 0, 16384);
    rig.guest.mapBlob(1, 0);
    const before = virtioSummary(rig.backend);
    expect(rig.raw(new Uint8Array(24).fill(0xee))).not.toBe(0); // an unknown command: refused
    const s = virtioSummary(rig.backend);
    expect(s).toMatchObject({ blobs_created: 1, blobs_mapped: 1, errors: 1, errors_by_type: { ERR_UNSPEC: 1 }, needs_reset: 0 });
    expect((s?.status as number) & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
    expect(s?.commands).toBe((before?.commands as number) + 1);
    expect(s?.notifies).toBeGreaterThanOrEqual(s?.commands as number);
    expect(s?.interrupts_raised).toBeGreaterThan(0);
    // The synthetic driver takes VIRGL, RESOURCE_BLOB, CONTEXT_INIT and VERSION_1 (not the ring features).
    expect(s?.driver_features).toEqual(['VIRGL', 'RESOURCE_BLOB', 'CONTEXT_INIT', 'VERSION_1']);
    expect(s?.commands_by_kind).toMatchObject({ get_capset_info: 1, get_capset: 1, ctx_create: 1, resource_create_blob: 1, resource_map_blob: 1 });
  });

  it('names the negotiated features: null before any DRIVER_OK, unknown bits in hex', () => {
    rig = gpuRig();
    expect(virtioSummary(rig.backend)?.driver_features).toBeNull();
    expect(featureNames(undefined)).toBeNull();
    expect(featureNames((1n << 29n) | (1n << 40n))).toEqual(['RING_EVENT_IDX', '0x10000000000']);
  });

  it('is null when no virtio-gpu device is attached', () => {
    expect(virtioSummary({ gpuDevice: undefined, transport: undefined })).toBeNull();
  });
});

describe('xvgpu run --platform xen: the latency section of the exit summary', () => {
  const filled = (ns: number): ReturnType<typeof latencyHistogram> => {
    const h = latencyHistogram();
    for (let i = 0; i < 10; i++) record(h, ns);
    return h;
  };

  it('gives each histogram\'s percentiles, and null with its reason for one that recorded nothing', () => {
    const s = latencySummary({
      server: { serviceNs: filled(2000) },
      bar: { serviceNs: filled(5000), revokeNs: latencyHistogram(), revokeEventNs: latencyHistogram() },
      transport: { serviceNs: filled(1000) },
    } as never);
    expect(s).toMatchObject({ ioreq_service_ns: { count: 10 }, bar_service_ns: { count: 10 }, register_service_ns: { count: 10 }, revoke_ns: null, revoke_event_ns: null });
    expect((s.bar_service_ns as { p50: number }).p50).toBeGreaterThan((s.register_service_ns as { p50: number }).p50);
    expect(s.null_reasons).toEqual({ revoke_ns: NO_NOTIFIER_REVOKE, revoke_event_ns: NO_NOTIFIER_REVOKE });
  });

  it('says so when no virtio transport was attached', () => {
    const s = latencySummary({ server: { serviceNs: filled(1) }, bar: { serviceNs: filled(1), revokeNs: filled(1), revokeEventNs: filled(1) }, transport: undefined } as never);
    expect(s.register_service_ns).toBeNull();
    expect(s.null_reasons).toEqual({ register_service_ns: 'no virtio-mmio transport in this run' });
  });
});
