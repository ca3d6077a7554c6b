/**
 * What a multi-step creation has made so far, as undo steps. When a later step fails, `undo()`
 * runs them newest first and keeps going past failures, returning every error, so one stuck
 * step never leaves the rest behind.
 */
export class Rollback {
  private readonly steps: (() => Promise<unknown>)[] = [];

  add(...undo: (() => Promise<unknown>)[]): void {
    this.steps.push(...undo);
  }

  async undo(): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    return errors;
  }
}
