/**
 * The VM tier's host-side guards, without booting anything: the static-busybox check that keeps a
 * dynamic busybox out of the initramfs, and the panic explanation run.sh prints.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const VM = 'kernel-helper/vm';

function run(script: string, ...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync('bash', [join(VM, script), ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe('check-busybox.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvgpu-bb-'));

  it('accepts the static busybox the VM tier uses', () => {
    expect(run('check-busybox.sh', '/bin/busybox')).toEqual({ status: 0, stderr: '' });
  });

  it('refuses a dynamically linked binary in one line naming busybox-static', () => {
    // Any dynamic executable stands in for the `busybox` package's /bin/busybox.
    const fake = join(dir, 'busybox');
    copyFileSync('/bin/ls', fake);
    const r = run('check-busybox.sh', fake);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`check-busybox: ${fake} is dynamically linked: the VM tier needs a static busybox (apt-get install busybox-static)\n`);
  });

  it('refuses a missing file and a script posing as busybox', () => {
    expect(run('check-busybox.sh', join(dir, 'nothing')).stderr).toMatch(/is missing: .*busybox-static/);
    const script = join(dir, 'script');
    writeFileSync(script, '#!/bin/sh\nexit 0\n');
    chmodSync(script, 0o755);
    expect(run('check-busybox.sh', script)).toMatchObject({ status: 1, stderr: expect.stringMatching(/is not an ELF binary/) as unknown });
  });

  it('makes build-initramfs.sh stop before packing anything', () => {
    const fake = join(dir, 'busybox');
    copyFileSync('/bin/ls', fake);
    const r = spawnSync('bash', [join(VM, 'build-initramfs.sh'), 'none', join(dir, 'out.cpio.gz'), '/dev/null'], { encoding: 'utf8', env: { ...process.env, XVGPU_BUSYBOX: fake } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/dynamically linked.*busybox-static/);
  });
});

describe('explain-panic.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvgpu-panic-'));
  const log = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('prints the cause and the panic line of a guest that lost its init', () => {
    const console = [
      '[    0.9] Run /init as init process',
      '/bin/sh: error while loading shared libraries: libresolv.so.2: cannot open shared object file: No such file or directory\r',
      '[    1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00007f00\r',
      '[    1.0] Kernel Offset: 0x1e000000 from 0xffffffff81000000',
    ].join('\n');
    const r = run('explain-panic.sh', log('panic.log', console));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('the guest kernel panicked');
    expect(r.stderr).toContain('  | /bin/sh: error while loading shared libraries: libresolv.so.2');
    expect(r.stderr).toContain('  | [    1.0] Kernel panic - not syncing: Attempted to kill init!');
  });

  it('is silent and succeeds when the guest did not panic', () => {
    expect(run('explain-panic.sh', log('ok.log', 'xvgpu-vm: done status=0\n'))).toEqual({ status: 0, stderr: '' });
  });
});
