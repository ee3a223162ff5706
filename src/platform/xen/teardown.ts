/**
 * A stack of undo steps: whatever was set up is torn down in reverse, every step runs even when an
 * earlier one fails, and the failures are reported together. Setup code pushes one step per
 * resource right after creating it, so a failure at any point leaves nothing half set up.
 */
export interface UndoStep {
  /** Runs this step now (once) and drops it from the stack. */
  runNow(): void;
  /** Drops the step without running it (the resource was handed over or released elsewhere). */
  forget(): void;
}

export class Teardown {
  private readonly steps: { name: string; fn: () => void; done: boolean }[] = [];

  push(name: string, fn: () => void): UndoStep {
    const step = { name, fn, done: false };
    this.steps.push(step);
    const remove = (): void => {
      step.done = true;
      const i = this.steps.indexOf(step);
      if (i >= 0) this.steps.splice(i, 1);
    };
    return {
      runNow: () => {
        if (step.done) return;
        remove();
        fn();
      },
      forget: remove,
    };
  }

  get size(): number {
    return this.steps.length;
  }

  /** Runs every step, newest first; returns "name: error" for each that threw. */
  run(): string[] {
    const failures: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop();
      if (!step) break;
      step.done = true;
      try {
        step.fn();
      } catch (e) {
        failures.push(`${step.name}: ${(e as Error).message}`);
      }
    }
    return failures;
  }
}
