/** Compiles and runs a small C program against system headers; fails loudly if they are missing. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function runC(source: string, requiredHeader: string, pkg: string, cflags: readonly string[] = []): unknown {
  if (!existsSync(requiredHeader)) throw new Error(`${requiredHeader} is missing: install Debian's ${pkg} (.ci/run does)`);
  const dir = mkdtempSync(join(tmpdir(), 'xvgpu-c-'));
  writeFileSync(join(dir, 'probe.c'), source);
  execFileSync('gcc', ['-std=gnu11', '-Wall', '-Werror', ...cflags, '-o', join(dir, 'probe'), join(dir, 'probe.c')]);
  return JSON.parse(execFileSync(join(dir, 'probe'), { encoding: 'utf8' }));
}
