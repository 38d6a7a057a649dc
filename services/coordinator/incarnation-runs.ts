/**
 * The processes of a coordinator's instances while they run (each one an incarnation, incarnation.ts): how
 * many are awake, the agent's replication while one runs, its schedules once it is ready, and the close of
 * what it opened once its process is gone, a few at a time. A new process of an agent waits for that close.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { AgentInstance } from "./agent-instance.js";
import type { DeploymentSettings } from "./deployment-settings.js";
import type { IdleCpuWatch } from "./idle-cpu-watch.js";
import { yieldToEventLoop, throwIfCancelled, type OpenedAgent } from "./open-agent.js";
import type { ScheduleRunner } from "./schedule-runner.js";
import { WorkSlots } from "./work-slots.js";
import type { AgentReplication } from "../replication/agent-replication.js";
import type { Logger } from "../shared/logger.js";
import { errorMessage } from "../shared/errors.js";

export interface IncarnationRunsDeps {
  idleCpu: IdleCpuWatch;
  schedules: ScheduleRunner;
  replication?: AgentReplication | undefined;
  logger: Logger;
  agentDir(agentId: string): string;
  /** Closes that run at once (as many as starts). */
  concurrency: number;
}

export class IncarnationRuns {
  /** Instances with a process (not hibernated), hence their databases open. */
  private running = 0;
  /** agentId -> settles when its last process's replication was released and its databases closed. */
  private readonly closing = new Map<string, Promise<void>>();
  /** Teardowns of ended processes, a few at a time. */
  private readonly teardowns: WorkSlots;

  constructor(private readonly deps: IncarnationRunsDeps) {
    this.teardowns = new WorkSlots(deps.concurrency);
  }

  /** Instances with a process now. */
  get awake(): number {
    return this.running;
  }

  /** Settles once what the agent's last process opened is closed (undefined: nothing is closing). */
  closed(agentId: string): Promise<void> | undefined {
    return this.closing.get(agentId);
  }

  /** Settles once every process's close finished. */
  async settled(): Promise<void> {
    await Promise.all(this.closing.values());
  }

  /**
   * Runs one process of `instance` (its start, or a wake): closes what `opened` holds once that process is
   * gone, starts it, and replicates the agent while it runs. Throws what the start threw.
   */
  async run(instance: AgentInstance, opened: OpenedAgent, { limits, schedules }: DeploymentSettings, signal?: AbortSignal): Promise<void> {
    const { agentId } = instance;
    const { replication, idleCpu } = this.deps;
    idleCpu.track(instance, opened.launch, limits.idleCpuMs);
    this.running++;
    const closed = instance.processGone
      .then(async (how) => {
        this.running--;
        idleCpu.untrack(instance);
        try {
          // Final sync first: Litestream holds read transactions that would stall the stores' checkpoints.
          await replication?.release(agentId);
        } finally {
          // Still hibernated when its turn to close comes (not stopped meanwhile): its wake may reuse the volume.
          await this.close(opened, () => how === "hibernated" && instance.status === "hibernated");
        }
      })
      .catch((err: unknown) => this.deps.logger.error("closing an instance's databases failed", { agent_id: agentId, instance_id: instance.instanceId, error: errorMessage(err) }));
    this.closing.set(agentId, closed);
    void closed.finally(() => {
      if (this.closing.get(agentId) === closed) this.closing.delete(agentId);
    });
    try {
      await instance.start(signal);
    } catch (err) {
      throw err instanceof ConnectError ? err : new ConnectError(`agent failed to start: ${errorMessage(err)}`, Code.Internal);
    }
    if (signal?.aborted) {
      // Ready just as the caller went away: nobody knows this instance, so it does not run.
      await instance.stop(0);
      throwIfCancelled(signal);
    }
    if (replication && instance.live) {
      // Litestream starts once the agent is ready; its first sync copies every database whole, so writes
      // made during start-up are replicated too. An agent that cannot be replicated does not run.
      try {
        await replication.track(agentId, this.deps.agentDir(agentId));
      } catch (err) {
        await instance.stop(0);
        if (err instanceof ConnectError && err.code === Code.Unavailable) throw err;
        throw new ConnectError(`cannot replicate agent ${agentId}: ${errorMessage(err)}`, Code.Internal);
      }
    }
    if (!instance.awake) return;
    try {
      this.deps.schedules.declare(instance, schedules);
      this.deps.schedules.arm(instance); // schedules missed while the agent was not running fire now, once
    } catch (err) {
      this.deps.logger.error(`cannot read the agent's schedules: ${errorMessage(err)}`, { agent_id: agentId, instance_id: instance.instanceId });
    }
  }

  /**
   * Closing is synchronous work (checkpoints, a watcher thread, unmounting, cgroups): many processes ending
   * at once (a drain, a mass delete, cancelled creates, hibernations) take turns, and with the event loop.
   */
  close(opened: OpenedAgent, keepVolume: () => boolean = () => false): Promise<void> {
    return this.teardowns.run(async () => {
      try {
        await yieldToEventLoop();
        opened.workspaceCapture?.close();
      } finally {
        await yieldToEventLoop();
        opened.store.close();
        // A hibernated agent's disk may stay mounted a while: its wake then skips the mount.
        await opened.launch.release({ keepVolume: keepVolume() });
      }
    });
  }
}
