/**
 * When idle instances hibernate: each time an instance becomes idle a timer is set for its deployment's
 * `hibernate_after_ms`; it fires only if the instance has stayed idle since (the same idle period).
 * One timer per idle instance, unref'd; cancelled when the instance ends.
 */
export interface Sleeper {
  /** Since when it has been idle; undefined while a turn runs or waits. */
  readonly idleSince: number | undefined;
}

export class HibernationTimers<T extends Sleeper> {
  private readonly timers = new Map<T, NodeJS.Timeout>();

  constructor(private readonly hibernate: (subject: T) => void) {}

  /** `subject` became idle: it hibernates after `afterMs` unless it is busy again by then. */
  schedule(subject: T, afterMs: number): void {
    this.cancel(subject);
    const since = subject.idleSince;
    if (since === undefined || !(afterMs > 0)) return;
    const timer = setTimeout(() => {
      this.timers.delete(subject);
      if (subject.idleSince === since) this.hibernate(subject);
    }, afterMs);
    timer.unref();
    this.timers.set(subject, timer);
  }

  cancel(subject: T): void {
    const timer = this.timers.get(subject);
    if (timer) clearTimeout(timer);
    this.timers.delete(subject);
  }

  close(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
