/**
 * Worker threads must start from compiled JavaScript. Code runs either from dist/ (the CLI) or from
 * src/ under vitest; both resolve worker entry points to dist/, which `npm test` builds first.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('xvgpu: cannot find the package root');
    dir = up;
  }
  return dir;
}

/** Absolute path of a compiled file, e.g. distFile('guest/vcpu-worker.js'). */
export function distFile(rel: string): string {
  const path = join(packageRoot(), 'dist', rel);
  if (!existsSync(path)) throw new Error(`xvgpu: ${path} is missing; run \`npm run build\` first`);
  return path;
}
