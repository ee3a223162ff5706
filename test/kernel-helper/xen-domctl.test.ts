/** The kernel helper's `xen` back-end, unit-checked in user space against libxen-dev's domctl.h. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('kernel-helper xen back-end (user-space unit check)', () => {
  it('matches xen/domctl.h and batches memory_mapping like libxc', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'xvgpu-xen-')), 'xen_domctl_test');
    execFileSync('gcc', ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-o', out, 'kernel-helper/tests/xen_domctl_test.c']);
    const r = execFileSync(out, { encoding: 'utf8' });
    expect(r).toMatch(/^34 passed, 0 failed$/m);
    expect(r).not.toMatch(/not ok/);
  });
});
