/** `xvgpu xen-info` and `xvgpu run --platform xen` on this machine, which has no Xen. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { distFile } from '../../src/util/dist-path.js';
import { interruptFor } from '../../src/cli/run-xen.js';
import { ConfigError } from '../../src/backend.js';

const CLI = distFile('cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
const XEN = ['run', '--platform', 'xen'];
const GOOD = ['--domid', '5', '--bar-gfn', '0x100000', '--bar-size', '64M', '--mmio-base', '0xfe000000', '--irq', '5'];
const onXen = existsSync('/dev/xen/privcmd');

describe('xvgpu on a host without Xen', () => {
  it('is a host without Xen (these tests assert the non-Xen behaviour)', () => {
    expect(onXen).toBe(false);
  });

  it('xen-info exits 1 with one line naming what is missing', () => {
    const r = run('xen-info');
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^xvgpu: xen-info: (not running on Xen|\/dev\/xen\/(privcmd|evtchn) missing)/);
  });

  it('run --platform xen with good values exits 2 with one line naming what is missing', () => {
    const r = run(...XEN, ...GOOD);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/not running on Xen|\/dev\/xen\/privcmd missing/);
  });

  it.each([
    [['--domid', '0'], /--domid 0 is dom0/],
    [['--domid', '0x7ff0'], /--domid must be an integer .* to 0x7fef/],
    [['--domid', 'x'], /--domid must be an integer/],
    [['--bar-size', '6000'], /--bar-size must be a non-zero multiple of 4096/],
    [['--bar-size', '0'], /--bar-size must be a non-zero multiple of 4096/],
    [['--mmio-base', '0xfe000100'], /--mmio-base must be page aligned/],
    [['--mmio-base', '0x100000000'], /overlaps the BAR/],
    [['--mmio-base', '0x103fff000'], /overlaps the BAR/],
    [['--irq', '2'], /PIC cascade/],
    [['--irq', '16'], /--irq must be an integer from 1 to 15/],
    [['--bar-gfn', '0xfffffffffffff'], /--bar-gfn must be an integer/],
  ])('rejects %j with one line and exit 2', (bad, msg) => {
    const args = [...GOOD];
    const i = args.indexOf(bad[0] ?? '');
    args[i + 1] = bad[1] ?? '';
    const r = run(...XEN, ...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('requires every xen option and refuses them on other platforms', () => {
    expect(run(...XEN, '--domid', '5').stderr).toMatch(/--bar-gfn is required/);
    expect(run('run', '--domid', '5').stderr).toMatch(/--domid needs --platform xen/);
  });
});

describe('--irq by guest type', () => {
  it('requires it for an HVM guest and passes it through', () => {
    expect(interruptFor('hvm', 7)).toBe(7);
    expect(() => interruptFor('hvm', undefined)).toThrow(ConfigError);
  });

  it('refuses it for a PVH guest (no emulated interrupt controller) and wires no line without it', () => {
    expect(() => interruptFor('pvh', 7)).toThrow(/--irq given for a PVH guest/);
    expect(interruptFor('pvh', undefined)).toBeUndefined();
  });
});
