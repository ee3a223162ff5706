// node summary.mjs TIER_JSON NAME=RESULT_JSON...: one line per scenario on stdout,
// "XVGPU-TIER summary NAME {...}", the figures issue 11 asks for, from the scenario's result.json
// (also a failed one's, when it wrote one) and tier.json's wall times. run.sh calls it once the
// results are back. A figure the run does not have is null, with the reason in null_reasons.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const load = (file) => { try { return JSON.parse(readFileSync(file, 'utf8')); } catch { return null; } };

/** Counters a guest sees go wrong: a failed step, wrong data, a read that reached a freed frame. */
const GUEST_ERROR_KEYS = ['mismatches', 'post_unmap_not_all_ones', 'fill_mismatches', 'refault_mismatches'];

/** One run of the pvh scenario (a, b, inject, c, d, e): xvgpu's counters and the guest's. */
export function pvhRun(r) {
  if (!r) return { null_reasons: { run: 'the run wrote no summary' } };
  const reasons = {};
  const x = r?.xvgpu ?? null;
  const g = r?.guest ?? null;
  if (!x) reasons.xvgpu = 'xvgpu wrote no --json summary';
  if (!g) reasons.guest = 'the guest printed no result line';
  const fig = (v) => (v === undefined ? null : v);
  const run = {
    ioreqs: x ? x.requests : null,
    faults: x ? x.bar.faults : null,
    emulated: x ? x.bar.emulated : null,
    maps: x ? x.helper.maps : null,
    installed_pages: x ? x.helper.installed_pages : null,
    revokes: x ? x.bar.revokes : null,
    revoked_pages: x ? x.helper.revoked_pages : null,
    stale_reads: g ? g.stale_reads : null,
    guest_errors: g ? (g.ok ? 0 : 1) + GUEST_ERROR_KEYS.reduce((s, k) => s + g[k], 0) : null,
    guest_error: g && !g.ok ? `${g.error} (line ${g.error_line})` : null,
    first_touch_ns_avg: g ? fig(g.first_touch_ns_avg) : null,
    later_touch_ns_avg: g ? fig(g.later_touch_ns_avg) : null,
    xen_frames_mapped: r.xen_memory_map.add,
    xen_frames_unmapped: r.xen_memory_map.remove,
    wall_ms: r.wall_ms,
  };
  if (r.stale_reads_null_reason) { run.stale_reads = null; reasons.stale_reads = r.stale_reads_null_reason; }
  if (r.unsafe) { run.unsafe = true; run.unsafe_reason = r.unsafe_reason; }
  return Object.keys(reasons).length ? { ...run, null_reasons: reasons } : run;
}

/** A pvh run cut short (timeout) wrote no result.json: the runs that finished wrote NAME.json. */
function partialPvh(name, file) {
  if (name !== 'pvh') return null;
  const runs = ['a', 'b', 'inject', 'c', 'd', 'e'].filter((k) => load(join(dirname(file), `${k}.json`)) !== null);
  if (runs.length === 0) return null;
  return { runs, ...Object.fromEntries(runs.map((k) => [k, load(join(dirname(file), `${k}.json`))])), problems: ['the scenario ended before its checks (no result.json)'] };
}

export function summary(tier, name, r) {
  const s = tier?.scenarios?.[name] ?? { status: 'not run', wall_s: null };
  if (name !== 'pvh' || !r) return s;
  const runs = {};
  for (const k of ['a', 'b', 'inject', 'c', 'd', 'e']) if (k in r) runs[k] = pvhRun(r[k]);
  return { ...s, runs, platform_crashes: r.platform_crashes ?? null, problems: r.problems };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [tierFile, ...pairs] = process.argv.slice(2);
  const tier = load(tierFile);
  for (const p of pairs) {
    const name = p.slice(0, p.indexOf('=')), file = p.slice(p.indexOf('=') + 1);
    process.stdout.write(`XVGPU-TIER summary ${name} ${JSON.stringify(summary(tier, name, load(file) ?? partialPvh(name, file)))}\n`);
  }
}
