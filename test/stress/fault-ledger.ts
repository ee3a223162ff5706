/**
 * Watches the BAR manager's answers from outside during a run of the real code: how many faults it
 * took and answered (none may be lost), and the longest run of `retry` answers one vCPU got in a
 * row on one page (D5 bounds it by the retry limit; an instruction's retries are part of such a run).
 */
import type { IoAnswer } from '../../src/ioreq/server.js';

export class FaultLedger {
  taken = 0;
  answered = 0;
  failed = 0;
  retries = 0;
  emulated = 0;
  longestRetryRun = 0;
  private readonly lastPage = new Map<number, number>();
  private readonly run = new Map<number, number>();

  take(): void {
    this.taken++;
  }

  /** One answer to `vcpu` for a fault on BAR page `page`. */
  answer(vcpu: number, page: number, out: IoAnswer): void {
    this.answered++;
    if (!out.retry) {
      this.emulated++;
      this.run.set(vcpu, 0);
      return;
    }
    this.retries++;
    const n = this.lastPage.get(vcpu) === page ? (this.run.get(vcpu) ?? 0) + 1 : 1;
    this.lastPage.set(vcpu, page);
    this.run.set(vcpu, n);
    this.longestRetryRun = Math.max(this.longestRetryRun, n);
  }

  fail(): void {
    this.failed++;
  }
}
