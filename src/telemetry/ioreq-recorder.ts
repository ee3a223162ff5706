/**
 * Files each guest ioreq's blocked time (post → answer, as the vCPU saw it) by what it was:
 *  - a BAR exit while the workload's window is open: the fault histogram;
 *  - a floor probe while the floor is measured: the floor histogram;
 *  - anything else (boot, teardown, device registers, warm-up probes): not recorded, so a run whose
 *    workload makes no BAR exit has an empty fault histogram, and reports no fault latency.
 */
import { latencyHistogram, record } from './histogram.js';

export type RecorderPhase = 'outside' | 'workload' | 'floor';

export class IoreqRecorder {
  phase: RecorderPhase = 'outside';
  readonly barFaultNs = latencyHistogram();
  readonly floorNs = latencyHistogram();
  /** Sum of the BAR exits' blocked time, and their count. */
  blockedNs = 0;
  barExits = 0;

  /** `barStart`..`barEnd` (exclusive) is the BAR window; `probeGpa` the floor region's address (-1: none). */
  constructor(private readonly barStart: number, private readonly barEnd: number, private readonly probeGpa: number) {}

  /** SimCpu's onIoreqDone. */
  readonly onIoreqDone = (ns: number, gpa: number): void => {
    if (this.phase === 'workload' && gpa >= this.barStart && gpa < this.barEnd) {
      record(this.barFaultNs, ns);
      this.blockedNs += ns;
      this.barExits++;
    } else if (this.phase === 'floor' && gpa === this.probeGpa) {
      record(this.floorNs, ns);
    }
  };
}
