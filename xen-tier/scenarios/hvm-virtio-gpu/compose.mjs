// node compose.mjs OUT TIMES_JSON FIRST_FAILURE SCENARIO BUFFERS PLATFORM_CRASH [VRAM]: the hvm-virtio-gpu summary (stdout), from
// xvgpu's --json exit summary (OUT/xvgpu.json), the guest's "XT-HVM-RESULT {json}" console line
// (OUT/guest-hvm.log), dom0's VRAM check (OUT/vram-check.json), xvgpu's exit status (OUT/xvgpu.rc)
// and the scenario's wall times.
// A missing piece is null with the reason in "missing"; "ok" needs every piece and every check.
import { existsSync, readFileSync } from 'node:fs';
import process from 'node:process';

const [out, timesJson, firstFailure, scenario, buffers, platformCrash, vram] = process.argv.slice(2);
const missing = {};
function lastJsonLine(file, prefix = '') {
  if (!existsSync(file)) return (missing[file] = 'no file'), null;
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith(prefix) && l.includes('{'));
  if (lines.length === 0) return (missing[file] = `no line starting ${JSON.stringify(prefix)} with JSON`), null;
  try {
    return JSON.parse(lines[lines.length - 1].slice(prefix.length).trim());
  } catch (e) {
    return (missing[file] = `unparsable: ${e.message}`), null;
  }
}
const guestLog = `${out}/guest-hvm.log`;
const xvgpu = lastJsonLine(`${out}/xvgpu.json`);
const guest = lastJsonLine(guestLog, 'XT-HVM-RESULT ');
const dom0Check = lastJsonLine(`${out}/vram-check.json`);
const rcFile = `${out}/xvgpu.rc`;
const xvgpuExit = existsSync(rcFile) ? Number(readFileSync(rcFile, 'utf8').trim()) : ((missing[rcFile] = 'no file: xvgpu was not running at the end'), null);
const consoleLines = existsSync(guestLog) ? readFileSync(guestLog, 'utf8').split('\n') : [];
const driverLines = consoleLines.filter((l) => /XT-HVM: (dmesg|irq|iomem)/.test(l) && /virtio|drm|LNRO|fe000000/i.test(l)).map((l) => l.replace(/^XT-HVM: /, ''));
const virtioErrors = xvgpu?.virtio?.errors ?? null;
const guestFailures = guest?.failures ?? null;
const ok = firstFailure === '' && guest?.ok === true && dom0Check?.answer === 'ack' && xvgpuExit === 0 && Object.keys(missing).length === 0;
const summary = {
  scenario,
  ok,
  first_failure: firstFailure || guest?.first_failure || null,
  blobs_backed_by: buffers === 'vram' ? { kind: 'vram', path: vram, frames: 'MMIO (QEMU ivshmem-plain BAR2)' } : { kind: buffers, frames: 'RAM (xvgpu\'s memfd BOs)' },
  p2m_backend: xvgpu?.p2m_backend ?? null,
  extension: xvgpu?.extension ?? null,
  answered_retry: xvgpu?.answered_retry ?? null,
  xvgpu_exit: xvgpuExit,
  // A first attempt whose guest was lost to the platform (hvm-virtio-gpu.sh ran the scenario again).
  platform_crashes: platformCrash ? [platformCrash] : [],
  mode: xvgpu?.mode ?? null,
  strategy: xvgpu?.strategy ?? null,
  ioreqs: xvgpu?.requests ?? null,
  bar: xvgpu?.bar ?? null,
  helper: xvgpu?.helper ?? null,
  virtio: xvgpu?.virtio ?? null,
  mapped_after_stop: xvgpu?.mapped_after_stop ?? null,
  guest_visible_errors: guestFailures === null ? null : { guest_failed_steps: guestFailures, device_error_responses: virtioErrors },
  guest,
  dom0_check: dom0Check,
  wall_s: JSON.parse(timesJson),
  guest_driver_log: driverLines.slice(0, 40),
  missing,
};
process.stdout.write(`${JSON.stringify(summary, null, 1)}\n`);
