/**
 * Creates answered before the agent is ready (InstanceManager.spawnWith). A warm runner of a bundle that
 * already started on this coordinator is answered while it loads the entry (status `starting`), so its
 * `ready` overlaps the client's next requests (the 201, the WebSocket upgrade). Its messages queue; reads
 * of the agent wait for the start (`settled`), so what a create's answer promises holds: the initial state
 * and what onStart wrote are there. The start then belongs to no caller: a failure ends the instance as
 * `failed`, its error in the instance's log. A bundle that never started here (it may not load at all) is
 * answered only once ready, so a broken bundle's create fails with the agent's error, as without warm runners.
 */
import { raceAbort } from "../registry/cancel.js";

export class EarlyAnswers {
  /** Bundle directories an instance of which became ready here. */
  private readonly proven = new Set<string>();
  /** Starts answered before `ready`, by agent id, until they are over. */
  private readonly pending = new Map<string, Promise<void>>();

  /** May a warm runner's create of this bundle be answered before `ready`? */
  mayAnswer(bundleDir: string): boolean {
    return this.proven.has(bundleDir);
  }

  /** An instance of the bundle became ready here. */
  proved(bundleDir: string): void {
    this.proven.add(bundleDir);
  }

  /** The agent's start was answered early: `started` settles when it is over; `failed` hears how it failed. */
  answered(agentId: string, started: Promise<void>, failed: (err: unknown) => void): void {
    const report = (err: unknown): void => {
      try {
        failed(err);
      } catch {
        // a failing report must not keep the start from settling
      }
    };
    const settled: Promise<void> = started.catch(report).finally(() => {
      if (this.pending.get(agentId) === settled) this.pending.delete(agentId);
    });
    this.pending.set(agentId, settled);
  }

  /** Settles once the agent's early-answered start is over; undefined when there is none. Rejects (Canceled) when `signal` aborts first. */
  settled(agentId: string, signal?: AbortSignal): Promise<void> | undefined {
    const pending = this.pending.get(agentId);
    return pending && raceAbort(pending, signal, "waiting for the agent's start");
  }

  /** Runs `fn` now, or once the agent's start is over when it was answered early. */
  after(agentId: string | undefined, fn: () => void): void {
    const pending = agentId === undefined ? undefined : this.pending.get(agentId);
    if (pending) void pending.finally(fn);
    else fn();
  }
}
