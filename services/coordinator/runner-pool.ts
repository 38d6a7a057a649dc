/**
 * Warm runners (docs/performance.md): sandboxed agent runners spawned before anyone asked for them, one
 * pool per runtime (not per deployment). Each is a whole new agent made ahead of time: its own id, outer
 * uid, disk volume, cgroup, network namespace with egress, databases and workspace, and a runner process
 * inside bubblewrap waiting for `init`. A create of a new agent claims one (the bundle is copied into the
 * runner's read-only bundle directory, the entry module comes with `init`), so a cold create costs the
 * module import and the first turn, not a spawn. Isolation is exactly a cold start's: the same launch,
 * made earlier.
 *
 * A runtime's pool fills once that runtime was asked for (observed demand) and is topped up after every
 * claim, one runner at a time in the background. Warm runners are not instances: they do not count
 * against capacity and are never listed. A runner that dies unclaimed is discarded and replaced; runners
 * that keep dying stop the refill for a while. Creates the pool cannot serve (a named agent, other limits
 * or network policy than the coordinator's defaults, a bundle of many files) start cold, as before.
 */
import type { AgentProcess } from "./agent-process.js";
import type { AgentRuntime } from "./runtime-commands.js";
import type { Logger } from "../shared/logger.js";
import { errorMessage } from "../shared/errors.js";

/** A runner made ahead of time; `agentId`'s directory holds its databases, workspace and bundle copy. */
export interface WarmRunner {
  readonly runtime: AgentRuntime;
  readonly agentId: string;
  readonly instanceId: string;
  readonly process: AgentProcess;
}

export interface RunnerPoolOptions<R extends WarmRunner> {
  /** Warm runners kept per runtime once it was asked for; 0 disables the pool. */
  size: number;
  /** Spawns one runner; resolves once it is sandboxed, set up and waiting for `init`. */
  make(runtime: AgentRuntime, signal: AbortSignal): Promise<R>;
  /** Kills an unclaimed runner and frees everything it holds (its directory, uid, disk, cgroup). */
  discard(runner: R): Promise<void>;
  logger: Logger;
}

export interface RunnerPoolStats {
  ready: Record<AgentRuntime, number>;
  /** Creates served by a warm runner, and creates that found none ready (started cold). */
  claims: number;
  misses: number;
  /** Runners that died before a claim (discarded, replaced). */
  died: number;
}

/** Runners dying unclaimed this many times in a row pause the refill for PAUSE_MS. */
const MAX_FAILURES = 3;
const PAUSE_MS = 30_000;
/** How long after a claim (or a death) the refill starts. */
const REFILL_DELAY_MS = 50;

export class RunnerPool<R extends WarmRunner> {
  private readonly ready: Record<AgentRuntime, R[]> = { typescript: [], python: [] };
  private readonly wanted = new Set<AgentRuntime>();
  private readonly abort = new AbortController();
  private readonly failures: Record<AgentRuntime, number> = { typescript: 0, python: 0 };
  private readonly pausedUntil: Record<AgentRuntime, number> = { typescript: 0, python: 0 };
  private filling: Promise<void> | undefined;
  private refillTimer: NodeJS.Timeout | undefined;
  private readonly discards = new Set<Promise<void>>();
  readonly counts = { claims: 0, misses: 0, died: 0 };

  constructor(private readonly options: RunnerPoolOptions<R>) {}

  get enabled(): boolean {
    return this.options.size > 0 && !this.abort.signal.aborted;
  }

  /**
   * A ready runner of `runtime` (removed from the pool), or undefined. The caller calls refill() once its
   * start settled: making a runner is start-up work that would otherwise compete with the claimed one's.
   */
  take(runtime: AgentRuntime): R | undefined {
    if (!this.enabled) return undefined;
    this.wanted.add(runtime);
    const runner = this.ready[runtime].shift();
    if (runner) {
      this.counts.claims++;
      this.failures[runtime] = 0;
    } else this.counts.misses++;
    return runner;
  }

  /** Starts filling `runtime`'s pool without claiming (a coordinator told to keep runners warm from the start). */
  warm(runtime: AgentRuntime): void {
    if (!this.enabled) return;
    this.wanted.add(runtime);
    this.refill();
  }

  stats(): RunnerPoolStats {
    return { ready: { typescript: this.ready.typescript.length, python: this.ready.python.length }, ...this.counts };
  }

  /** Stops refilling and discards every unclaimed runner. */
  async close(): Promise<void> {
    this.abort.abort(new Error("the runner pool closed"));
    clearTimeout(this.refillTimer);
    await this.filling;
    const left = [...this.ready.typescript, ...this.ready.python];
    this.ready.typescript = [];
    this.ready.python = [];
    await Promise.all(left.map((runner) => this.discard(runner)));
    await Promise.all(this.discards);
  }

  /**
   * Tops up every pool that was asked for, in the background, starting REFILL_DELAY_MS from now: the
   * synchronous parts of making a runner (forks of this process) then land after the reply of the create
   * that claimed the last one, not before it.
   */
  refill(): void {
    if (!this.enabled || this.filling || this.refillTimer) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      if (!this.enabled || this.filling) return;
      this.filling = this.fill().finally(() => {
        this.filling = undefined;
      });
    }, REFILL_DELAY_MS);
  }

  /** The runtime that most needs a runner, if any. */
  private next(): AgentRuntime | undefined {
    let best: AgentRuntime | undefined;
    for (const runtime of this.wanted) {
      if (Date.now() < this.pausedUntil[runtime] || this.ready[runtime].length >= this.options.size) continue;
      if (!best || this.ready[runtime].length < this.ready[best].length) best = runtime;
    }
    return best;
  }

  /** One runner at a time, yielding between them: creates and running agents keep the event loop. */
  private async fill(): Promise<void> {
    const { signal } = this.abort;
    for (let runtime = this.next(); runtime && !signal.aborted; runtime = this.next()) {
      let runner: R;
      try {
        runner = await this.options.make(runtime, signal);
      } catch (err) {
        if (signal.aborted) return;
        this.failed(runtime, `cannot make a warm ${runtime} runner: ${errorMessage(err)}`);
        continue;
      }
      if (signal.aborted) {
        await this.discard(runner);
        return;
      }
      this.ready[runtime].push(runner);
      void runner.process.exited.then(() => this.onExit(runner));
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private onExit(runner: R): void {
    const list = this.ready[runner.runtime];
    const index = list.indexOf(runner);
    if (index < 0) return; // claimed: its instance owns it now
    list.splice(index, 1);
    this.counts.died++;
    void this.discard(runner);
    if (this.abort.signal.aborted) return;
    this.failed(runner.runtime, `a warm ${runner.runtime} runner exited before it was claimed`);
    this.refill();
  }

  private failed(runtime: AgentRuntime, message: string): void {
    this.failures[runtime]++;
    if (this.failures[runtime] < MAX_FAILURES) {
      this.options.logger.warn(message);
      return;
    }
    this.failures[runtime] = 0;
    this.pausedUntil[runtime] = Date.now() + PAUSE_MS;
    this.options.logger.warn(`${message}; warm ${runtime} runners paused for ${PAUSE_MS / 1000} s (creates start cold meanwhile)`);
    setTimeout(() => this.refill(), PAUSE_MS).unref();
  }

  private discard(runner: R): Promise<void> {
    const done = this.options.discard(runner).catch((err: unknown) => this.options.logger.warn(`discarding a warm runner failed: ${errorMessage(err)}`, { agent_id: runner.agentId }));
    this.discards.add(done);
    void done.finally(() => this.discards.delete(done));
    return done;
  }
}

/** Warm runners per runtime by default: two creates in a row are served warm while the pool refills. */
export const DEFAULT_WARM_RUNNERS = 2;

/** `--warm-runners N` / PODIUM_WARM_RUNNERS: warm runners per runtime, 0..64 (0 disables them). */
export function parseWarmRunners(text: string | undefined): number | undefined {
  if (text === undefined || text === "") return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new Error(`--warm-runners must be an integer 0..64, got ${text}`);
  return n;
}
