/**
 * The benchmark's `xen` section: fault service time, guest-visible fault latency and revoke time
 * measured on real Xen by the Xen tier (xen-tier/run.sh: Xen 4.17 under QEMU TCG), each beside a
 * baseline measured in the same tier run, on the same dom0 kernel and QEMU. Absolute TCG times mean
 * little; the ratios are the result. Inputs, from one tier output directory:
 *  - pvh.json (scenario pvh): run a (emulate-all) and run b (map-and-emulate on the ivshmem VRAM
 *    stand-in), each with the guest's counters and xvgpu's --json summary (its `latency` section);
 *  - baseline.json (scenario baseline): `xvgpu run --platform linux --json` in dom0: the same
 *    xvgpu and kernel helper with its soft p2m (no Xen on the fault or revoke path).
 * Every figure that a run did not measure is null with its reason, never 0.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LatencySummary } from '../telemetry/histogram.js';

export interface XenBenchSection {
  source: string;
  /** The tier's wall times (tier.json), for context. */
  tier: Record<string, unknown> | null;
  figures: {
    /** xvgpu's BAR ioreq service on real Xen, map-and-emulate: first touches (fault, memory_mapping, emulate). */
    fault_service_ns: LatencySummary | null;
    /** Same run: virtio-mmio register ioreqs (same exit and wakes, a handler that only decodes a register). */
    register_service_ns: LatencySummary | null;
    /** Same tier run, dom0, soft p2m (baseline scenario): the fault path without Xen's p2m. */
    soft_p2m_fault_service_ns: LatencySummary | null;
    /** The PVH guest's first 32-bit read of each page of a placed blob (fault → map → emulate), average. */
    guest_fault_ns: number | null;
    /** The guest's second read of that page: mapped, no exit (run b). */
    guest_mapped_read_ns: number | null;
    /** The guest's read of a page under emulate-all (run a): one ioreq round trip. */
    guest_emulated_read_ns: number | null;
    /** Helper invalidation start → Xen p2m entries removed (run b, inside the MMU-notifier callback). */
    revoke_ns: LatencySummary | null;
    /** The same on the soft p2m (baseline scenario). */
    soft_p2m_revoke_ns: LatencySummary | null;
    /** ioreqs of the same guest program: emulate-all (a) and map-and-emulate (b). */
    ioreqs_emulate_all: number | null;
    ioreqs_map_and_emulate: number | null;
  };
  ratios: {
    fault_service_over_register_p50: number | null;
    fault_service_over_soft_p2m_p50: number | null;
    guest_fault_over_emulated_read: number | null;
    guest_fault_over_mapped_read: number | null;
    revoke_over_soft_p2m_p50: number | null;
    ioreqs_emulate_all_over_map_and_emulate: number | null;
  };
  null_reasons: Record<string, string>;
}

type Json = Record<string, unknown>;

const obj = (v: unknown): Json | null => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function latency(v: unknown): LatencySummary | null {
  const o = obj(v);
  return o && num(o.p50) !== null && num(o.count) !== null ? (o as unknown as LatencySummary) : null;
}

/** A scenario's JSON from the tier's output, or null with the reason filed under `key`. */
function load(dir: string, name: string): { value: Json | null; why?: string } {
  let text: string;
  try {
    text = readFileSync(join(dir, `${name}.json`), 'utf8');
  } catch {
    return { value: null, why: `${name}.json is not in ${dir} (the tier did not run scenario ${name}, or it failed)` };
  }
  try {
    const v = obj(JSON.parse(text));
    return v ? { value: v } : { value: null, why: `${name}.json is not a JSON object` };
  } catch (e) {
    return { value: null, why: `${name}.json is not JSON: ${(e as Error).message}` };
  }
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b <= 0 ? null : Math.round((a / b) * 100) / 100;

/** Reads one tier output directory into the `xen` section. Throws only if `dir` holds neither input. */
export function xenSection(dir: string): XenBenchSection {
  const why: Record<string, string> = {};
  const pvh = load(dir, 'pvh');
  const base = load(dir, 'baseline');
  if (!pvh.value && !base.value) throw new Error(`no Xen tier results in ${dir}: ${pvh.why ?? ''}; ${base.why ?? ''}`);
  const tier = load(dir, 'tier').value;
  const a = obj(pvh.value?.a), b = obj(pvh.value?.b);
  const ax = obj(a?.xvgpu), bx = obj(b?.xvgpu), ag = obj(a?.guest), bg = obj(b?.guest);
  const bl = obj(bx?.latency);
  const missingPvh = pvh.why ?? 'the pvh scenario has no run b summary';
  const fromB = <T>(key: string, v: T | null, reason: string): T | null => {
    if (v === null) why[key] = bx ? (obj(bl?.null_reasons)?.[key.replace(/^fault_/, 'bar_')] as string | undefined) ?? reason : missingPvh;
    return v;
  };
  const fromBase = <T>(key: string, v: T | null, reason: string): T | null => {
    if (v === null) why[key] = base.value ? (obj(base.value.null_reasons)?.[key.replace(/^soft_p2m_(fault_)?/, '')] as string | undefined) ?? reason : (base.why ?? reason);
    return v;
  };
  const guest = (key: string, g: Json | null, field: string, run: string): number | null => {
    const v = num(g?.[field]);
    // bar_client prints 0 when it timed no page: that is no measurement.
    if (v === null || v === 0) { why[key] = g ? `run ${run}'s guest timed no page` : `no guest summary for pvh run ${run}`; return null; }
    return v;
  };
  const figures: XenBenchSection['figures'] = {
    fault_service_ns: fromB('fault_service_ns', latency(bl?.bar_service_ns), 'no BAR ioreq in run b'),
    register_service_ns: fromB('register_service_ns', latency(bl?.register_service_ns), 'no register ioreq in run b'),
    soft_p2m_fault_service_ns: fromBase('soft_p2m_fault_service_ns', latency(base.value?.service_ns), 'the baseline run answered no ioreq'),
    guest_fault_ns: guest('guest_fault_ns', bg, 'first_touch_ns_avg', 'b'),
    guest_mapped_read_ns: guest('guest_mapped_read_ns', bg, 'later_touch_ns_avg', 'b'),
    guest_emulated_read_ns: guest('guest_emulated_read_ns', ag, 'later_touch_ns_avg', 'a'),
    revoke_ns: fromB('revoke_ns', latency(bl?.revoke_ns), "run b revoked only explicitly (UNMAP_BLOB): no revocation came through the MMU notifier"),
    soft_p2m_revoke_ns: fromBase('soft_p2m_revoke_ns', latency(base.value?.revoke_ns), 'no revoke in the baseline run'),
    ioreqs_emulate_all: num(ax?.requests),
    ioreqs_map_and_emulate: num(bx?.requests),
  };
  if (figures.ioreqs_emulate_all === null) why.ioreqs_emulate_all = pvh.why ?? 'no xvgpu summary for pvh run a';
  if (figures.ioreqs_map_and_emulate === null) why.ioreqs_map_and_emulate = missingPvh;
  const ratios: XenBenchSection['ratios'] = {
    fault_service_over_register_p50: ratio(figures.fault_service_ns?.p50, figures.register_service_ns?.p50),
    fault_service_over_soft_p2m_p50: ratio(figures.fault_service_ns?.p50, figures.soft_p2m_fault_service_ns?.p50),
    guest_fault_over_emulated_read: ratio(figures.guest_fault_ns, figures.guest_emulated_read_ns),
    guest_fault_over_mapped_read: ratio(figures.guest_fault_ns, figures.guest_mapped_read_ns),
    revoke_over_soft_p2m_p50: ratio(figures.revoke_ns?.p50, figures.soft_p2m_revoke_ns?.p50),
    ioreqs_emulate_all_over_map_and_emulate: ratio(figures.ioreqs_emulate_all, figures.ioreqs_map_and_emulate),
  };
  const inputs: Record<keyof XenBenchSection['ratios'], (keyof XenBenchSection['figures'])[]> = {
    fault_service_over_register_p50: ['fault_service_ns', 'register_service_ns'],
    fault_service_over_soft_p2m_p50: ['fault_service_ns', 'soft_p2m_fault_service_ns'],
    guest_fault_over_emulated_read: ['guest_fault_ns', 'guest_emulated_read_ns'],
    guest_fault_over_mapped_read: ['guest_fault_ns', 'guest_mapped_read_ns'],
    revoke_over_soft_p2m_p50: ['revoke_ns', 'soft_p2m_revoke_ns'],
    ioreqs_emulate_all_over_map_and_emulate: ['ioreqs_emulate_all', 'ioreqs_map_and_emulate'],
  };
  for (const [k, ins] of Object.entries(inputs)) {
    if (ratios[k as keyof XenBenchSection['ratios']] !== null) continue;
    const missing = ins.filter((f) => why[f] !== undefined).map((f) => `${f}: ${why[f] ?? ''}`);
    why[k] = missing.length > 0 ? missing.join('; ') : 'the baseline figure is 0';
  }
  return { source: dir, tier, figures, ratios, null_reasons: why };
}

const us = (ns: number | null | undefined): string => (ns === null || ns === undefined ? '–' : (ns / 1000).toFixed(1));

/** The section as Markdown: the figures with their baselines, then the ratios (null ones with why). */
export function xenMarkdown(x: XenBenchSection): string {
  const f = x.figures, r = x.ratios, n = x.null_reasons;
  const rat = (k: keyof XenBenchSection['ratios']): string => (r[k] === null ? `null (${n[k] ?? 'no reason recorded'})` : `**${r[k]}×**`);
  const p = (s: LatencySummary | null): string => (s ? `${us(s.p50)} / ${us(s.p99)} (n=${s.count})` : '–');
  return [
    '## Real Xen (Xen tier: Xen 4.17 under QEMU TCG)',
    '',
    `From \`${x.source}\`. TCG makes every absolute time large; read the ratios, each against a baseline from the same tier run.`,
    '',
    '| figure | p50 / p99 µs (n) |',
    '|---|---|',
    `| fault service on Xen (BAR ioreq: fault, memory_mapping, emulate) | ${p(f.fault_service_ns)} |`,
    `| register ioreq service, same run (baseline) | ${p(f.register_service_ns)} |`,
    `| fault service, soft p2m in dom0 (baseline) | ${p(f.soft_p2m_fault_service_ns)} |`,
    `| revoke on Xen (invalidate → p2m entries removed) | ${p(f.revoke_ns)} |`,
    `| revoke, soft p2m in dom0 (baseline) | ${p(f.soft_p2m_revoke_ns)} |`,
    '',
    `Guest-visible (PVH guest, average per page): first read ${us(f.guest_fault_ns)} µs, mapped read ${us(f.guest_mapped_read_ns)} µs, emulated read (emulate-all) ${us(f.guest_emulated_read_ns)} µs; ioreqs of the same program: emulate-all ${f.ioreqs_emulate_all ?? '–'}, map-and-emulate ${f.ioreqs_map_and_emulate ?? '–'}.`,
    '',
    `- fault service / register ioreq service (p50): ${rat('fault_service_over_register_p50')}`,
    `- fault service on Xen / on the soft p2m (p50): ${rat('fault_service_over_soft_p2m_p50')}`,
    `- guest fault / guest emulated read: ${rat('guest_fault_over_emulated_read')}`,
    `- guest fault / guest mapped read: ${rat('guest_fault_over_mapped_read')}`,
    `- revoke on Xen / on the soft p2m (p50): ${rat('revoke_over_soft_p2m_p50')}`,
    `- ioreqs emulate-all / map-and-emulate: ${rat('ioreqs_emulate_all_over_map_and_emulate')}`,
    '',
  ].join('\n');
}
