/**
 * xorshift32 (Marsaglia): the simulation's cheap, seeded, reproducible random numbers. One step of
 * the state; callers keep the state in a field so a hot path allocates nothing.
 */
export function xorshift32(state: number): number {
  let x = state;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

/** The state as a uniform number in [0, 1). */
export function unitOf(state: number): number {
  return state / 0x1_0000_0000;
}
