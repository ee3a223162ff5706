/** contrib/systemd/xvgpu@.service passes `systemd-analyze verify`, and the check catches a bad directive. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const UNIT = 'contrib/systemd/xvgpu@.service';
const verify = (unit: string) => spawnSync('bash', ['contrib/systemd/verify.sh', unit], { encoding: 'utf8', timeout: 60_000 });

describe('systemd unit', () => {
  it('verifies, templated on the domid with its config at /etc/xvgpu/%i.json and the hardening set', () => {
    const r = verify(UNIT);
    expect(r.stdout + r.stderr).toBe('verify.sh: xvgpu@5.service verified\n');
    expect(r.status).toBe(0);
    const text = readFileSync(UNIT, 'utf8');
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/xvgpu run --platform xen --domid %i --config \/etc\/xvgpu\/%i\.json$/m);
    for (const d of ['NoNewPrivileges=yes', 'CapabilityBoundingSet=CAP_SYS_ADMIN', 'PrivateTmp=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'DevicePolicy=closed', 'DeviceAllow=/dev/xvgpu_helper rw', 'DeviceAllow=char-drm rw']) {
      expect(text).toContain(`\n${d}\n`);
    }
  });

  it('fails on a directive systemd ignores', () => {
    const bad = join(mkdtempSync(join(tmpdir(), 'xvgpu-unit-')), 'xvgpu@.service');
    writeFileSync(bad, readFileSync(UNIT, 'utf8').replace('ProtectHome=yes', 'ProtectHome=maybe'));
    const r = verify(bad);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/xvgpu@.service:\d+: Failed to parse protect home value/);
  });
});
