/**
 * Bounds the CPU an agent burns while no turn runs (a spin loop after `turn.done`, a runaway timer):
 * every second, each idle instance's whole-tree CPU (its cgroup) is compared with what it used when it
 * became idle; past `idleCpuMs` the instance is killed with a reason its clients and log see.
 * A turn resets the budget. Without a cgroup there is no reading, and nothing is bounded.
 */
export interface IdleCpuSubject {
  readonly instanceId: string;
  readonly live: boolean;
  /** No turn running and none queued. */
  readonly idle: boolean;
  kill(reason: string): void;
}

interface Tracked {
  usage: () => number | undefined;
  budgetMicros: number;
  /** CPU reading when the current idle period began; undefined while busy. */
  base: number | undefined;
}

export class IdleCpuWatch {
  private readonly tracked = new Map<IdleCpuSubject, Tracked>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 1000) {}

  track(subject: IdleCpuSubject, source: { cpuUsageMicros(): number | undefined }, budgetMs: number): void {
    if (source.cpuUsageMicros() === undefined) return;
    this.tracked.set(subject, { usage: () => source.cpuUsageMicros(), budgetMicros: budgetMs * 1000, base: undefined });
    this.timer ??= setInterval(() => this.check(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops watching `subject` (its process is gone: it hibernated); track() again when it has a new one. */
  untrack(subject: IdleCpuSubject): void {
    this.tracked.delete(subject);
  }

  /** One pass (the timer's; tests call it directly). */
  check(): void {
    for (const [subject, tracked] of this.tracked) {
      if (!subject.live) {
        this.tracked.delete(subject);
        continue;
      }
      if (!subject.idle) {
        tracked.base = undefined;
        continue;
      }
      let usage: number | undefined;
      try {
        usage = tracked.usage();
      } catch {
        usage = undefined; // the cgroup is going away with the process
      }
      if (usage === undefined) continue;
      if (tracked.base === undefined) {
        tracked.base = usage;
        continue;
      }
      const burned = usage - tracked.base;
      if (burned > tracked.budgetMicros) {
        this.tracked.delete(subject);
        subject.kill(`used ${Math.round(burned / 1000)} ms of CPU while no turn was running (limit ${Math.round(tracked.budgetMicros / 1000)} ms, idle_cpu_ms)`);
      }
    }
    if (this.tracked.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.tracked.clear();
  }
}
