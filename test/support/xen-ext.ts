/**
 * xvgpu's patched Xen (hypervisor/): where its inputs are, its public headers with the series
 * applied (for ABI checks), and the cached build. Each fails loudly when an input is missing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const REPO = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const TARBALL_REL = 'shared/xen/xen-4.17.7.tar.xz';

/** The upstream tarball, found as hypervisor/build.sh finds it (beside the clone or its main clone). */
export function xenTarball(): string {
  const env = process.env.XVGPU_XEN_TARBALL;
  if (env) return env;
  const candidates = [join(REPO, '..', TARBALL_REL)];
  try {
    const common = execFileSync('git', ['-C', REPO, 'rev-parse', '--path-format=absolute', '--git-common-dir'], { encoding: 'utf8' }).trim();
    candidates.push(join(common, '..', '..', TARBALL_REL));
  } catch {
    // not a git checkout: only the first candidate
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`Xen tarball not found (looked at ${candidates.join(', ')}; set XVGPU_XEN_TARBALL)`);
  return found;
}

export function xenPatches(): string[] {
  const dir = join(REPO, 'hypervisor', 'patches');
  return readdirSync(dir).filter((f) => f.endsWith('.patch')).sort().map((f) => join(dir, f));
}

/** xen/include/public of 4.17.7 with the series applied; returns that directory. */
export function patchedPublicHeaders(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xvgpu-xen-public-'));
  execFileSync('tar', ['-xJf', xenTarball(), '-C', dir, '--strip-components=1', '--wildcards', 'xen-4.17.7/xen/include/public/*']);
  // git apply outside a repository applies relative to the cwd; hunks of other files are left out.
  execFileSync('git', ['apply', '--include=xen/include/public/*', ...xenPatches()], { cwd: dir });
  return join(dir, 'xen', 'include', 'public');
}

/** hypervisor/build.sh: the path of the (cached) patched hypervisor binary. */
export function buildPatchedXen(): string {
  const r = execFileSync('bash', [join(REPO, 'hypervisor', 'build.sh')], { encoding: 'utf8', timeout: 3600_000, stdio: ['ignore', 'pipe', 'inherit'] });
  const path = r.trim().split('\n').pop() ?? '';
  if (!existsSync(path)) throw new Error(`hypervisor/build.sh printed '${path}', which does not exist`);
  return path;
}
