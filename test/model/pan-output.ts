/** Reads the figures out of a spin verifier's (pan's) report. */

export interface PanResult {
  errors: number;
  /** false when pan stopped early ("Search not completed") or ran out of depth. */
  complete: boolean;
  stateVector: number;
  depth: number;
  stored: number;
  /** With fairness (-f) pan visits each state in several copies. */
  visited: number | null;
  memoryMiB: number;
  elapsedS: number;
  output: string;
  trail?: string;
}

function num(out: string, re: RegExp, what: string): number {
  const m = re.exec(out);
  if (!m?.[1]) throw new Error(`pan output has no ${what}:\n${out}`);
  return Number(m[1]);
}

export function parsePan(out: string): PanResult {
  const visited = /states, stored \(([\d.e+]+) visited\)/.exec(out);
  return {
    errors: num(out, /errors: (\d+)/, 'error count'),
    complete: !/Search not completed|max search depth too small/.test(out),
    stateVector: num(out, /State-vector (\d+) byte/, 'state vector size'),
    depth: num(out, /depth reached (\d+)/, 'depth'),
    stored: num(out, /(\d+) states, stored/, 'stored state count'),
    visited: visited?.[1] ? Number(visited[1]) : null,
    memoryMiB: num(out, /([\d.]+)\s+total actual memory usage/, 'memory usage'),
    elapsedS: num(out, /pan: elapsed time ([\d.e+]+) seconds/, 'elapsed time'),
    output: out,
  };
}
