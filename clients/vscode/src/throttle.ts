// Calls a function at most once per interval, the first call at once and the last one late rather than never. No
// `vscode` import.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const SYSTEM: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * For events that something downstream debounces: VS Code asks the CodeLens provider again only once its change
 * event has been quiet for a while (250 ms or more), so an event fired on every canvas would hold the lenses back until
 * the stream ends. Fired through this, at most once per `ms`, each change gets its turn.
 */
export class Throttle {
  private last = -Infinity;
  private timer: unknown;

  constructor(
    private readonly fn: () => void,
    private readonly ms: number,
    private readonly clock: Clock = SYSTEM,
  ) {}

  run(): void {
    if (this.timer !== undefined) return; // a call is already scheduled: it will see the latest state
    const wait = this.last + this.ms - this.clock.now();
    if (wait <= 0) return this.fire();
    this.timer = this.clock.setTimeout(() => this.fire(), wait);
  }

  /** Calls it now (a state change that must show at once), dropping a scheduled call. */
  flush(): void {
    this.cancel();
    this.fire();
  }

  cancel(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fire(): void {
    this.timer = undefined;
    this.last = this.clock.now();
    this.fn();
  }
}
